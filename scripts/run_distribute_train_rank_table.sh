#!/usr/bin/env bash
# Data-parallel training on Ascend with an HCCL rank table (the official MindSpore IPT launch), one process per
# device of this server, without msrun:
#   bash scripts/run_distribute_train_rank_table.sh RANK_TABLE_FILE DATA_DIR [train.py flags...]
#   bash scripts/run_distribute_train_rank_table.sh hccl_8p.json imagenet/train --config configs/pretrain.yaml
# Every process gets RANK_TABLE_FILE, RANK_SIZE (devices in the table), RANK_ID and DEVICE_ID (from this server's
# entries in the table) and --device_target Ascend (a later flag may override it). Several servers: run it on each
# with IPT_SERVER_INDEX (this server's position in the table's server_list, default 0).
# Logs: OUTPUT_DIR/logs/rank_<RANK_ID>.log and env_<RANK_ID>.log. IPT_DRY_RUN=1 prints the launches instead.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "error: $*" >&2; exit 1; }
if [ $# -lt 2 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  echo "usage: bash scripts/run_distribute_train_rank_table.sh RANK_TABLE_FILE DATA_DIR [train.py flags...]" >&2
  exit 1
fi
TABLE_ARG=$1
RANK_TABLE_FILE=$(realpath -m "$1")
DATA_DIR=$2
shift 2
[ -f "$RANK_TABLE_FILE" ] || fail "RANK_TABLE_FILE $TABLE_ARG: no such file"
[ -d "$DATA_DIR" ] || fail "DATA_DIR $DATA_DIR: no such folder"
SERVER_INDEX=${IPT_SERVER_INDEX:-0}
[[ "$SERVER_INDEX" =~ ^[0-9]+$ ]] || fail "IPT_SERVER_INDEX is '$SERVER_INDEX'; expected a non-negative integer"
PYTHON=python3
if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; fi

# "RANK_SIZE" then one "DEVICE_ID RANK_ID" line per device of this server
table=$("$PYTHON" - "$RANK_TABLE_FILE" "$SERVER_INDEX" <<'PY'
import json, sys
path, index = sys.argv[1], int(sys.argv[2])
try:
    with open(path, encoding="utf-8") as f:
        servers = json.load(f)["server_list"]
    devices = [[(int(d["device_id"]), int(d["rank_id"])) for d in s["device"]] for s in servers]
except (OSError, ValueError, KeyError, TypeError) as exc:
    sys.exit(f"error: {path}: not an HCCL rank table (server_list[].device[].device_id/rank_id): {exc!r}")
if not 0 <= index < len(devices):
    sys.exit(f"error: IPT_SERVER_INDEX {index}: the rank table lists {len(devices)} server(s)")
print(sum(len(d) for d in devices))
for device_id, rank_id in devices[index]:
    print(device_id, rank_id)
PY
)
RANK_SIZE=$(echo "$table" | head -n 1)
source scripts/train_common.sh
OUTPUT_DIR=$(output_dir_of "$@")
mkdir -p "$OUTPUT_DIR/logs"
IPT_LOCAL_WORKERS=$(echo "$table" | tail -n +2 | grep -c .)  # this server's processes (data.num_workers auto)
export RANK_TABLE_FILE RANK_SIZE IPT_LOCAL_WORKERS
pids=()
while read -r device_id rank_id; do
  if [ "${IPT_DRY_RUN:-0}" = 1 ]; then
    echo "DEVICE_ID=$device_id RANK_ID=$rank_id RANK_SIZE=$RANK_SIZE RANK_TABLE_FILE=$RANK_TABLE_FILE" \
      "$PYTHON train.py --device_target Ascend --data.train_dir $DATA_DIR $*"
    continue
  fi
  (
    export DEVICE_ID=$device_id RANK_ID=$rank_id
    env > "$OUTPUT_DIR/logs/env_$rank_id.log"
    exec "$PYTHON" train.py --device_target Ascend --data.train_dir "$DATA_DIR" "$@"
  ) > "$OUTPUT_DIR/logs/rank_$rank_id.log" 2>&1 &
  pids+=($!)
  echo "rank $rank_id on device $device_id: pid $!, log $OUTPUT_DIR/logs/rank_$rank_id.log" >&2
done < <(echo "$table" | tail -n +2)
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=1
done
[ "$status" = 0 ] || echo "error: a training process failed; see $OUTPUT_DIR/logs/rank_*.log" >&2
exit $status
