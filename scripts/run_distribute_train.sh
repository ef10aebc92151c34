#!/bin/bash
# Data-parallel training: msrun on Ascend/GPU/CPU, or the Ascend rank-table launch when RANK_TABLE_FILE is set.
usage() {
  cat >&2 <<USAGE
usage: bash scripts/run_distribute_train.sh DATA_PATH CONFIG_PATH DEVICE_NUM [--key value ...]
  DATA_PATH    dataset root holding train/<class>/* and val/<class>/*
  CONFIG_PATH  configs/tinynet_{a..e}.yaml or configs/demo.yaml
  DEVICE_NUM   number of devices (processes) on this machine
  --key value  config overrides, e.g. --device_target CPU --epochs 3 --batch_size 32 --output_dir out
env: RANK_TABLE_FILE (Ascend rank-table launch), DEVICE_START (first device id, rank table), MASTER_PORT (msrun)
USAGE
  exit 2
}
[ $# -lt 3 ] && usage
source "$(dirname "$0")/common.sh"
data_and_config "$1" "$2"
DEVICE_NUM=$3
shift 3
[[ "$DEVICE_NUM" =~ ^[1-9][0-9]*$ ]] || die "DEVICE_NUM must be a positive integer, got '$DEVICE_NUM'"

OUTPUT_DIR=$(config_value "$CONFIG_PATH" output_dir "$@") || exit 2
mkdir -p "$OUTPUT_DIR" || die "cannot create output_dir '$OUTPUT_DIR'"
OUTPUT_DIR=$(cd "$OUTPUT_DIR" && pwd)
LOG_DIR="$OUTPUT_DIR/logs"
mkdir -p "$LOG_DIR"
ARGS=(--config_path "$CONFIG_PATH" --data_path "$DATA_PATH" "$@" --output_dir "$OUTPUT_DIR")  # absolute, for every rank
echo "training with $DEVICE_NUM devices; logs in $LOG_DIR"

export TINYNET_LOCAL_WORKERS=$DEVICE_NUM  # the ranks on this machine share its CPUs (src/context.py)
# src/launch.py checks msrun's port, names a rank that dies (exit code or signal) and stops the others at once.
if [ -n "${RANK_TABLE_FILE:-}" ]; then
  [ -f "$RANK_TABLE_FILE" ] || die "RANK_TABLE_FILE '$RANK_TABLE_FILE' not found"
  export RANK_TABLE_FILE RANK_SIZE=$DEVICE_NUM
  MODE=(--rank_table)
else
  MODE=(--master_port "${MASTER_PORT:-8118}")
fi
(cd "$ROOT_DIR" && python -m src.launch --ranks "$DEVICE_NUM" --log_dir "$LOG_DIR" "${MODE[@]}" --cwd "$OLDPWD" \
  -- "$ROOT_DIR/train.py" "${ARGS[@]}") || exit $?
echo "all $DEVICE_NUM ranks finished; checkpoints in $OUTPUT_DIR/checkpoints"
