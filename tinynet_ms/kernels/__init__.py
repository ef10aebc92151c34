"""Optional fast CPU versions of the layers MindSpore 2.10's CPU backend runs slowly, chosen when a network is built.

- ``DepthwiseConv2d``: depthwise conv as hand-written ``ops.Custom`` aot kernels (forward, grad-input, grad-weight);
- ``Swish``: SiLU as one aot kernel each way (MindSpore expands it into 2 + 4 elementwise ops);
- ``ChannelScale``: squeeze-excite's ``x * gate`` as aot kernels (its gradient w.r.t. the gate in one pass);
- ``AffineBatchNorm2d``: BatchNorm whose inference mode is one aot affine pass (training: ``nn.BatchNorm2d``);
- ``PatchConv2d``: the stem conv (3 input channels) as im2col + a 1x1 conv, MindSpore ops only;
- ``MatMulMean``: global average pooling (head and SE) as a MatMul, MindSpore ops only.

It is a build-time switch, off by default. Networks built while it is on (and the device target is CPU) use these
cells: they are subclasses of, or parameter-free stand-ins for, the stock cells, so parameter names, shapes, init
and checkpoints are unchanged. Networks built while it is off — and every exported MindIR/ONNX graph — use the
stock cells::

    from tinynet_ms.kernels import set_cpu_kernels
    set_cpu_kernels(True)
    net = create_model("tinynet_a")  # now runs the fast CPU cells

The C++ sources (``*.cc``, ``common.h``) are compiled with g++ on first use into ``$TINYNET_MS_HOME/kernels/``
(default ``~/.cache/tinynet_ms/kernels/``, see ``build``); importing this package compiles nothing.
"""
from __future__ import annotations

from tinynet_ms.kernels.build import build_library

_enabled = False


def set_cpu_kernels(enabled: bool) -> None:
    """Use the fast CPU cells in networks built from now on (``False`` restores the stock cells)."""
    global _enabled
    _enabled = bool(enabled)


def cpu_kernels_enabled() -> bool:
    return _enabled


def conv_class(in_ch: int, out_ch: int, kernel: int, stride: int, groups: int, bias: bool):
    """The conv class the model builder should use. While the switch is on and the device target is CPU:
    ``DepthwiseConv2d`` for a depthwise conv the kernel supports, ``PatchConv2d`` for a strided conv over a few
    input channels (the stem); otherwise ``nn.Conv2d``."""
    from mindspore import nn

    if not (_enabled and _on_cpu()):
        return nn.Conv2d
    if groups == 1 and kernel > 1 and not bias:
        from tinynet_ms.kernels.patch_conv import MAX_IN_CHANNELS, PatchConv2d
        return PatchConv2d if in_ch <= MAX_IN_CHANNELS else nn.Conv2d
    if not (groups > 1 and groups == in_ch == out_ch and not bias):
        return nn.Conv2d
    from tinynet_ms.kernels.depthwise import DepthwiseConv2d, supported
    return DepthwiseConv2d if supported(kernel, stride) else nn.Conv2d


def swish_class():
    """``Swish`` (the custom kernel) while the switch is on and the target is CPU, else ``nn.SiLU``."""
    from mindspore import nn

    if not (_enabled and _on_cpu()):
        return nn.SiLU
    from tinynet_ms.kernels.swish import Swish
    return Swish


def batch_norm_class():
    """``AffineBatchNorm2d`` (inference as one custom-kernel pass) while the switch is on and the target is CPU,
    else ``nn.BatchNorm2d``."""
    from mindspore import nn

    if not (_enabled and _on_cpu()):
        return nn.BatchNorm2d
    from tinynet_ms.kernels.channel import AffineBatchNorm2d
    return AffineBatchNorm2d


def channel_mul():
    """A cell computing ``x * g`` for a (N, C, 1, 1) ``g``: ``ChannelScale`` (custom kernels) while the switch is
    on and the target is CPU."""
    from tinynet_ms.kernels import channel

    return channel.ChannelScale() if _enabled and _on_cpu() else channel.ChannelMul()


def global_mean(keep_dims: bool = False):
    """A cell averaging NCHW over H and W: ``MatMulMean`` while the switch is on and the target is CPU."""
    if _enabled and _on_cpu():
        from tinynet_ms.kernels.pooling import MatMulMean
        return MatMulMean(keep_dims)
    from tinynet_ms.kernels.pooling import ReduceMean
    return ReduceMean(keep_dims)


def _on_cpu() -> bool:
    import mindspore as ms

    return ms.get_context("device_target") == "CPU"


def __getattr__(name: str):  # DepthwiseConv2d without importing MindSpore at package import
    if name in ("DepthwiseConv2d", "depthwise_ops"):
        from tinynet_ms.kernels import depthwise
        return getattr(depthwise, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DepthwiseConv2d", "batch_norm_class", "build_library", "channel_mul", "conv_class", "cpu_kernels_enabled", "depthwise_ops", "global_mean",
           "set_cpu_kernels", "swish_class"]
