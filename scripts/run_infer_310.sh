#!/usr/bin/env bash
# Restore (and score) a folder of images with an exported IPT MindIR on an Ascend 310 box, in the model zoo's four
# stages, each checked: compile_app (ascend310_infer/build.sh), check_model (sidecar vs the MindIR, when Python
# MindSpore is present), infer (ascend310_infer/build/ipt_infer), cal_acc (ipt_score, when GT_DIR is given).
#
#   bash scripts/run_infer_310.sh MINDIR INPUT_DIR [GT_DIR] [DEVICE_ID]
#
# Environment: MS_LITE_HOME (MindSpore Lite package; its runtime libraries are put on LD_LIBRARY_PATH), PYTHON
# (default python3: runs the check_model stage when it has MindSpore), DEVICE_TYPE (Ascend; CPU/GPU also work),
# PRECISION_MODE (Ascend: one of MindSpore Lite's five; default preferred_fp32, ascend310_infer/README.md),
# TILE_MODE (fast or paper; default: the sidecar's), WORK_DIR (default ./infer_310: build.log, check.log, infer.log,
# acc.log, result_Files/). Ascend's own variables (ASCEND_HOME, ASCEND_OPP_PATH, LD_LIBRARY_PATH) come from the
# CANN set_env.sh, sourced beforehand.
set -u
usage="usage: bash scripts/run_infer_310.sh MINDIR INPUT_DIR [GT_DIR] [DEVICE_ID]"
if [ $# -lt 2 ] || [ $# -gt 4 ]; then
  echo "$usage" >&2
  exit 1
fi
root=$(cd "$(dirname "$0")/.." && pwd)
abspath() { if [ "${1:0:1}" = "/" ]; then echo "$1"; else echo "$(pwd)/$1"; fi; }
model=$(abspath "$1")
data=$(abspath "$2")
gt=""
[ $# -ge 3 ] && [ -n "$3" ] && gt=$(abspath "$3")
device_id=${4:-0}
device_type=${DEVICE_TYPE:-Ascend}
work=$(abspath "${WORK_DIR:-./infer_310}")

[ -f "$model" ] || { echo "error: MINDIR $model: no such file" >&2; exit 1; }
[ -f "$model.json" ] || { echo "error: $model: its sidecar $(basename "$model").json is missing; export.py writes it beside the model" >&2; exit 1; }
[ -e "$data" ] || { echo "error: INPUT_DIR $data: no such file or directory" >&2; exit 1; }
[ -z "$gt" ] || [ -d "$gt" ] || { echo "error: GT_DIR $gt: not a folder" >&2; exit 1; }
[[ "$device_id" =~ ^[0-9]+$ ]] || { echo "error: DEVICE_ID '$device_id': expected a non-negative integer" >&2; exit 1; }
scale=$(grep -o '"scale": *[0-9]*' "$model.json" | grep -o '[0-9]*$')
[ -n "$scale" ] || { echo "error: $model.json: no scale in the sidecar" >&2; exit 1; }
mkdir -p "$work"
echo "model $model (x$scale), input $data, ${gt:+ground truth $gt, }device $device_type $device_id, logs in $work"

if [ -n "${MS_LITE_HOME:-}" ]; then
  export LD_LIBRARY_PATH=$MS_LITE_HOME/runtime/lib:$MS_LITE_HOME/runtime/third_party/dnnl:$MS_LITE_HOME/tools/converter/lib:${LD_LIBRARY_PATH:-}
fi

fail() {  # stage name, log file
  echo "$1 failed; last lines of $2:" >&2
  tail -n 5 "$2" >&2
  exit 1
}

compile_app() {
  bash "$root/ascend310_infer/build.sh" &>"$work/build.log"
}

check_model() {
  local python=${PYTHON:-python3}
  if "$python" -c "import mindspore" &>/dev/null; then
    (cd "$root" && "$python" -m src.exported check "$model") &>"$work/check.log"
  else
    echo "check_model: no Python MindSpore here; ipt_infer checks the model's own inputs against the sidecar" \
      | tee "$work/check.log"
  fi
}

infer() {
  rm -rf "$work/result_Files"
  "$root/ascend310_infer/build/ipt_infer" --mindir_path "$model" --input_path "$data" \
    --output_path "$work/result_Files" --device_type "$device_type" --device_id "$device_id" \
    ${PRECISION_MODE:+--precision_mode "$PRECISION_MODE"} ${TILE_MODE:+--tile_mode "$TILE_MODE"} &>"$work/infer.log"
}

cal_acc() {
  "$root/ascend310_infer/build/ipt_score" --sr_path "$work/result_Files" --gt_path "$gt" --scale "$scale" &>"$work/acc.log"
}

echo "[1/4] compile_app"
compile_app || fail "compile_app" "$work/build.log"
echo "[2/4] check_model"
check_model || fail "check_model" "$work/check.log"
echo "[3/4] infer"
infer || fail "infer" "$work/infer.log"
grep -E "NN inference cost|image average time" "$work/infer.log"
if [ -n "$gt" ]; then
  echo "[4/4] cal_acc"
  cal_acc || fail "cal_acc" "$work/acc.log"
  tail -n 1 "$work/acc.log"
else
  echo "[4/4] cal_acc: no GT_DIR given, nothing to score"
fi
