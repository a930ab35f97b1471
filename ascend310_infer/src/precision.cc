#include "precision.h"

#include <algorithm>

#include "errors.h"

namespace ipt {

const std::vector<std::string> &lite_precision_modes() {
  static const std::vector<std::string> modes = {"enforce_fp32", "preferred_fp32", "enforce_fp16", "enforce_origin",
                                                 "preferred_optimal"};
  return modes;
}

void check_precision_mode(const std::string &mode) {
  const auto &modes = lite_precision_modes();
  if (std::find(modes.begin(), modes.end(), mode) == modes.end())
    throw ConfigError("--precision_mode '" + mode + "'; MindSpore Lite's Ascend precision modes are " + or_list(modes));
}

PrecisionMode choose_precision_mode(const std::string &requested, const Sidecar &side) {
  if (!requested.empty()) {
    check_precision_mode(requested);
    return {requested, "--precision_mode"};
  }
  if (side.compute_dtype.empty()) return {"preferred_fp32", "default; the sidecar records no compute_dtype"};
  return {"preferred_fp32", "default for a " + side.compute_dtype + " MindIR"};
}

}  // namespace ipt
