// ipt_infer: restore images with an exported IPT MindIR on Ascend 310 (or CPU/GPU) through MindSpore Lite.
//   ipt_infer --mindir_path ipt_sr_x2_b8.mindir --input_path LR_DIR --output_path OUT [--device_type Ascend]
//             [--device_id 0] [--precision_mode preferred_fp32] [--gt_path HR_DIR] [--tile_mode fast|paper]
//             [--batch_size 8]
// Built only when build.sh finds MindSpore Lite (the runtime lives in src/mindspore_backend.cc).
#include <iostream>

#include "cli.h"
#include "harness.h"

int main(int argc, char **argv) {
  return ipt::guarded_main([&] {
    const ipt::Flags flags = ipt::parse_flags(argc, argv);
    if (flags.help) {
      std::cout << ipt::usage(argv[0]) << "\n";
      return 0;
    }
    const ipt::Sidecar side = ipt::read_sidecar(flags.mindir_path);      // before the (slow) model build
    ipt::check_batch_size(side, flags.batch_size, flags.mindir_path);
    const ipt::PrecisionMode precision = ipt::choose_precision_mode(flags.precision_mode, side);
    auto backend = ipt::make_lite_backend(flags.mindir_path, flags.device_type, flags.device_id, precision);
    return ipt::exit_status(ipt::run_harness(flags, *backend, side, std::cout, std::cerr));
  });
}
