"""Batch-1 latency of a network on this machine, run the way a deployment runs it: MindSpore graph mode with BN
folded (eval.py's path), or the C++ harness (``ascend310_infer``, OpenVINO) on the exported ONNX.

The caller chooses MindSpore's execution mode (graph mode for eval.py's numbers): nothing here sets it.
"""
from __future__ import annotations

import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import mindspore as ms
import numpy as np

from tinynet_ms.export import export_network
from tinynet_ms.models.fold import fold_batchnorm

TARGETS = ("mindspore", "harness")
_HARNESS_REPORT = re.compile(r"average time: ([0-9.]+) ms")


def median_ms(call: Callable[[], object], runs: int, warmup: int = 3) -> float:
    """Median wall milliseconds of ``call()`` over ``runs`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


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


def mindspore_ms(net: ms.nn.Cell, image_size: int, runs: int) -> float:
    """Median batch-1 milliseconds of ``net`` as eval.py runs it (inference mode, BN folded), host in, host out."""
    net.set_train(False)
    folded = fold_batchnorm(net)
    x = ms.Tensor(np.zeros((1, 3, image_size, image_size), np.float32))
    return median_ms(lambda: folded(x).asnumpy(), runs)


def harness_ms(net: ms.nn.Cell, image_size: int, runs: int, harness: Path, repeats: int = 3) -> float:
    """Median over ``repeats`` harness runs (OpenVINO backend, batch 1, ``runs`` timed images each) of the
    batch-1 milliseconds of ``net`` exported to ONNX."""
    net.set_train(False)
    x = np.zeros((1, 3, image_size, image_size), np.float32)
    with tempfile.TemporaryDirectory(prefix="tinynet_latency_") as tmp:
        onnx = export_network(net, Path(tmp) / "model", "ONNX", 1, image_size)
        return statistics.median(1e3 * harness_seconds(harness, onnx, x, runs, Path(tmp), "openvino")
                                 for _ in range(repeats))
