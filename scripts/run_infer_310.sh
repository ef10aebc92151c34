#!/bin/bash
# Offline inference with the C++ harness (ascend310_infer/): build, preprocess, infer, score.
# Writes result_Files/, time_Result/, preprocess_Result/, infer.log and acc.log in the current directory.
usage() {
  cat >&2 <<USAGE
usage: bash scripts/run_infer_310.sh MODEL_PATH DATA_PATH [DEVICE_ID] [BACKEND] [INPUT_TYPE]
  MODEL_PATH  .mindir (export.py --file_format MINDIR) or .onnx (--file_format ONNX)
  DATA_PATH   folder of class sub-folders, e.g. DATA/val (class index = sorted folder names)
  DEVICE_ID   Ascend device id (default 0)
  BACKEND     ascend (MindIR on Ascend 310/310P via MindSpore Lite) | cpu (ONNX via OpenCV DNN);
              default: ascend for .mindir, cpu for .onnx
  INPUT_TYPE  bin (default: tensors from preprocess.py, exactly the eval transform) | image (decoded in C++)
env: MSLITE_HOME / MINDSPORE_PATH (ascend backend build), CROP_PCT (default 0.875)
USAGE
  exit 2
}
[ $# -lt 2 ] && usage
source "$(dirname "$0")/common.sh"
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
CROP_PCT=${CROP_PCT:-0.875}
[[ "$DEVICE_ID" =~ ^[0-9]+$ ]] || die "DEVICE_ID must be a number, got '$DEVICE_ID'"
[[ "$BACKEND" == ascend || "$BACKEND" == cpu ]] || die "BACKEND must be ascend or cpu, got '$BACKEND'"
[[ "$INPUT_TYPE" == bin || "$INPUT_TYPE" == image ]] || die "INPUT_TYPE must be bin or image, got '$INPUT_TYPE'"
[[ "$BACKEND" == cpu && "$MODEL_PATH" != *.onnx ]] && die "the cpu backend runs ONNX: export with --file_format ONNX"
[[ "$BACKEND" == ascend && "$MODEL_PATH" != *.mindir ]] && die "the ascend backend runs MindIR: export with --file_format MINDIR"

# The model's fixed input shape (batch, 3, S, S), read from the file itself.
read -r BATCH_SIZE IMAGE_SIZE < <(cd "$ROOT_DIR" && python -c "
import json, sys; from tinynet_ms.export import model_io_shapes
shape = model_io_shapes(sys.argv[1])[0]; print(shape[0], shape[2])" "$MODEL_PATH") \
  || die "cannot read the input shape of $MODEL_PATH"
echo "model $MODEL_PATH: batch $BATCH_SIZE, ${IMAGE_SIZE}x${IMAGE_SIZE}; backend $BACKEND, input $INPUT_TYPE"

bash "$ROOT_DIR/ascend310_infer/build.sh" > build.log 2>&1 || { tail -20 build.log >&2; die "harness build failed (build.log)"; }

python "$ROOT_DIR/preprocess.py" --data_path "$DATA_PATH" --output_path preprocess_Result --image_size "$IMAGE_SIZE" \
  --crop_pct "$CROP_PCT" --input_type "$INPUT_TYPE" || die "preprocess failed"

if [ "$INPUT_TYPE" == bin ]; then INPUT_DIR=preprocess_Result/img_data; else INPUT_DIR=$DATA_PATH; fi
rm -rf result_Files time_Result
"$ROOT_DIR/ascend310_infer/out/main" --model_path="$MODEL_PATH" --backend="$BACKEND" --input_type="$INPUT_TYPE" \
  --input_path="$INPUT_DIR" --image_size="$IMAGE_SIZE" --batch_size="$BATCH_SIZE" --crop_pct="$CROP_PCT" \
  --device_id="$DEVICE_ID" --output_dir=. > infer.log 2>&1
rc=$?
cat infer.log
[ $rc -eq 0 ] || { echo "error: inference failed (exit $rc), see infer.log" >&2; exit 1; }

python "$ROOT_DIR/postprocess.py" --result_path result_Files --label_file preprocess_Result/label.json \
  --output acc.log || die "postprocess failed"
