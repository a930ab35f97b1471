// One way for every tool to end: a user error is one "error: ..." line and status 2, anything else status 1.
#pragma once

#include <exception>
#include <functional>
#include <iostream>

#include "errors.h"

namespace ipt {

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
