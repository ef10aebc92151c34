"""Twist the cube for your own data: search the best network for a budget by training candidates, and fit the tiny
formula's r(c) and d(c) from the best networks found at several budgets.

    python cube.py search DATA --macs 50M [--samples 8] [--epochs 5] [--device_num N] [--config C]
                              [--out DIR] [--key value ...]
    python cube.py search DATA --latency_ms 8 --latency_target mindspore|harness [...]
    python cube.py remeasure SEARCH_DIR [--seconds 30]    # a latency search's candidates, again
    python cube.py fit SEARCH_DIR [SEARCH_DIR ...] --out formula.json
    python cube.py fit --published --out formula.json      # TinyNet-A…E themselves
    python -m tinynet_ms.design --macs 40M --formula formula.json

``search`` (``src/search.py``) writes ``OUT/cube.json``: the budget and its candidates (r, w, d, structure,
counted MACs, measured latency for a latency budget, top-1, top-5, ...), then ``cube.md`` (the table),
``cube.png`` (top-1 against r, d and w) and ``best.yaml`` (the best network as a config). ``remeasure`` times a
latency search's candidates again on this machine, all in turn, and writes ``OUT/remeasure.json``. ``fit`` takes
the best candidate of each search directory (highest top-1; ties: the one nearest the budget) as one point (c =
its counted MACs / EfficientNet-B0's, r, d); ``tinynet_ms.formula.fit_knots`` makes r and d monotone in c.

    {"format": "tinynet_ms.cube/1", "budget_macs": 50000000, "search": {...},
     "candidates": [{"index": 1, "source": "tiny", "r": 0.6, "w": 0.7, "d": 0.6, "macs": 49800000,
                     "top1": 0.71, ...}, ...]}
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tinynet_ms.cli import UsageError, argument_type, positive_int, run_main
from tinynet_ms.design import b0_macs, parse_macs, published_knots
from tinynet_ms.formula import Knot, fit_knots, write_formula
from tinynet_ms.latency import LATENCY_TARGETS, REPORT_SECONDS
from src.search import SEARCH_FILE, Stopped, best_entry, load_search, remeasure, remeasure_table


def best_candidate(search_dir: str | Path) -> dict:
    """The best trained candidate of a search directory's ``cube.json`` (checked: ``load_search``)."""
    path = Path(search_dir) / SEARCH_FILE
    record = load_search(path, required=("r", "d", "macs"), scored=())  # the fields a fit reads, checked
    best = best_entry(record)
    if best is None:
        raise ValueError(f"{path}: no trained candidate (none has a top1): finish the search first")
    return best


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


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError(f"expected a positive number, got {text}")
    return value


def search_command(args: argparse.Namespace, overrides: list[str]) -> None:
    from tinynet_ms.data import list_classes
    from src.search import ROOT, Search, check_overrides, resolved_config, run_search

    if (args.macs is None) == (args.latency_ms is None):
        raise UsageError("give the budget as --macs M or as --latency_ms L (not both)")
    if args.latency_ms is None and args.latency_target:
        raise UsageError("--latency_target goes with --latency_ms")
    check_overrides(overrides)
    data = Path(args.data).resolve()
    config = Path(args.config) if args.config else ROOT / "configs" / "base.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"--config {config} not found")
    # num_classes: the class folders of DATA/train, unless given
    given = any(a.partition("=")[0] == "--num_classes" for a in overrides)
    extra = [] if given or not (data / "train").is_dir() else ["--num_classes", str(len(list_classes(data / "train")))]
    resolved = resolved_config(str(config.resolve()), [*overrides, *extra, "--model", "tinynet"])
    search = Search(data=str(data), config=str(config.resolve()), overrides=overrides, epochs=args.epochs,
                    samples=args.samples, device_num=args.device_num, num_classes=int(resolved["num_classes"]),
                    budget_macs=args.macs, budget_ms=args.latency_ms,
                    latency_target=(args.latency_target or "mindspore") if args.latency_ms else None,
                    latency_runs=args.latency_runs, out=Path(args.out).resolve(),
                    device_target=resolved["device_target"])
    run_search(search)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python cube.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    search_cmd = commands.add_parser(
        "search", allow_abbrev=False, help="train candidate networks for a budget and report the best",
        description="Plan candidates for the budget (the tiny and inverse-giant formula points, then sampled (r, d) "
                    "points with w solved to the budget), train and evaluate each with train.py, and write "
                    "OUT/cube.json, cube.md, cube.png and best.yaml. Re-run the same command to continue an "
                    "interrupted search. Other --key value arguments are config overrides for every candidate.")
    search_cmd.add_argument("data", help="dataset root with train/<class>/* and val/<class>/*")
    search_cmd.add_argument("--macs", type=argument_type(parse_macs), help="MACs budget, e.g. 50M")
    search_cmd.add_argument("--latency_ms", type=argument_type(_positive_float),
                            help="instead of --macs: batch-1 latency budget in milliseconds, measured on this machine")
    search_cmd.add_argument("--latency_target", choices=LATENCY_TARGETS,
                            help="what --latency_ms measures: mindspore (eval.py's graph) or harness (the C++ "
                                 "harness on the ONNX export, OpenVINO); default mindspore")
    search_cmd.add_argument("--latency_runs", type=argument_type(positive_int), default=50,
                            help="batch-1 runs per latency measurement (the median counts; default 50)")
    search_cmd.add_argument("--samples", type=argument_type(positive_int), default=8,
                            help="candidates, the two formula points included (default 8)")
    search_cmd.add_argument("--epochs", type=argument_type(positive_int), default=5,
                            help="training epochs per candidate (default 5)")
    search_cmd.add_argument("--device_num", type=argument_type(positive_int), default=1,
                            help="devices per candidate; > 1 trains data-parallel with msrun (default 1)")
    search_cmd.add_argument("--config", default="", help="training config (default configs/base.yaml)")
    search_cmd.add_argument("--out", default="output/cube_search", help="search directory (default output/cube_search)")
    again_cmd = commands.add_parser(
        "remeasure", help="measure a latency search's candidates again, on this machine, now",
        description="Time every candidate of a latency search again as the search did (its target, runs, device), "
                    "the candidates in turn so a slow stretch of the machine falls on all alike, and print each "
                    "reported latency beside its re-measurement; writes SEARCH_DIR/remeasure.json. Run it with "
                    "nothing else on the machine.")
    again_cmd.add_argument("search_dir", help="the directory of a latency search (its --out)")
    again_cmd.add_argument("--seconds", type=argument_type(_positive_float), default=REPORT_SECONDS,
                           help=f"how long each candidate is sampled (default {REPORT_SECONDS:g}, as long as a "
                                f"search reports each)")
    fit_cmd = commands.add_parser("fit", help="fit r(c), d(c) through the best candidates of searches")
    fit_cmd.add_argument("search_dirs", nargs="*", help="directories holding a cube search's cube.json")
    fit_cmd.add_argument("--published", action="store_true", help="add the published TinyNet-A..E points")
    fit_cmd.add_argument("--out", required=True, help="formula file to write (JSON)")
    args, overrides = parser.parse_known_args(argv)
    if args.command != "search" and overrides:
        parser.error(f"unrecognized arguments: {' '.join(overrides)}")

    def run() -> None:
        if args.command == "search":
            search_command(args, overrides)
            return
        if args.command == "remeasure":
            print(remeasure_table(remeasure(Path(args.search_dir).resolve(), args.seconds)))
            return
        if not args.search_dirs and not args.published:
            raise UsageError("give search directories and/or --published")
        knots = fit(args.search_dirs, args.out, args.published)
        print("   c        r       d")
        for c, r, d in knots:
            print(f"{c:8.4f} {r:8.4f} {d:7.4f}")
        print(f"wrote {args.out}: python -m tinynet_ms.design --macs M --formula {args.out}")

    try:
        return run_main(run)
    except Stopped as stop:
        print(f"cube search stopped by {stop}: run the same command again to continue (finished candidates are "
              f"kept, the interrupted one resumes from its last epoch)", file=sys.stderr)
        return 128 + stop.signum


if __name__ == "__main__":
    sys.exit(main())
