#!/usr/bin/env bash
# Data-parallel training with MindSpore's msrun: WORKERS training processes on this machine (one per device on
# Ascend/GPU; CPU works too), gradients averaged over all of them, data.batch_size the global batch.
#
#   bash scripts/run_distribute_train.sh WORKERS DATA_DIR [train.py flags...]
#   bash scripts/run_distribute_train.sh 8 imagenet/train --config configs/pretrain.yaml
#   bash scripts/run_distribute_train.sh 2 photos --config configs/pretrain_tiny.yaml --steps 4 --output_dir out
#
# Several machines: run the same command on each, with the same WORKERS (workers per machine) and
#   IPT_NODES        number of machines (default 1)
#   IPT_NODE_RANK    this machine's index, 0 .. IPT_NODES-1 (default 0; machine 0 hosts the scheduler)
#   IPT_MASTER_ADDR  address of machine 0 (default 127.0.0.1)
#   IPT_MASTER_PORT  a free TCP port on machine 0 (default 8118)
# Logs: OUTPUT_DIR/logs/msrun_<time>/worker_<rank>.log (and scheduler.log); OUTPUT_DIR is --output_dir or
# train_output. Rank 0 writes the checkpoints, loss.csv/png and val.csv/png into OUTPUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: bash scripts/run_distribute_train.sh WORKERS DATA_DIR [train.py flags...]" >&2
  echo "  WORKERS: training processes on this machine; DATA_DIR: folder (tree) of training images" >&2
  echo "  several machines: IPT_NODES, IPT_NODE_RANK, IPT_MASTER_ADDR, IPT_MASTER_PORT (see the script's header)" >&2
}
fail() { echo "error: $*" >&2; exit 1; }
positive_int() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }

if [ $# -lt 2 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then usage; exit 1; fi
WORKERS=$1
DATA_DIR=$2
shift 2
positive_int "$WORKERS" || fail "WORKERS is '$WORKERS'; expected a positive integer (processes on this machine)"
[ -d "$DATA_DIR" ] || fail "DATA_DIR $DATA_DIR: no such folder"
NODES=${IPT_NODES:-1}
NODE_RANK=${IPT_NODE_RANK:-0}
MASTER_ADDR=${IPT_MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${IPT_MASTER_PORT:-8118}
positive_int "$NODES" || fail "IPT_NODES is '$NODES'; expected a positive integer (number of machines)"
[[ "$NODE_RANK" =~ ^[0-9]+$ ]] && [ "$NODE_RANK" -lt "$NODES" ] \
  || fail "IPT_NODE_RANK is '$NODE_RANK'; expected an integer in 0..$((NODES - 1))"
[[ "$MASTER_PORT" =~ ^[0-9]+$ ]] && [ "$MASTER_PORT" -ge 1024 ] && [ "$MASTER_PORT" -le 65535 ] \
  || fail "IPT_MASTER_PORT is '$MASTER_PORT'; expected a port number in 1024..65535"

source scripts/train_common.sh
OUTPUT_DIR=$(output_dir_of "$@")
LOG_DIR="$OUTPUT_DIR/logs/msrun_$(date +%Y%m%d-%H%M%S)"
mkdir -p "$LOG_DIR"

# msrun starts "python": the project's virtual environment when there is one
if [ -x .venv/bin/python ]; then export PATH="$PWD/.venv/bin:$PATH"; fi
command -v msrun >/dev/null || fail "msrun not found: install MindSpore (bash scripts/setup.sh)"

echo "msrun: $WORKERS worker(s) on this machine, $((WORKERS * NODES)) in all (machine $NODE_RANK of $NODES," \
  "scheduler $MASTER_ADDR:$MASTER_PORT); logs in $LOG_DIR" >&2
exec msrun --worker_num=$((WORKERS * NODES)) --local_worker_num="$WORKERS" --node_rank="$NODE_RANK" \
  --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" --log_dir="$LOG_DIR" --join=True \
  --cluster_time_out="${IPT_CLUSTER_TIMEOUT:-600}" \
  train.py --data.train_dir "$DATA_DIR" "$@"
