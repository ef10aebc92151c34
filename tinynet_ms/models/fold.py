"""BatchNorm folded into the conv before it, for inference graphs: conv(x; w) → BN becomes conv(x; w·s) + b with
s = γ / sqrt(σ² + ε) and b = β − μ·s, the per-channel add being one op (BN at inference is ~6 small ops per
layer — a third of TinyNet-E's batch-1 CPU latency in MindSpore). With the CPU kernels every conv takes its BN's
bias (and the Swish after it) into its own kernel — the stem's, the depthwise convs', and the 1x1 convs' (oneDNN
sgemm with the bias pass on each output block) — and so does the classifier; in each block the depthwise kernel
also pools for the squeeze-excite, whose gate (one small op for its 8 ops and 7 cells) scales the projection's
weights per sample, the residual added in the projection's bias pass: the gated tensor is never written. At batch 1
MindSpore's per-op overhead, not arithmetic, is most of the time; at batch 32 the passes over the widest tensors.

    folded = fold_batchnorm(net)   # a new, inference-only network; ``net`` is unchanged

The folded network has the same outputs up to float rounding (~1e-6 relative), the same structure and parameter
names except that each BN's four tensors become one ``bias``; it cannot be trained (no BN statistics).
"""
from __future__ import annotations

import numpy as np
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops

from tinynet_ms.kernels.channel import affine_op, squeeze_excite_gate_op
from tinynet_ms.kernels.depthwise import DepthwiseConv2d, bias_swish_mean_op, bias_swish_op, stem_bias_swish_op
from tinynet_ms.kernels.patch_conv import PatchConv2d
from tinynet_ms.kernels.pointwise import gated_pointwise_op, linear_op, pointwise_op
from tinynet_ms.kernels.dtype import in_float32
from tinynet_ms.kernels.swish import swish_bias_op
from tinynet_ms.models.blocks import DepthwiseSeparable, InvertedResidual
from tinynet_ms.models.layers import SqueezeExcite
from tinynet_ms.models.tinynet import TinyNet, TinyNetTrunk
from tinynet_ms.weights import load_arrays_into, param_arrays

# Per cell type (and its bases), from ``construct``: the conv each BatchNorm follows. A BN that applies the Swish
# after it (``swish``: ``BatchNormAct2d``, with the CPU kernels ``BatchNormSwish2d``) keeps applying it; with the
# kernels as one bias + Swish pass.
FOLD_PAIRS: dict[type, dict[str, str]] = {
    TinyNetTrunk: {"bn1": "conv_stem"},
    TinyNet: {"bn2": "conv_head"},
    DepthwiseSeparable: {"bn1": "conv_dw", "bn2": "conv_pw"},
    InvertedResidual: {"bn1": "conv_pw", "bn2": "conv_dw", "bn3": "conv_pwl"},
}


class ChannelBias(nn.Cell):
    """``x + bias[c]`` over NCHW: what remains of a BatchNorm once its scale is in the conv weights; with
    ``swish``, Swish of it (a ``BatchNormAct2d``'s). With ``cpu_kernels``, one CPU-kernel pass (MindSpore's CPU
    BiasAdd is slower at batch 32)."""

    def __init__(self, bias: np.ndarray, cpu_kernels: bool = False, swish: bool = False) -> None:
        super().__init__()
        self.bias = Parameter(Tensor(bias.astype(np.float32)), name="bias", requires_grad=False)
        self.swish = swish_bias_op() if swish and cpu_kernels else None
        self.affine = affine_op() if cpu_kernels and not swish else None
        self.ones = Tensor(np.ones_like(bias, np.float32)) if self.affine is not None else None
        self.act = nn.SiLU() if swish and not cpu_kernels else None

    def construct(self, x):
        if self.swish is not None:
            return in_float32(self.swish, x, self.bias)
        if self.affine is not None:
            return in_float32(self.affine, x, self.ones, self.bias)
        y = x + self.bias.astype(x.dtype).reshape((1, -1, 1, 1))  # a plain Add: every exporter knows it
        return y if self.act is None else self.act(y)


class _ConvBias(nn.Cell):
    """``conv(x) + bias`` (then Swish, as ``op`` does) as one CPU-kernel ``op``; it keeps the conv's ``weight``."""

    def __init__(self, conv: nn.Cell, bias: np.ndarray, op) -> None:
        super().__init__()
        self.weight = conv.weight
        self.bias = Parameter(Tensor(bias.astype(np.float32)), name="bias", requires_grad=False)
        self.op = op

    def construct(self, x):
        return in_float32(self.op, x, self.weight, self.bias)


class DepthwiseBiasSwish(_ConvBias):
    """A ``DepthwiseConv2d`` whose BatchNorm (and the Swish after it) was folded, as one pass."""

    def __init__(self, conv: DepthwiseConv2d, bias: np.ndarray) -> None:
        super().__init__(conv, bias, bias_swish_op(conv.stride[0]))
        self.stride = conv.stride[0]


class DepthwiseBiasSwishMean(nn.Cell):
    """A ``DepthwiseBiasSwish`` that also returns its output's plane means (N, C), float32: the pooling of the
    squeeze-excite after it, in the same pass. Same ``weight`` and ``bias``."""

    def __init__(self, dw: DepthwiseBiasSwish) -> None:
        super().__init__()
        self.weight, self.bias = dw.weight, dw.bias
        self.op = bias_swish_mean_op(dw.stride)

    def construct(self, x):  # in_float32's casts by hand: two outputs, the means stay float32
        y, m = self.op(ops.cast(x, ms.float32), ops.cast(self.weight, ms.float32), ops.cast(self.bias, ms.float32))
        return ops.cast(y, x.dtype), m


class StemBiasSwish(_ConvBias):
    """The stem (a ``PatchConv2d`` over 3 channels) with its BatchNorm and Swish folded, as one pass instead of
    im2col patches, a 1x1 conv and a bias + Swish pass."""

    def __init__(self, conv: PatchConv2d, bias: np.ndarray) -> None:
        super().__init__(conv, bias, stem_bias_swish_op(conv.stride[0]))


class PointwiseBias(_ConvBias):
    """A 1x1 ``nn.Conv2d`` whose BatchNorm (and the Swish after it, with ``swish``) was folded, as one GEMM + bias
    pass."""

    def __init__(self, conv: nn.Conv2d, bias: np.ndarray, swish: bool) -> None:
        super().__init__(conv, bias, pointwise_op(swish))
        self.swish = swish


class FusedDense(nn.Cell):
    """The classifier (``nn.Dense``) as one CPU-kernel op, with its ``weight`` and ``bias``."""

    def __init__(self, dense: nn.Dense) -> None:
        super().__init__()
        self.weight, self.bias = dense.weight, dense.bias
        self.op = linear_op()

    def construct(self, x):
        return in_float32(self.op, x, self.weight, self.bias)


def _is_pointwise(conv: nn.Cell) -> bool:
    return type(conv) is nn.Conv2d and tuple(conv.kernel_size) == (1, 1) and conv.group == 1 and \
        tuple(conv.stride) == (1, 1) and not conv.has_bias


class SqueezeExciteGate(nn.Cell):
    """A ``SqueezeExcite``'s gate (N, C) from its pooled input (N, C), float32, as one CPU-kernel op; the same
    parameter names (``conv_reduce.weight`` ...)."""

    def __init__(self, se: SqueezeExcite) -> None:
        super().__init__()
        self.conv_reduce, self.conv_expand = se.conv_reduce, se.conv_expand  # parameters only: never called
        self.op = squeeze_excite_gate_op()

    def construct(self, m):
        return in_float32(self.op, m, self.conv_reduce.weight, self.conv_reduce.bias, self.conv_expand.weight,
                          self.conv_expand.bias)


class PointwiseGated(nn.Cell):
    """A block's folded 1x1 projection (a ``PointwiseBias`` without Swish) taking the squeeze-excite's gate: the
    gate scales the weight per sample, and the block's residual, when given, is added in the bias pass."""

    def __init__(self, pw: PointwiseBias) -> None:
        super().__init__()
        self.weight, self.bias = pw.weight, pw.bias
        self.op, self.op_add = gated_pointwise_op(False), gated_pointwise_op(True)

    def construct(self, x, g, skip=None):
        if skip is None:
            return in_float32(self.op, x, g, self.weight, self.bias)
        return in_float32(self.op_add, x, g, self.weight, self.bias, skip)


class _FusedBlock(nn.Cell):
    """A folded block as depthwise (+ pooling) → gate → gated projection (+ residual): three CPU-kernel ops after
    the expansion. Its cells keep the block's attribute names, so the parameter names are unchanged. Inference
    only: no drop-path."""

    BLOCK: type
    PROJ: str  # the block's 1x1 projection

    def __init__(self, block: nn.Cell) -> None:
        super().__init__()
        for name, cell in block.name_cells().items():
            setattr(self, name, cell)  # the BN placeholders and the expansion as they are; replaced below
        self.conv_dw = DepthwiseBiasSwishMean(block.conv_dw)
        self.se = SqueezeExciteGate(block.se)
        setattr(self, self.PROJ, PointwiseGated(getattr(block, self.PROJ)))
        self.has_skip = block.has_skip

    @classmethod
    def fusable(cls, block: nn.Cell) -> bool:
        proj = getattr(block, cls.PROJ, None)
        return type(block) is cls.BLOCK and isinstance(block.se, SqueezeExcite) and \
            isinstance(block.conv_dw, DepthwiseBiasSwish) and isinstance(proj, PointwiseBias) and not proj.swish


class FusedDepthwiseSeparable(_FusedBlock):
    BLOCK, PROJ = DepthwiseSeparable, "conv_pw"

    def construct(self, x, noise=None):
        y, m = self.conv_dw(x)
        return self.conv_pw(y, self.se(m), x) if self.has_skip else self.conv_pw(y, self.se(m))


class FusedInvertedResidual(_FusedBlock):
    BLOCK, PROJ = InvertedResidual, "conv_pwl"

    def construct(self, x, noise=None):
        y, m = self.conv_dw(self.conv_pw(x))
        return self.conv_pwl(y, self.se(m), x) if self.has_skip else self.conv_pwl(y, self.se(m))


def _fold_pair(conv: nn.Conv2d, bn: nn.BatchNorm2d, cpu_kernels: bool, swish: bool,
               bias: np.ndarray | None = None) -> tuple[nn.Cell, nn.Cell]:
    """The cells replacing ``conv`` and ``bn``; with ``bias`` (re-folding a folded network) the conv already holds
    the BN's scale and ``bias`` is what remains of it."""
    if bias is None:
        gamma, beta = bn.gamma.asnumpy().astype(np.float64), bn.beta.asnumpy().astype(np.float64)
        mean, var = bn.moving_mean.asnumpy().astype(np.float64), bn.moving_variance.asnumpy().astype(np.float64)
        scale = gamma / np.sqrt(var + bn.eps)
        weight = conv.weight.asnumpy().astype(np.float64)
        conv.weight.set_data(Tensor((weight * scale[:, None, None, None]).astype(np.float32)))
        bias = beta - mean * scale
    if swish and isinstance(conv, DepthwiseConv2d):
        return DepthwiseBiasSwish(conv, bias), nn.Identity()
    if swish and isinstance(conv, PatchConv2d):
        return StemBiasSwish(conv, bias), nn.Identity()
    if cpu_kernels and _is_pointwise(conv):
        return PointwiseBias(conv, bias, swish), nn.Identity()
    return conv, ChannelBias(bias, cpu_kernels, swish)


def _pairs(cell: nn.Cell) -> dict[str, str]:
    return {bn: conv for cls in type(cell).__mro__ for bn, conv in FOLD_PAIRS.get(cls, {}).items()}


def fold_batchnorm(net: TinyNetTrunk, cpu_kernels: bool | None = None) -> TinyNetTrunk:
    """An inference-only twin of ``net`` (a classifier or a backbone: same configuration; CPU kernels as ``net``,
    or as ``cpu_kernels`` says) with every BatchNorm folded into the conv before it. ``net`` is left as it is; it
    may itself be folded (re-folded into another layer set: its stock twin for export)."""
    kernels = net.cpu_kernels if cpu_kernels is None else cpu_kernels
    twin = net.rebuilt(kernels)
    source = param_arrays(net)
    # A folded ``net`` (e.g. the CPU-kernel network eval ran, exported through its stock twin): its convs hold the BN
    # scales already, and each BN's remaining bias sits in its ChannelBias (``bn1.bias``) or, fused, in its conv
    # (``conv_dw.bias``); the twin's BatchNorms stay as built, placeholders replaced below.
    refold, biases = bool(getattr(net, "folded", False)), {}
    if refold:
        own = param_arrays(twin)
        biases = {k: v for k, v in source.items() if k not in own}
        source = {**own, **{k: v for k, v in source.items() if k in own}}
    load_arrays_into(twin, source, net.label)
    for path, cell in list(twin.cells_and_names()):
        prefix = f"{path}." if path else ""
        for bn_name, conv_name in _pairs(cell).items():
            bn = getattr(cell, bn_name)
            bias = None
            if refold:
                bias = biases.pop(f"{prefix}{bn_name}.bias", None)
                bias = biases.pop(f"{prefix}{conv_name}.bias") if bias is None else bias
            conv, rest = _fold_pair(getattr(cell, conv_name), bn, kernels, getattr(bn, "swish", False), bias)
            setattr(cell, conv_name, conv)
            setattr(cell, bn_name, rest)
    if kernels:
        for stage in twin.blocks:
            for i, block in enumerate(stage):
                fused = next((f for f in (FusedDepthwiseSeparable, FusedInvertedResidual) if f.fusable(block)), None)
                if fused is not None:
                    stage[i] = fused(block)
    if kernels and isinstance(twin, TinyNet):
        twin.classifier = FusedDense(twin.classifier)
    for name, param in twin.parameters_and_names():  # setattr prefixed the new biases with "bn1." only
        param.name = name
    left = [name for name, cell in twin.cells_and_names() if isinstance(cell, nn.BatchNorm2d)]
    if left or biases:
        raise AssertionError(f"FOLD_PAIRS does not cover {left or sorted(biases)}")
    twin.folded = True
    twin.set_train(False)
    return twin
