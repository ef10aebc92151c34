"""Scaling rules that turn EfficientNet-B0 into a TinyNet: resolution r, width w, depth d.

These mirror timm's EfficientNet builder exactly (``round_channels`` with the 0.9 round limit and
``depth_trunc='round'``); any deviation changes parameter counts and breaks pretrained weights.
"""
from __future__ import annotations

import bisect
import math

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


# --- Twisting the cube under a MACs budget -------------------------------------------------------------
# EfficientNet's compound scaling (Tan & Le 2019): d = alpha^phi, w = beta^phi, r = gamma^phi; applied with
# phi < 0 it is the "inverse giant formula" the TinyNet paper compares against.
GIANT_ALPHA, GIANT_BETA, GIANT_GAMMA = 1.2, 1.1, 1.15
MIN_RESOLUTION = 32  # one pixel after the network's five stride-2 stages
MIN_DEPTH = 0.1  # every stage keeps at least one block anyway (round_repeats)


def giant_multipliers(phi: float) -> tuple[float, float, float]:
    """(r, w, d) of the compound-scaling point ``phi`` (phi = 0 is EfficientNet-B0)."""
    return GIANT_GAMMA ** phi, GIANT_BETA ** phi, GIANT_ALPHA ** phi


def _interp_log(c: float, cs: list[float], ys: list[float]) -> float:
    """Piecewise linear in log c through (cs, ys); outside the knots the end segments continue."""
    x, xs = math.log(c), [math.log(v) for v in cs]
    if x in xs:  # exactly the knot's value, not a float re-computation of it
        return ys[xs.index(x)]
    i = min(max(bisect.bisect_right(xs, x), 1), len(xs) - 1)
    t = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
    return ys[i - 1] + t * (ys[i] - ys[i - 1])


def tiny_rd(c: float, knots: list[tuple[float, float, float]]) -> tuple[float, float]:
    """The tiny formula's resolution and depth multipliers (r, d) for a budget ``c`` (fraction of B0's MACs).

    ``knots`` are (c, r, d) points — the published TinyNet-A…E, or a fitted formula (``tinynet_ms.formula``) —
    with r and d never decreasing as c grows. Between knots r and d are linear in log c — monotone, and exactly the published r, d at each knot.
    Outside [c_E, c_A] the first/last segment continues (smaller budgets keep shrinking r and d at TinyNet-E→D's
    rate instead of width alone), floored at a 32-px input and d = 0.1.
    """
    if c <= 0:
        raise ValueError(f"MACs budget fraction must be positive, got {c}")
    knots = sorted(knots)
    cs, rs, ds = zip(*knots)
    if any(b < a for a, b in zip(rs, rs[1:])) or any(b < a for a, b in zip(ds, ds[1:])):
        raise ValueError("tiny-formula knots must have r and d increasing with c (never decreasing)")
    r = max(_interp_log(c, list(cs), list(rs)), (MIN_RESOLUTION + 0.5) / BASE_RESOLUTION)
    d = max(_interp_log(c, list(cs), list(ds)), MIN_DEPTH)
    return r, d
