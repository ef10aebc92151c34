"""Wall-clock timing shared by the benchmarks, the INT8 report and (to come) latency-budget searches: medians of
repeated calls, and the C++ harness's own per-batch report (``ascend310_infer``) on ``.bin`` inputs."""
from __future__ import annotations

import re
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

_HARNESS_REPORT = re.compile(r"average time: ([0-9.]+) ms")


def interleaved_ms(calls: Sequence[Callable[[], object]], runs: int, warmup: int = 1) -> list[float]:
    """Median milliseconds of each call, timed in turn (call 1, call 2, ..., call 1, ...) so that load drifting
    on the machine hits every one alike; ``warmup`` untimed calls of each first."""
    for call in calls:
        for _ in range(warmup):
            call()
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(runs):
        for call, spent in zip(calls, times):
            start = time.perf_counter()
            call()
            spent.append((time.perf_counter() - start) * 1e3)
    return [statistics.median(t) for t in times]


def median_ms(call: Callable[[], object], runs: int, warmup: int = 1) -> float:
    """Median wall milliseconds of ``call()`` over ``runs`` calls after ``warmup`` untimed ones."""
    return interleaved_ms([call], runs, warmup)[0]


def harness_seconds(harness: Path, model: Path, x: np.ndarray, runs: int, work: Path, backend: str) -> float:
    """Mean seconds per batch as the harness reports it (its first batch is warm-up), over ``runs`` batches of
    ``x`` written as ``.bin`` inputs."""
    inputs = work / "bins"
    inputs.mkdir(parents=True, exist_ok=True)
    for old in inputs.glob("*.bin"):
        old.unlink()
    batch = x.shape[0]
    for i in range((runs + 1) * batch):  # + 1: the harness excludes its first batch as warm-up
        x[i % batch].tofile(inputs / f"{i:06d}.bin")
    cmd = [str(harness), f"--model_path={model}", f"--backend={backend}", "--input_type=bin", f"--input_path={inputs}",
           f"--image_size={x.shape[2]}", f"--batch_size={batch}", f"--output_dir={work}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{harness} failed on {model}: {(done.stderr or done.stdout).strip()[-400:]}")
    report = (work / "time_Result" / "test_perform_static.txt").read_text()
    return float(_HARNESS_REPORT.search(report)[1]) / 1000
