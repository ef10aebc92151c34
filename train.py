"""Train TinyNet (model-zoo entry point).

    python train.py --config_path configs/tinynet_a.yaml --data_path /data/imagenet [--key value ...]

--help lists the config keys this command uses, with type, default and meaning (every key is accepted;
docs/configuration.md lists them all).
"""
import sys

from src.app import run_app
from src.trainer import run_training

if __name__ == "__main__":
    sys.exit(run_app(run_training, sys.argv[1:], __doc__, "train.py"))
