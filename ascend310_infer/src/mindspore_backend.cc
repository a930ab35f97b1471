// The only file that includes the SDK: the InferBackend for an exported MindIR on MindSpore Lite,
// Model::Build(path, kMindIR, context). Lite only: MindSpore's own C++ inference API (libmindspore.so, include/api in
// the framework package) no longer ships with MindSpore 2.x; see README.md ("Why MindSpore Lite only").
// Compiled only when build.sh finds MS_LITE_HOME; it cannot be compiled or tested on machines without it.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "include/api/context.h"
#include "include/api/model.h"
#include "include/api/status.h"
#include "include/api/types.h"

#include "backend.h"
#include "errors.h"

namespace ipt {
namespace {

std::string dtype_name(mindspore::DataType t) {
  switch (t) {
    case mindspore::DataType::kNumberTypeFloat32: return "float32";
    case mindspore::DataType::kNumberTypeFloat16: return "float16";
    default: return "type " + std::to_string(static_cast<int>(t));
  }
}

std::vector<TensorSpec> specs(const std::vector<mindspore::MSTensor> &tensors) {
  std::vector<TensorSpec> out;
  for (const auto &t : tensors) out.push_back({t.Name(), t.Shape(), dtype_name(t.DataType())});
  return out;
}

class LiteBackend : public InferBackend {
 public:
  LiteBackend(const std::string &path, const std::string &device_type, int device_id, const PrecisionMode &precision)
      : description_("MindSpore Lite, " + device_type + " device " + std::to_string(device_id)) {
    auto context = std::make_shared<mindspore::Context>();
    auto &infos = context->MutableDeviceInfo();
    if (device_type == "Ascend") {
      auto ascend = std::make_shared<mindspore::AscendDeviceInfo>();
      ascend->SetDeviceID(device_id);
      // Lite maps its five modes to ACL's precision_mode (preferred_fp32 -> allow_fp32_to_fp16, enforce_origin ->
      // must_keep_origin_dtype, ...) and only logs any other value, keeping its enforce_fp16 default: read it back.
      ascend->SetPrecisionMode(precision.mode);
      const std::string used = ascend->GetPrecisionMode();
      if (used != precision.mode)
        throw ModelError("MindSpore Lite did not take the Ascend precision mode " + precision.mode + " (it holds '" +
                         used + "'); expected one of " + or_list(lite_precision_modes()));
      description_ += ", precision mode " + used + " (" + precision.reason + ")";
      infos.push_back(ascend);
    } else if (device_type == "GPU") {
      auto gpu = std::make_shared<mindspore::GPUDeviceInfo>();
      gpu->SetDeviceID(device_id);
      infos.push_back(gpu);
    } else {
      infos.push_back(std::make_shared<mindspore::CPUDeviceInfo>());
    }
    const mindspore::Status status = model_.Build(path, mindspore::kMindIR, context);
    if (status != mindspore::kSuccess)
      throw ModelError(path + ": building the model on " + device_type + " failed: " + status.ToString());
    inputs_ = specs(model_.GetInputs());
    outputs_ = specs(model_.GetOutputs());
    if (inputs_.empty()) throw ModelError(path + ": the built model has no inputs");
  }

  std::vector<TensorSpec> inputs() const override { return inputs_; }
  std::vector<TensorSpec> outputs() const override { return outputs_; }
  std::string describe() const override { return description_; }

  void predict(const std::vector<float> &in, std::vector<float> *out) override {
    const std::vector<mindspore::MSTensor> model_inputs = model_.GetInputs();
    const auto &first = model_inputs[0];
    if (first.DataSize() != in.size() * sizeof(float))
      throw ModelError("input batch of " + std::to_string(in.size() * sizeof(float)) + " bytes; the model's input " +
                       first.Name() + " takes " + std::to_string(first.DataSize()));
    std::vector<mindspore::MSTensor> inputs = {
        mindspore::MSTensor(first.Name(), first.DataType(), first.Shape(), in.data(), in.size() * sizeof(float))};
    std::vector<mindspore::MSTensor> outputs;
    const mindspore::Status status = model_.Predict(inputs, &outputs);
    if (status != mindspore::kSuccess) throw ModelError("Predict failed: " + status.ToString());
    if (outputs.size() != 1 || outputs[0].DataType() != mindspore::DataType::kNumberTypeFloat32)
      throw ModelError("the model returned " + std::to_string(outputs.size()) + " output(s) of " +
                       (outputs.empty() ? std::string("nothing") : dtype_name(outputs[0].DataType())) +
                       "; expected one float32 output");
    const auto data = outputs[0].Data();
    out->resize(outputs[0].ElementNum());
    std::memcpy(out->data(), data.get(), outputs[0].DataSize());
  }

 private:
  mindspore::Model model_;
  std::string description_;
  std::vector<TensorSpec> inputs_, outputs_;
};

}  // namespace

std::unique_ptr<InferBackend> make_lite_backend(const std::string &mindir_path, const std::string &device_type,
                                                int device_id, const PrecisionMode &precision) {
  return std::make_unique<LiteBackend>(mindir_path, device_type, device_id, precision);
}

}  // namespace ipt
