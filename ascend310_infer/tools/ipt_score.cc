// ipt_score --sr_path OUT_DIR --gt_path HR_DIR --scale S: PSNR-Y, PSNR-RGB and SSIM-Y of every PNG in OUT_DIR
// against its ground truth (the same C++ metrics as the harness; stage 4 of scripts/run_infer_310.sh).
#include <iomanip>
#include <iostream>
#include <string>

#include "cli.h"
#include "harness.h"

static const char kUsage[] =
    "usage: ipt_score --sr_path DIR --gt_path DIR --scale 1..4\n"
    "  PSNR-Y, PSNR-RGB and SSIM-Y of every image in --sr_path against its ground truth in --gt_path (<name>.*, or\n"
    "  <name> without its x<scale> suffix), per image and the mean; the metrics of src/metrics.py";

int main(int argc, char **argv) {
  return ipt::guarded_main([&] {
    if (ipt::asks_for_help(argc, argv)) {
      std::cout << kUsage << "\n";
      return 0;
    }
    std::string sr_path, gt_path;
    int scale = 0;
    for (int i = 1; i < argc; ++i) {
      const std::string flag = argv[i];
      if (i + 1 >= argc) throw ipt::ConfigError(flag + " needs a value");
      const std::string value = argv[++i];
      if (flag == "--sr_path") sr_path = value;
      else if (flag == "--gt_path") gt_path = value;
      else if (flag == "--scale") scale = std::atoi(value.c_str());
      else throw ipt::ConfigError("unknown flag " + flag);
    }
    if (sr_path.empty() || gt_path.empty() || scale < 1 || scale > 4)
      throw ipt::ConfigError(std::string(kUsage).substr(0, std::string(kUsage).find('\n')));
    int failed = 0, n = 0;
    double py = 0, pr = 0, ss = 0;
    std::cout << std::setprecision(17);
    for (const std::string &path : ipt::list_images(sr_path)) {
      try {
        const auto gt = ipt::find_ground_truth(path, gt_path, scale);
        if (!gt) throw ipt::ImageError(path + ": no ground truth for it in " + gt_path);
        const ipt::Scores s = ipt::score_against(ipt::read_rgb8(path), *gt, scale);
        std::cout << path << " psnr_y " << s.psnr_y << " psnr_rgb " << s.psnr_rgb << " ssim_y " << s.ssim_y << "\n";
        py += s.psnr_y, pr += s.psnr_rgb, ss += s.ssim_y, ++n;
      } catch (const ipt::ImageError &e) {
        std::cerr << "error: " << e.what() << "\n";
        ++failed;
      }
    }
    if (n)
      std::cout << std::fixed << std::setprecision(4) << "mean over " << n << " image(s): PSNR-Y " << py / n
                << " dB, PSNR-RGB " << pr / n << " dB, SSIM-Y " << ss / n << "\n";
    return failed ? 1 : 0;
  });
}
