#!/bin/bash
# Helpers sourced by the model-zoo scripts.
die() { echo "error: $*" >&2; exit 2; }

# Repository root (the scripts cd there so `train.py` finds `src/`).
ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

abspath() { [ -e "$1" ] && echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }

# config_value CONFIG KEY [overrides...]: the resolved value; also validates every override key.
config_value() {
  local config=$1 key=$2; shift 2
  (cd "$ROOT_DIR" && python -m src.config "$config" "$@" --get "$key")
}
