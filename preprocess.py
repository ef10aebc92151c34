"""Write the offline-inference inputs: exact eval tensors (.bin) and the label file (model-zoo entry point).

    python preprocess.py --data_path DATA/val --output_path preprocess_Result --image_size 192
                         [--input_type bin|image] [--crop_pct 0.875] [--num_workers 4]

bin: OUTPUT/img_data/<image name>.bin, raw float32 (3, S, S) = tinynet_ms.data.load_eval_image (timm's eval
transform); image: labels only (the C++ harness decodes the images). Both: OUTPUT/label.json.
"""
import argparse
import logging
import sys

from src.offline import preprocess


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_path", required=True, help="folder of class sub-folders, e.g. DATA/val")
    parser.add_argument("--output_path", default="preprocess_Result")
    parser.add_argument("--image_size", type=int, required=True)
    parser.add_argument("--input_type", choices=("bin", "image"), default="bin")
    parser.add_argument("--crop_pct", type=float, default=0.875)
    parser.add_argument("--num_workers", type=int, default=4)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        preprocess(args.data_path, args.output_path, args.image_size, args.crop_pct, args.input_type,
                   args.num_workers)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
