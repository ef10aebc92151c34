"""Classify images with TinyNet: the top-k class names and probabilities per image (model-zoo entry point).

    python predict.py --config_path configs/tinynet_a.yaml --checkpoint_path W.ckpt [--topk 5]
                      [--output predictions.csv|.json] [--key value ...] IMAGE_OR_DIR [IMAGE_OR_DIR ...]
    python predict.py --model_path tinynet_a.onnx|.mindir [--checkpoint_path W.ckpt] ... IMAGE_OR_DIR ...

Inputs: image files, folders (searched recursively) and globs ('photos/**/*.jpg', quoted). Weights: a training
.ckpt, a converted or timm .pth/.safetensors (as eval.py takes them), or with --model_path an exported file (its
sidecar MODEL_PATH.json, e.g. tinynet_a.onnx.json, gives the preprocessing and class names). Each image gets eval's
preprocessing exactly, batched by --batch_size. Class names: those stored with the weights (train.py stores its
dataset's class folders), else the ImageNet-1k names for 1000 classes, else class_0..class_N-1. Prints a table
(file, rank, probability, index, class); --output writes CSV (a row per image: file, the class names in rank order,
their probabilities and indices) or JSON ([{"file", "topk": [{"class", "index", "prob"}]}]). An unreadable file is
skipped with a warning. Exit codes: 0 when at least one image was classified, 1 when none could be, 2 usage or
config error.
"""
import sys

from src.app import run_app
from src.predicting import run_predict

if __name__ == "__main__":
    sys.exit(run_app(run_predict, sys.argv[1:], __doc__, "predict.py", positional="IMAGE_OR_DIR"))
