"""Small building cells shared by the blocks: conv/BN factories with timm's init, SE, drop-path."""
from __future__ import annotations

import math

from mindspore import nn, ops
from mindspore.common.initializer import Normal, Uniform

from tinynet_ms.kernels import batch_norm_class, channel_mul, conv_class, global_mean, swish_class

BN_EPS = 1e-5  # timm / PyTorch default
BN_MOMENTUM = 0.9  # MindSpore convention: 0.9 here == PyTorch momentum 0.1


# ``fast`` everywhere below: build tinynet_ms.kernels' CPU cells (same parameters) instead of MindSpore's stock ones.

def conv2d(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False,
           fast: bool = False) -> nn.Conv2d:
    """Conv with timm's symmetric padding and 'goog' init N(0, sqrt(2 / fan_out)); with ``fast``, depthwise and
    stem convs are the CPU kernels' ``nn.Conv2d`` subclasses."""
    padding = ((stride - 1) + (kernel - 1)) // 2
    fan_out = kernel * kernel * out_ch // groups
    return conv_class(in_ch, out_ch, kernel, stride, groups, bias, fast)(
        in_ch, out_ch, kernel, stride=stride, pad_mode="pad", padding=padding, group=groups,
        has_bias=bias, weight_init=Normal(sigma=math.sqrt(2.0 / fan_out)), bias_init="zeros",
    )


def swish(fast: bool = False, after_bn: bool = False) -> nn.Cell:
    """Swish / SiLU. ``after_bn``: the Swish applied only to outputs of ``batch_norm(..., swish=True)``, which with
    ``fast`` apply it themselves, so it is ``nn.Identity`` then."""
    return nn.Identity() if fast and after_bn else swish_class(fast)()


def batch_norm(channels: int, fast: bool = False, swish: bool = False) -> nn.BatchNorm2d:
    """BatchNorm with PyTorch's eps and momentum. ``swish``: its output goes to a Swish (``swish(fast,
    after_bn=True)``) and nowhere else; with ``fast`` the BN's kernels apply that Swish."""
    return batch_norm_class(fast, swish)(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def dense_bound(out_ch: int) -> float:
    """timm's classifier init: weights U(±1/sqrt(out)), bias 0."""
    return 1.0 / math.sqrt(out_ch)


def dense(in_ch: int, out_ch: int) -> nn.Dense:
    """Classifier with timm's init (``dense_bound``)."""
    return nn.Dense(in_ch, out_ch, weight_init=Uniform(scale=dense_bound(out_ch)), bias_init="zeros")


class SqueezeExcite(nn.Cell):
    """Channel gate: global mean → 1x1 reduce (bias) → Swish → 1x1 expand (bias) → sigmoid."""

    def __init__(self, channels: int, reduced: int, fast: bool = False) -> None:
        super().__init__()
        self.conv_reduce = conv2d(channels, reduced, 1, bias=True, fast=fast)
        self.act = swish(fast)
        self.conv_expand = conv2d(reduced, channels, 1, bias=True, fast=fast)
        self.gate = nn.Sigmoid()
        self.pool = global_mean(True, fast)
        self.scale = channel_mul(fast)

    def construct(self, x):
        s = self.pool(x)
        s = self.conv_expand(self.act(self.conv_reduce(s)))
        return self.scale(x, self.gate(s))


class _InvertedDropout(nn.Cell):
    """Zero with probability ``p`` and scale the rest by 1/(1-p), in training only. The uniform noise ``u``
    may be passed in: the trainer feeds noise drawn from the data pipeline's per-sample seed so a resumed run
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

    def construct(self, x, u=None):
        if not self.training or self.p == 0.0:
            return x
        if u is None:
            u = 0.5 * ops.erfc(self.normal(self.noise_shape(x)) * -0.7071067811865476)  # Phi(z), uniform
        mask = ops.floor(self.keep_prob + u.astype(x.dtype)) / self.keep_prob
        return x * mask.reshape(self.noise_shape(x) + (1,) * (x.ndim - len(self.noise_shape(x))))


class Dropout(_InvertedDropout):
    """Element dropout; ``u`` has x's shape."""


class DropPath(_InvertedDropout):
    """Stochastic depth: a sample's whole residual branch is dropped; ``u`` has shape (B,)."""

    def noise_shape(self, x):
        return (x.shape[0],)
