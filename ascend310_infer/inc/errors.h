// One-line user errors: each names the file, key or value and what was expected.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

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

// "a, b or c": the accepted values, for an error's "expected ..." part.
inline std::string or_list(const std::vector<std::string> &values) {
  std::string text;
  for (size_t i = 0; i < values.size(); ++i) text += (i == 0 ? "" : i + 1 == values.size() ? " or " : ", ") + values[i];
  return text;
}

}  // namespace ipt
