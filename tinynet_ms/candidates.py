"""The candidate networks of a cube search: the tiny-formula point, the inverse-giant-formula point, then (r, d)
points spread over the region the budget can build, each with w solved so the built network meets the budget.

Sampling: a Halton sequence (bases 2 and 3) over the box ``R_RANGE`` x ``D_RANGE`` in log scale — even coverage,
deterministic, no seed to record — keeps the points whose width for the budget, estimated with the paper's
``w = sqrt(c / (r^2 d))``, is in ``W_RANGE``; candidates are then picked farthest-first (each next point is the one
farthest, in log r / log d, from every point already taken, starting from the two formula points), so even four
candidates span the region. A picked point whose solved network misses the budget by more than the tolerance, or
needs a width outside ``W_RANGE``, is dropped for the next.

The formula points are always in. Width alone cannot always bring them within the tolerance of a MACs budget: at
small widths one channel step of an early, high-resolution stage moves the MACs by up to ~30%. Then the input
moves by the fewest pixels (up to 10%) and d by up to 10% that let w land within it, nearest first (``nudged``);
the table shows where the point ended up.

The budget is counted MACs (``tinynet_ms.design.count_macs``, at the search's number of classes) or a measured
latency (any ``cost(r, w, d)`` that grows with w, e.g. ``tinynet_ms.latency``). Under a latency budget the formula
points walk their formula's curve (r, d and the paper's w, all functions of c) until the measured latency meets
the budget; the sampled points solve w as under a MACs budget. The solver's quick probes and a candidate's longer
report can disagree (the report is the best of more samples): when the report misses the budget, the point is
solved once more for the budget scaled by how far they disagreed, and the nearer report kept.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tinynet_ms.design import W_RANGE as DESIGN_W_RANGE
from tinynet_ms.design import RWD, b0_macs, count_macs, formula_rd, published_knots, solve
from tinynet_ms.formula import Knot
from tinynet_ms.scaling import BASE_RESOLUTION, MIN_RESOLUTION, giant_multipliers, tiny_rd

R_RANGE = (0.2, 1.0)  # inputs of 44..224 px
D_RANGE = (0.2, 1.6)  # below 0.2 every stage has one block anyway
W_RANGE = (0.25, 1.6)  # narrower: most layers sit at the 8-channel floor; wider: the budget is spent on width alone
_POOL = 512
_LOG_C_RANGE = (math.log(1e-3), 0.0)  # formula points in latency searches: c from 0.1% of B0 to B0
_NUDGE = 0.1  # the most a formula point's input size or depth moves to meet a MACs budget (relative)


@dataclass(frozen=True)
class Candidate:
    source: str  # "tiny", "giant" or "sample"
    r: float
    w: float
    d: float
    cost: float  # what the budget is counted in: MACs, or measured milliseconds


def halton(index: int, base: int) -> float:
    """The ``index``-th (from 1) element of the van der Corput sequence in ``base``: evenly spread in (0, 1)."""
    value, scale = 0.0, 1.0
    while index:
        scale /= base
        index, digit = divmod(index, base)
        value += digit * scale
    return value


def _log_box(u: float, lo: float, hi: float) -> float:
    return math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))


def spread_points(c: float, taken: list[tuple[float, float]]) -> Iterator[tuple[float, float]]:
    """(r, d) points for the budget fraction ``c``, farthest-first from ``taken`` (which grows as they come)."""
    pool = []
    for i in range(1, _POOL + 1):
        r = round(_log_box(halton(i, 2), *R_RANGE), 3)
        d = round(_log_box(halton(i, 3), *D_RANGE), 3)
        if W_RANGE[0] <= math.sqrt(c / (r * r * d)) <= W_RANGE[1]:
            pool.append((r, d))

    def gap(p: tuple[float, float]) -> float:
        return min((math.log(p[0] / q[0])) ** 2 + (math.log(p[1] / q[1])) ** 2 for q in taken) if taken else 1.0

    while pool:
        best = max(pool, key=gap)
        pool.remove(best)
        yield best


def nudged(budget: float, r: float, d: float, cost: Callable[[RWD], float], tolerance: float) -> RWD:
    """(r, w, d) with w solved for ``budget``; when no width lands within ``tolerance``, the nearest (r', d')
    (input size within 10% in pixels, then d within 10%) whose solved width does, else the closest network found."""
    size = int(BASE_RESOLUTION * r)
    reach = max(1, int(_NUDGE * size))
    pixels = range(-reach, reach + 1)
    depths = (0.0, -0.05, 0.05, -_NUDGE, _NUDGE)
    closest: tuple[float, RWD] | None = None
    for px, dd in sorted(itertools.product(pixels, depths), key=lambda o: abs(o[0]) / size + abs(o[1])):
        r2 = r if px == 0 else round((size + px + 0.5) / BASE_RESOLUTION, 4)  # the middle of pixel size + px
        d2 = round(d * (1 + dd), 4) if dd else d
        if r2 * BASE_RESOLUTION < MIN_RESOLUTION:
            continue
        try:
            w = solve(budget, lambda t: (r2, t, d2), *DESIGN_W_RANGE, cost)
        except ValueError:  # this (r', d') cannot reach the budget at any width
            continue
        error = abs(cost((r2, w, d2)) / budget - 1)
        if error <= tolerance:
            return r2, w, d2
        if closest is None or error < closest[0]:
            closest = (error, (r2, w, d2))
    if closest is None:
        raise ValueError(f"no network near r={r}, d={d} reaches the budget {budget:,.0f}")
    return closest[1]


def plan(count: int, budget: float, cost: Callable[[RWD], float], c: float | None, tolerance: float,
         knots: list[Knot] | None = None, num_classes: int = 1000, macs_budget: bool = True,
         report: Callable[[RWD], float] | None = None) -> list[Candidate]:
    """``count`` candidates (at least the two formula points) for ``budget`` in ``cost``'s unit. ``c``: the budget
    as a fraction of B0's MACs; None (a latency budget): estimated from the tiny-formula point's counted MACs (it
    only places the sampled points). ``report``: what a found network's cost is reported as and held to the
    tolerance with (default ``cost``; a latency search solves with quick probes and reports a longer measurement)."""
    report = report or cost
    if count < 2:
        raise ValueError(f"a search needs at least 2 candidates (the tiny and giant formula points), got {count}")
    unit = "MACs" if macs_budget else "ms"
    found: list[Candidate] = []
    for method in ("tiny", "giant"):  # always in, at the widths their budget needs (design's full range)
        if macs_budget:
            r, d, _ = formula_rd(int(budget), method, knots, num_classes)
            r, w, d = nudged(budget, r, d, cost, tolerance)
            found.append(Candidate(method, r, w, d, report((r, w, d))))
        else:  # walk the formula's curve (r, w, d all from c) until the measured cost meets the budget
            (r, w, d), spent = _solve_reported(budget, _formula_curve(method, knots), _LOG_C_RANGE, cost, report,
                                               tolerance, unit)
            found.append(Candidate(method, r, w, d, spent))
    if c is None:
        c = count_macs(found[0].r, found[0].w, found[0].d, num_classes).macs / b0_macs(num_classes)
    taken = [(x.r, x.d) for x in found]
    for r, d in spread_points(c, taken):
        if len(found) == count:
            break
        try:
            (_, w, _), spent = _solve_reported(budget, lambda t, r=r, d=d: (r, t, d), W_RANGE, cost, report,
                                               tolerance, unit)
        except ValueError:  # the budget is outside what this (r, d) builds over W_RANGE
            continue
        if abs(spent / budget - 1) <= tolerance:  # w is in W_RANGE: solved there
            found.append(Candidate("sample", r, w, d, spent))
            taken.append((r, d))
    if len(found) < count:
        raise ValueError(f"only {len(found)} candidates fit the budget within {tolerance:.0%}: ask for fewer samples")
    return found


def _solve_reported(budget: float, point: Callable[[float], RWD], span: tuple[float, float],
                    cost: Callable[[RWD], float], report: Callable[[RWD], float], tolerance: float,
                    unit: str) -> tuple[RWD, float]:
    """The network ``point(t)`` solved for ``budget`` on ``cost``, and its ``report``ed cost. When the report misses
    the budget by more than ``tolerance`` (a latency probe read the network slower or faster than the longer
    report does), t is solved once more for the budget scaled by that disagreement, and the nearer of the two
    reports is kept. ``ValueError`` when the budget is out of the point's reach."""
    rwd = point(solve(budget, point, *span, cost, unit))
    spent = report(rwd)
    if abs(spent / budget - 1) > tolerance and spent != cost(rwd):  # (a count: no other width lands nearer)
        try:
            again = point(solve(budget * cost(rwd) / spent, point, *span, cost, unit))
        except ValueError:  # the corrected aim is out of reach: keep the first
            return rwd, spent
        spent_again = report(again)
        if abs(spent_again / budget - 1) < abs(spent / budget - 1):
            return again, spent_again
    return rwd, spent


def _formula_curve(method: str, knots: list[Knot] | None) -> Callable[[float], RWD]:
    """t = log c -> the formula's (r, w, d), w from the paper's sqrt(c / (r^2 d)) (tiny) or 1.1^phi (giant)."""
    def tiny(t: float) -> RWD:
        c = math.exp(t)
        r, d = (round(v, 4) for v in tiny_rd(c, list(knots or published_knots())))
        return r, round(math.sqrt(c / (r * r * d)), 4), d

    def giant(t: float) -> RWD:  # c = r^2 d w^2 = (1.15^2 * 1.2 * 1.1^2)^phi
        phi = t / math.log(1.15 ** 2 * 1.2 * 1.1 ** 2)
        r, w, d = giant_multipliers(phi)
        r = max(r, (MIN_RESOLUTION + 0.5) / BASE_RESOLUTION)
        return round(r, 4), round(w, 4), round(d, 4)

    return tiny if method == "tiny" else giant
