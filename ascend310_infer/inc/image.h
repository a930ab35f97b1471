// Images as float32 HWC RGB arrays, and reading/writing them with OpenCV like src/data/image_io.py.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ipt {

struct Image {
  int height = 0, width = 0;
  std::vector<float> data;  // height * width * 3, RGB, row-major
  Image() = default;
  Image(int h, int w) : height(h), width(w), data(static_cast<size_t>(h) * w * 3, 0.0f) {}
  float &at(int y, int x, int c) { return data[(static_cast<size_t>(y) * width + x) * 3 + c]; }
  float at(int y, int x, int c) const { return data[(static_cast<size_t>(y) * width + x) * 3 + c]; }
};

struct Rgb8 {  // uint8 HWC RGB
  int height = 0, width = 0;
  std::vector<uint8_t> data;
};

// The image at path as float32 RGB on 0..255: 8-bit values as they are, 16-bit as x * (255 / 65535) in float32;
// gray is expanded, alpha dropped (a warning on stderr). Throws ipt::ImageError ("<path>: ...") when unreadable.
Image read_image(const std::string &path);
// Exactly the 8-bit RGB pixels of a file (ground truth); 16-bit files are refused.
Rgb8 read_rgb8(const std::string &path);
// clip(rint(x), 0, 255) (round half to even), src/data/image_io.py to_uint8.
Rgb8 to_uint8(const Image &image);
// PNG via a temporary file and rename; creates no directories.
void write_png(const std::string &path, const Rgb8 &rgb);
// Image files directly in a folder (sorted, hidden skipped), or [path] for a file; ImageError otherwise.
std::vector<std::string> list_images(const std::string &path);

}  // namespace ipt
