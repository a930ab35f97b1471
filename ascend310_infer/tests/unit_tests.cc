// ctest cases for the harness library: `ipt_unit_tests CASE TMPDIR`.
//
// STAND-IN: the "network" here is a pointwise stand-in backend (nearest-neighbour upscaling by the scale, compiled into
// this test), not IPT: its correct output is known exactly, so every tiling, padding, batching or stitching error
// shows. The real exported MindIR is run through the same harness code by tests/test_cpp_harness.py (recorded
// outputs of the real tiny MindIR, replayed by ipt_infer_replay, byte-compared with the Python tiler's PNG).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "errors.h"
#include "flags.h"
#include "harness.h"
#include "image.h"
#include "metrics.h"
#include "precision.h"
#include "sidecar.h"
#include "tiler.h"

namespace fs = std::filesystem;
using namespace ipt;

namespace {

int failures = 0;
fs::path tmp;

#define CHECK(cond)                                                                       \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::cerr << __FILE__ << ":" << __LINE__ << ": CHECK failed: " #cond << std::endl; \
      ++failures;                                                                         \
    }                                                                                     \
  } while (0)

// The exception's message contains `part`.
template <typename E>
void check_throws(const std::function<void()> &fn, const std::string &part, int line) {
  try {
    fn();
  } catch (const E &e) {
    if (std::string(e.what()).find(part) == std::string::npos) {
      std::cerr << "line " << line << ": message '" << e.what() << "' lacks '" << part << "'\n";
      ++failures;
    }
    return;
  } catch (const std::exception &e) {
    std::cerr << "line " << line << ": wrong exception type: " << e.what() << "\n";
    ++failures;
    return;
  }
  std::cerr << "line " << line << ": no exception (expected one with '" << part << "')\n";
  ++failures;
}
#define CHECK_THROWS(E, stmt, part) check_throws<E>([&] { stmt; }, part, __LINE__)

Image random_image(int h, int w, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(0.0f, 255.0f);
  Image img(h, w);
  for (float &v : img.data) v = dist(gen);
  return img;
}

// Pointwise stand-in network: (B, 3, P, P) -> nearest-neighbour upscaling (B, 3, P*s, P*s).
RunBatch nearest(int scale, int patch, int batch) {
  return [=](const std::vector<float> &in, std::vector<float> *out) {
    const int t = patch * scale;
    out->assign(static_cast<size_t>(batch) * 3 * t * t, 0.0f);
    for (int b = 0; b < batch; ++b)
      for (int c = 0; c < 3; ++c)
        for (int i = 0; i < t; ++i)
          for (int j = 0; j < t; ++j)
            (*out)[((static_cast<size_t>(b) * 3 + c) * t + i) * t + j] =
                in[((static_cast<size_t>(b) * 3 + c) * patch + i / scale) * patch + j / scale];
  };
}

class StandInBackend : public InferBackend {  // the pointwise stand-in behind the backend interface
 public:
  StandInBackend(int scale, int patch, int batch, std::vector<int64_t> in_shape = {})
      : scale_(scale), patch_(patch), batch_(batch), run_(nearest(scale, patch, batch)), in_shape_(std::move(in_shape)) {
    if (in_shape_.empty()) in_shape_ = {batch, 3, patch, patch};
  }
  std::vector<TensorSpec> inputs() const override { return {{"x", in_shape_, "float32"}}; }
  std::vector<TensorSpec> outputs() const override {
    const int64_t t = patch_ * scale_;
    return {{"y", {batch_, 3, t, t}, "float32"}};
  }
  void predict(const std::vector<float> &in, std::vector<float> *out) override { run_(in, out); ++calls; }
  std::string describe() const override { return "pointwise stand-in"; }
  int calls = 0;

 private:
  int scale_, patch_, batch_;
  RunBatch run_;
  std::vector<int64_t> in_shape_;
};

std::string sidecar_json(int scale, int batch, const std::string &file = "model.mindir", int ramp = -1) {
  const int t = 48 * scale;
  if (ramp < 0) ramp = 12 * scale;
  std::ostringstream s;
  s << R"({"format": "ipt-mindspore-export/1", "file": ")" << file << R"(", "file_format": "MINDIR", "task": "sr_x)"
    << scale << R"(", "scale": )" << scale << R"(, "tile_size": 48, "batch_size": )" << batch
    << R"(, "dtype": "float32", "compute_dtype": "float32", "layout": "NCHW", "color": "RGB", "value_range": [0.0, 255.0],
      "inputs": [{"name": "x", "shape": [)" << batch << R"(, 3, 48, 48], "dtype": "float32"}],
      "outputs": [{"name": "y", "shape": [)" << batch << ", 3, " << t << ", " << t << R"(], "dtype": "float32"}],
      "tiling": {"default": "fast", "fast": {"patch_size": 48, "max_step": 36, "min_overlap": 12, "ramp": )" << ramp
    << R"(}, "paper": {"patch_size": 48, "shave": 24, "stride": 12}},
      "project_version": "0.1.0", "checkpoint": {"path": "x.ckpt"}})";
  return s.str();
}

void write_text(const fs::path &p, const std::string &text) { std::ofstream(p) << text; }

void write_rgb_png(const fs::path &p, const Image &img) { write_png(p.string(), to_uint8(img)); }

// ---------------------------------------------------------------------------------------------------------------
void tiler_plans() {
  CHECK(make_plan(256, 256, 2, 48, "fast").tiles.size() == 49);
  CHECK(make_plan(48, 48, 4, 48, "paper").tiles.size() == 1);
  CHECK(make_plan(10, 3, 4).tiles.size() == 1);
  const TilePlan p = make_plan(100, 150, 3);
  CHECK(p.ramp == 36 && p.tile_out() == 144 && p.weight_1d().size() == 144);
  CHECK(p.weight_1d()[0] == static_cast<float>(0.5 / 36) && p.weight_1d()[40] == 1.0f);
  // origins evenly spread with overlap >= 12
  for (int length : {48, 49, 84, 85, 100, 257}) {
    const TilePlan q = make_plan(length, 48, 1);
    CHECK(q.tiles.front().first == 0 && q.tiles.back().first == length - 48);
    for (size_t i = 1; i < q.tiles.size(); ++i) CHECK(q.tiles[i].first - q.tiles[i - 1].first <= 36);
  }
  CHECK_THROWS(std::invalid_argument, make_plan(10, 10, 2, 48, "dense"), "tile mode 'dense'; expected one of fast, paper");
  CHECK_THROWS(std::invalid_argument, make_plan(0, 10, 2), "height must be a positive integer, got 0");
  CHECK_THROWS(std::invalid_argument, make_plan(10, 10, 2, 50), "patch_size 50 must be a multiple of 4");
  CHECK(make_plan(61, 130, 3, 48, "paper").to_json().rfind("{\"format\":\"ipt-tile-plan-1\",\"mode\":\"paper\"", 0) == 0);
}

void tiler_padding() {
  // numpy reflect without edge repeat, repeated: a side of 3 padded to 48 reads 0 1 2 1 0 1 2 1 ...
  Image img(3, 1);
  for (int y = 0; y < 3; ++y)
    for (int c = 0; c < 3; ++c) img.at(y, 0, c) = static_cast<float>(10 * y + c);
  const Image p = pad_to_patch(img, 48);
  CHECK(p.height == 48 && p.width == 48);
  const int expect[] = {0, 1, 2, 1, 0, 1, 2, 1};
  for (int y = 0; y < 8; ++y) CHECK(p.at(y, 0, 1) == static_cast<float>(10 * expect[y] + 1));
  for (int x = 0; x < 48; ++x) CHECK(p.at(5, x, 2) == p.at(5, 0, 2));  // a side of 1 is repeated
  const Image big = random_image(50, 60, 1);
  CHECK(pad_to_patch(big, 48).data == big.data);
}

void tiler_pointwise_stand_in() {
  const std::pair<int, int> sizes[] = {{48, 48}, {57, 86}, {100, 61}, {49, 47}, {1, 1}, {1, 70}, {5, 130}, {20, 3}, {130, 49}};
  for (const std::string mode : {"fast", "paper"}) {
    for (int scale = 1; scale <= 4; ++scale) {
      for (const auto &hw : sizes) {
        const Image img = random_image(hw.first, hw.second, scale * 1000 + hw.first);
        const Image out = restore(img, nearest(scale, 48, 8), scale, 48, 8, mode);
        CHECK(out.height == hw.first * scale && out.width == hw.second * scale);
        double worst = 0;
        for (int y = 0; y < out.height; ++y)
          for (int x = 0; x < out.width; ++x)
            for (int c = 0; c < 3; ++c)
              worst = std::max(worst, static_cast<double>(std::fabs(out.at(y, x, c) - img.at(y / scale, x / scale, c))));
        // paper: means of 1, 2 or 4 equal values are exact; fast: weighted means, float32 rounding only
        if (mode == "paper" ? worst != 0 : worst > 1e-4) {
          std::cerr << mode << " x" << scale << " " << hw.first << "x" << hw.second << ": max error " << worst << "\n";
          ++failures;
        }
      }
    }
  }
}

void tiler_fixed_batches() {
  // Every call has the batch shape; the last batch is filled with copies of its last tile.
  const int n = static_cast<int>(make_plan(100, 130, 2).tiles.size());
  std::vector<std::vector<float>> seen;
  const auto inner = nearest(2, 48, 8);
  RunBatch spy = [&](const std::vector<float> &in, std::vector<float> *out) {
    CHECK(in.size() == static_cast<size_t>(8) * 3 * 48 * 48);
    seen.push_back(in);
    inner(in, out);
  };
  restore(random_image(100, 130, 7), spy, 2, 48, 8, "fast");
  CHECK(static_cast<int>(seen.size()) == (n + 7) / 8);
  const size_t tile = 3 * 48 * 48;
  const int used = n - 8 * (static_cast<int>(seen.size()) - 1);
  for (int k = used; k < 8; ++k)
    CHECK(std::equal(seen.back().begin() + k * tile, seen.back().begin() + (k + 1) * tile,
                     seen.back().begin() + (used - 1) * tile));
  CHECK_THROWS(std::invalid_argument, restore(random_image(50, 50, 1), inner, 2, 48, 0, "fast"), "tile_batch must be >= 1");
}

// The reference: the stitcher before streaming, float32 sums over the whole padded output (kept here only).
Image whole_image_restore(const Image &image, const RunBatch &run_batch, int scale, int patch_size, int tile_batch,
                          const std::string &mode) {
  const int h = image.height, w = image.width;
  const TilePlan plan = make_plan(h, w, scale, patch_size, mode);
  const Image padded = pad_to_patch(image, patch_size);
  const int p = plan.patch_size, t_out = plan.tile_out();
  const int out_h = plan.padded_height * scale, out_w = plan.padded_width * scale;
  std::vector<float> acc(static_cast<size_t>(out_h) * out_w * 3, 0.0f), wsum(static_cast<size_t>(out_h) * out_w, 0.0f);
  const std::vector<float> weight = plan.weight_2d();
  std::vector<std::vector<Region>> by_tile(plan.tiles.size());
  for (const Region &r : plan.regions) by_tile[r.tile].push_back(r);
  const size_t tile_in = static_cast<size_t>(3) * p * p, tile_res = static_cast<size_t>(3) * t_out * t_out;
  std::vector<float> batch(tile_in * tile_batch), out;
  const size_t total = plan.tiles.size(), plane = static_cast<size_t>(t_out) * t_out;
  for (size_t start = 0; start < total; start += tile_batch) {
    const size_t chunk = std::min(total - start, static_cast<size_t>(tile_batch));
    for (size_t k = 0; k < chunk; ++k)
      for (int c = 0; c < 3; ++c)
        for (int i = 0; i < p; ++i)
          for (int j = 0; j < p; ++j)
            batch[k * tile_in + (static_cast<size_t>(c) * p + i) * p + j] =
                padded.at(plan.tiles[start + k].first + i, plan.tiles[start + k].second + j, c);
    for (size_t k = chunk; k < static_cast<size_t>(tile_batch); ++k)
      std::copy_n(&batch[(chunk - 1) * tile_in], tile_in, &batch[k * tile_in]);
    run_batch(batch, &out);
    for (size_t k = 0; k < chunk; ++k)
      for (const Region &r : by_tile[start + k])
        for (int i = 0; i < r.h; ++i)
          for (int j = 0; j < r.w; ++j) {
            const size_t o = static_cast<size_t>(r.dst_y + i) * out_w + r.dst_x + j;
            const size_t s = static_cast<size_t>(r.src_y + i) * t_out + r.src_x + j;
            const float wv = weight.empty() ? 1.0f : weight[s];
            for (int c = 0; c < 3; ++c) {
              const float v = out[k * tile_res + c * plane + s];
              if (weight.empty()) {
                acc[o * 3 + c] += v;
              } else {
                const float product = v * wv;
                acc[o * 3 + c] += product;
              }
            }
            wsum[o] += wv;
          }
  }
  Image result(h * scale, w * scale);
  for (int y = 0; y < result.height; ++y)
    for (int x = 0; x < result.width; ++x)
      for (int c = 0; c < 3; ++c) {
        const size_t o = static_cast<size_t>(y) * out_w + x;
        result.at(y, x, c) = acc[o * 3 + c] / wsum[o];
      }
  return result;
}

// Stand-in whose tile outputs are random and far apart in magnitude (1e-6 .. 1e3 per tile and channel): any change
// in the order of the float32 additions shows in the last bits. The same sequence for each fresh instance.
RunBatch noisy(int scale, int patch, int batch, unsigned seed) {
  auto gen = std::make_shared<std::mt19937>(seed);
  return [=](const std::vector<float> &in, std::vector<float> *out) {
    nearest(scale, patch, batch)(in, out);
    std::normal_distribution<float> noise(0.0f, 1.0f);
    std::uniform_int_distribution<int> power(-2, 1);
    const size_t plane = static_cast<size_t>(patch) * scale * patch * scale;
    for (size_t i = 0; i < out->size(); i += plane) {
      const float f = std::pow(1e3f, static_cast<float>(power(*gen)));
      for (size_t j = i; j < i + plane; ++j) (*out)[j] += noise(*gen) * f;
    }
  };
}

void tiler_streaming() {
  const std::pair<int, int> sizes[] = {{48, 48}, {57, 86}, {100, 61}, {49, 47}, {1, 1}, {1, 70}, {5, 130},
                                       {20, 3}, {61, 60}, {130, 49}, {47, 49}, {61, 130}, {96, 97}};
  for (const std::string mode : {"fast", "paper"}) {
    for (int scale = 1; scale <= 4; ++scale) {
      for (const auto &hw : sizes) {
        const Image img = random_image(hw.first, hw.second, scale * 7 + hw.second);
        const int batch = 1 + (hw.first + scale) % 8;
        const Image ref = whole_image_restore(img, noisy(scale, 48, batch, hw.first), scale, 48, batch, mode);
        std::vector<float> got;
        int next = 0;
        restore_rows(
            img, noisy(scale, 48, batch, hw.first),
            [&](int y, const float *rows, int n, int width) {
              CHECK(y == next && width == ref.width && n > 0);
              next = y + n;
              got.insert(got.end(), rows, rows + static_cast<size_t>(n) * width * 3);
            },
            scale, 48, batch, mode);
        if (got.size() != ref.data.size() || std::memcmp(got.data(), ref.data.data(), got.size() * sizeof(float)) != 0) {
          std::cerr << mode << " x" << scale << " " << hw.first << "x" << hw.second << ": not bit-identical\n";
          ++failures;
        }
      }
    }
  }
  // the band is one tile's output at most, and rows leave before the last tile runs
  for (const std::string mode : {"fast", "paper"}) {
    const TilePlan plan = make_plan(300, 100, 2, 48, mode);
    const BandSchedule s = band_schedule(plan);
    CHECK(s.band_rows <= plan.tile_out() && s.done.back() == 600 && s.done.front() == 0);
    CHECK(std::is_sorted(s.done.begin(), s.done.end()));
    int calls = 0, first_rows_at = -1;
    const auto inner = nearest(2, 48, 1);
    restore_rows(
        random_image(300, 100, 1), [&](const std::vector<float> &in, std::vector<float> *out) { ++calls; inner(in, out); },
        [&](int, const float *, int, int) { if (first_rows_at < 0) first_rows_at = calls; }, 2, 48, 1, mode);
    CHECK(first_rows_at > 0 && first_rows_at < static_cast<int>(plan.tiles.size()) / 2);
  }
}

void quantise() {
  Image img(1, 3);
  img.data = {0.5f, 1.5f, 2.5f, -3.0f, 254.5f, 300.0f, 127.49f, 127.5f, 128.5f};
  const Rgb8 q = to_uint8(img);
  const std::vector<uint8_t> want = {0, 2, 2, 0, 254, 255, 127, 128, 128};
  CHECK(q.data == want);
}

void image_io() {
  const Image img = random_image(7, 9, 3);
  const fs::path png = tmp / "rgb.png";
  write_rgb_png(png, img);
  const Image back = read_image(png.string());
  CHECK(back.height == 7 && back.width == 9);
  const Rgb8 q = to_uint8(img);
  for (size_t i = 0; i < q.data.size(); ++i) CHECK(back.data[i] == static_cast<float>(q.data[i]));
  CHECK(read_rgb8(png.string()).data == q.data);
  // 16-bit PNG: x * (255 / 65535) in float32; BGR order on disk
  cv::Mat m16(2, 2, CV_16UC3);
  for (int i = 0; i < 12; ++i) m16.ptr<uint16_t>(0)[i] = static_cast<uint16_t>(i * 5000 + 35);
  cv::imwrite((tmp / "deep.png").string(), m16);
  const Image deep = read_image((tmp / "deep.png").string());
  const float k = static_cast<float>(255.0 / 65535.0);
  CHECK(deep.at(0, 0, 0) == static_cast<float>(m16.ptr<uint16_t>(0)[2]) * k);
  CHECK(deep.at(1, 1, 2) == static_cast<float>(m16.ptr<uint16_t>(1)[3]) * k);
  CHECK_THROWS(ImageError, read_rgb8((tmp / "deep.png").string()), "deep.png: ground truth must be an 8-bit image");
  // gray is expanded
  cv::Mat gray(3, 4, CV_8UC1, cv::Scalar(77));
  cv::imwrite((tmp / "gray.png").string(), gray);
  const Image g = read_image((tmp / "gray.png").string());
  CHECK(g.at(2, 3, 0) == 77.0f && g.at(2, 3, 2) == 77.0f);
  // unreadable
  write_text(tmp / "broken.png", "not a png");
  CHECK_THROWS(ImageError, read_image((tmp / "broken.png").string()), "broken.png: cannot decode image (corrupt or not an image)");
  CHECK_THROWS(ImageError, read_image((tmp / "nowhere.png").string()), "nowhere.png: no such file or cannot open it");
  CHECK_THROWS(ImageError, list_images((tmp / "nowhere").string()), "nowhere: no such file or directory");
  fs::create_directories(tmp / "empty");
  CHECK_THROWS(ImageError, list_images((tmp / "empty").string()), "no image files in this directory");
  const auto listed = list_images(tmp.string());
  CHECK(listed.size() == 4 && fs::path(listed[0]).filename() == "broken.png");  // sorted; decoding comes later
}

void output_image() {
  // the streamed 8-bit image and float32 file equal the whole-image writers
  const Image img = random_image(23, 17, 5);
  std::vector<float> rows(img.data);
  rows[0] = 0.5f, rows[1] = 254.5f, rows[2] = -7.0f, rows[3] = 300.0f;
  {
    OutputImage out(23, 17, (tmp / "a.bin").string());
    out.write_rows(0, rows.data(), 10, 17);
    out.write_rows(10, rows.data() + 10 * 17 * 3, 13, 17);
    out.write_png((tmp / "a.png").string());
    CHECK(!fs::exists(tmp / "a.bin"));
    out.finish();
    Image whole(23, 17);
    whole.data = rows;
    CHECK(out.rgb().data == to_uint8(whole).data);
    write_png((tmp / "ref.png").string(), to_uint8(whole));
  }
  std::ifstream a(tmp / "a.png", std::ios::binary), b(tmp / "ref.png", std::ios::binary);
  CHECK(std::string(std::istreambuf_iterator<char>(a), {}) == std::string(std::istreambuf_iterator<char>(b), {}));
  std::ifstream f(tmp / "a.bin", std::ios::binary);
  std::vector<float> back(rows.size());
  f.read(reinterpret_cast<char *>(back.data()), static_cast<std::streamsize>(back.size() * sizeof(float)));
  CHECK(f && f.peek() == EOF && std::memcmp(back.data(), rows.data(), rows.size() * sizeof(float)) == 0);
  // incomplete or out of order: errors, and no float file left behind
  {
    OutputImage out(23, 17, (tmp / "b.bin").string());
    out.write_rows(0, rows.data(), 5, 17);
    CHECK_THROWS(std::logic_error, out.write_rows(6, rows.data(), 5, 17), "rows 6..10 of width 17 do not continue");
    CHECK_THROWS(std::logic_error, out.write_png((tmp / "b.png").string()), "only 5 of 23 rows restored");
    CHECK_THROWS(std::logic_error, out.finish(), "only 5 of 23 rows restored");
  }
  CHECK(!fs::exists(tmp / "b.bin") && !fs::exists(tmp / "b.png"));
  CHECK(std::distance(fs::directory_iterator(tmp), fs::directory_iterator()) == 3);  // a.png, a.bin, ref.png
  // truncated JPEGs (OpenCV alone returns them with the missing part gray)
  cv::Mat photo(120, 160, CV_8UC3);
  cv::randu(photo, 0, 255);
  std::vector<uchar> jpeg;
  CHECK(cv::imencode(".jpg", photo, jpeg));
  CHECK(!jpeg_is_truncated(jpeg));
  std::vector<uchar> longer(jpeg);
  longer.insert(longer.end(), {0, 0, 'x'});
  CHECK(!jpeg_is_truncated(longer));
  const std::vector<uchar> cut(jpeg.begin(), jpeg.begin() + static_cast<long>(jpeg.size() / 2));
  CHECK(jpeg_is_truncated(cut) && !cv::imdecode(cut, cv::IMREAD_COLOR).empty());
  std::ofstream((tmp / "cut.jpg").string(), std::ios::binary).write(reinterpret_cast<const char *>(cut.data()),
                                                                    static_cast<std::streamsize>(cut.size()));
  CHECK_THROWS(ImageError, read_image((tmp / "cut.jpg").string()),
               "cut.jpg: truncated JPEG (the file ends before its image data does)");
}

void metrics() {
  Rgb8 a{20, 20, std::vector<uint8_t>(20 * 20 * 3, 100)}, b = a;
  CHECK(std::isinf(psnr_y(a, b, 0)) && std::isinf(psnr_rgb(a, b, 2)) && ssim_y(a, b, 0) == 1.0);
  for (auto &v : b.data) v = 101;  // every value +1
  const double y = (65.738 + 129.057 + 25.064) / 256.0 / 255.0;
  CHECK(std::fabs(psnr_y(a, b, 0) - (-10 * std::log10(y * y))) < 1e-9);
  CHECK(std::fabs(psnr_rgb(a, b, 3) - (-10 * std::log10(1.0 / (255.0 * 255.0)))) < 1e-9);
  // border: a difference only in the cropped frame does not count
  Rgb8 c = a;
  c.data[0] = 0;
  CHECK(std::isinf(psnr_y(a, c, 1)) && !std::isinf(psnr_y(a, c, 0)));
  CHECK(border_for(1) == 0 && border_for(4) == 4);
  Rgb8 small{10, 10, std::vector<uint8_t>(300, 1)};
  CHECK_THROWS(std::invalid_argument, ssim_y(small, small, 0), "SSIM needs at least 11x11 pixels");
  CHECK_THROWS(std::invalid_argument, psnr_y(a, small, 0), "sr 20x20 and hr 10x10 differ in size");
  CHECK_THROWS(std::invalid_argument, psnr_y(a, a, 10), "border 10 leaves no pixels of a 20x20 image");
}

void sidecar() {
  const Sidecar s = parse_sidecar(sidecar_json(2, 4), "m.json");
  CHECK(s.scale == 2 && s.batch_size == 4 && s.tile_size == 48 && s.default_mode == "fast");
  CHECK((s.outputs[0].shape == std::vector<int64_t>{4, 3, 96, 96}));
  CHECK_THROWS(ModelError, parse_sidecar("{oops", "m.json"), "m.json: not valid JSON");
  std::string no_tiling = sidecar_json(2, 4);
  no_tiling.replace(no_tiling.find("\"tiling\""), 8, "\"tilinX\"");
  CHECK_THROWS(ModelError, parse_sidecar(no_tiling, "m.json"), "m.json: missing key 'tiling'");
  std::string bad_shape = sidecar_json(2, 4);
  bad_shape.replace(bad_shape.find("[4, 3, 96, 96]"), 14, "[4, 3, 98, 96]");
  CHECK_THROWS(ModelError, parse_sidecar(bad_shape, "m.json"), "outputs [4, 3, 98, 96] disagree with scale/tile_size");
  CHECK_THROWS(ModelError, parse_sidecar(sidecar_json(2, 4, "model.mindir", 30), "m.json"),
               "m.json: tiling.fast.ramp is 30; this harness implements 24 (src/tiler.py)");
  std::string text_scale = sidecar_json(2, 4);
  text_scale.replace(text_scale.find("\"scale\": 2"), 10, "\"scale\": \"2\"");
  CHECK_THROWS(ModelError, parse_sidecar(text_scale, "m.json"), "key 'scale' is \"2\"; expected an integer");
  // on disk: missing, renamed
  const fs::path model = tmp / "model.mindir";
  write_text(model, "not really a model");
  CHECK_THROWS(ModelError, read_sidecar(model.string()), "model.mindir: its sidecar model.mindir.json is missing");
  write_text(tmp / "model.mindir.json", sidecar_json(2, 4, "other.mindir"));
  CHECK_THROWS(ModelError, read_sidecar(model.string()), "describes 'other.mindir', not model.mindir");
  CHECK_THROWS(ModelError, read_sidecar((tmp / "absent.mindir").string()), "absent.mindir: no such model file");
  // against the model's own inputs
  check_model_io(s, {{"x", {4, 3, 48, 48}, "float32"}}, {{"y", {4, 3, 96, 96}, "float32"}}, "m.mindir");
  CHECK_THROWS(ModelError, check_model_io(s, {{"x", {1, 3, 48, 48}, "float32"}}, s.outputs, "m.mindir"),
               "m.mindir: input 0 of the model is [1, 3, 48, 48]; its sidecar says [4, 3, 48, 48]");
  CHECK_THROWS(ModelError, check_model_io(s, {{"x", {4, 3, 48, 48}, "float16"}}, s.outputs, "m.mindir"),
               "input 0 of the model is float16; its sidecar says float32");
  CHECK_THROWS(ModelError, check_model_io(s, {s.inputs[0], s.inputs[0]}, s.outputs, "m.mindir"),
               "the model has 2 input(s); its sidecar declares 1");
  check_batch_size(s, 0, "m.mindir");
  check_batch_size(s, 4, "m.mindir");
  CHECK_THROWS(ConfigError, check_batch_size(s, 8, "m.mindir"),
               "--batch_size 8: m.mindir was exported with batch size 4 (input [4, 3, 48, 48]); use 4");
  // compute_dtype and graph_form: optional, checked when present
  CHECK(s.compute_dtype == "float32" && s.graph_form.empty());
  std::string fp16_native = sidecar_json(2, 4);
  fp16_native.replace(fp16_native.find("\"compute_dtype\": \"float32\""), 26,
                      "\"compute_dtype\": \"float16\", \"graph_form\": \"native\"");
  const Sidecar native = parse_sidecar(fp16_native, "m.json");
  CHECK(native.compute_dtype == "float16" && native.graph_form == "native");
  std::string unrecorded = sidecar_json(2, 4);
  unrecorded.erase(unrecorded.find("\"compute_dtype\": \"float32\", "), 28);
  CHECK(parse_sidecar(unrecorded, "m.json").compute_dtype.empty());
  std::string bad_form = fp16_native;
  bad_form.replace(bad_form.find("\"native\""), 8, "\"auto\"");
  CHECK_THROWS(ModelError, parse_sidecar(bad_form, "m.json"), "m.json: graph_form 'auto'; expected native or cpu");
  std::string bad_dtype = fp16_native;
  bad_dtype.replace(bad_dtype.find("\"float16\""), 9, "\"int8\"");
  CHECK_THROWS(ModelError, parse_sidecar(bad_dtype, "m.json"),
               "m.json: compute_dtype 'int8'; expected float32, float16 or bfloat16");
}

void precision_mode() {
  // Lite's five, in its order; the default keeps LayerNorm in the MindIR's float32 (allow_fp32_to_fp16)
  CHECK((lite_precision_modes() == std::vector<std::string>{"enforce_fp32", "preferred_fp32", "enforce_fp16",
                                                              "enforce_origin", "preferred_optimal"}));
  for (const std::string &mode : lite_precision_modes()) check_precision_mode(mode);
  const char *const five = "enforce_fp32, preferred_fp32, enforce_fp16, enforce_origin or preferred_optimal";
  for (const std::string bad : {"must_keep_origin_dtype", "force_fp16", "allow_fp32_to_fp16", "", "Preferred_FP32"})
    CHECK_THROWS(ConfigError, check_precision_mode(bad),
                 "--precision_mode '" + bad + "'; MindSpore Lite's Ascend precision modes are " + five);
  Sidecar side = parse_sidecar(sidecar_json(2, 4), "m.json");
  PrecisionMode p = choose_precision_mode("", side);
  CHECK(p.mode == "preferred_fp32" && p.reason == "default for a float32 MindIR");
  side.compute_dtype = "float16";
  p = choose_precision_mode("", side);
  CHECK(p.mode == "preferred_fp32" && p.reason == "default for a float16 MindIR");
  side.compute_dtype.clear();
  CHECK(choose_precision_mode("", side).reason == "default; the sidecar records no compute_dtype");
  p = choose_precision_mode("enforce_origin", side);
  CHECK(p.mode == "enforce_origin" && p.reason == "--precision_mode");
  CHECK_THROWS(ConfigError, choose_precision_mode("must_keep_origin_dtype", side),
               std::string("--precision_mode 'must_keep_origin_dtype'; MindSpore Lite's Ascend precision modes are ") +
                   five);
}

void flags() {
  const char *good[] = {"ipt_infer", "--mindir_path", "m.mindir", "--input_path=in", "--device_id", "3",
                        "--device_type", "CPU", "--tile_mode", "paper", "--gt_path", "hr"};
  const Flags f = parse_flags(12, good);
  CHECK(f.mindir_path == "m.mindir" && f.input_path == "in" && f.device_id == 3 && f.device_type == "CPU" &&
        f.tile_mode == "paper" && f.gt_path == "hr" && f.output_path == "./result_Files");
  const char *unknown[] = {"x", "--mindir_path", "m", "--input_path", "i", "--save_dir", "o"};
  CHECK_THROWS(ConfigError, parse_flags(7, unknown), "unknown flag --save_dir");
  const char *bad_id[] = {"x", "--mindir_path", "m", "--input_path", "i", "--device_id", "zero"};
  CHECK_THROWS(ConfigError, parse_flags(7, bad_id), "--device_id expects an integer, got 'zero'");
  const char *bad_dev[] = {"x", "--mindir_path", "m", "--input_path", "i", "--device_type", "TPU"};
  CHECK_THROWS(ConfigError, parse_flags(7, bad_dev), "--device_type 'TPU'; expected Ascend, CPU or GPU");
  const char *bad_mode[] = {"x", "--mindir_path", "m", "--input_path", "i", "--tile_mode", "dense"};
  CHECK_THROWS(ConfigError, parse_flags(7, bad_mode), "--tile_mode 'dense'; expected fast or paper");
  const char *missing[] = {"x", "--input_path", "i"};
  CHECK_THROWS(ConfigError, parse_flags(3, missing), "--mindir_path is required");
  const char *dangling[] = {"x", "--mindir_path"};
  CHECK_THROWS(ConfigError, parse_flags(2, dangling), "--mindir_path needs a value");
  const char *precision[] = {"x", "--mindir_path", "m", "--input_path", "i", "--precision_mode", "enforce_fp32"};
  CHECK(parse_flags(7, precision).precision_mode == "enforce_fp32" && parse_flags(5, precision).precision_mode.empty());
  const char *bad_precision[] = {"x", "--mindir_path", "m", "--input_path", "i", "--precision_mode=force_fp32"};
  CHECK_THROWS(ConfigError, parse_flags(6, bad_precision),
               "--precision_mode 'force_fp32'; MindSpore Lite's Ascend precision modes are enforce_fp32, "
               "preferred_fp32, enforce_fp16, enforce_origin or preferred_optimal");
  const char *cpu_precision[] = {"x", "--mindir_path", "m", "--input_path", "i", "--device_type", "CPU",
                                 "--precision_mode", "enforce_fp32"};
  CHECK_THROWS(ConfigError, parse_flags(9, cpu_precision),
               "--precision_mode enforce_fp32 is for --device_type Ascend (MindSpore Lite's AscendDeviceInfo); this "
               "run's device type is CPU");
  const char *tiles[] = {"x", "--mindir_path", "m", "--input_path", "i", "--tiles_dir", "t"};
  CHECK_THROWS(ConfigError, parse_flags(7, tiles), "unknown flag --tiles_dir");
  CHECK(parse_flags(7, tiles, true).tiles_dir == "t");
}

Flags job(const fs::path &in, const fs::path &out, const std::string &gt = "", const std::string &mode = "") {
  Flags f;
  f.mindir_path = (tmp / "model.mindir").string();
  f.input_path = in.string();
  f.output_path = out.string();
  f.gt_path = gt;
  f.tile_mode = mode;
  return f;
}

void harness_stand_in() {
  // Two LR images and their exact x2 "ground truth" (the stand-in is nearest upscaling), one with a model-zoo name.
  const fs::path lr = tmp / "lr", hr = tmp / "hr";
  fs::create_directories(lr);
  fs::create_directories(hr);
  const Image a = random_image(61, 50, 11), b = random_image(30, 97, 12);
  write_rgb_png(lr / "a.png", a);
  write_rgb_png(lr / "bx2.png", b);
  for (const auto &[name, img] : std::map<std::string, Image>{{"a", a}, {"b", b}}) {
    const Image lr8 = read_image((lr / (name == "a" ? "a.png" : "bx2.png")).string());
    Image up(lr8.height * 2, lr8.width * 2);
    for (int y = 0; y < up.height; ++y)
      for (int x = 0; x < up.width; ++x)
        for (int c = 0; c < 3; ++c) up.at(y, x, c) = lr8.at(y / 2, x / 2, c);
    write_rgb_png(hr / (name + ".png"), up);
  }
  write_text(tmp / "model.mindir", "stand-in");
  write_text(tmp / "model.mindir.json", sidecar_json(2, 3));
  const Sidecar side = read_sidecar((tmp / "model.mindir").string());
  for (const std::string mode : {"fast", "paper"}) {
    StandInBackend backend(2, 48, 3);
    std::ostringstream log, err;
    const fs::path out = tmp / ("out_" + mode);
    const RunSummary r = run_harness(job(lr, out, hr.string(), mode), backend, side, log, err);
    CHECK(r.images_ok == 2 && r.images_failed == 0 && exit_status(r) == 0 && err.str().empty());
    CHECK(r.batch_ms.size() == static_cast<size_t>(backend.calls) && r.image_ms.size() == 2);
    CHECK(r.scores.size() == 2 && std::isinf(r.scores[0].psnr_y) && r.scores[1].ssim_y == 1.0);
    CHECK(fs::exists(out / "a.png") && fs::exists(out / "bx2.png") && fs::exists(out / "test_perform_static.txt") &&
          fs::exists(out / "metrics.csv"));
    CHECK(read_rgb8((out / "a.png").string()).data == read_rgb8((hr / "a.png").string()).data);
    CHECK(log.str().find("NN inference cost average time:") != std::string::npos);
    CHECK(log.str().find("tile mode " + mode) != std::string::npos);
    CHECK(log.str().find("x 48 x 48, compute float32) on pointwise stand-in") != std::string::npos);
    CHECK(log.str().find("mean over 2 image(s) (sr_x2, " + mode + " tiling): PSNR-Y inf dB") != std::string::npos);
  }
}

void harness_bad_input() {
  const fs::path lr = tmp / "lr";
  fs::create_directories(lr);
  write_rgb_png(lr / "good.png", random_image(50, 50, 5));
  write_text(lr / "corrupt.png", "garbage");
  write_text(tmp / "model.mindir", "stand-in");
  write_text(tmp / "model.mindir.json", sidecar_json(2, 2));
  const Sidecar side = read_sidecar((tmp / "model.mindir").string());
  {  // an unreadable image: one clear line, the others go on, non-zero exit
    StandInBackend backend(2, 48, 2);
    std::ostringstream log, err;
    const RunSummary r = run_harness(job(lr, tmp / "out"), backend, side, log, err);
    CHECK(r.images_ok == 1 && r.images_failed == 1 && exit_status(r) == 1);
    CHECK(err.str().find("error: " + (lr / "corrupt.png").string() + ": cannot decode image") == 0);
    CHECK(fs::exists(tmp / "out" / "good.png") && !fs::exists(tmp / "out" / "corrupt.png"));
  }
  {  // the model's own input is not what the sidecar says: refused before any work
    StandInBackend backend(2, 48, 2, {1, 3, 48, 48});
    std::ostringstream log, err;
    CHECK_THROWS(ModelError, run_harness(job(lr, tmp / "out2"), backend, side, log, err),
                 "input 0 of the model is [1, 3, 48, 48]; its sidecar says [2, 3, 48, 48]");
    CHECK(backend.calls == 0 && !fs::exists(tmp / "out2"));
  }
  {  // a batch size the model was not exported with
    StandInBackend backend(2, 48, 2);
    std::ostringstream log, err;
    Flags f = job(lr, tmp / "out3");
    f.batch_size = 8;
    CHECK_THROWS(ConfigError, run_harness(f, backend, side, log, err), "was exported with batch size 2");
    CHECK(backend.calls == 0);
  }
  {  // ground truth missing for an image
    StandInBackend backend(2, 48, 2);
    std::ostringstream log, err;
    fs::create_directories(tmp / "no_gt");
    const RunSummary r = run_harness(job(tmp / "lr" / "good.png", tmp / "out4", (tmp / "no_gt").string()), backend,
                                     side, log, err);
    CHECK(r.images_failed == 1 && err.str().find("good.png: no ground truth for it in") != std::string::npos);
  }
  {  // replayed batches that differ from what the harness feeds
    fs::create_directories(tmp / "tiles");
    std::vector<float> zeros(2 * 3 * 48 * 48, 0.0f);
    std::ofstream(tmp / "tiles" / "in_00000.bin", std::ios::binary)
        .write(reinterpret_cast<const char *>(zeros.data()), static_cast<std::streamsize>(zeros.size() * 4));
    ReplayBackend replay((tmp / "tiles").string(), side);
    std::vector<float> out;
    std::vector<float> in(zeros.size(), 1.0f);
    CHECK_THROWS(ModelError, replay.predict(in, &out), "batch 0: the harness's input differs from the recorded");
    CHECK_THROWS(ModelError, replay.predict(zeros, &out), "out_00000.bin: no such recorded batch");
  }
}

}  // namespace

int main(int argc, char **argv) {
  const std::map<std::string, void (*)()> cases = {
      {"tiler_plans", tiler_plans}, {"tiler_padding", tiler_padding}, {"tiler_pointwise_stand_in", tiler_pointwise_stand_in},
      {"tiler_fixed_batches", tiler_fixed_batches}, {"tiler_streaming", tiler_streaming}, {"quantise", quantise},
      {"output_image", output_image}, {"image_io", image_io}, {"metrics", metrics}, {"sidecar", sidecar},
      {"precision_mode", precision_mode}, {"flags", flags}, {"harness_stand_in", harness_stand_in},
      {"harness_bad_input", harness_bad_input}};
  if (argc != 3 || !cases.count(argv[1])) {
    std::cerr << "usage: ipt_unit_tests CASE TMPDIR; cases:";
    for (const auto &c : cases) std::cerr << " " << c.first;
    std::cerr << "\n";
    return 2;
  }
  tmp = argv[2];
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    cases.at(argv[1])();
  } catch (const std::exception &e) {
    std::cerr << argv[1] << ": unexpected exception: " << e.what() << "\n";
    ++failures;
  }
  std::cout << argv[1] << ": " << (failures ? "FAILED" : "passed") << " (" << failures << " failure(s))\n";
  return failures ? 1 : 0;
}
