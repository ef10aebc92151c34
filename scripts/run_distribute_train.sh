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
failed=()
if [ -n "${RANK_TABLE_FILE:-}" ]; then
  [ -f "$RANK_TABLE_FILE" ] || die "RANK_TABLE_FILE '$RANK_TABLE_FILE' not found"
  export RANK_TABLE_FILE RANK_SIZE=$DEVICE_NUM
  pids=()
  for ((i = 0; i < DEVICE_NUM; i++)); do
    DEVICE_ID=$((${DEVICE_START:-0} + i)) RANK_ID=$i python "$ROOT_DIR/train.py" "${ARGS[@]}" > "$LOG_DIR/worker_$i.log" 2>&1 &
    pids+=($!)
  done
  for ((i = 0; i < DEVICE_NUM; i++)); do
    wait "${pids[$i]}" || failed+=("$i")
  done
else
  PORT=${MASTER_PORT:-8118}
  # msrun's scheduler cannot bind a busy port, and its workers then retry for minutes: check it first
  # (SO_REUSEADDR: a just-finished run's TIME_WAIT sockets do not count, a listening one does).
  python -c "import socket as so, sys; s = so.socket(); s.setsockopt(so.SOL_SOCKET, so.SO_REUSEADDR, 1)
s.bind(('', int(sys.argv[1])))" "$PORT" 2> /dev/null \
    || die "MASTER_PORT $PORT is in use (another training run?): set MASTER_PORT to a free port"
  msrun --worker_num="$DEVICE_NUM" --local_worker_num="$DEVICE_NUM" --master_port="$PORT" \
    --log_dir="$LOG_DIR" --join=True "$ROOT_DIR/train.py" "${ARGS[@]}"
  rc=$?
  # msrun's exit code does not say which rank failed: every rank ends its log with a completion line.
  for ((i = 0; i < DEVICE_NUM; i++)); do
    grep -q "training finished" "$LOG_DIR/worker_$i.log" 2>/dev/null || failed+=("$i")
  done
  [ $rc -ne 0 ] && [ ${#failed[@]} -eq 0 ] && failed+=("msrun(rc=$rc)")
fi

if [ ${#failed[@]} -gt 0 ]; then
  for r in "${failed[@]}"; do
    log="$LOG_DIR/worker_$r.log"
    echo "rank $r FAILED, see $log" >&2
    [ -f "$log" ] && grep -v WARNING "$log" | tail -n 5 | sed "s/^/  rank $r: /" >&2
  done
  exit 1
fi
echo "all $DEVICE_NUM ranks finished; checkpoints in $OUTPUT_DIR/checkpoints"
