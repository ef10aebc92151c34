"""Count a TinyNet's parameters and MACs from the built network (never from a table).

    python -m tinynet_ms.profile tinynet_a [--image_size 192] [--json]

MACs are counted by running one image through the network in PyNative mode with forward hooks on every
Conv2d and Dense cell (the paper's and timm's convention: conv + fully-connected multiply-accumulates).
Elementwise work (BN, Swish, SE gating, residual adds) is reported separately as element counts.

``count_spec`` gives the same params and MACs from the architecture table without building anything (microseconds
instead of a second): the design solver and the cube search count thousands of networks with it, and the tests hold
it equal to the hook count.
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
from tinynet_ms.models import TinyNetSpec, create_model, known_model
from tinynet_ms.models.arch import STEM_CHANNELS


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


@dataclass(frozen=True)
class Count:
    params: int
    macs: int


def _conv_out(size: int, kernel: int, stride: int) -> int:
    pad = ((stride - 1) + (kernel - 1)) // 2  # the network's symmetric padding (layers.conv2d)
    return (size + 2 * pad - kernel) // stride + 1


def count_spec(spec: TinyNetSpec, num_classes: int = 1000, image_size: int | None = None) -> Count:
    """Trainable params and conv + dense MACs of the classifier ``spec`` builds, from its table (what
    ``profile_network`` counts on the built network: the tests hold the two equal)."""
    params = macs = 0

    def conv(c_in: int, c_out: int, kernel: int, size: int, stride: int = 1, groups: int = 1,
             bias: bool = False, bn: bool = True) -> int:
        nonlocal params, macs
        out = _conv_out(size, kernel, stride)
        params += c_out * (c_in // groups) * kernel * kernel + (c_out if bias else 0) + (2 * c_out if bn else 0)
        macs += c_out * out * out * (c_in // groups) * kernel * kernel
        return out

    size = conv(3, STEM_CHANNELS, 3, image_size or spec.image_size, stride=2)
    c_in = STEM_CHANNELS
    for stage in spec.stages:
        for i in range(stage.repeats):
            mid = c_in * stage.expand
            if stage.block == "ir":
                conv(c_in, mid, 1, size)
            size = conv(mid, mid, stage.kernel, size, stage.stride if i == 0 else 1, groups=mid)
            reduced = int(c_in * stage.se_ratio)  # the SE works on pooled 1x1 maps
            conv(mid, reduced, 1, 1, bias=True, bn=False)
            conv(reduced, mid, 1, 1, bias=True, bn=False)
            conv(mid, stage.channels, 1, size)
            c_in = stage.channels
    conv(c_in, spec.head_channels, 1, size)
    params += spec.head_channels * num_classes + num_classes
    macs += spec.head_channels * num_classes
    return Count(params, macs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinynet_ms.profile", description=__doc__.splitlines()[0])
    parser.add_argument("name", type=argument_type(known_model), help="tinynet_a ... tinynet_e")
    parser.add_argument("--image_size", type=argument_type(positive_int), default=None,
                        help="default: the variant's resolution")
    parser.add_argument("--num_classes", type=argument_type(positive_int), default=1000,
                        help="classifier outputs (default 1000, ImageNet)")
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
