// Image reading and writing with OpenCV, matching src/data/image_io.py (and 16-bit input as x * (255 / 65535)).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>

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
  if (bytes.size() >= 2 && bytes[0] == 0xFF && bytes[1] == 0xD8 && jpeg_is_truncated(bytes))
    throw ImageError(path + ": truncated JPEG (the file ends before its image data does)");
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

uint8_t quantise_u8(float x) {
  const float r = std::nearbyint(x);  // round half to even in the default rounding mode
  return static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, r)));
}

Rgb8 to_uint8(const Image &image) {
  Rgb8 out{image.height, image.width, std::vector<uint8_t>(image.data.size())};
  for (size_t i = 0; i < image.data.size(); ++i) out.data[i] = quantise_u8(image.data[i]);
  return out;
}

bool jpeg_is_truncated(const std::vector<unsigned char> &data) {
  const size_t n = data.size();
  size_t i = 2;
  while (true) {
    if (i + 1 >= n) return true;
    if (data[i] != 0xFF) return false;  // broken structure: left to the decoder
    const unsigned marker = data[i + 1];
    if (marker == 0xFF) {  // fill byte
      i += 1;
      continue;
    }
    if (marker == 0xD9) return false;  // end of image
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) {  // no length field
      i += 2;
      continue;
    }
    if (i + 4 > n) return true;
    i += 2 + ((static_cast<size_t>(data[i + 2]) << 8) | data[i + 3]);
    if (marker != 0xDA) continue;  // not a start of scan
    while (true) {                 // entropy-coded data up to the next marker
      size_t j = i;
      while (j < n && data[j] != 0xFF) ++j;
      if (j + 1 >= n) return true;
      const unsigned follow = data[j + 1];
      if (follow == 0x00 || (follow >= 0xD0 && follow <= 0xD7)) {
        i = j + 2;
      } else if (follow == 0xFF) {
        i = j + 1;
      } else {
        i = j;
        break;
      }
    }
  }
}

namespace {

// OpenCV's PNG writer streams the rows to a temporary file (no encoded copy in memory), renamed into place.
void write_bgr_png(const std::string &path, const cv::Mat &bgr) {
  const fs::path target(path);
  const fs::path tmp = target.parent_path() / ("." + target.filename().string() + ".tmp.png");
  bool ok = false;
  try {
    ok = cv::imwrite(tmp.string(), bgr);
  } catch (const cv::Exception &) {
    ok = false;
  }
  if (!ok) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw ImageError(path + ": cannot write the PNG (does its folder exist and is it writable?)");
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp);
    throw ImageError(path + ": cannot rename the temporary file into place (" + ec.message() + ")");
  }
}

}  // namespace

void write_png(const std::string &path, const Rgb8 &rgb) {
  if (rgb.height < 1 || rgb.width < 1 || rgb.data.size() != static_cast<size_t>(rgb.height) * rgb.width * 3)
    throw ImageError(path + ": nothing to write (empty image)");
  cv::Mat src(rgb.height, rgb.width, CV_8UC3, const_cast<uint8_t *>(rgb.data.data()));
  cv::Mat bgr;
  cv::cvtColor(src, bgr, cv::COLOR_RGB2BGR);
  write_bgr_png(path, bgr);
}

OutputImage::OutputImage(int height, int width, const std::string &float_path)
    : height_(height), width_(width), bgr_(static_cast<size_t>(height) * width * 3), float_path_(float_path) {
  if (height < 1 || width < 1) throw std::invalid_argument("OutputImage needs a positive size");
  if (!float_path_.empty()) {
    const fs::path target(float_path_);
    float_tmp_ = (target.parent_path() / ("." + target.filename().string() + ".tmp")).string();
    float_file_.open(float_tmp_, std::ios::binary | std::ios::trunc);
    if (!float_file_) throw ImageError(float_path_ + ": cannot write (does its folder exist and is it writable?)");
  }
}

OutputImage::~OutputImage() {
  if (float_file_.is_open()) {
    float_file_.close();
    std::error_code ignored;
    fs::remove(float_tmp_, ignored);
  }
}

void OutputImage::write_rows(int y, const float *rows, int n, int width) {
  if (y != rows_done_ || width != width_ || n < 1 || y + n > height_)
    throw std::logic_error("rows " + std::to_string(y) + ".." + std::to_string(y + n - 1) + " of width " +
                           std::to_string(width) + " do not continue a " + std::to_string(height_) + "x" +
                           std::to_string(width_) + " image after row " + std::to_string(rows_done_));
  const size_t count = static_cast<size_t>(n) * width * 3;
  uint8_t *dst = &bgr_[static_cast<size_t>(y) * width * 3];
  for (size_t i = 0; i < count; i += 3)
    for (int c = 0; c < 3; ++c) dst[i + 2 - c] = quantise_u8(rows[i + c]);
  if (float_file_.is_open()) {
    float_file_.write(reinterpret_cast<const char *>(rows), static_cast<std::streamsize>(count * sizeof(float)));
    if (!float_file_) throw ImageError(float_path_ + ": write failed");
  }
  rows_done_ = y + n;
}

void OutputImage::write_png(const std::string &path) const {
  if (rows_done_ != height_)
    throw std::logic_error(path + ": only " + std::to_string(rows_done_) + " of " + std::to_string(height_) +
                           " rows restored");
  write_bgr_png(path, cv::Mat(height_, width_, CV_8UC3, const_cast<uint8_t *>(bgr_.data())));
}

void OutputImage::finish() {
  if (!float_file_.is_open()) return;
  if (rows_done_ != height_)
    throw std::logic_error(float_path_ + ": only " + std::to_string(rows_done_) + " of " + std::to_string(height_) +
                           " rows restored");
  float_file_.close();
  if (!float_file_) throw ImageError(float_path_ + ": write failed");
  std::error_code ec;
  fs::rename(float_tmp_, float_path_, ec);
  if (ec) {
    fs::remove(float_tmp_);
    throw ImageError(float_path_ + ": cannot rename the temporary file into place (" + ec.message() + ")");
  }
}

Rgb8 OutputImage::rgb() const {
  Rgb8 out{height_, width_, std::vector<uint8_t>(bgr_.size())};
  for (size_t i = 0; i < bgr_.size(); i += 3)
    for (int c = 0; c < 3; ++c) out.data[i + c] = bgr_[i + 2 - c];
  return out;
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
