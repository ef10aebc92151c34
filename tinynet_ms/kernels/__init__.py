"""Optional hand-written CPU kernels (MindSpore ``ops.Custom`` aot) for the layers MindSpore's CPU backend runs slowly.

The depthwise convolution (``DepthwiseConv2d``), plus the stem conv re-arranged as stacked patches and one 1x1 conv
(``PatchConv2d``: MindSpore ops only, ~7x faster on CPU). It is a build-time switch, off by default: networks built while it is on
use ``DepthwiseConv2d`` for their depthwise convs (same parameter names, shapes and init as ``nn.Conv2d``, so
checkpoints are interchangeable); networks built while it is off — and every exported MindIR/ONNX graph — use
the stock ``nn.Conv2d``::

    from tinynet_ms.kernels import set_cpu_kernels
    set_cpu_kernels(True)
    net = create_model("tinynet_a")  # depthwise convs now run the custom kernels (CPU target only)

The C++ source is compiled with g++ on first use into ``$TINYNET_MS_HOME/kernels/`` (default
``~/.cache/tinynet_ms/kernels/``); importing this package compiles nothing.
"""
from __future__ import annotations

_enabled = False


def set_cpu_kernels(enabled: bool) -> None:
    """Use the custom CPU depthwise kernel in networks built from now on (``False`` restores ``nn.Conv2d``)."""
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


def _on_cpu() -> bool:
    import mindspore as ms

    return ms.get_context("device_target") == "CPU"


def __getattr__(name: str):  # DepthwiseConv2d / build_library without importing MindSpore at package import
    if name in ("DepthwiseConv2d", "build_library", "depthwise_ops"):
        from tinynet_ms.kernels import depthwise
        return getattr(depthwise, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DepthwiseConv2d", "build_library", "conv_class", "cpu_kernels_enabled", "depthwise_ops",
           "set_cpu_kernels"]
