"""Twist the cube for your own data: fit the tiny formula's r(c) and d(c) from the best networks found at several
MACs budgets, and design from it.

    python -m tinynet_ms.cube fit SEARCH_DIR [SEARCH_DIR ...] --out formula.json
    python -m tinynet_ms.cube fit --published --out formula.json      # TinyNet-A…E themselves
    python -m tinynet_ms.design --macs 40M --formula formula.json

A search directory holds ``cube.json``: the budget and its trained candidates (r, w, d, counted MACs, top-1, ...).
The best candidate of each (highest top-1; ties: the one nearest the budget) gives one point
(c = its counted MACs / EfficientNet-B0's, r, d); ``tinynet_ms.formula.fit_knots`` makes r and d monotone in c.
``cube search`` (training the candidates) is not written yet: the file format below is what it will write.

    {"format": "tinynet_ms.cube/1", "budget_macs": 50000000,
     "candidates": [{"r": 0.6, "w": 0.7, "d": 0.6, "macs": 49800000, "top1": 0.71, ...}, ...]}
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tinynet_ms.cli import UsageError, run_main
from tinynet_ms.design import b0_macs, published_knots
from tinynet_ms.formula import Knot, fit_knots, read_record, write_formula

SEARCH_FORMAT = "tinynet_ms.cube/1"
SEARCH_FILE = "cube.json"


def best_candidate(search_dir: str | Path) -> dict:
    """The best trained candidate of a search directory's ``cube.json`` (checked: ``ValueError`` naming the
    file and what is wrong)."""
    path = Path(search_dir) / SEARCH_FILE
    record = read_record(path, SEARCH_FORMAT, "a cube search: a search directory holds one")
    budget = record.get("budget_macs")
    done = [c for c in record.get("candidates", []) if isinstance(c, dict) and c.get("top1") is not None]
    if not isinstance(budget, (int, float)) or budget <= 0:
        raise ValueError(f"{path}: 'budget_macs' must be a positive number")
    if not done:
        raise ValueError(f"{path}: no trained candidate (none has a top1): finish the search first")
    for c in done:
        if not all(isinstance(c.get(k), (int, float)) and c[k] > 0 for k in ("r", "d", "macs")):
            raise ValueError(f"{path}: every trained candidate needs positive r, d and macs")
    return max(done, key=lambda c: (c["top1"], -abs(c["macs"] - budget)))


def search_points(search_dirs: Sequence[str | Path]) -> list[Knot]:
    """One (c, r, d) per search directory, from its best candidate."""
    return [(best["macs"] / b0_macs(), float(best["r"]), float(best["d"]))
            for best in map(best_candidate, search_dirs)]


def fit(search_dirs: Sequence[str | Path], out: str | Path, published: bool = False) -> list[Knot]:
    """Fit and write the formula file; the knots."""
    points = list(published_knots()) if published else []
    points += search_points(search_dirs)
    sources = (["published TinyNet-A..E"] if published else []) + [str(Path(d).resolve()) for d in search_dirs]
    knots = fit_knots(points)
    write_formula(out, knots, sources)
    return knots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinynet_ms.cube", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    fit_cmd = commands.add_parser("fit", help="fit r(c), d(c) through the best candidates of searches")
    fit_cmd.add_argument("search_dirs", nargs="*", help="directories holding a cube search's cube.json")
    fit_cmd.add_argument("--published", action="store_true", help="add the published TinyNet-A..E points")
    fit_cmd.add_argument("--out", required=True, help="formula file to write (JSON)")
    args = parser.parse_args(argv)

    def run() -> None:
        if not args.search_dirs and not args.published:
            raise UsageError("give search directories and/or --published")
        knots = fit(args.search_dirs, args.out, args.published)
        print("   c        r       d")
        for c, r, d in knots:
            print(f"{c:8.4f} {r:8.4f} {d:7.4f}")
        print(f"wrote {args.out}: python -m tinynet_ms.design --macs M --formula {args.out}")

    return run_main(run)


if __name__ == "__main__":
    sys.exit(main())
