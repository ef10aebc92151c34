"""The architecture as data: EfficientNet-B0's stage table and a point (r, w, d) of the cube around it.

This is the only place the table is written; the builder, profiler, converter and design tools read it. The
published points (TinyNet-A…E) and everything known about them are the records in ``variants.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from tinynet_ms.scaling import round_channels, round_repeats, scale_resolution

BlockType = Literal["ds", "ir"]


@dataclass(frozen=True)
class StageSpec:
    """One stage of identical blocks; only the first block of a stage has ``stride``."""

    block: BlockType  # "ds": depthwise-separable, "ir": inverted residual (MBConv)
    repeats: int
    kernel: int
    stride: int
    expand: int
    channels: int
    se_ratio: float = 0.25  # SE reduce width as a fraction of the block's *input* channels


# EfficientNet-B0 (timm: ds_r1_k3_s1_e1_c16_se0.25, ir_r2_k3_s2_e6_c24_se0.25, ...).
EFFICIENTNET_B0: tuple[StageSpec, ...] = (
    StageSpec("ds", repeats=1, kernel=3, stride=1, expand=1, channels=16),
    StageSpec("ir", repeats=2, kernel=3, stride=2, expand=6, channels=24),
    StageSpec("ir", repeats=2, kernel=5, stride=2, expand=6, channels=40),
    StageSpec("ir", repeats=3, kernel=3, stride=2, expand=6, channels=80),
    StageSpec("ir", repeats=3, kernel=5, stride=1, expand=6, channels=112),
    StageSpec("ir", repeats=4, kernel=5, stride=2, expand=6, channels=192),
    StageSpec("ir", repeats=1, kernel=3, stride=1, expand=6, channels=320),
)
STEM_CHANNELS = 32  # fixed: TinyNet does not scale the stem
HEAD_CHANNELS = 1280


@dataclass(frozen=True)
class FeatureLevel:
    """A backbone output: the end of stage ``stage``, ``channels`` wide at 1/``reduction`` of the input size;
    ``index`` counts the levels as timm's ``out_indices`` do."""

    index: int
    stage: int
    channels: int
    reduction: int

    @property
    def module(self) -> str:
        return f"blocks.{self.stage}"


@dataclass(frozen=True)
class TinyNetSpec:
    """A point (r, w, d) of the model Rubik's cube around EfficientNet-B0."""

    r: float = 1.0
    w: float = 1.0
    d: float = 1.0

    def __post_init__(self) -> None:
        for key in ("r", "w", "d"):
            value = getattr(self, key)
            if not 0.0 < value <= 4.0:
                raise ValueError(f"TinyNet multiplier {key}={value} is outside (0, 4]")

    @property
    def image_size(self) -> int:
        return scale_resolution(self.r)

    @property
    def stages(self) -> tuple[StageSpec, ...]:
        return tuple(
            replace(s, repeats=round_repeats(s.repeats, self.d), channels=round_channels(s.channels, self.w))
            for s in EFFICIENTNET_B0
        )

    @property
    def feature_levels(self) -> tuple[FeatureLevel, ...]:
        """Where a backbone taps the blocks (timm's rule): the end of every stage after which the resolution
        halves, and of the last stage; for B0's table stages 0, 1, 2, 4, 6 at reductions 2, 4, 8, 16, 32."""
        stages, levels, reduction = self.stages, [], 2  # the stem has stride 2
        for i, stage in enumerate(stages):
            reduction *= stage.stride
            if i + 1 == len(stages) or stages[i + 1].stride > 1:
                levels.append(FeatureLevel(len(levels), i, stage.channels, reduction))
        return tuple(levels)

    @property
    def head_channels(self) -> int:
        return max(HEAD_CHANNELS, round_channels(HEAD_CHANNELS, self.w))

