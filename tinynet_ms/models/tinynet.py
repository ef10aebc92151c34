"""TinyNet: EfficientNet-B0 scaled by (r, w, d), parameter names as in timm / huawei-noah checkpoints."""
from __future__ import annotations

from mindspore import nn, ops

from tinynet_ms.models.arch import STEM_CHANNELS, StageSpec, TinyNetSpec
from tinynet_ms.models.blocks import DepthwiseSeparable, InvertedResidual
from tinynet_ms.models.layers import batch_norm, conv2d, dense


def _make_block(stage: StageSpec, in_ch: int, stride: int, drop_path_rate: float) -> nn.Cell:
    if stage.block == "ds":
        return DepthwiseSeparable(in_ch, stage.channels, stage.kernel, stride, stage.se_ratio, drop_path_rate)
    return InvertedResidual(in_ch, stage.channels, stage.kernel, stride, stage.expand, stage.se_ratio,
                            drop_path_rate)


class TinyNet(nn.Cell):
    """conv_stem → bn1 → Swish → blocks.{stage}.{i} → conv_head → bn2 → Swish → mean → dropout → classifier."""

    def __init__(self, spec: TinyNetSpec, num_classes: int = 1000, drop_rate: float = 0.2,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.spec = spec
        self.num_classes = num_classes
        self.conv_stem = conv2d(3, STEM_CHANNELS, 3, stride=2)
        self.bn1 = batch_norm(STEM_CHANNELS)
        self.act = nn.SiLU()

        stages = spec.stages
        total_blocks = sum(s.repeats for s in stages)
        in_ch, idx, block_stages = STEM_CHANNELS, 0, []
        for stage in stages:
            blocks = []
            for i in range(stage.repeats):
                # Stochastic depth grows linearly with the global block index (timm).
                rate = drop_path_rate * idx / total_blocks
                blocks.append(_make_block(stage, in_ch, stage.stride if i == 0 else 1, rate))
                in_ch, idx = stage.channels, idx + 1
            block_stages.append(nn.SequentialCell(blocks))
        self.blocks = nn.SequentialCell(block_stages)

        self.num_features = spec.head_channels
        self.conv_head = conv2d(in_ch, self.num_features, 1)
        self.bn2 = batch_norm(self.num_features)
        self.dropout = nn.Dropout(p=drop_rate) if drop_rate > 0.0 else nn.Identity()
        self.classifier = dense(self.num_features, num_classes)

    @property
    def label(self) -> str:
        """Human-readable identity for messages, e.g. ``TinyNet(r=0.86, w=1.0, d=1.2, 1000 classes)``."""
        return f"TinyNet(r={self.spec.r}, w={self.spec.w}, d={self.spec.d}, {self.num_classes} classes)"

    def forward_features(self, x):
        x = self.act(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        return self.act(self.bn2(self.conv_head(x)))

    def construct(self, x):
        x = ops.mean(self.forward_features(x), (2, 3))
        return self.classifier(self.dropout(x))
