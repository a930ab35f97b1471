// The harness: images in, tiles through a backend in fixed-size batches, stitched PNGs out, timing and metrics.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "backend.h"
#include "flags.h"
#include "image.h"
#include "metrics.h"
#include "sidecar.h"

namespace ipt {

// <gt_dir>/<stem>.<image ext>, else <stem> without a trailing "x<scale>" (model-zoo LR names); nullopt if none.
std::optional<std::string> find_ground_truth(const std::string &image_path, const std::string &gt_dir, int scale);
// Scores of an output against its ground truth (HR cropped to the output's size when larger, error when smaller),
// border = border_for(scale). ImageError naming both files on a size mismatch.
Scores score_against(const Rgb8 &sr, const std::string &gt_path, int scale);

struct RunSummary {
  int images_ok = 0, images_failed = 0;
  std::vector<double> batch_ms;    // each predict call
  std::vector<double> image_ms;    // each image, read to PNG written
  std::vector<Scores> scores;      // images with ground truth
};

// Runs the whole job: checks the batch size and the backend's inputs/outputs against the sidecar (ConfigError /
// ModelError, thrown before any work), then restores every image of flags.input_path to
// <output_path>/<stem>.png. An unreadable image is one "error: ..." line on `err`; the other images go on.
// Writes <output_path>/test_perform_static.txt (timing) and, with --gt_path, <output_path>/metrics.csv.
RunSummary run_harness(const Flags &flags, InferBackend &backend, const Sidecar &side, std::ostream &log,
                       std::ostream &err);
// Process exit status for a finished run: 0 when every image succeeded, 1 otherwise.
int exit_status(const RunSummary &summary);

// Replays recorded tile batches (<tiles_dir>/in_NNNNN.bin, out_NNNNN.bin: raw float32): checks each input batch is
// bit-identical to the recorded one and returns the recorded output. Shapes are the sidecar's.
class ReplayBackend : public InferBackend {
 public:
  ReplayBackend(std::string tiles_dir, Sidecar side) : dir_(std::move(tiles_dir)), side_(std::move(side)) {}
  std::vector<TensorSpec> inputs() const override { return side_.inputs; }
  std::vector<TensorSpec> outputs() const override { return side_.outputs; }
  void predict(const std::vector<float> &in, std::vector<float> *out) override;
  std::string describe() const override { return "replay of " + dir_; }
  int calls() const { return calls_; }

 private:
  std::string dir_;
  Sidecar side_;
  int calls_ = 0;
};

size_t element_count(const std::vector<int64_t> &shape);

}  // namespace ipt
