#!/bin/bash
# Top-1/top-5 of a checkpoint over DATA_PATH/val.
usage() {
  cat <<USAGE
usage: bash scripts/run_eval.sh DATA_PATH CHECKPOINT_PATH CONFIG_PATH [--key value ...]
  DATA_PATH        dataset root holding val/<class>/* (and train/<class>/* if present: it fixes the classes)
  CHECKPOINT_PATH  .ckpt from train.py (--use_ema true for last.ckpt's EMA weights), or a timm .pth/.safetensors
  CONFIG_PATH      configs/tinynet_{a..e}.yaml or configs/demo.yaml
  --key value      config overrides, e.g. --device_target CPU --result_file eval.json
                   (python eval.py --help lists eval.py's keys)
USAGE
}
source "$(dirname "$0")/common.sh"
check_arguments 3 "$@"
CHECKPOINT_PATH=$(abspath "$2") || die "CHECKPOINT_PATH '$2' does not exist"
data_and_config "$1" "$3"
shift 3

OUTPUT_DIR=$(config_value "$CONFIG_PATH" output_dir "$@") || exit 2
mkdir -p "$OUTPUT_DIR/logs" || die "cannot create '$OUTPUT_DIR/logs'"
python "$ROOT_DIR/eval.py" --config_path "$CONFIG_PATH" --data_path "$DATA_PATH" --checkpoint_path "$CHECKPOINT_PATH" "$@" 2>&1 \
  | tee "$OUTPUT_DIR/logs/eval.log"
exit "${PIPESTATUS[0]}"
