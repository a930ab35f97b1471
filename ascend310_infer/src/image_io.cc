// Image reading and writing with OpenCV, matching src/data/image_io.py (and 16-bit input as x * (255 / 65535)).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "errors.h"
#include "image.h"

namespace fs = std::filesystem;

namespace ipt {
namespace {

const char *const kExtensions[] = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool is_image_name(const fs::path &p) {
  const std::string ext = lower(p.extension().string());
  return std::find(std::begin(kExtensions), std::end(kExtensions), ext) != std::end(kExtensions);
}

// Decoded BGR(A)/gray pixels, unchanged depth; ImageError when the file cannot be read or decoded.
cv::Mat decode(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ImageError(path + ": no such file or cannot open it");
  std::vector<uchar> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  cv::Mat img;
  if (!bytes.empty()) {
    try {
      img = cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
    } catch (const cv::Exception &) {
      img.release();
    }
  }
  if (img.empty()) throw ImageError(path + ": cannot decode image (corrupt or not an image)");
  return img;
}

cv::Mat to_rgb(const cv::Mat &img, const std::string &path) {
  cv::Mat rgb;
  switch (img.channels()) {
    case 1:
      std::cerr << "warning: " << path << ": grayscale image converted to RGB\n";
      cv::cvtColor(img, rgb, cv::COLOR_GRAY2RGB);
      break;
    case 3:
      cv::cvtColor(img, rgb, cv::COLOR_BGR2RGB);
      break;
    case 4:
      std::cerr << "warning: " << path << ": alpha channel dropped\n";
      cv::cvtColor(img, rgb, cv::COLOR_BGRA2RGB);
      break;
    default:
      throw ImageError(path + ": unsupported number of channels (" + std::to_string(img.channels()) + ")");
  }
  return rgb;
}

}  // namespace

Image read_image(const std::string &path) {
  const cv::Mat img = decode(path);
  if (img.depth() != CV_8U && img.depth() != CV_16U)
    throw ImageError(path + ": unsupported pixel type (expected 8-bit or 16-bit integers)");
  const cv::Mat rgb = to_rgb(img, path);
  Image out(rgb.rows, rgb.cols);
  const float k16 = static_cast<float>(255.0 / 65535.0);
  for (int y = 0; y < rgb.rows; ++y) {
    for (int x = 0; x < rgb.cols; ++x) {
      for (int c = 0; c < 3; ++c) {
        if (rgb.depth() == CV_8U)
          out.at(y, x, c) = static_cast<float>(rgb.ptr<uint8_t>(y)[x * 3 + c]);
        else
          out.at(y, x, c) = static_cast<float>(rgb.ptr<uint16_t>(y)[x * 3 + c]) * k16;
      }
    }
  }
  return out;
}

Rgb8 read_rgb8(const std::string &path) {
  const cv::Mat img = decode(path);
  if (img.depth() != CV_8U) throw ImageError(path + ": ground truth must be an 8-bit image");
  const cv::Mat rgb = to_rgb(img, path);
  Rgb8 out{rgb.rows, rgb.cols, {}};
  out.data.resize(static_cast<size_t>(rgb.rows) * rgb.cols * 3);
  for (int y = 0; y < rgb.rows; ++y) std::copy_n(rgb.ptr<uint8_t>(y), rgb.cols * 3, &out.data[y * rgb.cols * 3]);
  return out;
}

Rgb8 to_uint8(const Image &image) {
  Rgb8 out{image.height, image.width, std::vector<uint8_t>(image.data.size())};
  for (size_t i = 0; i < image.data.size(); ++i) {
    const float r = std::nearbyint(image.data[i]);  // round half to even in the default rounding mode
    out.data[i] = static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, r)));
  }
  return out;
}

void write_png(const std::string &path, const Rgb8 &rgb) {
  if (rgb.height < 1 || rgb.width < 1 || rgb.data.size() != static_cast<size_t>(rgb.height) * rgb.width * 3)
    throw ImageError(path + ": nothing to write (empty image)");
  cv::Mat src(rgb.height, rgb.width, CV_8UC3, const_cast<uint8_t *>(rgb.data.data()));
  cv::Mat bgr;
  cv::cvtColor(src, bgr, cv::COLOR_RGB2BGR);
  std::vector<uchar> buf;
  if (!cv::imencode(".png", bgr, buf)) throw ImageError(path + ": PNG encoding failed");
  const fs::path target(path);
  const fs::path tmp = target.parent_path() / ("." + target.filename().string() + ".tmp");
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f) throw ImageError(path + ": cannot write (does its folder exist and is it writable?)");
    f.write(reinterpret_cast<const char *>(buf.data()), static_cast<std::streamsize>(buf.size()));
    if (!f) throw ImageError(path + ": write failed");
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp);
    throw ImageError(path + ": cannot rename the temporary file into place (" + ec.message() + ")");
  }
}

std::vector<std::string> list_images(const std::string &path) {
  const fs::path p(path);
  std::error_code ec;
  if (!fs::exists(p, ec)) throw ImageError(path + ": no such file or directory");
  if (fs::is_regular_file(p, ec)) {
    if (!is_image_name(p)) throw ImageError(path + ": not an image file (expected .png, .jpg, .jpeg, .bmp, .tif, .tiff, .webp)");
    return {path};
  }
  if (!fs::is_directory(p, ec)) throw ImageError(path + ": not a file or directory");
  std::vector<std::string> found;
  for (const auto &entry : fs::directory_iterator(p, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.empty() && name[0] != '.' && entry.is_regular_file() && is_image_name(entry.path()))
      found.push_back(entry.path().string());
  }
  if (ec) throw ImageError(path + ": cannot list directory: " + ec.message());
  std::sort(found.begin(), found.end());
  if (found.empty()) throw ImageError(path + ": no image files in this directory");
  return found;
}

}  // namespace ipt
