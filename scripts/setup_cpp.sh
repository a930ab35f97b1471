#!/usr/bin/env bash
# Debian packages for the C++ harness in ascend310_infer/ (compiler, CMake, OpenCV, nlohmann-json). Safe to run again:
# installs only what is missing, as root (CI) or through sudo. A failure here is a setup error, never a skip.
set -euo pipefail
packages=(cmake make g++ libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev nlohmann-json3-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then
  as_root=()
elif command -v sudo >/dev/null; then
  as_root=(sudo)
else
  echo "setup_cpp: error: missing Debian packages ${missing[*]}; install them as root (apt-get install -y ${missing[*]})" >&2
  exit 2
fi
echo "setup_cpp: installing ${missing[*]}"
"${as_root[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
