// Port of src/metrics.py (read its module docstring): the official calc_psnr on Y, PSNR on RGB, SSIM on Y.
#include "metrics.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

namespace ipt {
namespace {

constexpr double kYWeights[3] = {65.738 / 256.0, 129.057 / 256.0, 25.064 / 256.0};
constexpr double kSigma = 1.5;
constexpr int kRadius = 5;  // 11x11 window
const double kC1 = (0.01 * 255) * (0.01 * 255);
const double kC2 = (0.03 * 255) * (0.03 * 255);

// Border-cropped float64 HxWx3 copies (CV_64FC3) of a checked pair.
void crop_pair(const Rgb8 &sr, const Rgb8 &hr, int border, cv::Mat *a, cv::Mat *b) {
  if (sr.height != hr.height || sr.width != hr.width)
    throw std::invalid_argument("sr " + std::to_string(sr.width) + "x" + std::to_string(sr.height) + " and hr " +
                                std::to_string(hr.width) + "x" + std::to_string(hr.height) + " differ in size");
  if (border < 0 || 2 * border >= std::min(sr.height, sr.width))
    throw std::invalid_argument("border " + std::to_string(border) + " leaves no pixels of a " +
                                std::to_string(sr.width) + "x" + std::to_string(sr.height) + " image");
  const cv::Rect roi(border, border, sr.width - 2 * border, sr.height - 2 * border);
  cv::Mat(sr.height, sr.width, CV_8UC3, const_cast<uint8_t *>(sr.data.data()))(roi).convertTo(*a, CV_64FC3);
  cv::Mat(hr.height, hr.width, CV_8UC3, const_cast<uint8_t *>(hr.data.data()))(roi).convertTo(*b, CV_64FC3);
}

double to_psnr(double mse) {
  return mse == 0 ? std::numeric_limits<double>::infinity() : -10.0 * std::log10(mse);
}

cv::Mat luma(const cv::Mat &rgb) {
  cv::Mat y(rgb.rows, rgb.cols, CV_64F);
  for (int i = 0; i < rgb.rows; ++i) {
    const double *p = rgb.ptr<double>(i);
    double *q = y.ptr<double>(i);
    for (int j = 0; j < rgb.cols; ++j)
      q[j] = p[3 * j] * kYWeights[0] + p[3 * j + 1] * kYWeights[1] + p[3 * j + 2] * kYWeights[2] + 16.0;
  }
  return y;
}

}  // namespace

int border_for(int scale) { return scale > 1 ? scale : 0; }

double psnr_y(const Rgb8 &sr, const Rgb8 &hr, int border) {
  cv::Mat a, b;
  crop_pair(sr, hr, border, &a, &b);
  double sum = 0;
  for (int i = 0; i < a.rows; ++i) {
    const double *p = a.ptr<double>(i), *q = b.ptr<double>(i);
    for (int j = 0; j < a.cols; ++j) {
      double d = 0;
      for (int c = 0; c < 3; ++c) d += (p[3 * j + c] - q[3 * j + c]) / 255.0 * kYWeights[c];
      sum += d * d;
    }
  }
  return to_psnr(sum / (static_cast<double>(a.rows) * a.cols));
}

double psnr_rgb(const Rgb8 &sr, const Rgb8 &hr, int border) {
  cv::Mat a, b;
  crop_pair(sr, hr, border, &a, &b);
  double sum = 0;
  for (int i = 0; i < a.rows; ++i) {
    const double *p = a.ptr<double>(i), *q = b.ptr<double>(i);
    for (int j = 0; j < a.cols * 3; ++j) {
      const double d = (p[j] - q[j]) / 255.0;
      sum += d * d;
    }
  }
  return to_psnr(sum / (static_cast<double>(a.rows) * a.cols * 3));
}

double ssim_y(const Rgb8 &sr, const Rgb8 &hr, int border) {
  cv::Mat a, b;
  crop_pair(sr, hr, border, &a, &b);
  if (std::min(a.rows, a.cols) < 2 * kRadius + 1)
    throw std::invalid_argument("SSIM needs at least 11x11 pixels after the border crop, got " +
                                std::to_string(a.cols) + "x" + std::to_string(a.rows));
  const cv::Mat x = luma(a), y = luma(b);
  cv::Mat g(1, 2 * kRadius + 1, CV_64F);
  double gsum = 0;
  for (int i = -kRadius; i <= kRadius; ++i) gsum += g.at<double>(0, i + kRadius) = std::exp(-(i * i) / (2 * kSigma * kSigma));
  g /= gsum;
  const cv::Mat window = g.t() * g;  // outer product
  const cv::Rect valid(kRadius, kRadius, x.cols - 2 * kRadius, x.rows - 2 * kRadius);
  auto filt = [&](const cv::Mat &img) {
    cv::Mat out;
    cv::filter2D(img, out, CV_64F, window, cv::Point(-1, -1), 0, cv::BORDER_REFLECT);
    return cv::Mat(out(valid));
  };
  const cv::Mat mu_x = filt(x), mu_y = filt(y);
  const cv::Mat var_x = filt(x.mul(x)) - mu_x.mul(mu_x);
  const cv::Mat var_y = filt(y.mul(y)) - mu_y.mul(mu_y);
  const cv::Mat cov = filt(x.mul(y)) - mu_x.mul(mu_y);
  double total = 0;
  for (int i = 0; i < mu_x.rows; ++i)
    for (int j = 0; j < mu_x.cols; ++j) {
      const double mx = mu_x.at<double>(i, j), my = mu_y.at<double>(i, j);
      total += ((2 * mx * my + kC1) * (2 * cov.at<double>(i, j) + kC2)) /
               ((mx * mx + my * my + kC1) * (var_x.at<double>(i, j) + var_y.at<double>(i, j) + kC2));
    }
  return total / (static_cast<double>(mu_x.rows) * mu_x.cols);
}

Scores score(const Rgb8 &sr, const Rgb8 &hr, int border) {
  return {psnr_y(sr, hr, border), psnr_rgb(sr, hr, border), ssim_y(sr, hr, border)};
}

}  // namespace ipt
