"""Per-channel maps as MindSpore ``ops.Custom(func_type="aot")`` CPU kernels (``channel.cc``): squeeze-excite's
``x * gate`` (``ChannelScale``, with the plain ``ChannelMul`` for every other target and for export), the
per-channel affine map of an inference BatchNorm (``affine_op``) and an inference squeeze-excite's gate
(``squeeze_excite_gate_op``)."""
from __future__ import annotations

from mindspore import nn, ops

from tinynet_ms.kernels.build import build_library
from tinynet_ms.kernels.dtype import in_float32

_ops: dict[str, tuple[ops.Custom, ops.Custom]] = {}
_affine: dict[str, ops.Custom] = {}
_gate: dict[str, ops.Custom] = {}


def channel_ops() -> tuple[ops.Custom, ops.Custom]:
    """``(scale, dot)``: ``y = scale(x, g)``; the gradients are ``scale(dy, g)`` and ``dot(dy, x)``; float32."""
    lib = str(build_library())
    if lib not in _ops:
        dot = ops.Custom(f"{lib}:ChannelDot", lambda dy, x: x[:2] + [1, 1], lambda dy, x: x, "aot")
        scale_grad = ops.Custom(f"{lib}:ChannelScale", lambda dy, g: dy, lambda dy, g: dy, "aot")

        def bprop(x, g, out, dout):
            return scale_grad(dout, g), dot(dout, x)

        scale = ops.Custom(f"{lib}:ChannelScale", lambda x, g: x, lambda x, g: x, "aot", bprop=bprop)
        _ops[lib] = (scale, dot)
    return _ops[lib]


class ChannelMul(nn.Cell):
    """``x * g`` with ``g`` broadcast over H and W."""

    def construct(self, x, g):
        return x * g


class ChannelScale(ChannelMul):
    """``ChannelMul`` run by the custom kernels, in float32 (float16 inputs are cast and the result cast back)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = channel_ops()[0]

    def construct(self, x, g):
        return in_float32(self.scale, x, g)


def affine_op() -> ops.Custom:
    """``y = affine(x, s, t)``: ``x * s[c] + t[c]`` for NCHW float32 ``x`` and (C,) ``s``, ``t``; no gradient."""
    lib = str(build_library())
    if lib not in _affine:
        _affine[lib] = ops.Custom(f"{lib}:ChannelAffine", lambda x, s, t: x, lambda x, s, t: x, "aot")
    return _affine[lib]


def squeeze_excite_gate_op() -> ops.Custom:
    """``g = op(m, w1, b1, w2, b2)``: ``sigmoid(w2 @ swish(w1 @ m + b1) + b2)`` per sample from the pooled input
    ``m`` (N, C) of a squeeze-excite, its 1x1 conv weights as they are ((R, C, 1, 1), (C, R, 1, 1)); ``g`` (N, C),
    float32, no gradient (inference)."""
    lib = str(build_library())
    if lib not in _gate:
        _gate[lib] = ops.Custom(f"{lib}:SqueezeExciteGate", lambda m, *w: m, lambda m, *w: m, "aot")
    return _gate[lib]
