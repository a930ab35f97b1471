// Command-line flags in the model zoo's style (--name=value or --name value), checked up front.
#pragma once

#include <string>

namespace ipt {

struct Flags {
  std::string mindir_path;                    // the exported model; its sidecar is <mindir_path>.json
  std::string input_path;                     // an image or a folder of images
  std::string output_path = "./result_Files";  // folder for <name>.png, timing and metrics
  std::string device_type = "Ascend";         // Ascend, CPU or GPU
  int device_id = 0;
  std::string gt_path;                        // optional folder of ground truth (same stem, or <stem> minus x<s>)
  std::string tile_mode;                      // fast or paper; empty: the sidecar's default
  int batch_size = 0;                         // optional; must equal the exported batch size
  std::string precision_mode;                 // Ascend only: one of MindSpore Lite's five; empty: preferred_fp32
  bool save_float = false;                    // also write <name>.bin: the stitched float32 HxWx3 RGB, before rounding
  std::string tiles_dir;                      // replay tool only: recorded tile batches
  bool help = false;
};

// ConfigError "<flag>: ..." for an unknown flag, a missing value, a bad integer, device type or precision mode (or
// a precision mode for a device other than Ascend), or a missing required flag. allow_tiles_dir: accept --tiles_dir
// (the replay tool).
Flags parse_flags(int argc, const char *const argv[], bool allow_tiles_dir = false);
std::string usage(const std::string &program, bool replay = false);

}  // namespace ipt
