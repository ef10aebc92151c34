#!/bin/bash
# Single-device training.
usage() {
  cat >&2 <<USAGE
usage: bash scripts/run_standalone_train.sh DATA_PATH CONFIG_PATH [DEVICE_ID] [--key value ...]
  DATA_PATH    dataset root holding train/<class>/* and val/<class>/*
  CONFIG_PATH  configs/tinynet_{a..e}.yaml or configs/demo.yaml
  DEVICE_ID    device to use (default 0)
USAGE
  exit 2
}
[ $# -lt 2 ] && usage
source "$(dirname "$0")/common.sh"
data_and_config "$1" "$2"
shift 2
DEVICE_ID=0
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then DEVICE_ID=$1; shift; fi

OUTPUT_DIR=$(config_value "$CONFIG_PATH" output_dir "$@") || exit 2
mkdir -p "$OUTPUT_DIR/logs" || die "cannot create '$OUTPUT_DIR/logs'"
python "$ROOT_DIR/train.py" --config_path "$CONFIG_PATH" --data_path "$DATA_PATH" --device_id "$DEVICE_ID" "$@" 2>&1 \
  | tee "$OUTPUT_DIR/logs/train_standalone.log"
exit "${PIPESTATUS[0]}"
