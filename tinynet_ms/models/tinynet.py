"""TinyNet: EfficientNet-B0 scaled by (r, w, d), parameter names as in timm / huawei-noah checkpoints."""
from __future__ import annotations

from mindspore import nn

from tinynet_ms.models.arch import STEM_CHANNELS, StageSpec, TinyNetSpec
from tinynet_ms.models.variants import DEFAULT_PREPROCESSING, Preprocessing
from tinynet_ms.models.blocks import DepthwiseSeparable, InvertedResidual
from tinynet_ms.kernels import global_mean
from tinynet_ms.models.layers import Dropout, batch_norm, conv2d, dense, swish


def _make_block(stage: StageSpec, in_ch: int, stride: int, drop_path_rate: float, fast: bool) -> nn.Cell:
    if stage.block == "ds":
        return DepthwiseSeparable(in_ch, stage.channels, stage.kernel, stride, stage.se_ratio, drop_path_rate, fast)
    return InvertedResidual(in_ch, stage.channels, stage.kernel, stride, stage.expand, stage.se_ratio,
                            drop_path_rate, fast)


class TinyNet(nn.Cell):
    """conv_stem → bn1 → Swish → blocks.{stage}.{i} → conv_head → bn2 → Swish → mean → dropout → classifier.

    ``cpu_kernels``: built from tinynet_ms.kernels' fast CPU cells (same parameters); ``create_model`` decides it.
    ``preprocessing``: how images are turned into this network's input at eval time.
    """

    def __init__(self, spec: TinyNetSpec, num_classes: int = 1000, drop_rate: float = 0.2,
                 drop_path_rate: float = 0.0, cpu_kernels: bool = False,
                 preprocessing: Preprocessing = DEFAULT_PREPROCESSING) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.spec = spec
        self.num_classes = num_classes
        self.cpu_kernels = fast = bool(cpu_kernels)
        self.preprocessing = preprocessing
        self.conv_stem = conv2d(3, STEM_CHANNELS, 3, stride=2, fast=fast)
        self.bn1 = batch_norm(STEM_CHANNELS, fast, swish=True)
        self.act = swish(fast, after_bn=True)

        stages = spec.stages
        total_blocks = sum(s.repeats for s in stages)
        in_ch, idx, block_stages = STEM_CHANNELS, 0, []
        for stage in stages:
            blocks = []
            for i in range(stage.repeats):
                # Stochastic depth grows linearly with the global block index (timm).
                rate = drop_path_rate * idx / total_blocks
                blocks.append(_make_block(stage, in_ch, stage.stride if i == 0 else 1, rate, fast))
                in_ch, idx = stage.channels, idx + 1
            block_stages.append(nn.CellList(blocks))
        self.blocks = nn.CellList(block_stages)  # names blocks.{stage}.{i}.* as in timm
        self.num_blocks = total_blocks

        self.num_features = spec.head_channels
        self.conv_head = conv2d(in_ch, self.num_features, 1, fast=fast)
        self.bn2 = batch_norm(self.num_features, fast, swish=True)
        self.global_pool = global_mean(False, fast)
        self.dropout = Dropout(drop_rate)
        self.classifier = dense(self.num_features, num_classes)

    @property
    def noise_size(self) -> int:
        """Uniform noise values per sample that ``construct(x, noise)`` consumes in training."""
        return self.num_blocks + self.num_features

    @property
    def label(self) -> str:
        """Human-readable identity for messages, e.g. ``TinyNet(r=0.86, w=1.0, d=1.2, 1000 classes)``."""
        return f"TinyNet(r={self.spec.r}, w={self.spec.w}, d={self.spec.d}, {self.num_classes} classes)"

    def forward_features(self, x, noise=None):
        x = self.act(self.bn1(self.conv_stem(x)))
        idx = 0
        for stage in self.blocks:
            for block in stage:
                x = block(x, None if noise is None else noise[:, idx])
                idx += 1
        return self.act(self.bn2(self.conv_head(x)))

    def construct(self, x, noise=None):
        """Logits for images ``x``. ``noise`` (B, noise_size) uniform in [0, 1), training only: column i
        drives block i's drop-path, the rest the head dropout; omitted, an on-device RNG is used."""
        x = self.global_pool(self.forward_features(x, noise))
        return self.classifier(self.dropout(x, None if noise is None else noise[:, self.num_blocks:]))
