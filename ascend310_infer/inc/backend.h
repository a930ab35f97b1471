// What the harness needs from an inference runtime. The one SDK-dependent implementation lives in
// src/mindspore_backend.cc (compiled only when build.sh finds MindSpore Lite); tests and the replay tool implement it
// without any SDK.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "precision.h"
#include "sidecar.h"

namespace ipt {

class InferBackend {
 public:
  virtual ~InferBackend() = default;
  // The model's own inputs and outputs (as the runtime reports them), checked against the sidecar before any run.
  virtual std::vector<TensorSpec> inputs() const = 0;
  virtual std::vector<TensorSpec> outputs() const = 0;
  // One fixed-size batch: `in` holds exactly inputs()[0]'s elements, `out` is resized to outputs()[0]'s. Throws
  // ipt::ModelError on failure.
  virtual void predict(const std::vector<float> &in, std::vector<float> *out) = 0;
  virtual std::string describe() const = 0;
};

// Defined only in the SDK build (src/mindspore_backend.cc): builds the MindIR with MindSpore Lite on device_type
// ("Ascend", "CPU", "GPU") / device_id; on Ascend with `precision` (choose_precision_mode), which describe() reports
// as Lite holds it. Throws ipt::ModelError with the SDK's status text when building fails.
std::unique_ptr<InferBackend> make_lite_backend(const std::string &mindir_path, const std::string &device_type,
                                                int device_id, const PrecisionMode &precision);

}  // namespace ipt
