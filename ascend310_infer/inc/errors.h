// One-line user errors: each names the file, key or value and what was expected.
#pragma once

#include <stdexcept>
#include <string>

namespace ipt {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct ImageError : Error {
  using Error::Error;
};
struct ConfigError : Error {
  using Error::Error;
};
struct ModelError : Error {
  using Error::Error;
};

}  // namespace ipt
