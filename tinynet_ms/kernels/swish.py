"""Swish (SiLU) as MindSpore ``ops.Custom(func_type="aot")`` CPU kernels (``swish.cc``): the ops and the ``Swish``
cell. MindSpore 2.10's CPU backend expands SiLU into Sigmoid + Mul (and its gradient into four more ops), each a
pass over memory; this is one pass each way."""
from __future__ import annotations

from mindspore import nn, ops

from tinynet_ms.kernels.build import build_library
from tinynet_ms.kernels.dtype import in_float32

_ops: dict[str, tuple[ops.Custom, ops.Custom]] = {}
_bias: dict[str, ops.Custom] = {}


def swish_ops() -> tuple[ops.Custom, ops.Custom]:
    """``(forward, grad)``: ``y = forward(x)``, ``dx = grad(dy, x)``; float32, any shape."""
    lib = str(build_library())
    if lib not in _ops:
        grad = ops.Custom(f"{lib}:SwishGrad", lambda dy, x: x, lambda dy, x: x, "aot")

        def bprop(x, out, dout):
            return (grad(dout, x),)

        forward = ops.Custom(f"{lib}:SwishForward", lambda x: x, lambda x: x, "aot", bprop=bprop)
        _ops[lib] = (forward, grad)
    return _ops[lib]


class Swish(nn.SiLU):
    """``nn.SiLU`` run by the custom kernel (an ``nn.SiLU`` so layer counting treats it as one). Computes in
    float32: float16/bfloat16 inputs (AMP) are cast and the result cast back."""

    def __init__(self) -> None:
        super().__init__()
        self.swish = swish_ops()[0]

    def construct(self, x):
        return in_float32(self.swish, x)


def swish_bias_op() -> ops.Custom:
    """``y = swish_bias(x, t)``: ``swish(x + t[c])`` for NCHW float32 ``x`` and (C,) ``t``, one pass; no gradient
    (inference: a BatchNorm folded into its conv, then the activation)."""
    lib = str(build_library())
    if lib not in _bias:
        _bias[lib] = ops.Custom(f"{lib}:SwishBias", lambda x, t: x, lambda x, t: x, "aot")
    return _bias[lib]
