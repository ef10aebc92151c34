"""Convert timm / huawei-noah TinyNet weights (.pth or .safetensors) to a MindSpore .ckpt.

    python -m tinynet_ms.convert tinynet_a.pth tinynet_a.ckpt --model tinynet_a [--num_classes 1000]

The command line of ``tinynet_ms.weights``: a rename (BatchNorm weight/bias/running_mean/running_var →
gamma/beta/moving_mean/moving_variance; num_batches_tracked dropped), checked name-by-name and shape-by-shape in
both directions; nothing is written on a mismatch. A 1000-class file gets the ImageNet-1k class names stored with
its weights (``tinynet_ms.classes``), so predict.py names its outputs. Exit codes: see ``tinynet_ms.cli``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tinynet_ms.cli import argument_type, positive_int, run_main
from tinynet_ms.hub import convert_weights
from tinynet_ms.models import create_model, known_model


def convert(src: str | os.PathLike, dst: str | os.PathLike, model: str, num_classes: int = 1000,
            **model_kwargs: float) -> Path:
    """Convert ``src`` for ``model`` and write ``dst`` (.ckpt) atomically; returns ``dst``."""
    net = create_model(model, num_classes=num_classes, cpu_kernels=False, **model_kwargs)
    return convert_weights(src, dst, net, f"{src} (for {model}, {num_classes} classes)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinynet_ms.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="timm / huawei-noah .pth or .safetensors")
    parser.add_argument("dst", help="output MindSpore .ckpt")
    parser.add_argument("--model", required=True, type=argument_type(known_model), help="tinynet_a ... tinynet_e")
    parser.add_argument("--num_classes", type=argument_type(positive_int), default=1000,
                        help="classes of the weights' classifier (default 1000, ImageNet)")
    args = parser.parse_args(argv)

    def run() -> None:
        out = convert(args.src, args.dst, args.model, args.num_classes)
        print(f"wrote {out}: {args.src} converted for {args.model} ({args.num_classes} classes), all tensors verified")

    return run_main(run)


if __name__ == "__main__":
    sys.exit(main())
