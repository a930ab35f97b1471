// Port of src/tiler.py; function by function, in the same order of operations (see inc/tiler.h).
#include "tiler.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>
#include <stdexcept>
#include <tuple>

#include <nlohmann/json.hpp>

namespace ipt {
namespace {

// _fast_origins: evenly spread origins along an axis of length >= patch, step <= patch - patch / 4.
std::vector<int> fast_origins(int length, int patch) {
  const long long span = length - patch;
  if (span == 0) return {0};
  const long long step = patch - patch / 4;
  const long long n = (span + step - 1) / step + 1;  // -(-span // step) + 1
  std::vector<int> origins;
  for (long long i = 0; i < n; ++i) origins.push_back(static_cast<int>((2 * i * span + (n - 1)) / (2 * (n - 1))));
  return origins;
}

struct Segment {
  int origin, lo, hi;
};

// _paper_segments: official forward_chop along one axis, [(origin, out_start, out_end)] in output pixels.
std::vector<Segment> paper_segments(int length, int patch, int scale) {
  const int t = patch / 4;
  const int n = (length - patch) / t + 1;
  const int cut = (length - patch) % t;
  const int split = (length - cut) * scale - ((patch - cut) * scale) / 2;
  std::vector<Segment> segments;
  for (int i = 0; i < n; ++i) {
    const int lo = i == 0 ? 0 : (t * i + t) * scale;
    int hi = i == n - 1 ? (t * i + patch) * scale : (t * i + 3 * t) * scale;
    hi = std::min(hi, split);
    if (hi > lo) segments.push_back({t * i, lo, hi});
  }
  segments.push_back({length - patch, split, length * scale});
  return segments;
}

struct RowSegment {
  int origin, lo, hi;
  bool in_band;
};

}  // namespace

bool is_tile_mode(const std::string &mode) { return mode == "fast" || mode == "paper"; }

std::vector<float> TilePlan::weight_1d() const {
  std::vector<float> w;
  if (!ramp) return w;
  const int t = tile_out();
  const double r = ramp;
  for (int i = 0; i < t; ++i) {
    const double u = i;
    const double v = std::min(1.0, std::min((u + 0.5) / r, (static_cast<double>(t) - u - 0.5) / r));
    w.push_back(static_cast<float>(v));
  }
  return w;
}

std::vector<float> TilePlan::weight_2d() const {
  const std::vector<float> w = weight_1d();
  std::vector<float> w2;
  if (w.empty()) return w2;
  const size_t t = w.size();
  w2.resize(t * t);
  for (size_t i = 0; i < t; ++i)
    for (size_t j = 0; j < t; ++j) w2[i * t + j] = w[i] * w[j];
  return w2;
}

std::string TilePlan::to_json() const {
  nlohmann::ordered_json j;
  j["format"] = kPlanFormat;
  j["mode"] = mode;
  j["height"] = height;
  j["width"] = width;
  j["scale"] = scale;
  j["patch_size"] = patch_size;
  j["padded_height"] = padded_height;
  j["padded_width"] = padded_width;
  j["tiles"] = nlohmann::ordered_json::array();
  for (const auto &t : tiles) j["tiles"].push_back({t.first, t.second});
  j["regions"] = nlohmann::ordered_json::array();
  for (const auto &r : regions) j["regions"].push_back({r.tile, r.src_y, r.src_x, r.h, r.w, r.dst_y, r.dst_x});
  j["weight"] = ramp ? "ramp" : "uniform";
  j["ramp"] = ramp;
  j["weight_1d"] = nlohmann::ordered_json::array();
  for (float v : weight_1d()) j["weight_1d"].push_back(static_cast<double>(v));
  return j.dump();
}

TilePlan make_plan(int height, int width, int scale, int patch_size, const std::string &mode) {
  const std::pair<const char *, int> checks[] = {
      {"height", height}, {"width", width}, {"scale", scale}, {"patch_size", patch_size}};
  for (const auto &c : checks)
    if (c.second < 1)
      throw std::invalid_argument(std::string(c.first) + " must be a positive integer, got " + std::to_string(c.second));
  if (!is_tile_mode(mode)) throw std::invalid_argument("tile mode '" + mode + "'; expected one of fast, paper");
  if (patch_size % 4)
    throw std::invalid_argument("patch_size " + std::to_string(patch_size) + " must be a multiple of 4");
  const int patch = patch_size;
  const int ph = std::max(height, patch), pw = std::max(width, patch);
  const int t_out = patch * scale;
  TilePlan plan;
  plan.mode = mode;
  plan.height = height;
  plan.width = width;
  plan.scale = scale;
  plan.patch_size = patch;
  plan.padded_height = ph;
  plan.padded_width = pw;
  if (mode == "fast") {
    for (int y : fast_origins(ph, patch)) {
      for (int x : fast_origins(pw, patch)) {
        plan.regions.push_back({static_cast<int>(plan.tiles.size()), 0, 0, t_out, t_out, y * scale, x * scale});
        plan.tiles.emplace_back(y, x);
      }
    }
    plan.ramp = (patch / 4) * scale;
    return plan;
  }
  const std::vector<Segment> row_segs = paper_segments(ph, patch, scale);
  const std::vector<Segment> cols = paper_segments(pw, patch, scale);
  // The official code writes its left strip over the first P*s output columns after its top strip, so the top band
  // (the first P/4*s rows) takes tile (0, 0) alone up to column min(P*s, column split).
  const int band = (patch / 4) * scale;
  const int band_end = std::min(t_out, cols.back().lo);
  std::vector<RowSegment> rows = {{row_segs[0].origin, row_segs[0].lo, band, true},
                                  {row_segs[0].origin, band, row_segs[0].hi, false}};
  for (size_t i = 1; i < row_segs.size(); ++i) rows.push_back({row_segs[i].origin, row_segs[i].lo, row_segs[i].hi, false});
  std::vector<Segment> band_cols = {{0, 0, band_end}};
  for (size_t i = 1; i < cols.size(); ++i)
    if (cols[i].hi > band_end) band_cols.push_back({cols[i].origin, std::max(cols[i].lo, band_end), cols[i].hi});
  std::set<int> row_origins, col_origins;
  for (const auto &r : rows) row_origins.insert(r.origin);
  for (const auto &c : cols) col_origins.insert(c.origin);
  for (int y : row_origins) {
    for (int x : col_origins) {
      const int k = static_cast<int>(plan.tiles.size());
      plan.tiles.emplace_back(y, x);
      for (const auto &r : rows) {
        if (r.origin != y) continue;
        for (const auto &c : (r.in_band ? band_cols : cols)) {
          if (c.origin == x)
            plan.regions.push_back({k, r.lo - y * scale, c.lo - x * scale, r.hi - r.lo, c.hi - c.lo, r.lo, c.lo});
        }
      }
    }
  }
  plan.ramp = 0;
  return plan;
}

namespace {
// numpy.pad(mode="reflect") index for padding at the end only, reflecting repeatedly; a side of 1 is repeated.
int reflect_index(int i, int n) {
  if (n == 1) return 0;
  const int period = 2 * (n - 1);
  const int m = i % period;
  return m >= n ? period - m : m;
}
}  // namespace

Image pad_to_patch(const Image &image, int patch_size) {
  const int h = image.height, w = image.width;
  const int pad_h = std::max(0, patch_size - h), pad_w = std::max(0, patch_size - w);
  if (!pad_h && !pad_w) return image;
  Image out(h + pad_h, w + pad_w);
  for (int y = 0; y < out.height; ++y) {
    const int sy = reflect_index(y, h);
    for (int x = 0; x < out.width; ++x) {
      const int sx = reflect_index(x, w);
      for (int c = 0; c < 3; ++c) out.at(y, x, c) = image.at(sy, sx, c);
    }
  }
  return out;
}

BandSchedule band_schedule(const TilePlan &plan) {
  const int out_h = plan.padded_height * plan.scale;
  const size_t n = plan.tiles.size();
  std::vector<int> top(n, out_h), bottom(n, 0);
  for (const Region &r : plan.regions) {
    if (r.h > 0 && r.w > 0) {
      top[r.tile] = std::min(top[r.tile], r.dst_y);
      bottom[r.tile] = std::max(bottom[r.tile], r.dst_y + r.h);
    }
  }
  BandSchedule s;
  s.done.assign(n, 0);
  int later = out_h;
  for (size_t k = n; k-- > 0;) {
    s.done[k] = later;
    later = std::min(later, top[k]);
  }
  int first = 0, lowest = 0;
  for (size_t k = 0; k < n; ++k) {
    lowest = std::max(lowest, bottom[k]);
    if (s.done[k] > lowest)
      throw std::logic_error("tile plan leaves output rows " + std::to_string(lowest) + ".." +
                             std::to_string(s.done[k] - 1) + " uncovered");
    s.band_rows = std::max(s.band_rows, lowest - first);
    first = s.done[k];
  }
  return s;
}

void restore_rows(const Image &image, const RunBatch &run_batch, const WriteRows &write_rows, int scale,
                  int patch_size, int tile_batch, const std::string &mode, const Progress &progress) {
  if (image.height < 1 || image.width < 1 || image.data.size() != static_cast<size_t>(image.height) * image.width * 3)
    throw std::invalid_argument("restore needs an HxWx3 image");
  if (tile_batch < 1) throw std::invalid_argument("tile_batch must be >= 1, got " + std::to_string(tile_batch));
  const int h = image.height, w = image.width;
  const TilePlan plan = make_plan(h, w, scale, patch_size, mode);
  const BandSchedule schedule = band_schedule(plan);
  const Image padded = pad_to_patch(image, patch_size);
  const int p = plan.patch_size, t_out = plan.tile_out();
  const int out_h = h * scale, out_w = w * scale, band_w = plan.padded_width * scale;
  // acc row i is padded output row first + i; rows from lowest on are untouched (zero)
  std::vector<float> acc(static_cast<size_t>(schedule.band_rows) * band_w * 3, 0.0f);
  std::vector<float> wsum(static_cast<size_t>(schedule.band_rows) * band_w, 0.0f);
  std::vector<float> rows;
  int first = 0, lowest = 0;
  const std::vector<float> weight = plan.weight_2d();
  std::vector<std::vector<Region>> by_tile(plan.tiles.size());
  for (const Region &r : plan.regions) by_tile[r.tile].push_back(r);
  const size_t tile_in = static_cast<size_t>(3) * p * p, tile_res = static_cast<size_t>(3) * t_out * t_out;
  std::vector<float> batch(tile_in * tile_batch);
  std::vector<float> out(tile_res * tile_batch);
  const size_t total = plan.tiles.size(), plane = static_cast<size_t>(t_out) * t_out;
  for (size_t start = 0; start < total; start += tile_batch) {
    const size_t chunk = std::min(total - start, static_cast<size_t>(tile_batch));
    for (size_t k = 0; k < chunk; ++k) {
      const int y = plan.tiles[start + k].first, x = plan.tiles[start + k].second;
      float *dst = &batch[k * tile_in];
      for (int c = 0; c < 3; ++c)
        for (int i = 0; i < p; ++i)
          for (int j = 0; j < p; ++j) dst[(static_cast<size_t>(c) * p + i) * p + j] = padded.at(y + i, x + j, c);
    }
    for (size_t k = chunk; k < static_cast<size_t>(tile_batch); ++k)
      std::copy_n(&batch[(chunk - 1) * tile_in], tile_in, &batch[k * tile_in]);
    run_batch(batch, &out);
    if (out.size() != tile_res * tile_batch)
      throw std::runtime_error("run_batch returned " + std::to_string(out.size()) + " values; expected " +
                               std::to_string(tile_res * tile_batch));
    for (size_t k = 0; k < chunk; ++k) {
      const float *tile = &out[k * tile_res];
      for (const Region &r : by_tile[start + k]) {
        if (r.h <= 0 || r.w <= 0) continue;
        lowest = std::max(lowest, r.dst_y + r.h);
        for (int i = 0; i < r.h; ++i) {
          const int sy = r.src_y + i, by = r.dst_y + i - first;
          for (int j = 0; j < r.w; ++j) {
            const int sx = r.src_x + j, dx = r.dst_x + j;
            const size_t o = static_cast<size_t>(by) * band_w + dx;
            const size_t s = static_cast<size_t>(sy) * t_out + sx;
            if (weight.empty()) {
              for (int c = 0; c < 3; ++c) acc[o * 3 + c] += tile[c * plane + s];
              wsum[o] += 1.0f;
            } else {
              const float wv = weight[s];
              for (int c = 0; c < 3; ++c) {
                const float product = tile[c * plane + s] * wv;
                acc[o * 3 + c] += product;
              }
              wsum[o] += wv;
            }
          }
        }
      }
      const int finished = schedule.done[start + k];
      if (finished > first) {
        const int n = finished - first;
        if (first < out_h) {
          const int m = std::min(finished, out_h) - first;
          rows.resize(static_cast<size_t>(m) * out_w * 3);
          for (int y = 0; y < m; ++y)
            for (int x = 0; x < out_w; ++x) {
              const size_t o = static_cast<size_t>(y) * band_w + x;
              for (int c = 0; c < 3; ++c) rows[(static_cast<size_t>(y) * out_w + x) * 3 + c] = acc[o * 3 + c] / wsum[o];
            }
          write_rows(first, rows.data(), m, out_w);
        }
        const size_t row = static_cast<size_t>(band_w), kept = static_cast<size_t>(lowest - finished);
        const size_t used = static_cast<size_t>(lowest - first);
        std::copy(acc.begin() + n * row * 3, acc.begin() + (n + kept) * row * 3, acc.begin());
        std::copy(wsum.begin() + n * row, wsum.begin() + (n + kept) * row, wsum.begin());
        std::fill(acc.begin() + kept * row * 3, acc.begin() + used * row * 3, 0.0f);
        std::fill(wsum.begin() + kept * row, wsum.begin() + used * row, 0.0f);
        first = finished;
      }
    }
    if (progress) progress(start + chunk, total);
  }
}

Image restore(const Image &image, const RunBatch &run_batch, int scale, int patch_size, int tile_batch,
              const std::string &mode, const Progress &progress) {
  Image result;
  restore_rows(
      image, run_batch,
      [&](int y, const float *rows, int n, int width) {
        if (result.data.empty()) result = Image(image.height * scale, width);
        std::copy_n(rows, static_cast<size_t>(n) * width * 3, &result.data[static_cast<size_t>(y) * width * 3]);
      },
      scale, patch_size, tile_batch, mode, progress);
  return result;
}

}  // namespace ipt
