"""Every speed table in one run: train step (kernels off/on, AMP, graph vs PyNative) with the data pipeline's
rate next to it, then inference per variant (MindSpore, onnxruntime, C++ harness).

    python benchmarks/bench_all.py [--steps 5] [--runs 10] [--rounds 3] [--no_harness] [--timm_python PY]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import bench_infer, bench_train  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="5", help="timed train steps per row")
    parser.add_argument("--runs", default="10", help="timed batch-1 inference runs per row")
    parser.add_argument("--rounds", default="1", help="inference: every runtime measured this many times in turn")
    parser.add_argument("--no_harness", action="store_true")
    parser.add_argument("--timm_python", default="", help="python with torch + timm: timm rows measured in this run")
    args = parser.parse_args(argv)
    timm = ["--timm_python", args.timm_python] if args.timm_python else []
    code = bench_train.main(["--steps", args.steps, "--pynative", *timm])
    return code or bench_infer.main(["--runs", args.runs, "--rounds", args.rounds, "--pynative", *timm]
                                    + (["--no_harness"] if args.no_harness else []))


if __name__ == "__main__":
    sys.exit(main())
