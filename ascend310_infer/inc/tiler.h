// The tiler, ported line for line from src/tiler.py (the single source of truth; read its module docstring).
// Same plans, same float32 stitching order: for the same image and the same tile outputs the result is bit-identical.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "image.h"

namespace ipt {

inline constexpr const char *kPlanFormat = "ipt-tile-plan-1";

// One rectangle of one tile's output added into the result (output pixels).
struct Region {
  int tile, src_y, src_x, h, w, dst_y, dst_x;
};

struct TilePlan {
  std::string mode;
  int height = 0, width = 0, scale = 0, patch_size = 0;
  int padded_height = 0, padded_width = 0;
  std::vector<std::pair<int, int>> tiles;  // (y, x) LR origins in the padded image, run order
  std::vector<Region> regions;             // sorted by tile
  int ramp = 0;                            // fast: blend ramp R in output pixels; paper: 0 (uniform)

  int tile_out() const { return patch_size * scale; }
  std::vector<float> weight_1d() const;  // fast: T float32 values; paper: empty
  std::vector<float> weight_2d() const;  // fast: T*T float32 wy[i]*wx[j]; paper: empty
  std::string to_json() const;           // the same JSON as `python -m src.tiler plan ...`
};

bool is_tile_mode(const std::string &mode);
// Throws std::invalid_argument with the same message as Python's ValueError.
TilePlan make_plan(int height, int width, int scale, int patch_size = 48, const std::string &mode = "fast");
// HWC image padded at the bottom/right to at least patch_size per side (numpy reflect, repeated).
Image pad_to_patch(const Image &image, int patch_size);

// run_batch(in, out): in = (tile_batch, 3, P, P) float32, out = (tile_batch, 3, P*s, P*s) float32 to fill.
using RunBatch = std::function<void(const std::vector<float> &in, std::vector<float> *out)>;
using Progress = std::function<void(size_t done, size_t total)>;
// write_rows(y, rows, n, width): float32 output rows y..y+n-1 of the (H*s, W*s, 3) result, n * width * 3 values,
// row-major RGB; called top to bottom, each row once, as soon as no later tile touches it.
using WriteRows = std::function<void(int y, const float *rows, int n, int width)>;

// src/tiler.py band_schedule: done[k] = padded output rows final after tiles 0..k are stitched; band_rows = the most
// rows held between the first unfinished row and the lowest row touched so far. std::logic_error if rows are uncovered.
struct BandSchedule {
  std::vector<int> done;
  int band_rows = 0;
};
BandSchedule band_schedule(const TilePlan &plan);

// float32 (H, W, 3) on 0..255, streamed: src/tiler.py restore_rows(). Only the band of open rows is kept (float32
// sums and weight sums); every value gets the same float32 operations in the same order as whole-image sums.
void restore_rows(const Image &image, const RunBatch &run_batch, const WriteRows &write_rows, int scale,
                  int patch_size, int tile_batch, const std::string &mode, const Progress &progress = nullptr);
// float32 (H, W, 3) on 0..255 -> float32 (H*s, W*s, 3): restore_rows collected into one image.
Image restore(const Image &image, const RunBatch &run_batch, int scale, int patch_size, int tile_batch,
              const std::string &mode, const Progress &progress = nullptr);

}  // namespace ipt
