#!/usr/bin/env bash
# Training in one process (one device, or the CPU):
#   bash scripts/run_standalone_train.sh DATA_DIR [train.py flags...]
#   bash scripts/run_standalone_train.sh DIV2K_train_HR --ckpt_path IPT_pretrain.pt --task sr_x2
# The device is device_target auto (Ascend, else GPU, else CPU: whatever MindSpore can use here; the first log line
# says which and why) unless --device_target names one.
# The log lines also go to OUTPUT_DIR/train.log (OUTPUT_DIR: --output_dir or train_output); the progress bar stays
# on the terminal.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  echo "usage: bash scripts/run_standalone_train.sh DATA_DIR [train.py flags...]" >&2
  exit 1
fi
DATA_DIR=$1
shift
[ -d "$DATA_DIR" ] || { echo "error: DATA_DIR $DATA_DIR: no such folder" >&2; exit 1; }
source scripts/train_common.sh
OUTPUT_DIR=$(output_dir_of "$@")
mkdir -p "$OUTPUT_DIR"
PYTHON=python3
if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; fi
"$PYTHON" train.py --data.train_dir "$DATA_DIR" "$@" 2> >(tee -a "$OUTPUT_DIR/train.log" >&2)
