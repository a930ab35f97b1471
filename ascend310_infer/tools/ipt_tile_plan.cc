// ipt_tile_plan --height H --width W --scale S [--mode fast|paper] [--patch_size P]
// Prints the same JSON as `python -m src.tiler plan ...` (compared by tests/test_cpp_harness.py).
#include <cstring>
#include <iostream>
#include <string>

#include "cli.h"
#include "tiler.h"

static const char kUsage[] =
    "usage: ipt_tile_plan --height H --width W --scale S [--mode fast|paper] [--patch_size 48]\n"
    "  prints, as JSON, the tile plan of an HxW LR image at scale S: the same JSON as\n"
    "  `python -m src.tiler plan --height H --width W --scale S --mode MODE`";

int main(int argc, char **argv) {
  return ipt::guarded_main([&] {
    if (ipt::asks_for_help(argc, argv)) {
      std::cout << kUsage << "\n";
      return 0;
    }
    int height = 0, width = 0, scale = 0, patch = 48;
    std::string mode = "fast";
    for (int i = 1; i < argc; ++i) {
      const std::string flag = argv[i];
      if (i + 1 >= argc) throw ipt::ConfigError(flag + " needs a value");
      const std::string value = argv[++i];
      auto num = [&]() {
        try {
          size_t used = 0;
          const int v = std::stoi(value, &used);
          if (used == value.size()) return v;
        } catch (const std::exception &) {
        }
        throw ipt::ConfigError(flag + " expects an integer, got '" + value + "'");
      };
      if (flag == "--height") height = num();
      else if (flag == "--width") width = num();
      else if (flag == "--scale") scale = num();
      else if (flag == "--patch_size") patch = num();
      else if (flag == "--mode") mode = value;
      else throw ipt::ConfigError("unknown flag " + flag);
    }
    std::cout << ipt::make_plan(height, width, scale, patch, mode).to_json() << "\n";
    return 0;
  });
}
