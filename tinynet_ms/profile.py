"""Count a TinyNet's parameters and MACs from the built network (never from a table).

    python -m tinynet_ms.profile tinynet_a [--image_size 192] [--json]

MACs are counted by running one image through the network in PyNative mode with forward hooks on every
Conv2d and Dense cell (the paper's and timm's convention: conv + fully-connected multiply-accumulates).
Elementwise work (BN, Swish, SE gating, residual adds) is reported separately as element counts.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass

import mindspore as ms
import numpy as np
from mindspore import nn

from tinynet_ms.cli import argument_type, positive_int, run_main
from tinynet_ms.models import create_model, known_model


@dataclass(frozen=True)
class Profile:
    params: int  # trainable parameters (BN moving statistics are buffers, as in PyTorch)
    macs: int  # conv + dense multiply-accumulates for one image
    image_size: int
    conv_macs: int
    dense_macs: int
    se_macs: int  # part of conv_macs spent in squeeze-excitation 1x1 convs
    activation_elements: int  # outputs of BN/Swish/sigmoid cells: a proxy for elementwise cost


def count_params(net: nn.Cell) -> int:
    return int(sum(int(np.prod(p.shape)) for p in net.trainable_params()))


def _conv_macs(cell: nn.Conv2d, output) -> int:
    _, out_ch, out_h, out_w = output.shape
    k_h, k_w = cell.kernel_size
    return out_ch * out_h * out_w * (cell.in_channels // cell.group) * k_h * k_w


def profile_network(net: nn.Cell, image_size: int) -> Profile:
    """Run one zero image through ``net`` (PyNative, eval mode) and count MACs with forward hooks."""
    counts = {"conv": 0, "dense": 0, "se": 0, "act": 0}
    handles = []

    def hook_for(name: str):
        def hook(cell, _inputs, output):
            if isinstance(cell, nn.Conv2d):
                macs = _conv_macs(cell, output)
                counts["conv"] += macs
                counts["se"] += macs if ".se." in name else 0
            elif isinstance(cell, nn.Dense):
                counts["dense"] += cell.in_channels * cell.out_channels
            else:
                counts["act"] += int(np.prod(output.shape))
        return hook

    for name, cell in net.cells_and_names():
        if isinstance(cell, (nn.Conv2d, nn.Dense, nn.BatchNorm2d, nn.SiLU, nn.Sigmoid)):
            handles.append(cell.register_forward_hook(hook_for(name)))
    previous_mode, was_training = ms.get_context("mode"), net.training
    try:
        ms.set_context(mode=ms.PYNATIVE_MODE)  # hooks only fire in PyNative
        net.set_train(False)
        net(ms.Tensor(np.zeros((1, 3, image_size, image_size), np.float32)))
    finally:
        for handle in handles:
            handle.remove()
        ms.set_context(mode=previous_mode)
        net.set_train(was_training)
    return Profile(params=count_params(net), macs=counts["conv"] + counts["dense"], image_size=image_size,
                   conv_macs=counts["conv"], dense_macs=counts["dense"], se_macs=counts["se"],
                   activation_elements=counts["act"])


def profile_model(name: str, image_size: int | None = None, num_classes: int = 1000, **model_kwargs) -> Profile:
    """Build ``name`` (see ``create_model``; MindSpore's stock cells, which the hooks know) and profile it at
    ``image_size`` (default: its own)."""
    net = create_model(name, num_classes=num_classes, cpu_kernels=False, **model_kwargs)
    return profile_network(net, image_size or net.spec.image_size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinynet_ms.profile", description=__doc__.splitlines()[0])
    parser.add_argument("name", type=argument_type(known_model), help="tinynet_a ... tinynet_e")
    parser.add_argument("--image_size", type=argument_type(positive_int), default=None,
                        help="default: the variant's resolution")
    parser.add_argument("--num_classes", type=argument_type(positive_int), default=1000)
    parser.add_argument("--json", action="store_true", help='print {"params", "macs", "image_size"} as JSON')
    args = parser.parse_args(argv)

    def run() -> None:
        prof = profile_model(args.name, args.image_size, args.num_classes)
        if args.json:
            print(json.dumps({"params": prof.params, "macs": prof.macs, "image_size": prof.image_size}))
            return
        for key, value in asdict(prof).items():
            print(f"{key:>20}: {value:,}")
        print(f"{'MMACs':>20}: {prof.macs / 1e6:.1f}")

    return run_main(run)


if __name__ == "__main__":
    sys.exit(main())
