#!/usr/bin/env bash
# Data-parallel training with MindSpore's msrun: WORKERS training processes on this machine (one per device on
# Ascend/GPU; CPU works too), gradients averaged over all of them, data.batch_size the global batch. The device is
# train.py's device_target auto (Ascend, else GPU, else CPU: what MindSpore can use; each worker's first log line says
# which and why) unless --device_target names one.
#
#   bash scripts/run_distribute_train.sh WORKERS DATA_DIR [train.py flags...]
#   bash scripts/run_distribute_train.sh 8 imagenet/train --config configs/pretrain.yaml
#   bash scripts/run_distribute_train.sh 2 photos --config configs/pretrain_tiny.yaml --steps 4 --output_dir out
#
# Several machines: run the same command on each, with the same WORKERS (workers per machine) and
#   IPT_NODES        number of machines (default 1)
#   IPT_NODE_RANK    this machine's index, 0 .. IPT_NODES-1 (default 0; machine 0 hosts the scheduler, so it is
#                    the machine that IPT_MASTER_ADDR names: a launcher refuses a rank that disagrees with that)
#   IPT_MASTER_ADDR  address of machine 0 (default 127.0.0.1)
#   IPT_MASTER_PORT  a free TCP port on machine 0 (default 8118)
#   IPT_CLUSTER_TIMEOUT  seconds the machines have to join the cluster (default 600)
# e.g. machine 0: IPT_NODES=2 IPT_NODE_RANK=0 IPT_MASTER_ADDR=10.0.0.1 bash scripts/run_distribute_train.sh 8 ...
#      machine 1: IPT_NODES=2 IPT_NODE_RANK=1 IPT_MASTER_ADDR=10.0.0.1 bash scripts/run_distribute_train.sh 8 ...
# IPT_MASTER_ADDR must be an address of machine 0 that the others reach, never 127.0.0.1 with several machines:
# msrun starts a scheduler on every machine that has the master address among its own, so a second launcher on the
# same host (or a machine given its own loopback address) starts a second scheduler, which cannot bind the port.
# Several launchers on one host are refused; one launcher with all the workers is the way there. OUTPUT_DIR must be
# on storage every machine sees (--resume reads it on each), or hold a copy of the checkpoint on each.
# A failing worker ends the job on this machine within seconds (src/msrun_job.py): its error line comes last, naming
# its rank and log; the scheduler's machine names a rank it lost; the others stop when they lose the scheduler.
# Logs: OUTPUT_DIR/logs/msrun_<time>/worker_<rank>.log (and scheduler.log, msrun_node<N>.log); OUTPUT_DIR is
# --output_dir or train_output. Rank 0 writes the checkpoints, loss.csv/png and val.csv/png into OUTPUT_DIR.
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

is_local_address() { python3 -c 'import socket, sys; socket.socket().bind((sys.argv[1], 0))' "$1" 2>/dev/null; }
if [ "$NODE_RANK" -eq 0 ] && [ "$NODES" -gt 1 ] && ! is_local_address "$MASTER_ADDR"; then
  fail "this is machine IPT_NODE_RANK 0, which hosts the scheduler, but IPT_MASTER_ADDR $MASTER_ADDR is not an" \
    "address of this machine: run machine 0 where IPT_MASTER_ADDR points, and give every other machine its own" \
    "IPT_NODE_RANK in 1..$((NODES - 1))"
fi
if [ "$NODE_RANK" -gt 0 ] && is_local_address "$MASTER_ADDR"; then
  fail "IPT_MASTER_ADDR $MASTER_ADDR is an address of this machine, but this is machine IPT_NODE_RANK $NODE_RANK:" \
    "msrun would start a second scheduler here. Give every machine machine 0's address (several launchers on one" \
    "host do not work: start one launcher with all the workers)"
fi

source scripts/train_common.sh
OUTPUT_DIR=$(output_dir_of "$@")
LOG_DIR="$OUTPUT_DIR/logs/msrun_$(date +%Y%m%d-%H%M%S)"
mkdir -p "$LOG_DIR"

# msrun starts "python": the project's virtual environment when there is one
if [ -x .venv/bin/python ]; then export PATH="$PWD/.venv/bin:$PATH"; fi
command -v msrun >/dev/null || fail "msrun not found: install MindSpore (bash scripts/setup.sh)"

echo "msrun: $WORKERS worker(s) on this machine, $((WORKERS * NODES)) in all (machine $NODE_RANK of $NODES," \
  "scheduler $MASTER_ADDR:$MASTER_PORT); logs in $LOG_DIR" >&2
export IPT_LOCAL_WORKERS=$WORKERS  # train.py's data.num_workers auto splits this machine's cores over them
# named by a worker whose cluster does not form, and by src.msrun_job
export IPT_NODES=$NODES IPT_NODE_RANK=$NODE_RANK IPT_MASTER_ADDR=$MASTER_ADDR IPT_MASTER_PORT=$MASTER_PORT
# src.msrun_job ends the job within seconds of a worker's failure, that worker's error line last
exec python -m src.msrun_job "$LOG_DIR" -- \
  msrun --worker_num=$((WORKERS * NODES)) --local_worker_num="$WORKERS" --node_rank="$NODE_RANK" \
  --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" --log_dir="$LOG_DIR" --join=True \
  --cluster_time_out="${IPT_CLUSTER_TIMEOUT:-600}" \
  train.py --data.train_dir "$DATA_DIR" "$@"
