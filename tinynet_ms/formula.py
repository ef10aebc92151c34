"""The tiny formula's r(c) and d(c) as data: knots (c, r, d), piecewise linear in log c between them
(``scaling.tiny_rd``), fitted from observed best networks and kept in a JSON file.

    knots = fit_knots([(c, r, d), ...])      # the best network found at each budget fraction c
    write_formula("formula.json", knots, sources=[...])
    knots = read_formula("formula.json")     # python -m tinynet_ms.design --macs 40M --formula formula.json

The fit: the points sorted by c (points at the same c averaged), then r and d each made non-decreasing in c by
isotonic regression (pool adjacent violators, weighted by how many points were pooled). Why not a Gaussian
process, as the paper: a search gives one best point per budget, a few budgets in all, too few to fit a kernel's
length scale and noise, and a GP mean is not monotone; isotonic regression is monotone by construction, has no
parameters, and returns already monotone points unchanged, so fed the published TinyNet-A…E points it gives
back exactly design's default formula.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from tinynet_ms.atomic import atomic_path
from tinynet_ms.records import RecordError, read_json

FORMAT = "tinynet_ms.formula/1"
Knot = tuple[float, float, float]  # (c = MACs / EfficientNet-B0's MACs, r, d)


def isotonic(values: Sequence[float], weights: Sequence[float] | None = None) -> list[float]:
    """The non-decreasing sequence closest to ``values`` in weighted least squares (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for v, w in zip(values, weights or [1.0] * len(values)):
        blocks.append([float(v), float(w), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, n2 = blocks.pop()
            m1, w1, n1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return [m for m, _, n in blocks for _ in range(n)]


def fit_knots(points: Sequence[Knot]) -> list[Knot]:
    """Monotone knots through ``points`` (see the module docstring)."""
    if not points:
        raise ValueError("no points to fit")
    by_c: dict[float, list[Knot]] = {}
    for c, r, d in points:
        if not (0 < c and r > 0 and d > 0 and all(math.isfinite(v) for v in (c, r, d))):
            raise ValueError(f"a point needs positive finite c, r, d; got {(c, r, d)}")
        by_c.setdefault(float(c), []).append((c, r, d))
    cs = sorted(by_c)
    weights = [len(by_c[c]) for c in cs]
    rs = isotonic([sum(p[1] for p in by_c[c]) / len(by_c[c]) for c in cs], weights)
    ds = isotonic([sum(p[2] for p in by_c[c]) / len(by_c[c]) for c in cs], weights)
    return list(zip(cs, rs, ds))


def write_formula(path: str | Path, knots: Sequence[Knot], sources: Sequence[str]) -> Path:
    path = Path(path)
    record = {"format": FORMAT,
              "fit": "isotonic regression of r and d on c, piecewise linear in log c between the knots",
              "knots": [{"c": c, "r": r, "d": d} for c, r, d in knots], "sources": list(sources)}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    return path


def read_record(path: str | Path, fmt: str, written_by: str) -> dict:
    """A JSON object whose ``format`` is ``fmt`` (a formula or a cube search file): ``FileNotFoundError`` or
    ``RecordError`` (a ValueError) naming the file, and ``written_by`` (what makes one). Its fields are the
    caller's to check."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (written by {written_by})")
    record = read_json(path, f"it is not a {fmt} file (written by {written_by})")
    if not isinstance(record, dict) or record.get("format") != fmt:
        raise RecordError(f"{path}: not a {fmt} file (written by {written_by})")
    return record


def read_formula(path: str | Path) -> list[Knot]:
    """The knots of a formula file, checked: ``ValueError`` naming the file and what is wrong."""
    record = read_record(path, FORMAT, "python cube.py fit")
    try:
        knots = [(float(k["c"]), float(k["r"]), float(k["d"])) for k in record["knots"]]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: 'knots' must be a list of {{c, r, d}} numbers") from None
    if not knots:
        raise ValueError(f"{path}: 'knots' is empty")
    if any(not (c > 0 and r > 0 and d > 0) or not all(map(math.isfinite, (c, r, d))) for c, r, d in knots):
        raise ValueError(f"{path}: every knot needs positive finite c, r, d")
    knots.sort()
    if any(b[0] == a[0] or b[1] < a[1] or b[2] < a[2] for a, b in zip(knots, knots[1:])):
        raise ValueError(f"{path}: knots must have distinct c, with r and d never decreasing as c grows")
    return knots
