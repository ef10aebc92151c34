#!/bin/bash
# Helpers sourced by the model-zoo scripts.
die() { echo "error: $*" >&2; exit 2; }

# check_arguments MIN ARGS...: -h or --help among ARGS prints the calling script's usage (its usage function) on
# stdout and exits 0; fewer than MIN arguments print it on stderr and exit 2 (a usage error, as everywhere here).
check_arguments() {
  local min=$1 word; shift
  for word in "$@"; do
    if [[ "$word" == -h || "$word" == --help ]]; then usage; exit 0; fi
  done
  (($# >= min)) || { usage >&2; exit 2; }
}

# Repository root. The scripts run "$ROOT_DIR/train.py" etc. from the caller's directory, so relative paths in
# the arguments (--output_dir, --result_file, ...) mean what they mean to the caller.
ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

abspath() { [ -e "$1" ] && echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }

# config_value CONFIG KEY [overrides...]: the resolved value, after the checks every entry point makes before it
# starts (each key and value, the model): a config error is one line and exit code 2 here, before anything runs.
config_value() {
  local config=$1 key=$2; shift 2
  (cd "$ROOT_DIR" && python -m src.app --get "$key" -- --config_path "$config" "$@")
}

# training_output_dir TRAIN_ARGS...: train.py's output_dir after every check train.py makes before it touches a
# device, its output_dir check included (another run's checkpoints without --resume / --overwrite), so such an
# error is reported once instead of by every rank.
training_output_dir() {
  local here=$PWD
  (cd "$ROOT_DIR" && python -m src.app --entry train.py --cwd "$here" --get output_dir -- "$@")
}

# resume_command WORD...: this run's command line (the script, its arguments) without any --resume, plus
# --resume auto, quoted for a shell: what the launcher prints when a signal stops the run.
resume_command() {
  local words=() skip=0 word text
  for word in "$@"; do
    if ((skip)); then skip=0; continue; fi
    case $word in
      --resume) skip=1 ;;
      --resume=*) ;;
      *) words+=("$word") ;;
    esac
  done
  printf -v text '%q ' "${words[@]}" --resume auto
  echo "${text% }"
}

# launch LAUNCHER_ARGS...: become the launcher (src/launch.py), the ranks running in the caller's directory. exec:
# this script's pid is then the launcher's, so a SIGTERM to it, or Ctrl-C, reaches the code that stops every rank
# and says how to resume (bash would not pass a signal on to a foreground child, and would exit without it).
launch() {
  local here=$PWD
  cd "$ROOT_DIR" || die "cannot enter $ROOT_DIR"
  exec python -m src.launch --cwd "$here" "$@"
}

# data_and_config DATA CONFIG: absolute DATA_PATH (a folder) and CONFIG_PATH, or exit with a message.
data_and_config() {
  DATA_PATH=$(abspath "$1") || die "DATA_PATH '$1' does not exist"
  CONFIG_PATH=$(abspath "$2") || die "CONFIG_PATH '$2' does not exist"
  [ -d "$DATA_PATH" ] || die "DATA_PATH '$DATA_PATH' is not a folder"
}
