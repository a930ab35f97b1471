// PSNR-Y, PSNR-RGB and SSIM-Y on uint8 RGB images, ported from src/metrics.py (float64 throughout).
#pragma once

#include "image.h"

namespace ipt {

struct Scores {
  double psnr_y, psnr_rgb, ssim_y;
};

int border_for(int scale);  // scale for SR, 0 for scale 1
// std::invalid_argument for different sizes or a border that leaves no pixels (same messages as Python).
double psnr_y(const Rgb8 &sr, const Rgb8 &hr, int border);
double psnr_rgb(const Rgb8 &sr, const Rgb8 &hr, int border);
double ssim_y(const Rgb8 &sr, const Rgb8 &hr, int border);
Scores score(const Rgb8 &sr, const Rgb8 &hr, int border);

}  // namespace ipt
