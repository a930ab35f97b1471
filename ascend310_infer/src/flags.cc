#include "flags.h"

#include <cstdlib>
#include <string>

#include "errors.h"
#include "precision.h"
#include "tiler.h"

namespace ipt {
namespace {

int to_int(const std::string &flag, const std::string &value) {
  size_t used = 0;
  int v = 0;
  try {
    v = std::stoi(value, &used);
  } catch (const std::exception &) {
    used = 0;
  }
  if (used == 0 || used != value.size()) throw ConfigError("--" + flag + " expects an integer, got '" + value + "'");
  return v;
}

}  // namespace

std::string usage(const std::string &program, bool replay) {
  std::string u = "usage: " + program +
                  " --mindir_path MODEL.mindir --input_path IMAGE_OR_DIR [--output_path DIR] [--device_type Ascend|CPU|GPU]"
                  " [--device_id N] [--precision_mode MODE] [--gt_path DIR] [--tile_mode fast|paper] [--batch_size N]"
                  " [--save_float true]";
  if (replay)
    u += " --tiles_dir DIR\n  --tiles_dir: the batches the model saw and returned, in_NNNNN.bin and out_NNNNN.bin (raw float32),"
         " recorded by `python -m src.exported restore MODEL --input IMAGE --output PNG --record_tiles DIR`";
  return u;
}

Flags parse_flags(int argc, const char *const argv[], bool allow_tiles_dir) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      f.help = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) throw ConfigError("unexpected argument '" + arg + "'; flags look like --name value");
    std::string name = arg.substr(2), value;
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else {
      if (i + 1 >= argc) throw ConfigError("--" + name + " needs a value");
      value = argv[++i];
    }
    if (name == "mindir_path") f.mindir_path = value;
    else if (name == "input_path") f.input_path = value;
    else if (name == "output_path") f.output_path = value;
    else if (name == "device_type") f.device_type = value;
    else if (name == "device_id") f.device_id = to_int(name, value);
    else if (name == "gt_path") f.gt_path = value;
    else if (name == "tile_mode") f.tile_mode = value;
    else if (name == "batch_size") f.batch_size = to_int(name, value);
    else if (name == "precision_mode") f.precision_mode = value;
    else if (name == "save_float") {
      if (value != "true" && value != "false" && value != "1" && value != "0")
        throw ConfigError("--save_float expects true or false, got '" + value + "'");
      f.save_float = value == "true" || value == "1";
    } else if (name == "tiles_dir" && allow_tiles_dir) f.tiles_dir = value;
    else throw ConfigError("unknown flag --" + name);
  }
  if (f.help) return f;
  if (f.mindir_path.empty()) throw ConfigError("--mindir_path is required (the exported model)");
  if (f.input_path.empty()) throw ConfigError("--input_path is required (an image or a folder of images)");
  if (f.output_path.empty()) throw ConfigError("--output_path must not be empty");
  if (f.device_type != "Ascend" && f.device_type != "CPU" && f.device_type != "GPU")
    throw ConfigError("--device_type '" + f.device_type + "'; expected Ascend, CPU or GPU");
  if (!f.precision_mode.empty()) {
    check_precision_mode(f.precision_mode);
    if (f.device_type != "Ascend")
      throw ConfigError("--precision_mode " + f.precision_mode + " is for --device_type Ascend (MindSpore Lite's "
                        "AscendDeviceInfo); this run's device type is " + f.device_type);
  }
  if (f.device_id < 0) throw ConfigError("--device_id " + std::to_string(f.device_id) + "; expected >= 0");
  if (!f.tile_mode.empty() && !is_tile_mode(f.tile_mode))
    throw ConfigError("--tile_mode '" + f.tile_mode + "'; expected fast or paper");
  if (f.batch_size < 0) throw ConfigError("--batch_size " + std::to_string(f.batch_size) + "; expected >= 1");
  if (allow_tiles_dir && f.tiles_dir.empty()) throw ConfigError("--tiles_dir is required (recorded tile batches)");
  return f;
}

}  // namespace ipt
