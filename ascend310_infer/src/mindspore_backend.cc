// The only file that includes the MindSpore SDK: the InferBackend for an exported MindIR.
// ENABLE_LITE (MindSpore Lite, MS_LITE_HOME): Model::Build(path, kMindIR, context).
// Otherwise (MindSpore's C++ API, include/api from a MindSpore install): Serialization::Load + GraphCell.
// Compiled only when build.sh / CMake find the SDK; it cannot be compiled or tested on machines without it.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "include/api/context.h"
#include "include/api/model.h"
#include "include/api/status.h"
#include "include/api/types.h"
#ifndef ENABLE_LITE
#include "include/api/serialization.h"
#endif

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

class MindSporeBackend : public InferBackend {
 public:
  MindSporeBackend(const std::string &path, const std::string &device_type, int device_id)
      : description_(device_type + " device " + std::to_string(device_id)) {
    auto context = std::make_shared<mindspore::Context>();
    auto &infos = context->MutableDeviceInfo();
    if (device_type == "Ascend") {
      auto ascend = std::make_shared<mindspore::AscendDeviceInfo>();
      ascend->SetDeviceID(device_id);
      if (const char *mode = std::getenv("IPT_ASCEND_PRECISION")) {  // e.g. enforce_fp32 (Lite) / must_keep_origin_dtype
        ascend->SetPrecisionMode(mode);
        description_ += std::string(", precision ") + mode;
      }
      infos.push_back(ascend);
    } else if (device_type == "GPU") {
      auto gpu = std::make_shared<mindspore::GPUDeviceInfo>();
      gpu->SetDeviceID(device_id);
      infos.push_back(gpu);
    } else {
      infos.push_back(std::make_shared<mindspore::CPUDeviceInfo>());
    }
#ifdef ENABLE_LITE
    const mindspore::Status status = model_.Build(path, mindspore::kMindIR, context);
    description_ = "MindSpore Lite, " + description_;
#else
    mindspore::Graph graph;
    mindspore::Status status = mindspore::Serialization::Load(path, mindspore::ModelType::kMindIR, &graph);
    if (status != mindspore::kSuccess) throw ModelError(path + ": MindSpore cannot load this MindIR: " + status.ToString());
    status = model_.Build(mindspore::GraphCell(graph), context);
    description_ = "MindSpore, " + description_;
#endif
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

std::unique_ptr<InferBackend> make_mindspore_backend(const std::string &mindir_path, const std::string &device_type,
                                                     int device_id) {
  return std::make_unique<MindSporeBackend>(mindir_path, device_type, device_id);
}

}  // namespace ipt
