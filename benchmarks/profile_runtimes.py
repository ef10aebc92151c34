"""Where a batch-1 inference spends its time inside OpenVINO (the C++ harness's runtime, with its settings: f32,
latency hint) and onnxruntime (default session), per kind of node, from each runtime's own profiler, on the same
exported ONNX file (random weights, 1000 classes).

    python benchmarks/profile_runtimes.py [--models tinynet_e,tinynet_a] [--runs 200]

When the harness's margin over onnxruntime is small, this shows whether it is kernel against kernel (OpenVINO's
nodes' real time adds up to nearly its whole latency) or overhead around them. ``measure(...)`` returns the rows for
bench_all.py.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.common import table, variant_list  # noqa: E402
from tinynet_ms import create_model  # noqa: E402
from tinynet_ms.export import export_network  # noqa: E402
from tinynet_ms.models import VARIANTS  # noqa: E402

KEYS = ["model", "size", "runtime", "node", "kernel", "nodes", "us_per_inference", "share"]
TOP = 6  # rows per runtime and model; the rest summed as "other"


def _openvino(model: Path, x: np.ndarray, runs: int) -> dict[tuple[str, str], list[float]]:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(model)), "CPU", {
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True})
    request = compiled.create_infer_request()
    for _ in range(20):
        request.infer({0: x})
    totals: dict[tuple[str, str], list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for _ in range(runs):
        request.infer({0: x})
        for info in request.profiling_info:
            if info.status == info.Status.EXECUTED:
                totals[info.node_type, info.exec_type][0] += 1
                totals[info.node_type, info.exec_type][1] += info.real_time.total_seconds() * 1e6
    return totals


def _onnxruntime(model: Path, x: np.ndarray, runs: int, work: Path) -> dict[tuple[str, str], list[float]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(work / "ort")
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    for _ in range(20 + runs):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    starts = sorted(e["ts"] for e in events if e.get("name") == "model_run")
    events = [e for e in events if e["ts"] >= starts[20]]  # the warm-up runs' events dropped
    totals: dict[tuple[str, str], list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            key = (e["args"]["op_name"], e["args"].get("provider", "").replace("ExecutionProvider", ""))
            totals[key][0] += 1
            totals[key][1] += e["dur"]
    return totals


def _rows(name: str, size: int, runtime: str, totals: dict, runs: int) -> list[dict]:
    ranked = sorted(totals.items(), key=lambda kv: -kv[1][1])
    whole = sum(t for _, t in totals.values())
    rows = [{"model": name, "size": size, "runtime": runtime, "node": node, "kernel": kernel,
             "nodes": round(n / runs), "us_per_inference": round(t / runs, 1), "share": f"{100 * t / whole:.0f}%"}
            for (node, kernel), (n, t) in ranked[:TOP]]
    rest = ranked[TOP:]
    if rest:
        t = sum(v[1] for _, v in rest)
        rows.append({"model": name, "size": size, "runtime": runtime, "node": "other", "kernel": "",
                     "nodes": round(sum(v[0] for _, v in rest) / runs), "us_per_inference": round(t / runs, 1),
                     "share": f"{100 * t / whole:.0f}%"})
    rows.append({"model": name, "size": size, "runtime": runtime, "node": "total", "kernel": "",
                 "nodes": round(sum(v[0] for v in totals.values()) / runs), "us_per_inference": round(whole / runs, 1),
                 "share": "100%"})
    return rows


def measure(models: list[str], runs: int = 200) -> list[dict]:
    """The profile rows of ``models`` at batch 1: OpenVINO's, then onnxruntime's, per model. onnxruntime's
    counts only the time inside its kernels (its profiler's kernel events), OpenVINO's its nodes' real time."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            size = VARIANTS[name].image_size
            net = create_model(name, cpu_kernels=False)
            net.set_train(False)
            model = export_network(net, Path(tmp) / name, "ONNX", 1, size)
            x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
            rows += _rows(name, size, "OpenVINO (the harness's settings)", _openvino(model, x, runs), runs)
            rows += _rows(name, size, "onnxruntime", _onnxruntime(model, x, runs, Path(tmp)), runs)
    return rows


def format_rows(rows: list[dict]) -> str:
    return table(rows, KEYS, "**Batch-1 inference inside the runtimes** (each runtime's own profiler on the same ONNX "
                             f"file, per node kind, the top {TOP} and the rest; microseconds per inference. A profiler "
                             "slows its runtime, onnxruntime's by about 2x: compare the shares; the unprofiled times "
                             "are the Inference table's)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tinynet_e,tinynet_a", type=variant_list)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args(argv)
    print(format_rows(measure(args.models.split(","), args.runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
