// The JSON sidecar export.py writes beside a model (<model file>.json), parsed with nlohmann-json and checked.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ipt {

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;  // "float32", "float16", ...
};

struct Sidecar {
  std::string path;  // the sidecar file
  std::string file, file_format, task, dtype, default_mode;
  std::string compute_dtype;  // float32, float16 or bfloat16; empty when the sidecar does not record it
  std::string graph_form;     // native or cpu; empty when the sidecar does not record it
  int scale = 0, tile_size = 0, batch_size = 0;
  double value_min = 0, value_max = 0;
  std::vector<TensorSpec> inputs, outputs;
};

std::string sidecar_path(const std::string &model_path);
// ModelError (one line naming the file and key) when the sidecar is missing, not JSON, lacks a key, has a value of
// the wrong type or value (compute_dtype and graph_form are optional, checked when present), describes shapes that
// disagree with its own task/scale/tile/batch, or tiling parameters that differ from the ones this harness implements
// (src/tiler.py's, derived from tile_size and scale).
Sidecar read_sidecar(const std::string &model_path);
Sidecar parse_sidecar(const std::string &json_text, const std::string &where);
// ModelError when the model's own inputs/outputs (count, dtype, shape) differ from the sidecar's.
void check_model_io(const Sidecar &side, const std::vector<TensorSpec> &inputs, const std::vector<TensorSpec> &outputs,
                    const std::string &model_path);
// ConfigError when a requested batch size (> 0) is not the exported one.
void check_batch_size(const Sidecar &side, int requested, const std::string &model_path);
std::string shape_string(const std::vector<int64_t> &shape);

}  // namespace ipt
