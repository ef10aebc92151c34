"""Top-1/top-5 from the C++ harness's result files (model-zoo entry point).

    python postprocess.py --result_path result_Files --label_file preprocess_Result/label.json [--output acc.log]

Prints `top1: <fraction> top5: <fraction>` and writes it, with the sample count, to --output.
"""
import argparse
import logging
import sys

from src.offline import postprocess
from tinynet_ms.cli import run_main


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="postprocess.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--result_path", default="result_Files",
                        help="the harness's logits, <image name>_0.bin per image (default result_Files)")
    parser.add_argument("--label_file", default="preprocess_Result/label.json",
                        help="preprocess.py's labels (default preprocess_Result/label.json)")
    parser.add_argument("--output", default="acc.log", help="top-1/top-5 and the sample count go here (default acc.log)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run_main(lambda: postprocess(args.result_path, args.label_file, args.output))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
