"""Every speed table in one run: the train step (kernels off/on, AMP, graph vs PyNative) with the data pipeline's
rate, then inference per variant (MindSpore, onnxruntime, the C++ harness), timm's in the same run when a timm
python is given. With --markdown / --readme the run writes its tables into those pages (between the
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
from benchmarks import bench_infer, bench_train  # noqa: E402
from benchmarks.common import header, replace_block, speedup, table  # noqa: E402

OURS_INFER = "MindSpore graph + CPU kernels, BN folded (eval.py)"  # what eval.py and predict.py run
HARNESS = "C++ harness (OpenVINO)"
# (goal, our row, the peer's row, metric); train rows are matched on kernels on, O0, graph mode
GOALS = [
    ("train step ≥ 1.5x timm eager", "train", "timm eager", "img_per_sec"),
    ("MindSpore inference (eval.py's graph), batch-1 latency vs timm eager", OURS_INFER, "timm eager", "bs1_ms"),
    ("MindSpore inference, batch-32 throughput vs torch.compile", OURS_INFER, "timm torch.compile", "bs32_img_per_sec"),
    ("C++ harness (OpenVINO), batch-1 latency vs onnxruntime", HARNESS, "onnxruntime", "bs1_ms"),
    ("C++ harness (OpenVINO), batch-32 throughput vs onnxruntime", HARNESS, "onnxruntime", "bs32_img_per_sec"),
]
TRAIN_KEYS = ["model", "size", "batch", "amp", "kernels", "mode", "compile_s", "ms_per_step", "img_per_sec", "peak"]
INFER_KEYS = ["model", "size", "runtime", "bs1_ms", "bs32_img_per_sec", "peak", "rounds"]


def goal_table(train: list[dict], infer: list[dict], models: list[str]) -> str:
    """One row per goal, one column per model: ours over the peer (higher is better), '-' where a side is missing."""
    def ratio(model: str, ours: str, peer: str, metric: str) -> str:
        if ours == "train":
            mine = [r for r in train
                    if r["model"] == model and (r["kernels"], r["amp"], r["mode"]) == ("on", "O0", "graph")]
            theirs = [r for r in train if r["model"] == model and r["mode"] == peer]
        else:
            mine, theirs = ([r for r in infer if r["model"] == model and r["runtime"] == name] for name in (ours, peer))
        if not mine or not theirs:
            return "-"
        return speedup(mine[0][metric], theirs[0][metric], higher_is_better=not metric.endswith("_ms"))
    sizes = {r["model"]: r["size"] for r in infer + train}
    columns = {m: f"{m.removeprefix('tinynet_').upper()}@{sizes.get(m, '?')}" for m in models}
    rows = [{"goal (ours over the peer, higher is better)": goal,
             **{columns[m]: ratio(m, ours, peer, metric) for m in models}} for goal, ours, peer, metric in GOALS]
    return table(rows, list(rows[0]), "").strip()

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="tinynet_e,tinynet_a", help="inference: the variants timed")
    parser.add_argument("--steps", default="8", help="timed train steps per row")
    parser.add_argument("--runs", default="30", help="timed batch-1 inference runs per row")
    parser.add_argument("--rounds", default="5", help="inference: every runtime measured this many times in turn")
    parser.add_argument("--no_harness", action="store_true", help="skip the C++ harness rows")
    parser.add_argument("--timm_python", default="", help="python with torch + timm: timm rows measured in this run")
    parser.add_argument("--markdown", default="", help="write the full tables into this page's bench:tables block")
    parser.add_argument("--readme", default="", help="write the goal table into this page's bench:goals block")
    args = parser.parse_args(argv)
    timm = ["--timm_python", args.timm_python] if args.timm_python else []
    with tempfile.TemporaryDirectory() as tmp:
        train_json, infer_json = Path(tmp) / "train.json", Path(tmp) / "infer.json"
        code = bench_train.main(["--steps", args.steps, "--amp", "O0", *timm, "--json", str(train_json)])
        harness = ["--no_harness"] if args.no_harness else []
        code = code or bench_infer.main(["--variants", args.variants, "--runs", args.runs, "--rounds", args.rounds,
                                         *timm, *harness, "--json", str(infer_json)])
        if code:
            return code
        trained, inferred = json.loads(train_json.read_text()), json.loads(infer_json.read_text())
    models = args.variants.split(",")
    command = "python benchmarks/bench_all.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    machine = (f"{header('CPU').lstrip('# ')}; sgemm {trained['sgemm_gflops']:.0f} GFLOP/s (train run), "
               f"{inferred['sgemm_gflops']:.0f} (inference run)")
    goals = goal_table(trained["train_step"], inferred["infer"], models)
    full = "\n\n".join([
        f"Made by `{command}` on {machine}.",
        table(trained["train_step"], TRAIN_KEYS, "**Train step** (peak: FLOP/s, 6 x MACs per image, over the sgemm "
              "rate)"),
        table(trained["pipeline"], ["size", "batch", "workers", "img_per_sec"], "**Data pipeline** (the training "
              "pipeline on the demo set's images, one process per row)"),
        table(inferred["infer"], INFER_KEYS, f"**Inference** (median of the rounds; every runtime, timm included, "
              f"measured once per round in turn; peak: FLOP/s, 2 x MACs per image, over the sgemm rate, batch 1 / "
              f"32)"),
    ])
    print(f"\n{goals}\n\n{full}")
    if args.markdown:
        replace_block(Path(args.markdown), "bench:tables", full)
    if args.readme:
        replace_block(Path(args.readme), "bench:goals", f"`{command}` ({machine}):\n\n{goals}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
