"""Evaluate TinyNet top-1/top-5 on DATA/val (model-zoo entry point).

    python eval.py --config_path configs/tinynet_a.yaml --data_path /data/imagenet --checkpoint_path W.ckpt
                   [--use_ema true] [--result_file result.json] [--key value ...]

Prints `top1: <fraction> top5: <fraction>`; --result_file writes {"top1", "top5", "num_samples", ...} JSON.
--help lists the config keys this command uses, with type, default and meaning (every key is accepted;
docs/configuration.md lists them all).
"""
import sys

from src.app import run_app
from src.evaluation import run_eval

if __name__ == "__main__":
    sys.exit(run_app(run_eval, sys.argv[1:], __doc__, "eval.py"))
