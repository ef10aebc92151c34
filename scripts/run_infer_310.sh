#!/bin/bash
# Offline inference with the C++ harness (ascend310_infer/): build, preprocess, infer, score.
# Writes result_Files/, time_Result/, preprocess_Result/, infer.log and acc.log in the current directory.
usage() {
  cat <<USAGE
usage: bash scripts/run_infer_310.sh MODEL_PATH DATA_PATH [DEVICE_ID] [BACKEND] [INPUT_TYPE] [BATCH_SIZE]
  MODEL_PATH  .mindir (export.py --file_format MINDIR) or .onnx (--file_format ONNX)
  DATA_PATH   folder of class sub-folders, e.g. DATA/val (class index = sorted folder names)
  DEVICE_ID   Ascend device id (default 0)
  BACKEND     ascend (MindIR on Ascend 310/310P via MindSpore Lite) | cpu (ONNX: OpenVINO, or OpenCV DNN
              in a build without it) | openvino | opencv; default: ascend for .mindir, cpu for .onnx
  INPUT_TYPE  bin (default: tensors from preprocess.py, exactly the eval transform) | image (decoded in C++)
  BATCH_SIZE  the batch to run a dynamic-batch model at (export.py --dynamic_batch true; default 1); a fixed-batch
              model runs at its own batch, and another value here is an error
The model's input shape is read from the file, its eval preprocessing (crop_pct, interpolation, mean/std) from
MODEL_PATH.json, which export.py writes beside it (without it: the TinyNet default, with a warning).
env: MSLITE_HOME / MINDSPORE_PATH (ascend backend build)
USAGE
}
source "$(dirname "$0")/common.sh"
check_arguments 2 "$@"
MODEL_PATH=$(abspath "$1") || die "MODEL_PATH '$1' does not exist"
DATA_PATH=$(abspath "$2") || die "DATA_PATH '$2' does not exist"
[ -d "$DATA_PATH" ] || die "DATA_PATH '$DATA_PATH' is not a folder"
DEVICE_ID=${3:-0}
case "$MODEL_PATH" in
  *.mindir) DEFAULT_BACKEND=ascend ;;
  *.onnx) DEFAULT_BACKEND=cpu ;;
  *) die "MODEL_PATH must be a .mindir or .onnx file, got '$MODEL_PATH'" ;;
esac
BACKEND=${4:-$DEFAULT_BACKEND}
INPUT_TYPE=${5:-bin}
RUN_BATCH=${6:-}
[[ "$DEVICE_ID" =~ ^[0-9]+$ ]] || die "DEVICE_ID must be a number, got '$DEVICE_ID'"
[[ "$BACKEND" =~ ^(ascend|cpu|openvino|opencv)$ ]] || die "BACKEND must be ascend, cpu, openvino or opencv, got '$BACKEND'"
[[ "$INPUT_TYPE" == bin || "$INPUT_TYPE" == image ]] || die "INPUT_TYPE must be bin or image, got '$INPUT_TYPE'"
[[ -z "$RUN_BATCH" || "$RUN_BATCH" =~ ^[1-9][0-9]*$ ]] || die "BATCH_SIZE must be a positive number, got '$RUN_BATCH'"
[[ "$BACKEND" != ascend && "$MODEL_PATH" != *.onnx ]] && die "the $BACKEND backend runs ONNX: export with --file_format ONNX"
[[ "$BACKEND" == ascend && "$MODEL_PATH" != *.mindir ]] && die "the ascend backend runs MindIR: export with --file_format MINDIR"

# The model's input shape (batch, 3, S, S; batch -1 = dynamic) from the file, its preprocessing from the sidecar.
INFO=$(cd "$ROOT_DIR" && python -m tinynet_ms.export info "$MODEL_PATH") || exit $?  # it printed why
read -r BATCH_SIZE IMAGE_SIZE CROP_PCT INTERPOLATION MEAN STD SOURCE OUTPUTS < <(python -c "
import json, sys; i = json.loads(sys.argv[1]); p = i['preprocessing']
print(i['input_shape'][0], i['input_shape'][2], p['crop_pct'], p['interpolation'], ','.join(map(str, p['mean'])),
      ','.join(map(str, p['std'])), i['preprocessing_source'].replace(' ', '_'),
      'logits' if [len(s) for s in i['output_shapes']] == [2] else
      ';'.join('(' + ','.join(map(str, s)) + ')' for s in i['output_shapes']))" "$INFO")
# One (N, classes) output, or the harness would score feature maps (a one-level backbone has one output too) as logits.
[ "$OUTPUTS" == logits ] || die "$MODEL_PATH outputs ${OUTPUTS//;/, }, not one (N, classes) logits (a backbone, export.py --features_only true): the harness scores classifiers; export without --features_only"
if [ "$BATCH_SIZE" -lt 0 ]; then  # a dynamic batch: the caller's, default 1
  BATCH_SIZE=${RUN_BATCH:-1}; BATCH_KIND="dynamic, run at"
else
  [[ -z "$RUN_BATCH" || "$RUN_BATCH" == "$BATCH_SIZE" ]] || die "$MODEL_PATH has a fixed batch of $BATCH_SIZE, not $RUN_BATCH: drop BATCH_SIZE or export with --batch_size $RUN_BATCH (or --dynamic_batch true)"
  BATCH_KIND="fixed"
fi
echo "model $MODEL_PATH: batch ($BATCH_KIND) $BATCH_SIZE, ${IMAGE_SIZE}x${IMAGE_SIZE}; backend $BACKEND, input $INPUT_TYPE"
echo "preprocessing ($SOURCE): crop_pct $CROP_PCT, $INTERPOLATION, mean $MEAN, std $STD"
[ -f "$MODEL_PATH.json" ] || echo "warning: no $MODEL_PATH.json beside the model (export.py writes it): using the TinyNet default preprocessing" >&2

bash "$ROOT_DIR/ascend310_infer/build.sh" > build.log 2>&1 || { tail -20 build.log >&2; die "harness build failed (build.log)"; }

python "$ROOT_DIR/preprocess.py" --data_path "$DATA_PATH" --output_path preprocess_Result --model_path "$MODEL_PATH" \
  --input_type "$INPUT_TYPE" || die "preprocess failed"

if [ "$INPUT_TYPE" == bin ]; then INPUT_DIR=preprocess_Result/img_data; else INPUT_DIR=$DATA_PATH; fi
rm -rf result_Files time_Result
"$ROOT_DIR/ascend310_infer/out/main" --model_path="$MODEL_PATH" --backend="$BACKEND" --input_type="$INPUT_TYPE" \
  --input_path="$INPUT_DIR" --image_size="$IMAGE_SIZE" --batch_size="$BATCH_SIZE" --crop_pct="$CROP_PCT" \
  --interpolation="$INTERPOLATION" --mean="$MEAN" --std="$STD" --device_id="$DEVICE_ID" --output_dir=. > infer.log 2>&1
rc=$?
cat infer.log
[ $rc -eq 0 ] || { echo "error: inference failed (exit $rc), see infer.log" >&2; exit 1; }

python "$ROOT_DIR/postprocess.py" --result_path result_Files --label_file preprocess_Result/label.json \
  --output acc.log || die "postprocess failed"
