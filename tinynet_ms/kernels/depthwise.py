"""Depthwise conv as MindSpore ``ops.Custom(func_type="aot")`` CPU kernels (``depthwise.cc``, compiled by
``tinynet_ms.kernels.build``): the ops and the ``DepthwiseConv2d`` cell; also the inference stem (a full conv over
3 channels on the same phase planes)."""
from __future__ import annotations

from mindspore import nn, ops

from tinynet_ms.kernels.build import build_library
from tinynet_ms.kernels.dtype import in_float32

KERNELS = (3, 5)
STRIDES = (1, 2)

_ops: dict[tuple[str, int], tuple[ops.Custom, ops.Custom, ops.Custom]] = {}
_bias_swish_ops: dict[tuple[str, str, int], ops.Custom] = {}


def supported(kernel, stride) -> bool:
    return kernel in KERNELS and stride in STRIDES


def padding_for(kernel: int, stride: int) -> int:
    """timm's symmetric padding, the only padding the kernels implement."""
    return ((stride - 1) + (kernel - 1)) // 2


def _out_size(size: int, kernel: int, stride: int) -> int:
    return size if size < 0 else (size + 2 * padding_for(kernel, stride) - kernel) // stride + 1


def depthwise_ops(stride: int) -> tuple[ops.Custom, ops.Custom, ops.Custom]:
    """``(forward, grad_input, grad_weight)`` Custom ops for ``stride``, shared by every cell (the kernel size
    comes from the weight's shape)::

        y  = forward(x, w)            # (N, C, H, W), (C, 1, K, K) -> (N, C, Ho, Wo)
        dx = grad_input(dy, w, x)     # x only gives dx its shape
        dw = grad_weight(dy, x, w)    # w only gives dw its shape
    """
    if stride not in STRIDES:
        raise ValueError(f"depthwise kernel stride must be one of {STRIDES}, got {stride}")
    lib = str(build_library())
    if (lib, stride) in _ops:
        return _ops[lib, stride]

    def fwd_shape(x, w):
        return (x[0], x[1], _out_size(x[2], w[2], stride), _out_size(x[3], w[3], stride))

    grad_input = ops.Custom(f"{lib}:DwConvGradInputS{stride}", lambda dy, w, x: x, lambda dy, w, x: dy, "aot")
    grad_weight = ops.Custom(f"{lib}:DwConvGradWeightS{stride}", lambda dy, x, w: w, lambda dy, x, w: dy, "aot")

    def bprop(x, w, out, dout):
        return grad_input(dout, w, x), grad_weight(dout, x, w)

    forward = ops.Custom(f"{lib}:DwConvForwardS{stride}", fwd_shape, lambda x, w: x, "aot", bprop=bprop)
    _ops[lib, stride] = (forward, grad_input, grad_weight)
    return _ops[lib, stride]


def _bias_swish(entry: str, stride: int, means: bool = False) -> ops.Custom:
    """The ``entry`` kernel for ``stride``; with ``means`` it also outputs the (N, C) plane means of ``y``."""
    if stride not in STRIDES:
        raise ValueError(f"kernel stride must be one of {STRIDES}, got {stride}")
    lib = str(build_library())
    if (lib, entry, stride) not in _bias_swish_ops:
        def out_shape(x, w, t):  # (N, weight's out channels, Ho, Wo): the depthwise weight's are x's
            y = (x[0], w[0], _out_size(x[2], w[2], stride), _out_size(x[3], w[3], stride))
            return (y, (x[0], x[1])) if means else y

        out_dtype = (lambda x, w, t: (x, x)) if means else (lambda x, w, t: x)
        _bias_swish_ops[lib, entry, stride] = ops.Custom(f"{lib}:{entry}S{stride}", out_shape, out_dtype, "aot")
    return _bias_swish_ops[lib, entry, stride]


def bias_swish_op(stride: int) -> ops.Custom:
    """``y = op(x, w, t)``: ``swish(depthwise(x, w) + t[c])`` with (C,) ``t``, one pass; no gradient (inference:
    a BatchNorm folded into the conv, then its Swish)."""
    return _bias_swish("DwConvBiasSwish", stride)


def bias_swish_mean_op(stride: int) -> ops.Custom:
    """``y, m = op(x, w, t)``: ``bias_swish_op``'s ``y`` and ``m`` (N, C), the mean of each plane of ``y`` (the
    pooling of the squeeze-excite after it), one pass; no gradient."""
    return _bias_swish("DwConvBiasSwishMean", stride, means=True)


def stem_bias_swish_op(stride: int) -> ops.Custom:
    """``y = op(x, w, t)``: ``swish(conv2d(x, w) + t[o])``, ``w`` (O, C, K, K) over at most 4 input channels
    (the stem), timm's padding, one pass; no gradient (inference, BatchNorm folded)."""
    return _bias_swish("StemConvBiasSwish", stride)


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d`` restricted to what the custom CPU kernel implements — depthwise (``group == in == out``),
    kernel 3 or 5, stride 1 or 2, ``pad_mode="pad"`` with timm's symmetric padding, no bias, dilation 1 — and run
    by it. Being an ``nn.Conv2d`` it builds the same ``weight`` Parameter (same name, shape, init and random
    draws) and is counted like one (``tinynet_ms.profile``); only ``construct`` differs.

    The kernel computes in float32: float16/bfloat16 inputs (AMP) are cast to float32 and the result cast back.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 pad_mode: str = "pad", padding: int = 0, dilation: int = 1, group: int = 1,
                 has_bias: bool = False, weight_init="normal", bias_init="zeros", **kwargs) -> None:
        problems = []
        if not (group == in_channels == out_channels):
            problems.append(f"group ({group}) == in_channels ({in_channels}) == out_channels ({out_channels})")
        if not supported(kernel_size, stride):
            problems.append(f"kernel_size in {KERNELS} and stride in {STRIDES} (got {kernel_size}, {stride})")
        elif pad_mode != "pad" or padding != padding_for(kernel_size, stride):
            problems.append(f"pad_mode='pad' with padding {padding_for(kernel_size, stride)} "
                            f"(got {pad_mode!r}, {padding})")
        if dilation != 1 or has_bias or kwargs.get("data_format", "NCHW") != "NCHW":
            problems.append("dilation 1, no bias, NCHW")
        if problems:
            raise ValueError("DepthwiseConv2d needs " + "; ".join(problems))
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, pad_mode=pad_mode,
                         padding=padding, dilation=dilation, group=group, has_bias=False,
                         weight_init=weight_init, bias_init=bias_init, **kwargs)
        self.dw_forward = depthwise_ops(stride)[0]

    def construct(self, x):
        return in_float32(self.dw_forward, x, self.weight)
