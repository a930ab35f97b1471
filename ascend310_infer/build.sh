#!/usr/bin/env bash
# Build the Ascend 310 harness into ascend310_infer/build/:
#   ipt_infer         the harness on MindSpore Lite (only when MS_LITE_HOME is set, see below)
#   ipt_infer_replay  the same harness on recorded tile outputs (cross-check with the Python tiler)
#   ipt_tile_plan     tile plan as JSON (= python -m src.tiler plan)      ipt_score  PSNR/SSIM of an output folder
#   ipt_unit_tests    ctest cases (ctest --test-dir ascend310_infer/build)
#
# Usage: bash ascend310_infer/build.sh [--lib-only]
# The SDK: $MS_LITE_HOME, an unpacked mindspore-lite-<version>-linux-<arch> (runtime/include/api, runtime/lib).
# MindSpore Lite only: MindSpore 2.x's framework packages ship no C++ inference API (README.md). --lib-only skips the
# SDK (what CI builds).
# Exit status: 0 built (with ipt_infer unless --lib-only); 2 a tool or package is missing or MS_LITE_HOME is wrong;
# 3 no SDK (MS_LITE_HOME unset): everything but ipt_infer was built.
set -euo pipefail
cd "$(dirname "$0")"
lib_only=0
case "${1:-}" in
  "") ;;
  --lib-only) lib_only=1 ;;
  -h|--help)
    echo "usage: bash ascend310_infer/build.sh [--lib-only]"
    echo "  builds ascend310_infer/build/: ipt_infer (with MS_LITE_HOME, an unpacked MindSpore Lite package),"
    echo "  ipt_infer_replay, ipt_tile_plan, ipt_score and the ctest cases; --lib-only: all but ipt_infer (no SDK)"
    exit 0 ;;
  *) echo "build.sh: error: unknown argument '$1'; usage: bash ascend310_infer/build.sh [--lib-only]" >&2; exit 2 ;;
esac
for tool in cmake make c++; do
  if ! command -v "$tool" >/dev/null; then
    echo "build.sh: error: $tool not found; install cmake, make and g++ (scripts/setup.sh does)" >&2
    exit 2
  fi
done

sdk=""
if [ "$lib_only" = 0 ] && [ -n "${MS_LITE_HOME:-}" ]; then
  if [ -f "$MS_LITE_HOME/runtime/include/api/model.h" ] && [ -f "$MS_LITE_HOME/runtime/lib/libmindspore-lite.so" ]; then
    sdk=$(realpath "$MS_LITE_HOME/runtime")
  else
    echo "build.sh: error: MS_LITE_HOME=$MS_LITE_HOME is not a MindSpore Lite package: it needs" \
         "runtime/include/api/model.h and runtime/lib/libmindspore-lite.so" >&2
    exit 2
  fi
fi

mkdir -p build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMINDSPORE_PATH="$sdk" ${IPT_CXX11_ABI:+-DIPT_CXX11_ABI=$IPT_CXX11_ABI} >build/cmake.log 2>&1 \
  || { grep -E "Error|error|not found" build/cmake.log | sed 's/^/build.sh: /' >&2; echo "build.sh: error: cmake failed (build/cmake.log)" >&2; exit 2; }
cmake --build build -j "$(nproc)" >build/make.log 2>&1 \
  || { grep -E "error" build/make.log | head -20 >&2; echo "build.sh: error: compilation failed (build/make.log)" >&2; exit 2; }

if [ "$lib_only" = 1 ]; then
  echo "build.sh: built the library, tools and tests (--lib-only: no SDK, no ipt_infer)"
elif [ -n "$sdk" ]; then
  echo "build.sh: built ipt_infer against MindSpore Lite at $sdk, and the library, tools and tests"
else
  echo "build.sh: error: no MindSpore Lite SDK, ipt_infer not built: set MS_LITE_HOME to an unpacked" \
       "mindspore-lite-<version>-linux-<arch> (runtime/include/api/model.h, runtime/lib/libmindspore-lite.so);" \
       "the library, tools and tests were built" >&2
  exit 3
fi
