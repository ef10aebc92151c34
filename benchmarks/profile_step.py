"""Where a train step's time goes: MindSpore's profiler over a few graph-mode steps, time per op type and per
convolution kind (depthwise / stem / pointwise / SE) and per custom kernel, with tinynet_ms's CPU kernels off or on.

    python benchmarks/profile_step.py [--model tinynet_e] [--size 106] [--batch 32] [--kernels on|off] [--steps 3]
"""
from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import header, table  # noqa: E402
from tinynet_ms import create_model  # noqa: E402
from tinynet_ms.train import TrainStep, WithLoss, create_rmsprop  # noqa: E402

CONV_KINDS = (("conv_dw", "depthwise"), ("conv_stem", "stem"), ("/se-", "squeeze-excite"), ("conv_", "pointwise/head"))


def _kind(op_type: str, full_name: str) -> str:
    """Convolutions by the layer they belong to, tinynet_ms's Custom kernels by their cell (``conv_dw-
    DepthwiseConv2d`` -> ``custom: DepthwiseConv2d``); everything else by op type."""
    if op_type == "Custom":
        cell = next((part for part in reversed(full_name.split("/")[:-1]) if "-" in part), "-?")
        return "custom: " + cell.split("-", 1)[1]
    if op_type.startswith("Conv2D"):
        return next((f"conv: {kind}" for key, kind in CONV_KINDS if key in full_name), "conv: other")
    return op_type


def profile(model: str, size: int, batch: int, kernels: bool, steps: int) -> tuple[list[dict], float]:
    net = create_model(model, drop_rate=0.2, drop_path_rate=0.2, cpu_kernels=kernels)
    step = TrainStep(WithLoss(net, nn.CrossEntropyLoss(label_smoothing=0.1)),
                     create_rmsprop(net, np.full(steps + 2, 1e-3, np.float32)), 1024.0, dynamic=False,
                     check_grads=False)  # as train.py on one CPU in float32
    step.set_train(True)
    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.standard_normal((batch, 3, size, size)).astype(np.float32))
    y = ms.Tensor(rng.integers(0, 1000, batch).astype(np.int32))
    noise = ms.Tensor(rng.random((batch, net.noise_size), dtype=np.float32))
    step(x, y, noise).asnumpy()  # compile outside the profile
    with tempfile.TemporaryDirectory() as out:
        profiler = ms.Profiler(output_path=out)
        for _ in range(steps):
            step(x, y, noise).asnumpy()
        profiler.analyse()
        detail = next(Path(out).rglob("cpu_op_detail_info_*.csv"))
        totals: dict[str, float] = defaultdict(float)
        with detail.open() as f:
            for row in csv.DictReader(f):
                totals[_kind(row["op_type"], row["full_op_name"])] += float(row["op_total_time(ms)"]) / steps
    step_ms = sum(totals.values())
    rows = [{"op": k, "ms_per_step": v, "share": f"{100 * v / step_ms:.1f}%"}
            for k, v in sorted(totals.items(), key=lambda kv: -kv[1])]
    return rows, step_ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tinynet_e")
    parser.add_argument("--size", type=int, default=106)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--kernels", choices=("on", "off"), default="on")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args(argv)
    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE)
    rows, step_ms = profile(args.model, args.size, args.batch, args.kernels == "on", args.steps)
    print(header("CPU"))
    print(table(rows[:args.top], ["op", "ms_per_step", "share"],
                f"\n## {args.model}@{args.size} batch {args.batch}, CPU kernels {args.kernels}: {step_ms:.0f} ms of "
                f"op time per step ({1000 * args.batch / step_ms:.1f} img/s if nothing else ran)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
