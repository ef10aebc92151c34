"""The two EfficientNet block types, with timm's attribute names (so weight conversion is a rename), built from the
``LayerSet`` they are handed."""
from __future__ import annotations

from mindspore import nn

from tinynet_ms.models.layers import STOCK, DropPath, LayerSet, SqueezeExcite


class DepthwiseSeparable(nn.Cell):
    """dw conv → BN + Swish → SE → pw conv → BN (+ skip when shape-preserving)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, se_ratio: float,
                 drop_path_rate: float = 0.0, layers: LayerSet = STOCK) -> None:
        super().__init__()
        self.has_skip = stride == 1 and in_ch == out_ch
        self.conv_dw = layers.conv(in_ch, in_ch, kernel, stride=stride, groups=in_ch)
        self.bn1 = layers.norm_act(in_ch)
        self.se = SqueezeExcite(in_ch, int(in_ch * se_ratio), layers)
        self.conv_pw = layers.conv(in_ch, out_ch, 1)
        self.bn2 = layers.norm(out_ch)
        self.drop_path = DropPath(drop_path_rate)

    def construct(self, x, noise=None):
        y = self.bn1(self.conv_dw(x))
        y = self.bn2(self.conv_pw(self.se(y)))
        if self.has_skip:
            y = self.drop_path(y, noise) + x
        return y


class InvertedResidual(nn.Cell):
    """pw expand → BN + Swish → dw conv → BN + Swish → SE → pw project → BN (+ skip)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int, se_ratio: float,
                 drop_path_rate: float = 0.0, layers: LayerSet = STOCK) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_skip = stride == 1 and in_ch == out_ch
        self.conv_pw = layers.conv(in_ch, mid, 1)
        self.bn1 = layers.norm_act(mid)
        self.conv_dw = layers.conv(mid, mid, kernel, stride=stride, groups=mid)
        self.bn2 = layers.norm_act(mid)
        self.se = SqueezeExcite(mid, int(in_ch * se_ratio), layers)  # SE width follows the block input, not mid
        self.conv_pwl = layers.conv(mid, out_ch, 1)
        self.bn3 = layers.norm(out_ch)
        self.drop_path = DropPath(drop_path_rate)

    def construct(self, x, noise=None):
        y = self.bn1(self.conv_pw(x))
        y = self.bn2(self.conv_dw(y))
        y = self.bn3(self.conv_pwl(self.se(y)))
        if self.has_skip:
            y = self.drop_path(y, noise) + x
        return y
