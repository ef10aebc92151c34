#!/bin/bash
# The whole model-zoo path on a CPU machine in a few minutes: demo data -> 2-worker msrun training -> eval ->
# MindIR + ONNX export (re-loaded and compared) -> C++ harness (cpu backend, .bin and image input) -> INT8 of a
# dynamic-batch ONNX (scored, and timed against float in the harness at batch 1 and 32), float and INT8 in the
# harness on DATA/val at batch 32 -> summary.
usage() {
  cat <<USAGE
usage: bash scripts/run_demo.sh [OUTPUT_DIR] [--key value ...]
  OUTPUT_DIR   where everything goes (default: output/demo_run); logs in OUTPUT_DIR/logs
  --key value  overrides of configs/demo.yaml for training, eval and export, e.g. --epochs 3
               (python train.py --help lists train.py's keys)
needs: the README's set-up (pip install -r requirements.txt -e .) plus cmake, g++ and libopencv-dev
USAGE
}
source "$(dirname "$0")/common.sh"
check_arguments 0 "$@"
OUT=output/demo_run
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then OUT=$1; shift; fi
mkdir -p "$OUT/logs" && OUT=$(cd "$OUT" && pwd) || die "cannot create OUTPUT_DIR '$OUT'"
CONFIG=$ROOT_DIR/configs/demo.yaml
LOGS=$OUT/logs
declare -A SECONDS_OF

# Ctrl-C or SIGTERM stops the running step too: each step runs in a session of its own (a SIGTERM to this
# script's pid would otherwise leave it running), and the signal is passed on to it here. The training step's
# launcher then stops every rank.
STEP_PID=
stop_demo() {
  local sig=$1
  if [ -n "$STEP_PID" ]; then
    kill -s "$sig" -- "-$STEP_PID" 2>/dev/null
    wait "$STEP_PID"
  fi
  echo "demo stopped by SIG$sig; the running step was stopped; run the demo again to start over" >&2
  exit $((128 + $(kill -l "$sig")))
}
trap 'stop_demo INT' INT
trap 'stop_demo TERM' TERM

# step NAME LOG COMMAND...: run, time, keep the log; on failure show its tail and stop.
step() {
  local name=$1 log=$LOGS/$2 start=$SECONDS; shift 2
  echo "== $name (log: $log)"
  setsid "$@" > "$log" 2>&1 &  # not a process-group leader here: setsid execs the command in its own session
  STEP_PID=$!
  if ! wait "$STEP_PID"; then
    tail -25 "$log" >&2
    echo "error: demo step '$name' failed; full log: $log" >&2
    exit 1
  fi
  STEP_PID=
  SECONDS_OF[$name]=$((SECONDS - start))
}

step data data.log python -m tinynet_ms.data.demo "$OUT/data"
step train train.log bash "$ROOT_DIR/scripts/run_distribute_train.sh" "$OUT/data" "$CONFIG" 2 \
  --output_dir "$OUT/train" --overwrite true "$@"
CKPT=$OUT/train/checkpoints/best.ckpt
step eval eval.log bash "$ROOT_DIR/scripts/run_eval.sh" "$OUT/data" "$CKPT" "$CONFIG" \
  --output_dir "$OUT/train" --result_file "$OUT/eval.json" "$@"
for fmt in MINDIR ONNX; do
  step "export $fmt" "export_$fmt.log" python "$ROOT_DIR/export.py" --config_path "$CONFIG" --checkpoint_path "$CKPT" \
    --file_name "$OUT/tinynet_demo" --file_format $fmt "$@"
done
for input in bin image; do
  mkdir -p "$OUT/infer_$input"
  step "harness $input" "infer_$input.log" bash -c "cd '$OUT/infer_$input' && \
    bash '$ROOT_DIR/scripts/run_infer_310.sh' '$OUT/tinynet_demo.onnx' '$OUT/data/val' 0 cpu $input"
done
# INT8: a dynamic-batch ONNX quantized (calibrated on 512 training images), scored against float32 and both timed
# in the harness (built by the steps above) at batch 1 and 32 by the quantizer: its figure is the one speed
# comparison the summary quotes. Then float and INT8 run by the harness on DATA/val at batch 32 (their top-1).
step "export ONNX dynamic batch" export_ONNX_dynamic.log python "$ROOT_DIR/export.py" --config_path "$CONFIG" \
  --checkpoint_path "$CKPT" --file_name "$OUT/tinynet_demo_dyn" --file_format ONNX --dynamic_batch true "$@"
step "quantize INT8" quantize.log python -m tinynet_ms.quantize "$OUT/tinynet_demo_dyn.onnx" --data "$OUT/data" \
  --num_calib 512 --output "$OUT/tinynet_demo_int8.onnx" --harness "$ROOT_DIR/ascend310_infer/out/main" --json
for model in dyn int8; do
  mkdir -p "$OUT/infer_$model"
  step "harness $model" "infer_$model.log" bash -c "cd '$OUT/infer_$model' && \
    bash '$ROOT_DIR/scripts/run_infer_310.sh' '$OUT/tinynet_demo_$model.onnx' '$OUT/data/val' 0 cpu bin 32"
done

# Summary: the numbers each step printed, side by side.
scores() { grep -Eo 'top1: [0-9.]+ top5: [0-9.]+' "$1" | tail -1 | awk '{printf "%s | %s", $2, $4}'; }
diff_of() { grep -Eo 'max abs diff [^ ]+' "$1" | awk '{print $4}'; }
latency() { grep -Eo 'average time: [0-9.]+ ms' "$1" | awk '{print $3}'; }
# speed BATCH KEY: the quantizer's harness figure (its JSON, the log's last line) for float32_ms or int8_ms
speed() {
  python -c 'import json, sys
report = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(next((f"{s[sys.argv[3]]:.3f}" for s in report["speed"] if s["batch"] == int(sys.argv[2])), "-"))' \
    "$LOGS/quantize.log" "$1" "$2"
}
echo
echo "## demo summary ($OUT)"
echo "step | top-1 | top-5 | detail | seconds"
echo "--- | --- | --- | --- | ---"
echo "train (2 msrun workers) | $(grep -o '"val_top1": [0-9.]*' "$OUT/train/metrics.jsonl" | tail -1 | awk '{printf "%.6f", $2}') | - | last epoch, model weights | ${SECONDS_OF[train]}"
echo "eval.py (best.ckpt) | $(scores "$LOGS/eval.log") | $(grep -o '"num_samples": [0-9]*' "$OUT/eval.json" | awk '{print $2}') images | ${SECONDS_OF[eval]}"
for fmt in MINDIR ONNX; do
  echo "export $fmt | - | - | re-loaded max abs diff $(diff_of "$LOGS/export_$fmt.log") | ${SECONDS_OF[export $fmt]}"
done
for input in bin image; do
  echo "C++ harness, cpu, $input input | $(scores "$OUT/infer_$input/acc.log") | $(latency "$OUT/infer_$input/time_Result/test_perform_static.txt") ms/image | ${SECONDS_OF[harness $input]}"
done
echo "export ONNX, dynamic batch | - | - | re-loaded max abs diff $(diff_of "$LOGS/export_ONNX_dynamic.log") | ${SECONDS_OF[export ONNX dynamic batch]}"
echo "C++ harness, cpu, ONNX, batch 32 | $(scores "$OUT/infer_dyn/acc.log") | $(speed 32 float32_ms) ms/batch (INT8 report) | ${SECONDS_OF[harness dyn]}"
echo "C++ harness, cpu, INT8 ONNX, batch 32 | $(scores "$OUT/infer_int8/acc.log") | $(speed 32 int8_ms) ms/batch (INT8 report) | ${SECONDS_OF[harness int8]}"
echo
echo "## INT8 vs float32 (tinynet_ms.quantize: accuracy in onnxruntime, speed in the C++ harness)"
grep -E '^\||^INT8 ' "$LOGS/quantize.log"
