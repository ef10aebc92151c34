"""Export TinyNet to MINDIR (default; Ascend 310 via MindSpore Lite), ONNX or AIR (model-zoo entry point).

    python export.py --config_path configs/tinynet_a.yaml --checkpoint_path W.ckpt --file_name tinynet_a
                     [--file_format MINDIR|ONNX|AIR] [--batch_size 1] [--use_ema true] [--key value ...]

Writes FILE_NAME.mindir/.onnx/.air for a fixed (batch_size, 3, S, S) input and, beside it, its sidecar
FILE_NAME.mindir.json / .onnx.json / .air.json (the model's eval preprocessing and class names, read by
preprocess.py, predict.py and scripts/run_infer_310.sh), re-loads the model (MindIR through nn.GraphCell, ONNX
through onnxruntime), and prints the max abs difference to the network; a difference above 1e-4 of the largest
logit is an error. Here --batch_size is the exported batch (the key export_batch_size, default 1), not the config's
training batch. --help lists the config keys this command uses, with type, default and meaning (every key is
accepted; docs/configuration.md lists them all).
"""
import sys

from src.app import run_app
from src.exporting import run_export

if __name__ == "__main__":
    sys.exit(run_app(run_export, sys.argv[1:], __doc__, "export.py", aliases={"batch_size": "export_batch_size"}))
