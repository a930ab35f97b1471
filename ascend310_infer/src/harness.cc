#include "harness.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <sstream>

#include "errors.h"
#include "tiler.h"

namespace fs = std::filesystem;

namespace ipt {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double mean(const std::vector<double> &v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

std::vector<float> read_floats(const std::string &path, size_t count) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw ModelError(path + ": no such recorded batch");
  const auto size = static_cast<size_t>(f.tellg());
  if (size != count * sizeof(float))
    throw ModelError(path + ": " + std::to_string(size) + " bytes; expected " + std::to_string(count * sizeof(float)) +
                     " (" + std::to_string(count) + " float32)");
  f.seekg(0);
  std::vector<float> v(count);
  f.read(reinterpret_cast<char *>(v.data()), static_cast<std::streamsize>(size));
  return v;
}

std::string batch_name(const std::string &dir, const char *kind, int k) {
  std::ostringstream s;
  s << dir << "/" << kind << "_" << std::setw(5) << std::setfill('0') << k << ".bin";
  return s.str();
}

}  // namespace

size_t element_count(const std::vector<int64_t> &shape) {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

void ReplayBackend::predict(const std::vector<float> &in, std::vector<float> *out) {
  const std::vector<float> recorded = read_floats(batch_name(dir_, "in", calls_), element_count(side_.inputs[0].shape));
  if (in.size() != recorded.size() || std::memcmp(in.data(), recorded.data(), in.size() * sizeof(float)) != 0) {
    size_t i = 0;
    while (i < in.size() && i < recorded.size() && std::memcmp(&in[i], &recorded[i], sizeof(float)) == 0) ++i;
    throw ModelError("batch " + std::to_string(calls_) + ": the harness's input differs from the recorded " +
                     batch_name(dir_, "in", calls_) + " at element " + std::to_string(i));
  }
  *out = read_floats(batch_name(dir_, "out", calls_), element_count(side_.outputs[0].shape));
  ++calls_;
}

std::optional<std::string> find_ground_truth(const std::string &image_path, const std::string &gt_dir, int scale) {
  const std::string stem = fs::path(image_path).stem().string();
  std::vector<std::string> stems = {stem};
  const std::string suffix = "x" + std::to_string(scale);
  if (stem.size() > suffix.size() && stem.compare(stem.size() - suffix.size(), suffix.size(), suffix) == 0)
    stems.push_back(stem.substr(0, stem.size() - suffix.size()));
  for (const std::string &s : stems)
    for (const char *ext : {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}) {
      const fs::path candidate = fs::path(gt_dir) / (s + ext);
      if (fs::is_regular_file(candidate)) return candidate.string();
    }
  return std::nullopt;
}

Scores score_against(const Rgb8 &sr, const std::string &gt_path, int scale) {
  Rgb8 hr = read_rgb8(gt_path);
  if (hr.height < sr.height || hr.width < sr.width)
    throw ImageError(gt_path + ": ground truth " + std::to_string(hr.width) + "x" + std::to_string(hr.height) +
                     " is smaller than the output " + std::to_string(sr.width) + "x" + std::to_string(sr.height));
  if (hr.height != sr.height || hr.width != sr.width) {  // HR cropped to LR size x scale (the official protocol)
    Rgb8 crop{sr.height, sr.width, std::vector<uint8_t>(sr.data.size())};
    for (int y = 0; y < sr.height; ++y)
      std::copy_n(&hr.data[static_cast<size_t>(y) * hr.width * 3], sr.width * 3, &crop.data[static_cast<size_t>(y) * sr.width * 3]);
    hr = std::move(crop);
  }
  try {
    return score(sr, hr, border_for(scale));
  } catch (const std::invalid_argument &e) {
    throw ImageError(gt_path + ": " + e.what());
  }
}

RunSummary run_harness(const Flags &flags, InferBackend &backend, const Sidecar &side, std::ostream &log,
                       std::ostream &err) {
  check_batch_size(side, flags.batch_size, flags.mindir_path);
  check_model_io(side, backend.inputs(), backend.outputs(), flags.mindir_path);
  const std::string mode = flags.tile_mode.empty() ? side.default_mode : flags.tile_mode;
  const std::vector<std::string> images = list_images(flags.input_path);
  if (!flags.gt_path.empty() && !fs::is_directory(flags.gt_path))
    throw ConfigError("--gt_path " + flags.gt_path + ": not a folder");
  std::error_code ec;
  fs::create_directories(flags.output_path, ec);
  if (!fs::is_directory(flags.output_path)) throw ConfigError("--output_path " + flags.output_path + ": cannot create it");
  log << "model " << flags.mindir_path << " (" << side.task << ", x" << side.scale << ", batch " << side.batch_size
      << " x 3 x " << side.tile_size << " x " << side.tile_size
      << (side.graph_form.empty() ? "" : ", " + side.graph_form + " graph")
      << (side.compute_dtype.empty() ? "" : ", compute " + side.compute_dtype) << ") on " << backend.describe()
      << ", tile mode " << mode << ", " << images.size() << " image(s)\n";
  RunSummary summary;
  std::ofstream metrics_csv;
  if (!flags.gt_path.empty()) {
    metrics_csv.open(fs::path(flags.output_path) / "metrics.csv");
    metrics_csv << "image,ground_truth,psnr_y,psnr_rgb,ssim_y\n" << std::setprecision(17);
  }
  const size_t out_count = element_count(side.outputs[0].shape);
  for (const std::string &path : images) {
    const auto t0 = Clock::now();
    try {
      std::optional<std::string> gt;
      if (!flags.gt_path.empty()) {
        gt = find_ground_truth(path, flags.gt_path, side.scale);
        if (!gt) throw ImageError(path + ": no ground truth for it in " + flags.gt_path);
      }
      const Image lr = read_image(path);
      const size_t first_batch = summary.batch_ms.size();
      RunBatch run = [&](const std::vector<float> &in, std::vector<float> *out) {
        const auto b0 = Clock::now();
        backend.predict(in, out);
        summary.batch_ms.push_back(ms_since(b0));
        if (out->size() != out_count)
          throw ModelError(flags.mindir_path + ": the model returned " + std::to_string(out->size()) +
                           " values; its sidecar's output " + shape_string(side.outputs[0].shape) + " has " +
                           std::to_string(out_count));
      };
      const fs::path stem = fs::path(flags.output_path) / fs::path(path).stem();
      OutputImage sr(lr.height * side.scale, lr.width * side.scale,
                     flags.save_float ? stem.string() + ".bin" : std::string());
      restore_rows(
          lr, run, [&](int y, const float *rows, int n, int width) { sr.write_rows(y, rows, n, width); }, side.scale,
          side.tile_size, side.batch_size, mode);
      const std::string target = stem.string() + ".png";
      sr.write_png(target);
      sr.finish();
      const double image_ms = ms_since(t0);
      summary.image_ms.push_back(image_ms);
      const size_t batches = summary.batch_ms.size() - first_batch;
      std::vector<double> mine(summary.batch_ms.begin() + static_cast<long>(first_batch), summary.batch_ms.end());
      log << std::fixed << std::setprecision(2) << fs::path(path).filename().string() << ": " << lr.width << "x"
          << lr.height << " -> " << sr.width() << "x" << sr.height() << ", " << batches << " batch(es), predict "
          << mean(mine) << " ms per batch, " << image_ms << " ms per image";
      if (gt) {
        const Scores s = score_against(sr.rgb(), *gt, side.scale);
        summary.scores.push_back(s);
        metrics_csv << fs::path(path).filename().string() << "," << fs::path(*gt).filename().string() << ","
                    << s.psnr_y << "," << s.psnr_rgb << "," << s.ssim_y << "\n";
        log << std::setprecision(4) << ", PSNR-Y " << s.psnr_y << " dB, PSNR-RGB " << s.psnr_rgb << " dB, SSIM-Y "
            << s.ssim_y;
      }
      log << "\n";
      log.unsetf(std::ios::floatfield);
      ++summary.images_ok;
    } catch (const ImageError &e) {
      err << "error: " << e.what() << "\n";
      ++summary.images_failed;
    }
  }
  std::ostringstream timing;
  timing << std::fixed << std::setprecision(3) << "NN inference cost average time: " << mean(summary.batch_ms)
         << " ms of infer_count " << summary.batch_ms.size() << " (batches of " << side.batch_size << " tiles)\n"
         << "image average time: " << mean(summary.image_ms) << " ms of image_count " << summary.image_ms.size()
         << " (read, tile, predict, stitch, write)\n";
  log << timing.str();
  std::ofstream(fs::path(flags.output_path) / "test_perform_static.txt") << timing.str();
  if (!summary.scores.empty()) {
    double py = 0, pr = 0, ss = 0;
    for (const Scores &s : summary.scores) py += s.psnr_y, pr += s.psnr_rgb, ss += s.ssim_y;
    const double n = static_cast<double>(summary.scores.size());
    log << std::fixed << std::setprecision(4) << "mean over " << summary.scores.size() << " image(s) (" << side.task
        << ", " << mode << " tiling): PSNR-Y " << py / n << " dB, PSNR-RGB " << pr / n << " dB, SSIM-Y " << ss / n
        << "\n";
    log.unsetf(std::ios::floatfield);
  }
  if (summary.images_failed)
    err << "error: " << summary.images_failed << " of " << images.size() << " image(s) failed (see above)\n";
  return summary;
}

int exit_status(const RunSummary &summary) { return summary.images_failed ? 1 : 0; }

}  // namespace ipt
