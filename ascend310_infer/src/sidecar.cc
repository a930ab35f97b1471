#include "sidecar.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "errors.h"

namespace ipt {
namespace {

using json = nlohmann::json;

const char *const kFormat = "ipt-mindspore-export/1";

const json &need(const json &j, const char *key, const std::string &where) {
  if (!j.is_object() || !j.contains(key)) throw ModelError(where + ": missing key '" + key + "'");
  return j.at(key);
}

template <typename T>
T get(const json &j, const char *key, const std::string &where, const char *expected) {
  const json &v = need(j, key, where);
  try {
    return v.get<T>();
  } catch (const json::exception &) {
    throw ModelError(where + ": key '" + key + "' is " + v.dump() + "; expected " + expected);
  }
}

std::vector<TensorSpec> tensors(const json &j, const char *key, const std::string &where) {
  const json &list = need(j, key, where);
  if (!list.is_array() || list.empty()) throw ModelError(where + ": key '" + key + "' must be a non-empty list");
  std::vector<TensorSpec> out;
  for (const json &t : list) {
    const std::string at = where + " " + key;
    out.push_back({get<std::string>(t, "name", at, "a string"), get<std::vector<int64_t>>(t, "shape", at, "a list of ints"),
                   get<std::string>(t, "dtype", at, "a string")});
  }
  return out;
}

void expect_int(const json &mode, const char *mode_name, const char *key, int want, const std::string &where) {
  const int got = get<int>(mode, key, where + " tiling." + mode_name, "an integer");
  if (got != want)
    throw ModelError(where + ": tiling." + mode_name + "." + key + " is " + std::to_string(got) +
                     "; this harness implements " + std::to_string(want) + " (src/tiler.py)");
}

// The key's string value, one of `allowed`; "" when the key is absent.
std::string optional_choice(const json &j, const char *key, const std::vector<std::string> &allowed,
                            const std::string &where) {
  if (!j.contains(key)) return "";
  const std::string value = get<std::string>(j, key, where, "a string");
  if (std::find(allowed.begin(), allowed.end(), value) == allowed.end())
    throw ModelError(where + ": " + key + " '" + value + "'; expected " + or_list(allowed));
  return value;
}

}  // namespace

std::string shape_string(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string sidecar_path(const std::string &model_path) { return model_path + ".json"; }

Sidecar parse_sidecar(const std::string &text, const std::string &where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error &e) {
    throw ModelError(where + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!j.is_object()) throw ModelError(where + ": expected a JSON object");
  const std::string format = get<std::string>(j, "format", where, "a string");
  if (format != kFormat) throw ModelError(where + ": format '" + format + "'; expected '" + kFormat + "'");
  Sidecar s;
  s.path = where;
  s.file = get<std::string>(j, "file", where, "a string");
  s.file_format = get<std::string>(j, "file_format", where, "a string");
  s.task = get<std::string>(j, "task", where, "a string");
  s.dtype = get<std::string>(j, "dtype", where, "a string");
  s.scale = get<int>(j, "scale", where, "an integer");
  s.tile_size = get<int>(j, "tile_size", where, "an integer");
  s.batch_size = get<int>(j, "batch_size", where, "an integer");
  const auto range = get<std::vector<double>>(j, "value_range", where, "[min, max]");
  if (range.size() != 2) throw ModelError(where + ": value_range must be [min, max]");
  s.value_min = range[0];
  s.value_max = range[1];
  s.inputs = tensors(j, "inputs", where);
  s.outputs = tensors(j, "outputs", where);
  if (s.scale < 1 || s.scale > 4) throw ModelError(where + ": scale " + std::to_string(s.scale) + "; expected 1..4");
  if (s.tile_size < 4 || s.tile_size % 4)
    throw ModelError(where + ": tile_size " + std::to_string(s.tile_size) + "; expected a multiple of 4");
  if (s.batch_size < 1) throw ModelError(where + ": batch_size " + std::to_string(s.batch_size) + "; expected >= 1");
  if (s.dtype != "float32") throw ModelError(where + ": dtype '" + s.dtype + "'; this harness feeds float32");
  const int p = s.tile_size, t = p * s.scale;
  const std::vector<int64_t> want_in = {s.batch_size, 3, p, p}, want_out = {s.batch_size, 3, t, t};
  if (s.inputs.size() != 1 || s.inputs[0].shape != want_in)
    throw ModelError(where + ": inputs " + shape_string(s.inputs[0].shape) + " (" + std::to_string(s.inputs.size()) +
                     " input(s)) disagree with batch_size/tile_size: expected one input " + shape_string(want_in));
  if (s.outputs.size() != 1 || s.outputs[0].shape != want_out)
    throw ModelError(where + ": outputs " + shape_string(s.outputs[0].shape) + " disagree with scale/tile_size: "
                     "expected one output " + shape_string(want_out));
  const json &tiling = need(j, "tiling", where);
  s.default_mode = get<std::string>(tiling, "default", where + " tiling", "a string");
  const json &fast = need(tiling, "fast", where + " tiling");
  expect_int(fast, "fast", "patch_size", p, where);
  expect_int(fast, "fast", "max_step", p - p / 4, where);
  expect_int(fast, "fast", "min_overlap", p / 4, where);
  expect_int(fast, "fast", "ramp", (p / 4) * s.scale, where);
  const json &paper = need(tiling, "paper", where + " tiling");
  expect_int(paper, "paper", "patch_size", p, where);
  expect_int(paper, "paper", "shave", p / 2, where);
  expect_int(paper, "paper", "stride", p / 4, where);
  if (s.default_mode != "fast" && s.default_mode != "paper")
    throw ModelError(where + ": tiling.default '" + s.default_mode + "'; expected fast or paper");
  s.compute_dtype = optional_choice(j, "compute_dtype", {"float32", "float16", "bfloat16"}, where);
  s.graph_form = optional_choice(j, "graph_form", {"native", "cpu"}, where);
  for (const char *key : {"layout", "color", "project_version", "checkpoint"}) need(j, key, where);
  return s;
}

Sidecar read_sidecar(const std::string &model_path) {
  namespace fs = std::filesystem;
  if (!fs::is_regular_file(model_path)) throw ModelError(model_path + ": no such model file");
  const std::string path = sidecar_path(model_path);
  std::ifstream f(path);
  if (!f)
    throw ModelError(model_path + ": its sidecar " + fs::path(path).filename().string() +
                     " is missing; export.py writes it beside the model (copy it along, or re-export)");
  std::stringstream text;
  text << f.rdbuf();
  Sidecar s = parse_sidecar(text.str(), path);
  const std::string name = fs::path(model_path).filename().string();
  if (s.file != name)
    throw ModelError(path + ": describes '" + s.file + "', not " + name + " (renamed model? rename its sidecar with it)");
  return s;
}

void check_model_io(const Sidecar &side, const std::vector<TensorSpec> &inputs, const std::vector<TensorSpec> &outputs,
                    const std::string &model_path) {
  auto check = [&](const char *kind, const std::vector<TensorSpec> &model, const std::vector<TensorSpec> &declared) {
    if (model.size() != declared.size())
      throw ModelError(model_path + ": the model has " + std::to_string(model.size()) + " " + kind +
                       "(s); its sidecar declares " + std::to_string(declared.size()));
    for (size_t i = 0; i < model.size(); ++i) {
      if (model[i].shape != declared[i].shape)
        throw ModelError(model_path + ": " + kind + " " + std::to_string(i) + " of the model is " +
                         shape_string(model[i].shape) + "; its sidecar says " + shape_string(declared[i].shape));
      if (model[i].dtype != declared[i].dtype)
        throw ModelError(model_path + ": " + kind + " " + std::to_string(i) + " of the model is " + model[i].dtype +
                         "; its sidecar says " + declared[i].dtype);
    }
  };
  check("input", inputs, side.inputs);
  check("output", outputs, side.outputs);
}

void check_batch_size(const Sidecar &side, int requested, const std::string &model_path) {
  if (requested > 0 && requested != side.batch_size)
    throw ConfigError("--batch_size " + std::to_string(requested) + ": " + model_path + " was exported with batch size " +
                      std::to_string(side.batch_size) + " (input " + shape_string(side.inputs[0].shape) + "); use " +
                      std::to_string(side.batch_size) + " or re-export with --batch_size " + std::to_string(requested));
}

}  // namespace ipt
