// ipt_infer_replay: the harness (the same code as ipt_infer) with recorded tile outputs instead of a runtime.
// Used by the cross-check test: Python records every batch the real exported model saw and returned
// (<tiles_dir>/in_NNNNN.bin, out_NNNNN.bin); this tool tiles the image itself, checks each input batch is
// bit-identical to the recorded one, stitches the recorded outputs and writes the PNG.
#include <iostream>

#include "cli.h"
#include "harness.h"

int main(int argc, char **argv) {
  return ipt::guarded_main([&] {
    const ipt::Flags flags = ipt::parse_flags(argc, argv, /*allow_tiles_dir=*/true);
    if (flags.help) {
      std::cout << ipt::usage(argv[0], true) << "\n";
      return 0;
    }
    const ipt::Sidecar side = ipt::read_sidecar(flags.mindir_path);
    ipt::ReplayBackend backend(flags.tiles_dir, side);
    return ipt::exit_status(ipt::run_harness(flags, backend, side, std::cout, std::cerr));
  });
}
