"""Training throughput: the train step (MindSpore's convs vs tinynet_ms's CPU kernels, AMP on/off, graph vs
PyNative) and the data pipeline, side by side.

    python benchmarks/bench_train.py [--device_target CPU] [--cases tinynet_e:106:32,tinynet_a:192:16]
                                     [--amp O0,O2] [--pynative] [--steps 10] [--workers 1,2] [--json out.json]

Ratios: each step row against the same model with MindSpore's own convs, and against timm's eager train step
measured in the same run (--timm_python); the pipeline's img/s against the fastest train step (>= 2 means the data
keeps up easily).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tinynet_ms import create_model  # noqa: E402
from tinynet_ms.data import create_train_dataset, scan_split  # noqa: E402
from tinynet_ms.data.demo import make_demo_dataset  # noqa: E402
from tinynet_ms.train import TrainStep, WithLoss, create_rmsprop  # noqa: E402
from benchmarks.common import header, peak_pct, sgemm_gflops, speedup, table, timm_speed  # noqa: E402
from tinynet_ms.profile import profile_model  # noqa: E402


def bench_step(name: str, size: int, batch: int, amp: str, steps: int, kernels: bool = False,
               mode: str = "graph") -> dict:
    """Train-step throughput; ``kernels``: built with tinynet_ms's CPU kernels; ``mode``: graph or pynative."""
    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
    net = create_model(name, num_classes=1000, drop_rate=0.2, drop_path_rate=0.2, cpu_kernels=kernels)
    opt = create_rmsprop(net, np.full(steps + 2, 1e-3, np.float32))
    amp_net = ms.amp.auto_mixed_precision(net, amp) if amp != "O0" else net
    # what train.py builds on CPU: a fixed scale, the loss as the NaN guard in float32
    step = TrainStep(WithLoss(amp_net, nn.CrossEntropyLoss(label_smoothing=0.1)), opt, 1024.0, dynamic=False,
                     check_grads=amp != "O0")
    step.set_train(True)
    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.standard_normal((batch, 3, size, size)).astype(np.float32))
    y = ms.Tensor(rng.integers(0, 1000, batch).astype(np.int32))
    noise = ms.Tensor(rng.random((batch, net.noise_size), dtype=np.float32))
    t0 = time.perf_counter()
    step(x, y, noise).asnumpy()  # compile
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step(x, y, noise)
    loss.asnumpy()
    seconds = time.perf_counter() - t0
    ms.set_context(mode=ms.GRAPH_MODE)
    return {"model": name, "size": size, "batch": batch, "amp": amp, "kernels": "on" if kernels else "off",
            "mode": mode, "compile_s": compile_s,
            "ms_per_step": 1000 * seconds / steps, "img_per_sec": batch * steps / seconds}


def bench_pipeline(data_root: Path, size: int, batch: int, workers: int, batches: int) -> dict:
    samples = scan_split(data_root / "train").samples
    data = create_train_dataset(samples, size, batch, epoch=0, seed=0, noise_size=1300,
                                auto_augment="rand-m9-mstd0.5", re_prob=0.2, num_workers=workers)
    it = data.create_tuple_iterator(num_epochs=1)
    next(it)  # start-up (worker processes) excluded
    t0 = time.perf_counter()
    n = 0
    for n, _ in enumerate(it, 1):
        if n >= batches:
            break
    seconds = time.perf_counter() - t0
    return {"size": size, "batch": batch, "workers": workers, "img_per_sec": n * batch / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device_target", default="CPU")
    parser.add_argument("--cases", default="tinynet_e:106:32,tinynet_a:192:16", help="model:size:batch,...")
    parser.add_argument("--amp", default="O0,O2", help="AMP levels timed with the CPU kernels on")
    parser.add_argument("--pynative", action="store_true", help="also time the first case in PyNative mode")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--timm_python", default="",
                        help="a python with torch + timm (../shared/tools/timm_reference_env.sh): timm's eager train "
                             "step is measured after ours, on the same machine, as the vs_timm column")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    ms.set_device(args.device_target)
    ms.set_context(mode=ms.GRAPH_MODE)

    cases = [(n, int(s), int(b)) for n, s, b in (c.split(":") for c in args.cases.split(","))]
    plan = []  # (case, amp, kernels, mode): MindSpore's own convs first, as the baseline of each model
    for case in cases:
        plan += [(case, "O0", False, "graph")] + [(case, amp, True, "graph") for amp in args.amp.split(",")]
    if args.pynative:
        plan.append((cases[0], "O0", True, "pynative"))
    steps = []
    for (n, s, b), amp, kernels, mode in plan:
        steps.append(bench_step(n, s, b, amp, args.steps, kernels, mode))
        print(f"  {steps[-1]}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_demo_dataset(Path(tmp) / "demo", num_classes=10, train_per_class=40, val_per_class=1)
        pipes = [bench_pipeline(root, s, b, int(w), args.batches) for n, s, b in cases[:1]
                 for w in args.workers.split(",")]
    timm = {}
    if args.timm_python:
        spec = ",".join(f"{n}:{s}:{b}" for n, s, b in cases)
        measured = timm_speed(args.timm_python, "--train", spec, "--steps", str(args.steps))
        timm = {r["model"]: r for r in measured["train"]}
        for r in timm.values():
            print(f"  timm eager {r}", file=sys.stderr, flush=True)
    for r in steps:
        base = next(b for b in steps if b["model"] == r["model"])
        r["vs_kernels_off"] = speedup(r["img_per_sec"], base["img_per_sec"])
        r["vs_timm"] = speedup(r["img_per_sec"], timm[r["model"]]["img_per_sec"]) if r["model"] in timm else "-"
    steps += [{"model": n, "size": r["size"], "batch": r["batch"], "amp": "-", "kernels": "-", "mode": "timm eager",
               "compile_s": 0.0, "ms_per_step": r["ms_per_step"], "img_per_sec": r["img_per_sec"],
               "vs_kernels_off": "-", "vs_timm": "1.00x"} for n, r in timm.items()]
    peak = sgemm_gflops()
    # a train step is ~3 forward passes (the backward computes two products per forward one), 2 FLOPs per MAC
    flops = {n: 6 * profile_model(n, s).macs for n, s, _ in cases}
    for r in steps:
        r["peak"] = peak_pct(r["img_per_sec"], flops[r["model"]], peak)
    fastest = max((r for r in steps if r["model"] == cases[0][0]), key=lambda r: r["img_per_sec"])
    for p in pipes:
        p["vs_train_step"] = speedup(p["img_per_sec"], fastest["img_per_sec"])

    print(header(args.device_target))
    print(table(steps, ["model", "size", "batch", "amp", "kernels", "mode", "compile_s", "ms_per_step", "img_per_sec",
                        "vs_kernels_off", "vs_timm", "peak"],
                f"\n## train step (vs_timm: img/s over timm eager's, measured in this run after ours; peak: FLOP/s "
                f"(6 x MACs per image) over this machine's sgemm, {peak:.0f} GFLOP/s)"))
    print(table(pipes, ["size", "batch", "workers", "img_per_sec", "vs_train_step"],
                f"\n## data pipeline (RandomCropDecodeResize + RandAugment + erasing) vs the fastest train step "
                f"({fastest['img_per_sec']:.1f} img/s)"))
    if args.json:
        Path(args.json).write_text(json.dumps({"train_step": steps, "pipeline": pipes, "sgemm_gflops": peak},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
