"""Train TinyNet (model-zoo entry point).

    python train.py --config_path configs/tinynet_a.yaml --data_path /data/imagenet [--key value ...]

Every config key is an option (--help lists them with type, default and meaning).
"""
import sys

from src.cli import run_app
from src.trainer import run_training

if __name__ == "__main__":
    sys.exit(run_app(run_training, sys.argv[1:], __doc__, "train.py"))
