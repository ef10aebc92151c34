"""Design a TinyNet for a MACs budget: the paper's tiny formula, or EfficientNet's inverse giant formula.

    python -m tinynet_ms.design --macs 40M [--method tiny|giant] [--formula formula.json] [--json]
    python -m tinynet_ms.design --plot cube.png          # MACs vs r/d/w for both formulas, A…E marked

Tiny formula: c = budget / B0's MACs; r(c) and d(c) from the published TinyNet-A…E points
(``scaling.tiny_rd``), or from your own fitted formula (``--formula``, written by ``python cube.py fit``); then w is solved so that the *built* network's counted MACs come closest to the
budget after channel and depth rounding. Giant formula: phi solved the same way, with d = 1.2^phi,
w = 1.1^phi, r = 1.15^phi; r and d are kept and w is then solved as above (it stays near 1.1^phi). The solver counts
from the architecture table (``profile.count_spec``, thousands of networks per design); the result's params and
MACs are counted again on the built network (``profile.profile_model``) and must agree.
The result builds with ``create_model("tinynet", r=R, w=W, d=D)``, or in a config: model: tinynet, r, w, d.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache

import numpy as np

from tinynet_ms.cli import UsageError, argument_type, run_main
from tinynet_ms.formula import Knot, read_formula
from tinynet_ms.models import VARIANTS, TinyNetSpec
from tinynet_ms.profile import Count, count_spec, profile_model
from tinynet_ms.scaling import giant_multipliers, tiny_rd

METHODS = ("tiny", "giant")
W_RANGE = (0.05, 2.0)
_PHI_RANGE = (-12.0, 0.0)
_GRID = 4000  # candidate points along w / phi; neighbouring networks are found exactly by bisection


@dataclass(frozen=True)
class Design:
    method: str
    budget_macs: int
    macs: int  # counted on the built network
    error: float  # macs / budget - 1
    r: float
    w: float
    d: float
    image_size: int
    repeats: list[int]
    channels: list[int]
    params: int
    c: float  # budget as a fraction of EfficientNet-B0's counted MACs
    phi: float | None = None  # giant formula only

    def overrides(self) -> str:
        return f"--model tinynet --r {self.r:g} --w {self.w:g} --d {self.d:g}"


def _structure(r: float, w: float, d: float) -> tuple:
    spec = TinyNetSpec(r=r, w=w, d=d)
    return spec.image_size, tuple((s.repeats, s.channels) for s in spec.stages), spec.head_channels


def count_macs(r: float, w: float, d: float, num_classes: int = 1000) -> Count:
    """Params and MACs of the network (r, w, d) builds, from the architecture table (``profile.count_spec``)."""
    return count_spec(TinyNetSpec(r=r, w=w, d=d), num_classes)


@lru_cache(maxsize=None)
def b0_macs(num_classes: int = 1000) -> int:
    return count_macs(1.0, 1.0, 1.0, num_classes).macs


@lru_cache(maxsize=None)
def published_knots() -> tuple[tuple[float, float, float], ...]:
    """(c, r, d) of TinyNet-A…E, c from their counted MACs."""
    return tuple(sorted((count_macs(s.r, s.w, s.d).macs / b0_macs(), s.r, s.d) for s in (v.spec for v in VARIANTS.values())))


def _shortest_decimal(lo: float, hi: float) -> float:
    """The value in [lo, hi] with the fewest decimals (0.51 rather than 0.5137…): same network, readable."""
    for digits in range(0, 7):
        step = Decimal(1).scaleb(-digits)
        candidate = (Decimal(repr(lo)) / step).to_integral_value(rounding="ROUND_CEILING") * step
        if float(candidate) <= hi:
            return float(candidate)
    return lo


RWD = tuple[float, float, float]


def macs_cost(num_classes: int = 1000) -> Callable[[RWD], float]:
    """The solver's default cost: counted MACs of the built network."""
    return lambda rwd: count_macs(*rwd, num_classes).macs


def per_network(cost: Callable[[RWD], float]) -> Callable[[RWD], float]:
    """``cost`` asked once per distinct network (points that build the same network share it): a measured
    latency is expensive and, asked twice, would differ."""
    known: dict[tuple, float] = {}

    def cached(rwd: RWD) -> float:
        s = _structure(*rwd)
        if s not in known:
            known[s] = cost(rwd)
        return known[s]
    return cached


def solve(budget: float, point: Callable[[float], RWD], lo: float, hi: float,
          cost: Callable[[RWD], float] | None = None, unit: str = "MACs") -> float:
    """The parameter t in [lo, hi] whose built network ``point(t) -> (r, w, d)`` has the ``cost`` (default:
    counted MACs) closest to ``budget``. The cost never decreases with t, so bisect over the distinct networks met
    along a fine grid; each network's cost is asked for once (a measured latency is expensive)."""
    cost = cost or macs_cost()
    grid = [float(t) for t in np.linspace(lo, hi, _GRID)]
    known: dict[tuple, float] = {}  # cost per distinct network

    def structure(t: float) -> tuple | None:
        try:
            return _structure(*point(t))
        except ValueError:  # a multiplier outside (0, 4]
            return None

    def cost_at(t: float, s: tuple) -> float:
        if s not in known:
            known[s] = cost(point(t))
        return known[s]

    def show(value: float) -> str:
        return f"{value:,.0f} {unit}" if unit == "MACs" else f"{value:.3g} {unit}"

    # The range's two ends first: a budget outside them is refused without walking the grid (a search tries many
    # (r, d) points that cannot reach its budget).
    first_valid = next(((t, s) for t in grid if (s := structure(t)) is not None), None)
    if first_valid is None:
        raise ValueError("no valid network in the search range")
    smallest = cost_at(*first_valid)
    if budget < smallest:  # before the largest is measured: most unreachable points fail here
        raise ValueError(f"budget {show(budget)} is below the smallest network this formula builds ({show(smallest)})")
    largest = cost_at(*next((t, s) for t in reversed(grid) if (s := structure(t)) is not None))
    if budget > largest:
        raise ValueError(f"budget {show(budget)} is above the largest network this formula builds ({show(largest)})")
    runs: list[tuple[float, float, tuple]] = []  # (first t, last t, structure) of each distinct network
    for t in grid:
        s = structure(t)
        if s is None:
            continue
        if runs and runs[-1][2] == s:
            runs[-1] = (runs[-1][0], t, s)
        else:
            runs.append((t, t, s))

    def at(i: int) -> float:
        return cost_at(runs[i][0], runs[i][2])

    first, last = 0, len(runs) - 1
    bisect = False
    while last - first > 1:  # invariant: at(first) <= budget <= at(last)
        # Interpolation between the bracket's costs (few networks built: costs are smooth in t), and a bisection
        # step whenever the previous step did not halve the bracket, so it never crawls.
        span, low, high = last - first, at(first), at(last)
        guess = first + round((budget - low) / (high - low) * span) if high > low and not bisect else first + span // 2
        mid = min(max(guess, first + 1), last - 1)
        if at(mid) <= budget:
            first = mid
        else:
            last = mid
        bisect = 2 * (last - first) > span
    best = min((first, last), key=lambda i: abs(at(i) - budget))
    t = _shortest_decimal(runs[best][0], runs[best][1])
    if _structure(*point(t)) != runs[best][2]:  # between grid points another network may start
        t = runs[best][0]
    return t


def _printable(rwd: tuple[float, float, float]) -> tuple[float, float, float]:
    return tuple(float(f"{v:.6g}") for v in rwd)


def formula_rd(budget_macs: float, method: str = "tiny", knots: list[Knot] | None = None,
               num_classes: int = 1000) -> tuple[float, float, float | None]:
    """(r, d, phi) a formula gives for the budget (phi: the giant formula's; None for tiny); w is solved next."""
    if method not in METHODS:
        raise ValueError(f"method '{method}' is not one of {', '.join(METHODS)}")
    if budget_macs <= 0:
        raise ValueError(f"MACs budget must be positive, got {budget_macs}")
    c = budget_macs / b0_macs(num_classes)
    if c > 1:
        raise ValueError(f"budget {budget_macs:,.0f} MACs is above EfficientNet-B0's {b0_macs(num_classes):,}: both "
                         f"formulas shrink B0; for larger networks use EfficientNet's compound scaling (phi > 0)")
    if method == "tiny":
        r, d = (round(v, 4) for v in tiny_rd(c, list(knots or published_knots())))  # printable, and what is built
        return r, d, None
    # phi from the budget, then, as for the tiny formula, w settles the rounding (it stays near 1.1^phi):
    # both formulas land on the budget equally closely, so they are compared at the same MACs.
    phi = solve(budget_macs, lambda t: _printable(giant_multipliers(t)), *_PHI_RANGE, macs_cost(num_classes))
    r, _, d = _printable(giant_multipliers(phi))
    return r, d, phi


def network_design(method: str, budget_macs: int, r: float, w: float, d: float, num_classes: int = 1000,
                   phi: float | None = None) -> Design:
    """The record of the network (r, w, d) built for a budget: its structure, and its params and MACs counted on
    the built network (checked against the table count the solver used)."""
    prof = profile_model("tinynet", r=r, w=w, d=d, num_classes=num_classes)
    expected = count_macs(r, w, d, num_classes)
    if (prof.params, prof.macs) != (expected.params, expected.macs):
        raise RuntimeError(f"tinynet(r={r}, w={w}, d={d}): the built network has {prof.params:,} params and "
                           f"{prof.macs:,} MACs, the table count {expected.params:,} and {expected.macs:,}")
    spec = TinyNetSpec(r=r, w=w, d=d)
    return Design(method=method, budget_macs=int(budget_macs), macs=prof.macs, error=prof.macs / budget_macs - 1,
                  r=r, w=w, d=d, image_size=spec.image_size, repeats=[s.repeats for s in spec.stages],
                  channels=[s.channels for s in spec.stages], params=prof.params,
                  c=budget_macs / b0_macs(num_classes), phi=phi)


def design(budget_macs: int, method: str = "tiny", knots: list[Knot] | None = None,
           num_classes: int = 1000) -> Design:
    """The network for ``budget_macs`` (conv + dense MACs for one image, ``num_classes`` classes); the tiny formula
    through ``knots`` (c, r, d), by default the published TinyNet-A…E points."""
    r, d, phi = formula_rd(budget_macs, method, knots, num_classes)
    w = solve(budget_macs, lambda t: (r, t, d), *W_RANGE, macs_cost(num_classes))
    return network_design(method, budget_macs, r, w, d, num_classes, phi)


def parse_macs(text: str) -> int:
    """'40M', '1.2G', '40e6', '40000000' → MACs."""
    match = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([kKmMgG]?)\s*", text)
    if not match:
        raise ValueError(f"cannot read MACs budget '{text}' (examples: 40M, 0.3G, 24000000)")
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match[2].lower()]
    return int(round(float(match[1]) * scale))


def plot_cube(png: str, budgets: list[int]) -> str:
    """MACs vs resolution, depth and width multipliers for both formulas, TinyNet-A…E marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    designs = {m: [design(b, m) for b in budgets] for m in METHODS}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharex=True)
    for ax, key, label in zip(axes, ("r", "d", "w"), ("resolution r", "depth d", "width w")):
        for method, style in zip(METHODS, ("-o", "--s")):
            ax.plot([x.macs / 1e6 for x in designs[method]], [getattr(x, key) for x in designs[method]], style,
                    ms=3, label=f"{method} formula")
        for name, spec in ((n, v.spec) for n, v in VARIANTS.items()):
            macs = count_macs(spec.r, spec.w, spec.d).macs / 1e6
            ax.plot(macs, getattr(spec, key), "k*", ms=10)
            ax.annotate(name[-1].upper(), (macs, getattr(spec, key)), textcoords="offset points", xytext=(4, 4))
        ax.set_xscale("log")
        ticks = [t for t in (10, 15, 25, 50, 100, 200, 400) if budgets[0] / 2e6 <= t <= budgets[-1] / 5e5]
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("counted MACs (M)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("Twisting the cube: TinyNet's tiny formula vs EfficientNet's inverse giant formula (★ = TinyNet-A…E)")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def _describe(x: Design) -> str:
    lines = [f"{x.method} formula for {x.budget_macs / 1e6:.1f}M MACs (c = {x.c:.4f} of EfficientNet-B0)",
             f"  r = {x.r:.4g}  w = {x.w:.4g}  d = {x.d:.4g}" + (f"  (phi = {x.phi:.4g})" if x.phi is not None else ""),
             f"  input {x.image_size}x{x.image_size}; stage repeats {x.repeats}; stage channels {x.channels}",
             f"  params {x.params:,}; counted MACs {x.macs:,} ({x.error:+.2%} vs budget)",
             f"  build: create_model('tinynet', r={x.r:g}, w={x.w:g}, d={x.d:g})",
             f"  config: model: tinynet, r: {x.r:g}, w: {x.w:g}, d: {x.d:g} (image_size: 0 = {x.image_size}); "
             f"or override: {x.overrides()}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinynet_ms.design", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--macs", type=argument_type(parse_macs), help="budget, e.g. 40M, 0.3G, 24000000")
    parser.add_argument("--method", choices=METHODS, default="tiny",
                        help="tiny: the paper's formula (r, d from the budget, then w solved); giant: EfficientNet's "
                             "inverse d = 1.2^phi, w = 1.1^phi, r = 1.15^phi (default tiny)")
    parser.add_argument("--formula", metavar="JSON", default="",
                        help="tiny formula: r(c), d(c) from this file (python cube.py fit) instead of "
                             "the published TinyNet-A..E points")
    parser.add_argument("--json", action="store_true", help="print the design (r, w, d, params, MACs, ...) as JSON")
    parser.add_argument("--plot", metavar="PNG", help="plot both formulas over --plot_range instead")
    parser.add_argument("--plot_range", type=argument_type(_parse_range), default="12M:400M:16",
                        help="first:last:points (log-spaced)")
    args = parser.parse_args(argv)
    if not args.plot and args.macs is None:
        parser.error("--macs is required (or --plot)")

    def run() -> None:
        try:
            if args.plot:
                print(plot_cube(args.plot, args.plot_range))
                return
            if args.formula and args.method != "tiny":
                raise ValueError("--formula is the tiny formula's: it cannot be used with --method giant")
            result = design(args.macs, args.method, read_formula(args.formula) if args.formula else None)
        except ValueError as exc:  # a budget outside what the formula can build: the argument's fault
            raise UsageError(str(exc)) from None
        print(json.dumps(asdict(result)) if args.json else _describe(result))

    return run_main(run)


def _parse_range(text: str) -> list[int]:
    """'12M:400M:16' → 16 log-spaced budgets from 12M to 400M."""
    parts = text.split(":")
    if len(parts) != 3 or not parts[2].isdigit() or int(parts[2]) < 2:
        raise ValueError(f"expected first:last:points (e.g. 12M:400M:16), got '{text}'")
    return [int(b) for b in np.geomspace(parse_macs(parts[0]), parse_macs(parts[1]), int(parts[2]))]

if __name__ == "__main__":
    sys.exit(main())
