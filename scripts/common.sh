#!/bin/bash
# Helpers sourced by the model-zoo scripts.
die() { echo "error: $*" >&2; exit 2; }

# Repository root. The scripts run "$ROOT_DIR/train.py" etc. from the caller's directory, so relative paths in
# the arguments (--output_dir, --result_file, ...) mean what they mean to the caller.
ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

abspath() { [ -e "$1" ] && echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }

# config_value CONFIG KEY [overrides...]: the resolved value; also validates every override key.
config_value() {
  local config=$1 key=$2; shift 2
  (cd "$ROOT_DIR" && python -m src.config "$config" "$@" --get "$key")
}

# data_and_config DATA CONFIG: absolute DATA_PATH (a folder) and CONFIG_PATH, or exit with a message.
data_and_config() {
  DATA_PATH=$(abspath "$1") || die "DATA_PATH '$1' does not exist"
  CONFIG_PATH=$(abspath "$2") || die "CONFIG_PATH '$2' does not exist"
  [ -d "$DATA_PATH" ] || die "DATA_PATH '$DATA_PATH' is not a folder"
}
