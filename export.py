"""Export TinyNet to MINDIR (default; Ascend 310 via MindSpore Lite), ONNX or AIR (model-zoo entry point).

    python export.py --config_path configs/tinynet_a.yaml --checkpoint_path W.ckpt --file_name tinynet_a
                     [--file_format MINDIR|ONNX|AIR] [--batch_size 1] [--use_ema true] [--key value ...]

Writes FILE_NAME.mindir/.onnx/.air for a fixed (batch_size, 3, S, S) input, re-loads it (MindIR through
nn.GraphCell, ONNX through onnxruntime), and prints the max abs difference to the network; a difference
above 1e-4 of the largest logit is an error. --batch_size is the exported batch (default 1), not the
config's training batch.
"""
import sys

from src.cli import run_app
from src.exporting import run_export


def main(argv: list[str]) -> int:
    args, batch_size = list(argv), 1
    if "--batch_size" in args:  # the export batch, kept apart from the config's per-device training batch
        i = args.index("--batch_size")
        value = args[i + 1] if i + 1 < len(args) else ""
        if not value.isdigit() or int(value) < 1:
            print(f"error: --batch_size expects a positive integer, got '{value}'", file=sys.stderr)
            return 2
        batch_size = int(value)
        del args[i:i + 2]
    return run_app(lambda cfg: run_export(cfg, batch_size), args, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
