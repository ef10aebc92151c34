"""The two EfficientNet block types, with timm's attribute names (so weight conversion is a rename); ``fast``
builds them from tinynet_ms.kernels' CPU cells."""
from __future__ import annotations

from mindspore import nn

from tinynet_ms.models.layers import DropPath, SqueezeExcite, batch_norm, conv2d, swish


class DepthwiseSeparable(nn.Cell):
    """dw conv → BN → Swish → SE → pw conv → BN (+ skip when shape-preserving)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, se_ratio: float,
                 drop_path_rate: float = 0.0, fast: bool = False) -> None:
        super().__init__()
        self.has_skip = stride == 1 and in_ch == out_ch
        self.conv_dw = conv2d(in_ch, in_ch, kernel, stride=stride, groups=in_ch, fast=fast)
        self.bn1 = batch_norm(in_ch, fast, swish=True)
        self.act = swish(fast, after_bn=True)
        self.se = SqueezeExcite(in_ch, int(in_ch * se_ratio), fast)
        self.conv_pw = conv2d(in_ch, out_ch, 1, fast=fast)
        self.bn2 = batch_norm(out_ch, fast)
        self.drop_path = DropPath(drop_path_rate)

    def construct(self, x, u=None):
        y = self.act(self.bn1(self.conv_dw(x)))
        y = self.bn2(self.conv_pw(self.se(y)))
        if self.has_skip:
            y = self.drop_path(y, u) + x
        return y


class InvertedResidual(nn.Cell):
    """pw expand → BN → Swish → dw conv → BN → Swish → SE → pw project → BN (+ skip)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int, se_ratio: float,
                 drop_path_rate: float = 0.0, fast: bool = False) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_skip = stride == 1 and in_ch == out_ch
        self.conv_pw = conv2d(in_ch, mid, 1, fast=fast)
        self.bn1 = batch_norm(mid, fast, swish=True)
        self.conv_dw = conv2d(mid, mid, kernel, stride=stride, groups=mid, fast=fast)
        self.bn2 = batch_norm(mid, fast, swish=True)
        self.act = swish(fast, after_bn=True)
        self.se = SqueezeExcite(mid, int(in_ch * se_ratio), fast)  # SE width follows the block input, not mid
        self.conv_pwl = conv2d(mid, out_ch, 1, fast=fast)
        self.bn3 = batch_norm(out_ch, fast)
        self.drop_path = DropPath(drop_path_rate)

    def construct(self, x, u=None):
        y = self.act(self.bn1(self.conv_pw(x)))
        y = self.act(self.bn2(self.conv_dw(y)))
        y = self.bn3(self.conv_pwl(self.se(y)))
        if self.has_skip:
            y = self.drop_path(y, u) + x
        return y
