"""Training throughput: the train step (MindSpore's convs vs tinynet_ms's CPU kernels, AMP on/off, graph vs
PyNative), side by side with timm's eager train step. The input pipeline has its own benchmark (bench_pipeline.py).

    python benchmarks/bench_train.py [--device_target CPU] [--cases tinynet_e:106:32,tinynet_a:192:16]
                                     [--amp O0,O2] [--pynative] [--steps 10] [--rounds 5] [--json out.json]

Ratios: each step row against the same model with MindSpore's own convs, and against timm's eager train step
measured in the same run (--timm_python), each figure the median of --rounds rounds taken in turn.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tinynet_ms import create_model  # noqa: E402
from tinynet_ms.train import TrainStep, WithLoss, create_rmsprop  # noqa: E402
from benchmarks.common import header, median_rows, peak_pct, sgemm_gflops, speedup, table, timm_speed  # noqa: E402
from tinynet_ms.profile import profile_model  # noqa: E402


def compiled_step(name: str, size: int, batch: int, amp: str, kernels: bool = False, mode: str = "graph"):
    """A compiled train step of ``name`` and a ``time(steps) -> seconds`` for it on fixed batches, with the row's
    description (compile seconds included); ``kernels``: built with tinynet_ms's CPU kernels; ``mode``: graph or
    pynative."""
    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
    net = create_model(name, num_classes=1000, drop_rate=0.2, drop_path_rate=0.2, cpu_kernels=kernels)
    opt = create_rmsprop(net, np.full(1 << 16, 1e-3, np.float32))
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

    def timed(steps: int) -> float:
        ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = step(x, y, noise)
        loss.asnumpy()
        ms.set_context(mode=ms.GRAPH_MODE)
        return time.perf_counter() - t0

    ms.set_context(mode=ms.GRAPH_MODE)
    row = {"model": name, "size": size, "batch": batch, "amp": amp, "kernels": "on" if kernels else "off",
           "mode": mode, "compile_s": compile_s}
    return row, timed


def step_row(row: dict, seconds: float, steps: int) -> dict:
    return {**row, "ms_per_step": 1000 * seconds / steps, "img_per_sec": row["batch"] * steps / seconds}


def bench_step(name: str, size: int, batch: int, amp: str, steps: int, kernels: bool = False,
               mode: str = "graph") -> dict:
    """One timing of ``steps`` train steps after the compile: the row with ms_per_step and img_per_sec."""
    row, timed = compiled_step(name, size, batch, amp, kernels, mode)
    return step_row(row, timed(steps), steps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device_target", default="CPU")
    parser.add_argument("--cases", default="tinynet_e:106:32,tinynet_a:192:16", help="model:size:batch,...")
    parser.add_argument("--amp", default="O0,O2", help="AMP levels timed with the CPU kernels on")
    parser.add_argument("--pynative", action="store_true", help="also time the first case in PyNative mode")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1, help="time every step row (and timm's) this many times in "
                                                              "turn; each figure is the median")
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
    compiled = [compiled_step(n, s, b, amp, kernels, mode) for (n, s, b), amp, kernels, mode in plan]
    # Rounds: every step row, then timm's, again and again, so drifting load hits both sides alike; each figure
    # is the median over the rounds. MindSpore's own convs (the slow baseline of each model) are timed in round 1.
    spec = ",".join(f"{n}:{s}:{b}" for n, s, b in cases)
    rounds: list[list[dict]] = []
    for round_ in range(args.rounds):
        rows = [step_row(row, timed(args.steps), args.steps) for row, timed in compiled
                if round_ == 0 or row["kernels"] == "on"]
        if args.timm_python:
            measured = timm_speed(args.timm_python, "--train", spec, "--steps", str(args.steps))["train"]
            rows += [{"model": r["model"], "size": r["size"], "batch": r["batch"], "amp": "-", "kernels": "-",
                      "mode": "timm eager", "compile_s": 0.0, "ms_per_step": r["ms_per_step"],
                      "img_per_sec": r["img_per_sec"]} for r in measured]
        print(f"  round {round_ + 1}/{args.rounds}: " + "; ".join(
            f"{r['model']} {r['mode']} kernels {r['kernels']} {r['amp']}: {r['img_per_sec']:.1f} img/s"
            for r in rows), file=sys.stderr, flush=True)
        rounds.append(rows)
    steps = median_rows(rounds, ("model", "amp", "kernels", "mode"), ("ms_per_step", "img_per_sec"))
    timm = {r["model"]: r for r in steps if r["mode"] == "timm eager"}
    for r in steps:
        base = next(b for b in steps if b["model"] == r["model"])
        r["vs_kernels_off"] = speedup(r["img_per_sec"], base["img_per_sec"])
        r["vs_timm"] = speedup(r["img_per_sec"], timm[r["model"]]["img_per_sec"]) if r["model"] in timm else "-"
    peak = sgemm_gflops()
    # a train step is ~3 forward passes (the backward computes two products per forward one), 2 FLOPs per MAC
    flops = {n: 6 * profile_model(n, s).macs for n, s, _ in cases}
    for r in steps:
        r["peak"] = peak_pct(r["img_per_sec"], flops[r["model"]], peak)

    print(header(args.device_target))
    print(table(steps, ["model", "size", "batch", "amp", "kernels", "mode", "compile_s", "ms_per_step", "img_per_sec",
                        "vs_kernels_off", "vs_timm", "peak"],
                f"\n## train step (vs_timm: img/s over timm eager's, measured in this run after ours; peak: FLOP/s "
                f"(6 x MACs per image) over this machine's sgemm, {peak:.0f} GFLOP/s)"))
    if args.json:
        Path(args.json).write_text(json.dumps({"train_step": steps, "sgemm_gflops": peak},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
