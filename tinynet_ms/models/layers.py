"""The cells a TinyNet is built from: ``LayerSet`` (MindSpore's stock cells, or tinynet_ms.kernels' CPU ones, chosen
once per network and handed to every block), BatchNorm with its Swish as one cell, SE, dropout and drop-path."""
from __future__ import annotations

import math
from dataclasses import dataclass

from mindspore import nn, ops
from mindspore.common.initializer import Normal, Uniform

from tinynet_ms.kernels import batch_norm_class, channel_mul, conv_class, global_mean, swish_class

BN_EPS = 1e-5  # timm / PyTorch default
BN_MOMENTUM = 0.9  # MindSpore convention: 0.9 here == PyTorch momentum 0.1


class BatchNormAct2d(nn.BatchNorm2d):
    """BatchNorm then Swish as one cell, under BatchNorm's parameter names (``bn1.gamma`` ...), as timm's
    ``BatchNormAct2d``: a block says "normalise and activate" once, and the CPU kernels' ``BatchNormSwish2d`` (the
    same cell, fused) takes its place without the block knowing."""

    swish = True  # what folding the BN into its conv must keep applying (models/fold.py)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.act = nn.SiLU()

    def construct(self, x):
        return self.act(super().construct(x))


@dataclass(frozen=True)
class LayerSet:
    """Which cells build a network: MindSpore's stock cells, or with ``cpu_kernels`` tinynet_ms.kernels' CPU cells
    (the same parameters and numbers, so checkpoints, conversion and export do not depend on the choice). Convs
    carry timm's symmetric padding and 'goog' init N(0, sqrt(2 / fan_out)); BatchNorms PyTorch's eps and momentum."""

    cpu_kernels: bool = False

    def conv(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
             bias: bool = False) -> nn.Conv2d:
        padding = ((stride - 1) + (kernel - 1)) // 2
        fan_out = kernel * kernel * out_ch // groups
        return conv_class(in_ch, out_ch, kernel, stride, groups, bias, self.cpu_kernels)(
            in_ch, out_ch, kernel, stride=stride, pad_mode="pad", padding=padding, group=groups,
            has_bias=bias, weight_init=Normal(sigma=math.sqrt(2.0 / fan_out)), bias_init="zeros",
        )

    def norm(self, channels: int) -> nn.BatchNorm2d:
        return batch_norm_class(self.cpu_kernels)(channels, eps=BN_EPS, momentum=BN_MOMENTUM)

    def norm_act(self, channels: int) -> nn.BatchNorm2d:
        """BatchNorm followed by Swish, one cell (``BatchNormAct2d``; with the kernels ``BatchNormSwish2d``)."""
        cls = batch_norm_class(True, swish=True) if self.cpu_kernels else BatchNormAct2d
        return cls(channels, eps=BN_EPS, momentum=BN_MOMENTUM)

    def act(self) -> nn.Cell:
        """Swish / SiLU on its own (the SE's)."""
        return swish_class(self.cpu_kernels)()

    def mean(self, keep_dims: bool) -> nn.Cell:
        """The average over H and W."""
        return global_mean(keep_dims, self.cpu_kernels)

    def channel_mul(self) -> nn.Cell:
        """``x * g`` for a (N, C, 1, 1) gate ``g``."""
        return channel_mul(self.cpu_kernels)


STOCK = LayerSet(cpu_kernels=False)


def dense_bound(out_ch: int) -> float:
    """timm's classifier init: weights U(±1/sqrt(out)), bias 0."""
    return 1.0 / math.sqrt(out_ch)


def dense(in_ch: int, out_ch: int) -> nn.Dense:
    """Classifier with timm's init (``dense_bound``)."""
    return nn.Dense(in_ch, out_ch, weight_init=Uniform(scale=dense_bound(out_ch)), bias_init="zeros")


class SqueezeExcite(nn.Cell):
    """Channel gate: global mean → 1x1 reduce (bias) → Swish → 1x1 expand (bias) → sigmoid."""

    def __init__(self, channels: int, reduced: int, layers: LayerSet = STOCK) -> None:
        super().__init__()
        self.conv_reduce = layers.conv(channels, reduced, 1, bias=True)
        self.act = layers.act()
        self.conv_expand = layers.conv(reduced, channels, 1, bias=True)
        self.gate = nn.Sigmoid()
        self.pool = layers.mean(True)
        self.scale = layers.channel_mul()

    def construct(self, x):
        s = self.pool(x)
        s = self.conv_expand(self.act(self.conv_reduce(s)))
        return self.scale(x, self.gate(s))


class _InvertedDropout(nn.Cell):
    """Zero with probability ``p`` and scale the rest by 1/(1-p), in training only. The uniform ``noise`` may be
    passed in: the trainer feeds noise drawn from the data pipeline's per-sample seed so a resumed run
    replays exactly (MindSpore cannot save an on-device RNG state); without it an on-device RNG draws U[0, 1).

    That draw is the normal CDF of a standard normal draw, Phi(z) = erfc(-z / sqrt 2) / 2, uniform by construction:
    MindSpore 2.10 deprecates ``ops.UniformReal`` (``ops.rand`` and ``ops.uniform`` build it too, and each
    warns), and its replacement ``mint.rand`` runs on Ascend only; ``StandardNormal`` runs on Ascend, GPU and CPU.
    Seeded as ``UniformReal()`` was (op seeds 0: the global seed's stream)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)
        self.keep_prob = 1.0 - self.p
        self.normal = ops.StandardNormal()

    def noise_shape(self, x):
        return x.shape

    def construct(self, x, noise=None):
        if not self.training or self.p == 0.0:
            return x
        if noise is None:
            noise = 0.5 * ops.erfc(self.normal(self.noise_shape(x)) * -0.7071067811865476)  # Phi(z), uniform
        mask = ops.floor(self.keep_prob + noise.astype(x.dtype)) / self.keep_prob
        return x * mask.reshape(self.noise_shape(x) + (1,) * (x.ndim - len(self.noise_shape(x))))


class Dropout(_InvertedDropout):
    """Element dropout; ``noise`` has x's shape."""


class DropPath(_InvertedDropout):
    """Stochastic depth: a sample's whole residual branch is dropped; ``noise`` has shape (B,)."""

    def noise_shape(self, x):
        return (x.shape[0],)
