"""Scaling rules that turn EfficientNet-B0 into a TinyNet: resolution r, width w, depth d.

These mirror timm's EfficientNet builder exactly (``round_channels`` with the 0.9 round limit and
``depth_trunc='round'``); any deviation changes parameter counts and breaks pretrained weights.
"""
from __future__ import annotations

BASE_RESOLUTION = 224
CHANNEL_DIVISOR = 8


def make_divisible(value: float, divisor: int = CHANNEL_DIVISOR, round_limit: float = 0.9) -> int:
    """Nearest multiple of ``divisor`` (at least ``divisor``), never more than 10% below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return rounded


def round_channels(channels: int, width: float) -> int:
    """Channel count of a layer with ``channels`` in B0 after width scaling."""
    return make_divisible(channels * width)


def round_repeats(repeats: int, depth: float) -> int:
    """Block count of a stage with ``repeats`` blocks in B0 after depth scaling.

    Python's ``round`` (banker's rounding), as timm's ``depth_trunc='round'``; 'ceil' gives other networks.
    """
    return max(1, round(repeats * depth))


def scale_resolution(r: float) -> int:
    """Input resolution for resolution multiplier ``r`` (224·r truncated: 0.86 → 192, 0.475 → 106)."""
    return int(BASE_RESOLUTION * r)
