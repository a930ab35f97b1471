// The Ascend precision mode handed to MindSpore Lite (AscendDeviceInfo::SetPrecisionMode), chosen and checked before
// the model is built. Lite accepts five values; any other it logs and ignores, and the model would then build in
// Lite's own default (enforce_fp16: float16 everywhere, LayerNorm statistics included).
#pragma once

#include <string>
#include <vector>

#include "sidecar.h"

namespace ipt {

// enforce_fp32, preferred_fp32, enforce_fp16, enforce_origin, preferred_optimal: the values MindSpore Lite's
// AscendDeviceInfo::SetPrecisionMode accepts (mindspore-lite: src/extendrt/cxx_api/context.cc).
const std::vector<std::string> &lite_precision_modes();
// ConfigError "--precision_mode 'X'; MindSpore Lite's Ascend precision modes are enforce_fp32, ..." for any other
// value.
void check_precision_mode(const std::string &mode);

struct PrecisionMode {
  std::string mode;    // one of lite_precision_modes()
  std::string reason;  // why this mode: "--precision_mode" or the default and the MindIR's compute dtype
};

// The requested mode when given (checked), else preferred_fp32:
// Lite's ACL option allow_fp32_to_fp16, which keeps vector ops (LayerNorm, Softmax) in the MindIR's float32 and runs
// matrix ops (MatMul, Conv2D) in float16, for a float32 MindIR and for a float16 export (its float32 statistics).
PrecisionMode choose_precision_mode(const std::string &requested, const Sidecar &side);

}  // namespace ipt
