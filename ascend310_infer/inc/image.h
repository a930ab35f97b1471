// Images as float32 HWC RGB arrays, and reading/writing them with OpenCV like src/data/image_io.py.
#pragma once

#include <cstdint>
#include <fstream>
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
uint8_t quantise_u8(float x);
Rgb8 to_uint8(const Image &image);
// PNG via a temporary file and rename; creates no directories.
void write_png(const std::string &path, const Rgb8 &rgb);
// Whether a JPEG file (it starts with SOI) ends before its end-of-image marker (src/data/image_io.py
// jpeg_is_truncated); read_image and read_rgb8 refuse such files, which OpenCV would fill with gray.
bool jpeg_is_truncated(const std::vector<unsigned char> &data);

// A restored image filled by row blocks as the tiler finishes them (restore_rows' WriteRows), as src/data/image_io.py
// OutputImage: each float32 value is rounded and clipped at once (quantise_u8) into 8-bit pixels held in BGR order for
// the PNG writer; with a float_path the float32 rows are also appended to that raw file under a temporary name,
// renamed into place by finish() (removed if the image is dropped unfinished). Only the 8-bit image is held.
class OutputImage {
 public:
  OutputImage(int height, int width, const std::string &float_path = "");
  ~OutputImage();
  OutputImage(const OutputImage &) = delete;
  OutputImage &operator=(const OutputImage &) = delete;
  void write_rows(int y, const float *rows, int n, int width);
  void write_png(const std::string &path) const;  // every row must have come
  void finish();                                   // the float32 file into place
  Rgb8 rgb() const;                                // a copy in RGB order (scoring)
  int height() const { return height_; }
  int width() const { return width_; }

 private:
  int height_, width_, rows_done_ = 0;
  std::vector<uint8_t> bgr_;
  std::string float_path_, float_tmp_;
  std::ofstream float_file_;
};
// Image files directly in a folder (sorted, hidden skipped), or [path] for a file; ImageError otherwise.
std::vector<std::string> list_images(const std::string &path);

}  // namespace ipt
