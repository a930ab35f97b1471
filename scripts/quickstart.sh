#!/usr/bin/env bash
# The main job on the embedded default: the whole life of an IPT model in about ten minutes on 2 CPU cores.
#
#   bash scripts/quickstart.sh                                # pre-train, fine-tune, evaluate, export, restore
#   CKPT=IPT_sr2.pt TASKS=sr_x2 bash scripts/quickstart.sh    # official (or your) weights: evaluate only
#
# 1. sets up .venv; 2. builds a small data set from photographs bundled with scikit-image (training photos with
# colour and exposure variants, and held-out photos, scripts/make_quickstart_data.py; rain is procedural);
# 3. pre-trains a small IPT on all six tasks with the contrastive loss through scripts/run_distribute_train.sh (msrun,
# 2 CPU workers); 4. fine-tunes SR x2 and denoising sigma 30 from it (configs/quickstart_finetune.yaml, and
# configs/quickstart_denoise.yaml on top for denoising); 5. scores the held-out photos with eval.py --benchmark against
# bicubic / the noisy input; 6. exports SR x2 to MindIR with its sidecar and restores a held-out photo through the
# file, checked against the Cell; 7. writes comparison sheets and prints the table, photo by photo, with the worst
# photo of each task. Everything lands under OUT (demo_output/).
# Environment: OUT (output folder), CKPT and TASKS (evaluate given weights), WORKERS (msrun workers, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
OUT=${OUT:-demo_output}
WORKERS=${WORKERS:-2}
stage() { printf '\n== [%s] %s (%ds so far)\n' "$1" "$2" $((SECONDS - start)); }

stage 1/7 "set-up"
IPT_SETUP_CPP=0 bash scripts/setup.sh   # the C++ harness is not needed here (the test command builds it)
PY=.venv/bin/python
DATA=$OUT/data
HELDOUT=$DATA/heldout

stage 2/7 "data: scikit-image photographs split into training (with colour and exposure variants) and held-out photos"
$PY scripts/make_quickstart_data.py --output "$DATA"

evaluate() {  # evaluate CKPT TASK [extra eval.py flags]: held-out photos, IPT against the baseline, PNGs and JSON
  local ckpt=$1 task=$2
  shift 2
  $PY eval.py --ckpt_path "$ckpt" --task "$task" --benchmark "$HELDOUT" --baseline true --save_outputs true \
    --output "$OUT/$task/restored" --metrics_json "$OUT/$task/metrics.json" "$@"
}

if [ -n "${CKPT:-}" ]; then
  TASKS=${TASKS:-sr_x2}
  stage 3/7 "evaluating $CKPT on the held-out photos (no training)"
  for task in $TASKS; do evaluate "$CKPT" "$task" ${NUM_HEADS:+--num_heads "$NUM_HEADS"}; done
  stage 7/7 "report"
  $PY scripts/quickstart_report.py --benchmark "$HELDOUT" --out "$OUT" --tasks $TASKS
  printf '\nquickstart: done in %ds; comparison sheets: %s\n' $((SECONDS - start)) \
    "$(for t in $TASKS; do printf '%s ' "$OUT/$t/comparison.png"; done)"
  exit 0
fi

stage 3/7 "pre-training all six tasks (L1 + contrastive), msrun with $WORKERS CPU workers"
rm -rf "$OUT/pretrain"
bash scripts/run_distribute_train.sh "$WORKERS" "$DATA/train" --config configs/quickstart_pretrain.yaml \
  --output_dir "$OUT/pretrain"
PRETRAINED=$OUT/pretrain/ipt_pretrain_last.ckpt

stage 4/7 "fine-tuning sr_x2 and denoise_30 from the pre-trained model"
rm -rf "$OUT/finetune_sr_x2" "$OUT/finetune_denoise_30"
# SR: the photos and their colour variants; denoising: also the exposure variants (near-white, near-black, saturated)
$PY train.py --config configs/quickstart_finetune.yaml --ckpt_path "$PRETRAINED" --task sr_x2 \
  --data.train_dir "$DATA/train/photos" --output_dir "$OUT/finetune_sr_x2"
$PY train.py --config configs/quickstart_finetune.yaml --config configs/quickstart_denoise.yaml \
  --ckpt_path "$PRETRAINED" --task denoise_30 --data.train_dir "$DATA/train" --output_dir "$OUT/finetune_denoise_30"

stage 5/7 "evaluating on the held-out photos"
for task in sr_x2 denoise_30; do evaluate "$OUT/finetune_$task/ipt_${task}_last.ckpt" "$task"; done

stage 6/7 "export to MindIR, and a held-out photo restored through the exported file"
SR=$OUT/finetune_sr_x2/ipt_sr_x2_last.ckpt
$PY export.py --ckpt_path "$SR" --batch_size 8 --file_name "$OUT/export/ipt_sr_x2_b8"
$PY -m src.exported restore "$OUT/export/ipt_sr_x2_b8.mindir" --input "$HELDOUT/HR/chelsea.png" \
  --output "$OUT/export/chelsea_x2.png" --compare_ckpt "$SR"

stage 7/7 "report"
$PY scripts/quickstart_report.py --benchmark "$HELDOUT" --out "$OUT" --tasks sr_x2 denoise_30 | tee "$OUT/summary.txt"
worst=$(grep ': worst photo' "$OUT/summary.txt" | sed 's/^/  /')
cat <<EOF

quickstart: done in $((SECONDS - start))s. On the photos it never saw (table: $OUT/summary.txt):
$worst
  comparison sheets   $OUT/sr_x2/comparison.png  $OUT/denoise_30/comparison.png
  loss curves         $OUT/pretrain/loss.png  $OUT/finetune_sr_x2/loss.png  $OUT/finetune_denoise_30/loss.png
  checkpoints         $PRETRAINED (6 tasks)  $SR
  metrics (JSON)      $OUT/sr_x2/metrics.json  $OUT/denoise_30/metrics.json   table: $OUT/summary.txt
  MindIR + sidecar    $OUT/export/ipt_sr_x2_b8.mindir(.json); restored through it: $OUT/export/chelsea_x2.png
  training logs       $OUT/pretrain/logs/
Next:
  official weights    CKPT=IPT_sr2.pt TASKS=sr_x2 bash scripts/quickstart.sh
  your photos         $PY eval.py --ckpt_path $SR --input MY_PHOTOS --output restored/
  a real benchmark    $PY eval.py --ckpt_path IPT_sr2.pt --task sr_x2 --benchmark benchmark/Set5 --tile_mode paper
  more workers        bash scripts/run_distribute_train.sh 8 imagenet/train --config configs/pretrain.yaml
EOF
