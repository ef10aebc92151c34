#!/bin/bash
# Data-parallel training: msrun on Ascend/GPU/CPU, or the Ascend rank-table launch when RANK_TABLE_FILE is set;
# one device runs one process without msrun (its scheduler would train a second time into the same output_dir).
usage() {
  cat <<USAGE
usage: bash scripts/run_distribute_train.sh DATA_PATH CONFIG_PATH DEVICE_NUM [--key value ...]
  DATA_PATH    dataset root holding train/<class>/* and val/<class>/*
  CONFIG_PATH  configs/tinynet_{a..e}.yaml or configs/demo.yaml
  DEVICE_NUM   number of devices (processes) on this machine (on each machine of a multi-node job)
  --key value  config overrides, e.g. --device_target CPU --epochs 3 --batch_size 32 --output_dir out
               (python train.py --help lists train.py's keys)
env: RANK_TABLE_FILE (Ascend rank-table launch), DEVICE_START (first device id, rank table),
     MASTER_PORT (msrun's port; unset: 8118, or a free port when 8118 is in use; required with NODE_NUM > 1)
multi-node (docs/multinode.md): the same command on every node, only NODE_RANK differing:
     NODE_NUM (nodes, default 1), NODE_RANK (this node, 0..NODE_NUM-1, default 0; node 0 hosts the scheduler),
     MASTER_ADDR (node 0's address, default 127.0.0.1), CLUSTER_TIME_OUT (seconds to wait for every node to
     join, msrun's default 600), RANK_START (rank table: this server's first rank, default NODE_RANK x DEVICE_NUM)
Ctrl-C or SIGTERM stops every rank and prints the command that resumes the run (--resume auto).
USAGE
}
source "$(dirname "$0")/common.sh"
check_arguments 3 "$@"
RESUME=$(resume_command bash "$0" "$@")
data_and_config "$1" "$2"
DEVICE_NUM=$3
shift 3
[[ "$DEVICE_NUM" =~ ^[1-9][0-9]*$ ]] || die "DEVICE_NUM must be a positive integer, got '$DEVICE_NUM'"
NODE_NUM=${NODE_NUM:-1} NODE_RANK=${NODE_RANK:-0} MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
[[ "$NODE_NUM" =~ ^[1-9][0-9]*$ ]] || die "NODE_NUM must be a positive integer (the number of nodes), got '$NODE_NUM'"
[[ "$NODE_RANK" =~ ^[0-9]+$ ]] && ((NODE_RANK < NODE_NUM)) ||
  die "NODE_RANK must be an integer in [0, NODE_NUM - 1] = [0, $((NODE_NUM - 1))], got '$NODE_RANK'"
[ -z "${MASTER_PORT:-}" ] || [[ "$MASTER_PORT" =~ ^[1-9][0-9]*$ ]] && ((${MASTER_PORT:-1} < 65536)) ||
  die "MASTER_PORT must be a port number (1-65535), got '$MASTER_PORT'"
[ -z "${CLUSTER_TIME_OUT:-}" ] || [[ "$CLUSTER_TIME_OUT" =~ ^[1-9][0-9]*$ ]] ||
  die "CLUSTER_TIME_OUT must be a positive number of seconds, got '$CLUSTER_TIME_OUT'"

ARGS=(--config_path "$CONFIG_PATH" --data_path "$DATA_PATH" "$@")
OUTPUT_DIR=$(training_output_dir "${ARGS[@]}") || exit $?  # a config error: once, before any rank starts
mkdir -p "$OUTPUT_DIR" || die "cannot create output_dir '$OUTPUT_DIR'"
OUTPUT_DIR=$(cd "$OUTPUT_DIR" && pwd)
LOG_DIR="$OUTPUT_DIR/logs"
mkdir -p "$LOG_DIR"
ARGS+=(--output_dir "$OUTPUT_DIR")  # absolute, for every rank
if ((NODE_NUM > 1)); then
  echo "training with $DEVICE_NUM device(s) on node $NODE_RANK of $NODE_NUM ($((DEVICE_NUM * NODE_NUM)) in all;" \
    "scheduler at $MASTER_ADDR:${MASTER_PORT:-?}); logs in $LOG_DIR, checkpoints (rank 0's node) in" \
    "$OUTPUT_DIR/checkpoints"
else
  echo "training with $DEVICE_NUM device(s); logs in $LOG_DIR, checkpoints in $OUTPUT_DIR/checkpoints"
fi

export TINYNET_LOCAL_WORKERS=$DEVICE_NUM  # the ranks on this machine share its CPUs (src/context.py), not the world's
NODES=(--nodes "$NODE_NUM" --node_rank "$NODE_RANK" --master_addr "$MASTER_ADDR")
[ -z "${CLUSTER_TIME_OUT:-}" ] || NODES+=(--cluster_time_out "$CLUSTER_TIME_OUT")
# src/launch.py picks msrun's port, names a rank that dies (exit code or signal) and stops the others at once.
if [ -n "${RANK_TABLE_FILE:-}" ]; then
  [ -f "$RANK_TABLE_FILE" ] || die "RANK_TABLE_FILE '$RANK_TABLE_FILE' not found"
  export RANK_TABLE_FILE RANK_SIZE=$((DEVICE_NUM * NODE_NUM))
  MODE=(--rank_table)
elif [ "$DEVICE_NUM" = 1 ] && [ "$NODE_NUM" = 1 ]; then
  MODE=(--single)
elif [ -n "${MASTER_PORT:-}" ]; then
  MODE=(--master_port "$MASTER_PORT")
else
  MODE=()
fi
launch --ranks "$DEVICE_NUM" "${NODES[@]}" --log_dir "$LOG_DIR" --output_dir "$OUTPUT_DIR" "${MODE[@]}" \
  --resume_command "$RESUME" -- "$ROOT_DIR/train.py" "${ARGS[@]}"
