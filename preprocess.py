"""Write the offline-inference inputs: exact eval tensors (.bin) and the label file (model-zoo entry point).

    python preprocess.py --data_path DATA/val --output_path preprocess_Result --model_path tinynet_e.onnx
                         [--input_type bin|image] [--num_workers 4]
    python preprocess.py --data_path DATA/val --image_size 192 [--model tinynet_a] [--crop_pct P] ...

--model_path: the input size from the model file and the preprocessing from its sidecar (MODEL_PATH.json, written by
export.py). Otherwise --image_size and the preprocessing of --model's record (default: TinyNet's), --crop_pct
overriding its crop. bin: OUTPUT/img_data/<image name>.bin, raw float32 (3, S, S) = tinynet_ms.data.load_eval_image;
image: labels only (the C++ harness decodes the images). Both: OUTPUT/label.json. Exit codes: 0 ok, 1 bad input,
2 usage error.
"""
import argparse
import logging
import sys
from dataclasses import replace

from src.offline import preprocess
from tinynet_ms.cli import UsageError, argument_type, positive_int, run_main
from tinynet_ms.export import model_io_shapes, read_preprocessing
from tinynet_ms.models import known_model, preprocessing_of


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="preprocess.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_path", required=True, help="folder of class sub-folders, e.g. DATA/val")
    parser.add_argument("--output_path", default="preprocess_Result",
                        help="img_data/ and label.json go here (default preprocess_Result)")
    parser.add_argument("--model_path", help="exported .onnx/.mindir: input size and preprocessing from it")
    parser.add_argument("--image_size", type=int, help="input size (without --model_path)")
    parser.add_argument("--model", default="tinynet", help="whose preprocessing record (without --model_path)")
    parser.add_argument("--crop_pct", type=float, help="override the preprocessing's center-crop fraction")
    parser.add_argument("--input_type", choices=("bin", "image"), default="bin",
                        help="bin: the eval tensors as .bin files; image: the labels only (default bin)")
    parser.add_argument("--num_workers", type=argument_type(positive_int), default=4,
                        help="processes preprocessing the images (default 4)")
    args = parser.parse_args(argv)
    if (args.model_path is None) == (args.image_size is None):
        parser.error("give either --model_path (an exported model) or --image_size")
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def run() -> None:
        if args.model_path:
            size, (pre, source) = model_io_shapes(args.model_path)[0][2], read_preprocessing(args.model_path)
            logging.info("%s: %dx%d input, preprocessing from %s", args.model_path, size, size, source)
        else:
            try:
                size, pre = args.image_size, preprocessing_of(known_model(args.model))
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        if args.crop_pct is not None:
            try:
                pre = replace(pre, crop_pct=args.crop_pct)
            except ValueError as exc:
                raise UsageError(f"--crop_pct: {exc}") from None
        preprocess(args.data_path, args.output_path, size, pre, args.input_type, args.num_workers)

    return run_main(run)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
