"""Inference speed per variant: MindSpore graph mode (with MindSpore's convs, and with tinynet_ms's CPU kernels;
PyNative optional), onnxruntime and the C++ harness (its OpenVINO and OpenCV DNN backends, ONNX), side by side —
latency at batch 1 and throughput at batch 32.

    python benchmarks/bench_infer.py [--variants tinynet_a,...,tinynet_e] [--runs 20] [--rounds 3] [--batch 32] [--pynative]
                                     [--no_harness] [--json out.json]

Every runtime is timed on its forward pass only (host input in, host logits out), after a warm-up run. The
harness is built first (ascend310_infer/build.sh) and reports its own timing (time_Result/); onnxruntime runs in a
process of its own (ort_speed.py), as timm does (timm_speed.py).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import mindspore as ms
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.common import (header, median_rows, peak_pct, sgemm_gflops, speedup, table, timm_speed,  # noqa: E402
                               variant_list)
from tinynet_ms import create_model, list_models  # noqa: E402
from tinynet_ms.export import export_network  # noqa: E402
from tinynet_ms.latency import harness_seconds, median_ms  # noqa: E402
from tinynet_ms.models.fold import fold_batchnorm  # noqa: E402
from tinynet_ms.models import VARIANTS  # noqa: E402
from tinynet_ms.profile import profile_model  # noqa: E402

HARNESS = ROOT / "ascend310_infer" / "out" / "main"
PEERS = ("onnxruntime", "timm eager", "timm torch.compile")  # what ours is compared with: the best of them


def time_forward(run, x: np.ndarray, runs: int) -> float:
    """Median seconds of ``run(x)`` after one warm-up call."""
    return median_ms(lambda: run(x), runs) / 1000


HARNESS_BACKENDS = {"C++ harness (OpenVINO)": "openvino", "C++ harness (OpenCV DNN)": "opencv"}
CONTEXT_ROWS = {"MindSpore graph", "C++ harness (OpenCV DNN)"}


def onnxruntime_seconds(model: Path, batch: int, size: int, runs: int) -> float:
    """Median seconds per call of onnxruntime on ``model``, timed in a process of its own (ort_speed.py)."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "ort_speed.py"), str(model), "--batch", str(batch),
           "--size", str(size), "--runs", str(runs)]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)["seconds"]


def _mindspore(name: str, kernels: bool, mode: int, folded: bool = False):
    net = create_model(name, cpu_kernels=kernels)
    net.set_train(False)
    if folded:
        net = fold_batchnorm(net)

    def run(x: np.ndarray) -> np.ndarray:
        ms.set_context(mode=mode)
        return net(ms.Tensor(x)).asnumpy()
    return net, run


def bench_variant(name: str, batch: int, runs: int, work: Path, harness: bool, pynative: bool = False) -> list[dict]:
    size = VARIANTS[name].image_size
    net, plain = _mindspore(name, False, ms.GRAPH_MODE)
    fast = _mindspore(name, True, ms.GRAPH_MODE)[1]
    rng = np.random.default_rng(0)
    inputs = {b: rng.standard_normal((b, 3, size, size)).astype(np.float32) for b in (1, batch)}
    folded = _mindspore(name, True, ms.GRAPH_MODE, folded=True)[1]
    runtimes = {"MindSpore graph": {b: plain for b in inputs},
                "MindSpore graph + CPU kernels": {b: fast for b in inputs},
                "MindSpore graph + CPU kernels, BN folded (eval.py)": {b: folded for b in inputs}}
    if pynative:
        runtimes["MindSpore PyNative + CPU kernels"] = {b: _mindspore(name, True, ms.PYNATIVE_MODE)[1] for b in inputs}
    runtimes.update({"onnxruntime": {}, **{h: {} for h in HARNESS_BACKENDS}})
    for b in inputs:
        onnx = export_network(net, work / f"{name}_b{b}", "ONNX", b, size)
        runtimes["onnxruntime"][b] = onnx
        for h in HARNESS_BACKENDS:
            runtimes[h][b] = onnx
    ms.set_context(mode=ms.GRAPH_MODE)
    rows = []
    for runtime, per_batch in runtimes.items():
        if runtime.startswith("C++") and not harness:
            continue
        seconds = {}
        for b, run in per_batch.items():
            n = runs if b == 1 else max(3, runs // 4)
            if runtime in CONTEXT_ROWS:  # slow and in no goal: a few runs
                n = min(n, 20 if b == 1 else 3)
            if runtime == "onnxruntime":
                seconds[b] = onnxruntime_seconds(run, b, size, n)
            elif runtime in HARNESS_BACKENDS:
                seconds[b] = harness_seconds(HARNESS, run, inputs[b], n, work / "harness", HARNESS_BACKENDS[runtime])
            else:
                seconds[b] = time_forward(run, inputs[b], n)
        ms.set_context(mode=ms.GRAPH_MODE)
        rows.append({"model": name, "size": size, "runtime": runtime, "bs1_ms": 1000 * seconds[1],
                     f"bs{batch}_img_per_sec": batch / seconds[batch]})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(list_models()), type=variant_list)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--runs", type=int, default=20, help="timed batch-1 runs (batch-N: a quarter, >= 3)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every runtime (timm too) this many times in turn; each figure is the median")
    parser.add_argument("--no_harness", action="store_true", help="skip the C++ harness column")
    parser.add_argument("--pynative", action="store_true", help="also time MindSpore in PyNative mode")
    parser.add_argument("--timm_python", default="",
                        help="a python with torch + timm (../shared/tools/timm_reference_env.sh): timm eager and "
                             "torch.compile rows, measured after ours on the same machine")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE)
    harness = not args.no_harness
    if harness:
        build = subprocess.run(["bash", str(ROOT / "ascend310_infer" / "build.sh")], capture_output=True, text=True)
        if build.returncode != 0:
            print(build.stdout[-2000:] + build.stderr[-2000:], file=sys.stderr)
            print("error: the C++ harness did not build (needs cmake, g++, libopencv-dev, pip openvino); or pass "
                  "--no_harness",
                  file=sys.stderr)
            return 1

    tput = f"bs{args.batch}_img_per_sec"
    rounds = []
    for round_ in range(args.rounds):  # ours then timm, again and again: drifting load hits both sides alike
        results = []
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.variants.split(","):
                rows = bench_variant(name, args.batch, args.runs, Path(tmp), harness, args.pynative)
                results += rows
                print(f"round {round_ + 1}/{args.rounds} {name}: " + "; ".join(
                    f"{r['runtime']} {r['bs1_ms']:.1f} ms, {r[tput]:.0f} img/s" for r in rows),
                    file=sys.stderr, flush=True)
        if args.timm_python:
            spec = ",".join(f"{n}:{VARIANTS[n].image_size}" for n in args.variants.split(","))
            timm = timm_speed(args.timm_python, "--infer", spec, "--batch", str(args.batch), "--runs",
                              str(args.runs))
            for r in timm["infer"]:
                if "error" in r:
                    print(f"{r['model']}: {r['runtime']} failed: {r['error']}", file=sys.stderr)
                    continue
                at = max(i for i, o in enumerate(results) if o["model"] == r["model"]) + 1
                results.insert(at, r)
        rounds.append(results)
    results = median_rows(rounds, ("model", "runtime"), ("bs1_ms", tput))
    peak = sgemm_gflops()
    flops = {n: 2 * profile_model(n).macs for n in args.variants.split(",")}
    for r in results:
        peers = [b for b in results if b["model"] == r["model"] and b["runtime"] in PEERS]
        best_bs1, best_tput = min(b["bs1_ms"] for b in peers), max(b[tput] for b in peers)
        r["vs_best_peer"] = (f"{speedup(r['bs1_ms'], best_bs1, higher_is_better=False)} / "
                             f"{speedup(r[tput], best_tput)}")
        r["peak"] = (f"{peak_pct(1000 / r['bs1_ms'], flops[r['model']], peak)} / "
                     f"{peak_pct(r[tput], flops[r['model']], peak)}")
        base = next(b for b in results if b["model"] == r["model"])  # MindSpore graph mode, same variant
        ort = next(b for b in results if b["model"] == r["model"] and b["runtime"] == "onnxruntime")
        r["latency_vs_ms"] = speedup(r["bs1_ms"], base["bs1_ms"], higher_is_better=False)
        r["throughput_vs_ms"] = speedup(r[tput], base[tput])
        r["vs_onnxruntime"] = (f"{speedup(r['bs1_ms'], ort['bs1_ms'], higher_is_better=False)} / "
                               f"{speedup(r[tput], ort[tput])}")
    print(header("CPU"))
    print(table(results, ["model", "size", "runtime", "bs1_ms", "latency_vs_ms", tput, "throughput_vs_ms",
                          "vs_onnxruntime", "vs_best_peer", "peak", "rounds"],
                f"\n## inference: latency at batch 1, throughput at batch {args.batch} (speed-ups relative to "
                f"MindSpore graph mode; vs_onnxruntime, vs_best_peer (the best of {', '.join(PEERS)} measured): "
                f"latency / throughput ratios; peak: FLOP/s (2 x MACs per image) over this machine's sgemm, "
                f"{peak:.0f} GFLOP/s, at batch 1 / {args.batch}; each figure the median of `rounds` rounds, every "
                f"runtime measured once per round in turn)"))
    if args.json:
        Path(args.json).write_text(json.dumps({"infer": results, "sgemm_gflops": peak}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
