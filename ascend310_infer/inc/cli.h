// One way for every tool to end: a user error is one "error: ..." line and status 2, anything else status 1.
#pragma once

#include <exception>
#include <functional>
#include <iostream>
#include <string>

#include "errors.h"

namespace ipt {

// True when the arguments hold --help or -h: the tool then prints its usage text on stdout and exits with status 0.
inline bool asks_for_help(int argc, const char *const argv[]) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") return true;
  }
  return false;
}

inline int guarded_main(const std::function<int()> &body) {
  try {
    return body();
  } catch (const Error &e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::invalid_argument &e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception &e) {
    std::cerr << "error: internal: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace ipt
