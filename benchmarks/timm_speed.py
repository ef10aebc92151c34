"""timm's TinyNet speed on this machine, the reference side of bench_train.py / bench_infer.py (``--timm_python``).
Runs in an environment with torch and timm only (``bash ../shared/tools/timm_reference_env.sh``), never a
tinynet_ms dependency; prints one JSON object.

    python benchmarks/timm_speed.py --train tinynet_e:106:32,tinynet_a:192:16 --infer tinynet_e:106,tinynet_a:192

The same workloads as ours: a train step with RMSpropTF (eps 1e-3, decay 0.9, momentum 0.9), label smoothing 0.1,
dropout 0.2 and drop-path 0.2 on random data (eager); inference in eval mode, median latency at batch 1 and
throughput at batch ``--batch``, eager and ``torch.compile`` (inference only; its compile time is excluded).
"""
import argparse
import json
import time

import numpy as np
import timm
import torch
from timm.optim import RMSpropTF


def _median_seconds(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def train_step(name: str, size: int, batch: int, steps: int) -> dict:
    model = timm.create_model(name, num_classes=1000, drop_rate=0.2, drop_path_rate=0.2)
    model.train()
    opt = RMSpropTF(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-3, momentum=0.9, weight_decay=1e-5)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 1000, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    seconds = _median_seconds(step, steps)
    return {"model": name, "size": size, "batch": batch, "ms_per_step": 1000 * seconds,
            "img_per_sec": batch / seconds}


def inference(name: str, size: int, batch: int, runs: int, compiled: bool) -> dict:
    model = timm.create_model(name, num_classes=1000).eval()
    run = torch.compile(model) if compiled else model
    out = {"model": name, "size": size, "runtime": "timm torch.compile" if compiled else "timm eager"}
    with torch.inference_mode():
        for b in (1, batch):
            x = torch.randn(b, 3, size, size)
            run(x)  # torch.compile compiles here, per shape; excluded from the timing
            seconds = _median_seconds(lambda: run(x), runs if b == 1 else max(3, runs // 4))
            out["bs1_ms" if b == 1 else f"bs{batch}_img_per_sec"] = 1000 * seconds if b == 1 else b / seconds
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", default="", help="model:size:batch,... (train step)")
    ap.add_argument("--infer", default="", help="model:size,... (inference)")
    ap.add_argument("--batch", type=int, default=32, help="inference throughput batch")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--no_compile", action="store_true", help="skip torch.compile")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    result = {"torch": torch.__version__, "timm": timm.__version__, "threads": torch.get_num_threads(),
              "train": [], "infer": []}
    for case in filter(None, args.train.split(",")):
        name, size, batch = case.split(":")
        result["train"].append(train_step(name, int(size), int(batch), args.steps))
    for case in filter(None, args.infer.split(",")):
        name, size = case.split(":")
        for compiled in (False,) if args.no_compile else (False, True):
            try:
                result["infer"].append(inference(name, int(size), args.batch, args.runs, compiled))
            except Exception as exc:  # torch.compile needs a C++ toolchain; eager still counts
                result["infer"].append({"model": name, "size": int(size), "error": f"{type(exc).__name__}: {exc}",
                                        "runtime": "timm torch.compile" if compiled else "timm eager"})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
