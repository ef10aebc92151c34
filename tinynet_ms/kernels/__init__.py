"""Optional fast CPU versions of the layers MindSpore 2.10's CPU backend runs slowly, chosen when a network is built.

- ``DepthwiseConv2d``: depthwise conv as hand-written ``ops.Custom`` aot kernels (forward, grad-input, grad-weight);
- ``Swish``: SiLU as one aot kernel each way (MindSpore expands it into 2 + 4 elementwise ops);
- ``ChannelScale``: squeeze-excite's ``x * gate`` as aot kernels (its gradient w.r.t. the gate in one pass);
- ``FastBatchNorm2d``: BatchNorm as one aot kernel each way in training, one affine pass in inference;
  ``BatchNormSwish2d``: the same with the Swish after it in the same passes;
- ``PatchConv2d``: the stem conv (3 input channels) as im2col + a 1x1 conv, MindSpore ops only (in folded
  inference graphs the stem's conv + BN + Swish is one aot kernel, ``models.fold.StemBiasSwish``);
- ``MatMulMean``: global average pooling (head and SE) as a MatMul, MindSpore ops only.

They are chosen per network: ``create_model(..., cpu_kernels=None|True|False)`` (None = on when the device target
is CPU and the kernels compile here; see ``resolve_cpu_kernels``). The fast cells are subclasses of, or
parameter-free stand-ins for, the stock cells, so parameter names, shapes, init and checkpoints are unchanged.
Exported MindIR/ONNX graphs are always built from the stock cells::

    net = create_model("tinynet_a")                     # on CPU: the fast cells (one log line says so)
    net = create_model("tinynet_a", cpu_kernels=False)  # MindSpore's stock cells

The C++ sources (``*.cc``, ``common.h``) are compiled with g++ on first use into ``$TINYNET_MS_HOME/kernels/``
(default ``~/.cache/tinynet_ms/kernels/``, see ``build``); importing this package compiles nothing.
"""
from __future__ import annotations

import logging

from tinynet_ms.kernels.build import build_library

log = logging.getLogger("tinynet_ms")

# The choice lines resolve_cpu_kernels has logged in this process: one each, however many networks are built (a
# training run builds the model and its EMA copy; the choice and its reason are the same for both).
_told: set[str] = set()


def _tell_once(level: int, message: str, *args) -> None:
    text = message % args
    if text not in _told:
        _told.add(text)
        log.log(level, text)


# What cpu_kernels means, everywhere (create_model's argument, the config key, the CLIs): auto, on or off.
CPU_KERNELS = {"auto": None, "on": True, "off": False}


def resolve_cpu_kernels(requested: bool | None) -> bool:
    """Whether a network is built from the CPU-kernel cells — the one definition of ``cpu_kernels``. ``None``
    (auto, the default): yes when the device target is CPU and the kernels compile; one log line per process says
    which was chosen, a warning why not. ``True`` (on): yes, or an error saying why not (another device target, no
    compiler). ``False`` (off): MindSpore's stock cells. The config key spells them ``auto``/``on``/``off``
    (``CPU_KERNELS``). Exports always hold the stock cells, whatever the network was built with."""
    import mindspore as ms

    if requested is False:
        return False
    target = ms.get_context("device_target")
    if target != "CPU":
        if requested:
            raise ValueError(f"cpu_kernels=True needs the CPU device target, not {target}: the kernels are "
                             f"CPU code (pass cpu_kernels=None or False)")
        return False
    try:
        build_library()
    except RuntimeError as exc:
        if requested:
            raise
        _tell_once(logging.WARNING, "CPU kernels unavailable, building with MindSpore's stock cells (several times "
                                    "slower on CPU): %s", exc)
        return False
    if requested is None:
        _tell_once(logging.INFO, "CPU kernels: on (device target CPU; cpu_kernels=False builds MindSpore's stock "
                                 "cells)")
    return True


def conv_class(in_ch: int, out_ch: int, kernel: int, stride: int, groups: int, bias: bool, cpu_kernels: bool):
    """The conv class the model builder should use. With ``cpu_kernels``: ``DepthwiseConv2d`` for a depthwise conv
    the kernel supports, ``PatchConv2d`` for a strided conv over a few input channels (the stem); otherwise (and
    without them) ``nn.Conv2d``."""
    from mindspore import nn

    if not cpu_kernels:
        return nn.Conv2d
    if groups == 1 and kernel > 1 and not bias:
        from tinynet_ms.kernels.patch_conv import MAX_IN_CHANNELS, PatchConv2d
        return PatchConv2d if in_ch <= MAX_IN_CHANNELS else nn.Conv2d
    if not (groups > 1 and groups == in_ch == out_ch and not bias):
        return nn.Conv2d
    from tinynet_ms.kernels.depthwise import DepthwiseConv2d, supported
    return DepthwiseConv2d if supported(kernel, stride) else nn.Conv2d


def swish_class(cpu_kernels: bool):
    """``Swish`` (the custom kernel) with ``cpu_kernels``, else ``nn.SiLU``."""
    from mindspore import nn

    if not cpu_kernels:
        return nn.SiLU
    from tinynet_ms.kernels.swish import Swish
    return Swish


def batch_norm_class(cpu_kernels: bool, swish: bool = False):
    """With ``cpu_kernels``: ``FastBatchNorm2d``, or ``BatchNormSwish2d`` with ``swish`` (BatchNorm and the Swish
    after it in the same kernels); else ``nn.BatchNorm2d`` (``swish``: the model's ``BatchNormAct2d`` instead)."""
    from mindspore import nn

    if not cpu_kernels:
        return nn.BatchNorm2d
    from tinynet_ms.kernels.batchnorm import BatchNormSwish2d, FastBatchNorm2d
    return BatchNormSwish2d if swish else FastBatchNorm2d


def channel_mul(cpu_kernels: bool):
    """A cell computing ``x * g`` for a (N, C, 1, 1) ``g``: ``ChannelScale`` (custom kernel) with ``cpu_kernels``."""
    from tinynet_ms.kernels import channel

    return channel.ChannelScale() if cpu_kernels else channel.ChannelMul()


def global_mean(keep_dims: bool, cpu_kernels: bool):
    """A cell averaging NCHW over H and W: ``MatMulMean`` with ``cpu_kernels``, else ``ReduceMean``."""
    if cpu_kernels:
        from tinynet_ms.kernels.pooling import MatMulMean
        return MatMulMean(keep_dims)
    from tinynet_ms.kernels.pooling import ReduceMean
    return ReduceMean(keep_dims)


def __getattr__(name: str):  # DepthwiseConv2d without importing MindSpore at package import
    if name in ("DepthwiseConv2d", "depthwise_ops"):
        from tinynet_ms.kernels import depthwise
        return getattr(depthwise, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DepthwiseConv2d", "batch_norm_class", "build_library", "channel_mul", "conv_class", "depthwise_ops",
           "global_mean", "resolve_cpu_kernels", "swish_class"]
