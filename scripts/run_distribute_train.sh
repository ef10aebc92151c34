#!/bin/bash
# Data-parallel training: msrun on Ascend/GPU/CPU, or the Ascend rank-table launch when RANK_TABLE_FILE is set;
# one device runs one process without msrun (its scheduler would train a second time into the same output_dir).
usage() {
  cat <<USAGE
usage: bash scripts/run_distribute_train.sh DATA_PATH CONFIG_PATH DEVICE_NUM [--key value ...]
  DATA_PATH    dataset root holding train/<class>/* and val/<class>/*
  CONFIG_PATH  configs/tinynet_{a..e}.yaml or configs/demo.yaml
  DEVICE_NUM   number of devices (processes) on this machine
  --key value  config overrides, e.g. --device_target CPU --epochs 3 --batch_size 32 --output_dir out
               (python train.py --help lists train.py's keys)
env: RANK_TABLE_FILE (Ascend rank-table launch), DEVICE_START (first device id, rank table),
     MASTER_PORT (msrun's port; unset: 8118, or a free port when 8118 is in use)
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

ARGS=(--config_path "$CONFIG_PATH" --data_path "$DATA_PATH" "$@")
OUTPUT_DIR=$(training_output_dir "${ARGS[@]}") || exit $?  # a config error: once, before any rank starts
mkdir -p "$OUTPUT_DIR" || die "cannot create output_dir '$OUTPUT_DIR'"
OUTPUT_DIR=$(cd "$OUTPUT_DIR" && pwd)
LOG_DIR="$OUTPUT_DIR/logs"
mkdir -p "$LOG_DIR"
ARGS+=(--output_dir "$OUTPUT_DIR")  # absolute, for every rank
echo "training with $DEVICE_NUM device(s); logs in $LOG_DIR, checkpoints in $OUTPUT_DIR/checkpoints"

export TINYNET_LOCAL_WORKERS=$DEVICE_NUM  # the ranks on this machine share its CPUs (src/context.py)
# src/launch.py picks msrun's port, names a rank that dies (exit code or signal) and stops the others at once.
if [ -n "${RANK_TABLE_FILE:-}" ]; then
  [ -f "$RANK_TABLE_FILE" ] || die "RANK_TABLE_FILE '$RANK_TABLE_FILE' not found"
  export RANK_TABLE_FILE RANK_SIZE=$DEVICE_NUM
  MODE=(--rank_table)
elif [ "$DEVICE_NUM" = 1 ]; then
  MODE=(--single)
elif [ -n "${MASTER_PORT:-}" ]; then
  MODE=(--master_port "$MASTER_PORT")
else
  MODE=()
fi
launch --ranks "$DEVICE_NUM" --log_dir "$LOG_DIR" "${MODE[@]}" --resume_command "$RESUME" \
  -- "$ROOT_DIR/train.py" "${ARGS[@]}"
