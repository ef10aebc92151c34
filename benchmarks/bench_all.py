"""Every speed table in one run: the train step (kernels off/on) against timm's eager one, the training input
pipeline per core against timm's loader (with the cores-per-Ascend-910 calculation), then inference per variant
(MindSpore, onnxruntime, the C++ harness, timm eager and torch.compile), INT8 against float32 in the harness, and
where batch-1 time goes inside OpenVINO and onnxruntime (their profilers); timm's rows in the same run when a timm
python is given, every figure the median of --rounds rounds taken in turn. With --markdown / --readme the run writes its tables into those pages (between the
``<!-- bench:... -->`` markers), so every speed figure on them is produced by this command, not pasted.

    python benchmarks/bench_all.py --timm_python PY --rounds 5 --markdown docs/benchmarks.md --readme README.md
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import bench_infer, bench_int8, bench_pipeline, bench_train, profile_runtimes  # noqa: E402
from benchmarks.common import header, replace_block, table, variant_list  # noqa: E402

OURS_INFER = "MindSpore graph + CPU kernels, BN folded (eval.py)"  # what eval.py and predict.py run
HARNESS = "C++ harness (OpenVINO)"
MARGIN = 1.15  # each goal met by 15%: a ratio that holds on one CPU and one day, not just at the threshold


def _ratio(mine: list[dict], theirs: list[dict], metric: str) -> float | None:
    """Ours over the peer, higher is better (a time metric, ``*_ms``, the other way round)."""
    if not mine or not theirs or not mine[0].get(metric) or not theirs[0].get(metric):
        return None
    a, b = mine[0][metric], theirs[0][metric]
    return b / a if metric.endswith("_ms") else a / b


def _infer(ours: str, peer: str, metric: str):
    return lambda results, model: _ratio(*([r for r in results["infer"] if r["model"] == model and r["runtime"] == name]
                                           for name in (ours, peer)), metric)


def _train_vs(peer: str):
    return lambda results, model: _ratio(
        [r for r in results["train"] if r["model"] == model and (r["kernels"], r["amp"], r["mode"]) ==
         ("on", "O0", "graph")], [r for r in results["train"] if r["model"] == model and r["mode"] == peer],
        "img_per_sec")


def _int8(batch: int):
    """INT8 over float32 in the harness at ``batch`` (bench_int8's ratio: float32 ms / int8 ms)."""
    return lambda results, model: next((r["ratio"] for r in results.get("int8", [])
                                        if r["model"] == model and r["batch"] == batch), None)


def _pipeline(results: dict, model: str) -> float | None:
    """The smallest per-core ratio over the core counts measured."""
    ratios = [r["ours_img_per_sec"] / r["timm_img_per_sec"] for r in results.get("pipeline", [])
              if r["model"] == model and r.get("timm_img_per_sec")]
    return min(ratios) if ratios else None


# (goal, the ratio it needs, how to read it from the results): ours over the peer, higher is better
GOALS = [
    ("train step vs timm eager", 1.5 * MARGIN, _train_vs("timm eager")),
    ("training input pipeline per core vs timm's loader (worst core count)", 1.5, _pipeline),
    ("MindSpore inference (eval.py's graph), batch-1 latency vs timm eager", MARGIN,
     _infer(OURS_INFER, "timm eager", "bs1_ms")),
    ("MindSpore inference, batch-32 throughput vs torch.compile", MARGIN,
     _infer(OURS_INFER, "timm torch.compile", "bs32_img_per_sec")),
    ("C++ harness (OpenVINO), batch-1 latency vs onnxruntime", MARGIN, _infer(HARNESS, "onnxruntime", "bs1_ms")),
    ("C++ harness (OpenVINO), batch-32 throughput vs onnxruntime", MARGIN,
     _infer(HARNESS, "onnxruntime", "bs32_img_per_sec")),
    ("C++ harness, INT8 vs float32 at batch 1", MARGIN, _int8(1)),
    ("C++ harness, INT8 vs float32 at batch 32", MARGIN, _int8(32)),
]
TRAIN_KEYS = ["model", "size", "batch", "amp", "kernels", "mode", "compile_s", "ms_per_step", "img_per_sec", "peak",
              "rounds"]
INFER_KEYS = ["model", "size", "runtime", "bs1_ms", "bs32_img_per_sec", "peak", "rounds"]


def goal_table(results: dict[str, list[dict]], models: list[str]) -> str:
    """One row per goal, one column per model: ours over the peer (higher is better), '-' where a side is missing,
    marked 'below' under the ratio the goal needs."""
    sizes = {r["model"]: r["size"] for rows in results.values() for r in rows if "size" in r}
    columns = {m: f"{m.removeprefix('tinynet_').upper()}@{sizes.get(m, '?')}" for m in models}

    def cell(value: float | None, needed: float) -> str:
        return "-" if value is None else f"{value:.2f}x" + ("" if value >= needed else " (below)")

    rows = [{"goal (ours over the peer, higher is better)": goal, "needs": f"≥ {needed:.2f}x",
             **{columns[m]: cell(read(results, m), needed) for m in models}} for goal, needed, read in GOALS]
    return table(rows, list(rows[0]), "").strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="tinynet_e,tinynet_a", type=variant_list,
                        help="inference: the variants timed")
    parser.add_argument("--steps", default="8", help="timed train steps per row")
    parser.add_argument("--runs", default="200",
                        help="timed batch-1 inference runs per row (a quarter at batch 32): long enough that a "
                             "neighbour's burst on shared cores is a few runs, not the whole window")
    parser.add_argument("--rounds", default="5",
                        help="every table: each side measured this many times in turn, figures are the medians")
    parser.add_argument("--no_harness", action="store_true", help="skip the C++ harness rows")
    parser.add_argument("--timm_python", default="", help="python with torch + timm: timm rows measured in this run")
    parser.add_argument("--markdown", default="", help="write the full tables into this page's bench:tables block")
    parser.add_argument("--readme", default="", help="write the goal table into this page's bench:goals block")
    args = parser.parse_args(argv)
    timm = ["--timm_python", args.timm_python] if args.timm_python else []
    with tempfile.TemporaryDirectory() as tmp:
        train_json, infer_json = Path(tmp) / "train.json", Path(tmp) / "infer.json"
        code = bench_train.main(["--steps", args.steps, "--amp", "O0", "--rounds", args.rounds, *timm,
                                 "--json", str(train_json)])
        harness = ["--no_harness"] if args.no_harness else []
        code = code or bench_infer.main(["--variants", args.variants, "--runs", args.runs, "--rounds", args.rounds,
                                         *timm, *harness, "--json", str(infer_json)])
        if code:
            return code
        trained, inferred = json.loads(train_json.read_text()), json.loads(infer_json.read_text())
    models = args.variants.split(",")
    pipeline = bench_pipeline.measure(args.timm_python, tuple(models), rounds=int(args.rounds))
    int8 = [] if args.no_harness else bench_int8.measure(models, rounds=int(args.rounds))  # harness built above
    inside = [] if args.no_harness else profile_runtimes.measure(models)
    command = "python benchmarks/bench_all.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    machine = (f"{header('CPU').lstrip('# ')}; sgemm {trained['sgemm_gflops']:.0f} GFLOP/s (train run), "
               f"{inferred['sgemm_gflops']:.0f} (inference run)")
    goals = goal_table({"train": trained["train_step"], "infer": inferred["infer"], "pipeline": pipeline, "int8": int8},
                       models)
    full = "\n\n".join([
        f"Made by `{command}` on {machine}.",
        table(trained["train_step"], TRAIN_KEYS, "**Train step** (peak: FLOP/s, 6 x MACs per image, over the sgemm "
              "rate)"),
        bench_pipeline.report(pipeline),
        *([bench_int8.format_rows(int8)] if int8 else []),
        table(inferred["infer"], INFER_KEYS, f"**Inference** (median of the rounds; every runtime, timm included, "
              f"measured once per round in turn; peak: FLOP/s, 2 x MACs per image, over the sgemm rate, batch 1 / "
              f"32)"),
        *([profile_runtimes.format_rows(inside)] if inside else []),
    ])
    print(f"\n{goals}\n\n{full}")
    if args.markdown:
        replace_block(Path(args.markdown), "bench:tables", full)
    if args.readme:
        replace_block(Path(args.readme), "bench:goals", f"`{command}` ({machine}):\n\n{goals}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
