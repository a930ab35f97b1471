#!/usr/bin/env bash
# Set everything up, then run the main job on the embedded default: restore tile-sized crops of photos bundled with
# scikit-image with an IPT checkpoint, writing PNGs (and the float outputs as .npy) under demo_output/.
#
#   bash scripts/quickstart.sh                          # embedded default checkpoint (see below)
#   CKPT=IPT_sr2.pt TASKS=sr_x2 bash scripts/quickstart.sh   # an official or converted checkpoint of your own
#
# The embedded default is tests/fixtures/ipt_tiny_pretrain_zip.pt: a real PyTorch file in the official format, of a
# tiny randomly initialised 6-task IPT. It is converted to our .ckpt and run for sr_x2 and denoise_30; its pictures
# show the pipeline works end to end, not restoration quality (that needs trained weights).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
OUT=${OUT:-demo_output}
TASKS=${TASKS:-sr_x2 denoise_30}
$PY scripts/make_demo_inputs.py --output "$OUT/inputs"
if [ -z "${CKPT:-}" ]; then
  CKPT=$OUT/ipt_tiny_pretrain.ckpt
  $PY convert.py --ckpt_path tests/fixtures/ipt_tiny_pretrain_zip.pt --num_heads 3 --output "$CKPT"
fi
for task in $TASKS; do
  case $task in denoise_*) input=$OUT/inputs/noisy${task#denoise_} ;; *) input=$OUT/inputs/clean ;; esac
  [ -d "$input" ] || $PY scripts/make_demo_inputs.py --output "$OUT/inputs" --sigma "${task#denoise_}"
  $PY eval.py --ckpt_path "$CKPT" --task "$task" --input "$input" --output "$OUT/$task" --save_npy
done
echo "quickstart: restored images are under $OUT/"
