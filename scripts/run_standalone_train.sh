#!/bin/bash
# Single-device training.
usage() {
  cat <<USAGE
usage: bash scripts/run_standalone_train.sh DATA_PATH CONFIG_PATH [DEVICE_ID] [--key value ...]
  DATA_PATH    dataset root holding train/<class>/* and val/<class>/*
  CONFIG_PATH  configs/tinynet_{a..e}.yaml or configs/demo.yaml
  DEVICE_ID    device to use (default 0)
  --key value  config overrides, e.g. --epochs 3 (python train.py --help lists train.py's keys)
Ctrl-C or SIGTERM stops the training and prints the command that resumes it (--resume auto).
USAGE
}
source "$(dirname "$0")/common.sh"
check_arguments 2 "$@"
RESUME=$(resume_command bash "$0" "$@")
data_and_config "$1" "$2"
shift 2
DEVICE_ID=0
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then DEVICE_ID=$1; shift; fi

ARGS=(--config_path "$CONFIG_PATH" --data_path "$DATA_PATH" --device_id "$DEVICE_ID" "$@")
OUTPUT_DIR=$(training_output_dir "${ARGS[@]}") || exit $?  # a config error: once, before training starts
mkdir -p "$OUTPUT_DIR/logs" || die "cannot create '$OUTPUT_DIR/logs'"
OUTPUT_DIR=$(cd "$OUTPUT_DIR" && pwd)
# The launcher locks OUTPUT_DIR (one run at a time) and streams the output to the console and LOGS/worker_0.log.
launch --single --log_dir "$OUTPUT_DIR/logs" --output_dir "$OUTPUT_DIR" --resume_command "$RESUME" \
  -- "$ROOT_DIR/train.py" "${ARGS[@]}"
