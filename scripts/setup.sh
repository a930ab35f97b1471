#!/usr/bin/env bash
# Create .venv (Python 3.9-3.11) and install the project's requirements into it. Safe to run again.
# Also installs PyTorch (CPU) into the venv when a wheel lies on this machine (/opt/wheels or $TORCH_WHEEL_DIR):
# it is used only by tests that write fresh PyTorch checkpoints; nothing else needs it (its small dependencies come
# from PyPI; the wheel itself is never downloaded).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
fi
wheel_dir=${TORCH_WHEEL_DIR:-/opt/wheels}
if ! .venv/bin/python -c "import torch" 2>/dev/null && ls "$wheel_dir"/torch-*cpu*.whl >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q --disable-pip-version-check "$wheel_dir"/torch-*cpu*.whl \
    || echo "setup: optional PyTorch wheel did not install; fresh-fixture tests will be skipped"
fi
# The C++ harness (ascend310_infer/) needs a compiler, CMake, OpenCV and nlohmann-json from Debian; the quickstart,
# which does not build it, skips them with IPT_SETUP_CPP=0.
if [ "${IPT_SETUP_CPP:-1}" != 0 ]; then
  bash scripts/setup_cpp.sh
fi
