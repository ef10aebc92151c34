"""Wall-clock timing shared by the benchmarks, the INT8 report and latency-budget cube searches: medians of
repeated calls, the C++ harness's own per-batch report (``ascend310_infer``) on ``.bin`` inputs (several models
in interleaved rounds: ``harness_rounds``, the INT8 report's one measurement), and the batch-1
latency of a cube point (r, w, d) as eval.py runs it in MindSpore or as the harness runs its ONNX export.

A cube point's latency is the best of repeated medians (``best_medians``): as timeit takes the best of its repeats,
the fastest stretch is the network's own speed, the slower ones other work's. How long to sample is the whole
question on a shared machine, whose host moves between speed levels lasting seconds to ~20 s: best medians over
30-s windows repeat within 10% far more often than over 10-s ones (docs/cube.md has the measurement). So a search
*probes* with ``PROBE_SECONDS`` (finding a width takes ~10 measurements per candidate) and *reports* each
candidate over ``REPORT_SECONDS`` more, and a re-measurement samples as long. Several networks measured together
are timed in turn over the whole span (``best_medians``), so a slow stretch falls on all of them alike.
"""
from __future__ import annotations

import re
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RWD = tuple[float, float, float]
LATENCY_TARGETS = ("mindspore", "harness")

_HARNESS_MEDIAN = re.compile(r"median time: ([0-9.]+) ms")  # the report's median over its timed runs
_HARNESS_BACKEND = re.compile(r"^backend: \S+ \((.*)\)$", re.M)  # "backend: openvino (OpenVINO 2026.4.1, f32, ...)"
PROBE_SECONDS = 3.0  # how long a search samples a network while it looks for a width
REPORT_SECONDS = 30.0  # how long a reported (or re-measured) latency is sampled for


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


def best_medians(blocks: Sequence[Callable[[], float]], seconds: float, min_blocks: int = 3) -> list[float]:
    """The smallest of the medians each ``block()`` returns, the blocks called in turn (1, 2, ..., 1, ...) for
    ``seconds`` each, so every one samples the whole span, and each at least ``min_blocks`` times."""
    medians: list[list[float]] = [[] for _ in blocks]
    end = time.perf_counter() + seconds * len(blocks)
    while min(map(len, medians)) < min_blocks or time.perf_counter() < end:
        for block, got in zip(blocks, medians):
            got.append(block())
    return [min(got) for got in medians]


def harness_seconds(harness: Path, model: Path, x: np.ndarray, runs: int, work: Path, backend: str) -> float:
    """Median seconds per batch as the harness reports it (its first run is warm-up), over ``runs`` runs of the
    batch ``x`` (written once as ``.bin`` inputs, run with ``--repeat``)."""
    return _run_harness(harness, model, _write_inputs(x, 0, work), x.shape, work, backend, runs + 1)


@dataclass(frozen=True)
class HarnessRounds:
    ms: list[list[float]]  # [round][model]: the median milliseconds per batch the harness reported
    backends: list[str]  # what ran each model (the report's backend line: runtime, precision, streams)


def harness_rounds(harness: Path, models: Sequence[Path], x: np.ndarray, runs: int, rounds: int, work: Path,
                   backend: str = "openvino") -> HarnessRounds:
    """Each of ``models`` in the harness, one process per model and round timing ``runs`` runs of the batch ``x``
    (the median it reports), the models in turn ``rounds`` times (1, 2, ..., 1, 2, ...) so that load drifting on
    the machine hits each alike."""
    inputs = _write_inputs(x, 0, work)
    ms: list[list[float]] = []
    backends = [""] * len(models)
    for _ in range(rounds):
        ms.append([])
        for i, m in enumerate(models):
            ms[-1].append(1000 * _run_harness(harness, m, inputs, x.shape, work, backend, runs + 1))
            backends[i] = _HARNESS_BACKEND.search(_report(work))[1]
    return HarnessRounds(ms, backends)


def _write_inputs(x: np.ndarray, runs: int, work: Path) -> Path:
    """``runs`` + 1 batches of ``x`` as ``.bin`` files in ``work/bins`` (the harness's first batch is warm-up;
    ``runs`` 0: the batch once, for ``--repeat``)."""
    inputs = work / "bins"
    inputs.mkdir(parents=True, exist_ok=True)
    for old in inputs.glob("*.bin"):
        old.unlink()
    batch = x.shape[0]
    for i in range((runs + 1) * batch):
        x[i % batch].tofile(inputs / f"{i:06d}.bin")
    return inputs


def _run_harness(harness: Path, model: Path, inputs: Path, shape: tuple[int, ...], work: Path, backend: str,
                 repeat: int = 1) -> float:
    cmd = [str(harness), f"--model_path={model}", f"--backend={backend}", "--input_type=bin", f"--input_path={inputs}",
           f"--image_size={shape[2]}", f"--batch_size={shape[0]}", f"--output_dir={work}", f"--repeat={repeat}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{harness} failed on {model}: {(done.stderr or done.stdout).strip()[-400:]}")
    return float(_HARNESS_MEDIAN.search(_report(work))[1]) / 1000


def _report(work: Path) -> str:
    return (work / "time_Result" / "test_perform_static.txt").read_text()


def _random_input(image_size: int, batch: int = 1) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, 3, image_size, image_size)).astype(np.float32)


def mindspore_timer(rwd: RWD, num_classes: int, runs: int) -> Callable[[], float]:
    """A block for ``best_medians``: the median batch-1 milliseconds of ``runs`` calls of ``tinynet(r, w, d)`` as
    eval.py runs it (BatchNorm folded, the CPU kernels where MindSpore's device is the CPU, in the current execution
    mode: graph mode, as eval.py), built and compiled once. Random weights, which take the time trained ones do."""
    import mindspore as ms

    from tinynet_ms.models import create_model
    from tinynet_ms.models.fold import fold_batchnorm

    r, w, d = rwd
    net = create_model("tinynet", r=r, w=w, d=d, num_classes=num_classes)
    net.set_train(False)
    net = fold_batchnorm(net)
    x = ms.Tensor(_random_input(net.spec.image_size))
    for _ in range(3):  # the first call compiles the graph
        net(x).asnumpy()
    return lambda: median_ms(lambda: net(x).asnumpy(), runs, warmup=0)


def harness_timer(rwd: RWD, num_classes: int, runs: int, harness: Path, work: Path) -> Callable[[], float]:
    """A block for ``best_medians``: the median batch-1 milliseconds the C++ harness (OpenVINO backend) reports
    over ``runs`` inferences of the ONNX export of ``tinynet(r, w, d)``, exported and its inputs written once into
    ``work`` (one directory per timer alive at a time)."""
    from tinynet_ms.export import export_network
    from tinynet_ms.models import create_model

    r, w, d = rwd
    net = create_model("tinynet", r=r, w=w, d=d, num_classes=num_classes, cpu_kernels=False)
    size = net.spec.image_size
    model = export_network(net, work / "latency", "ONNX", 1, size)
    x = _random_input(size)
    inputs = _write_inputs(x, runs, work)  # once: every repeat reads the same files
    return lambda: 1000 * _run_harness(harness, model, inputs, x.shape, work, "openvino")


def mindspore_ms(rwd: RWD, num_classes: int, runs: int, seconds: float = REPORT_SECONDS) -> float:
    """Batch-1 milliseconds of ``tinynet(r, w, d)`` in MindSpore (``mindspore_timer``), the best median over
    ``seconds``."""
    return best_medians([mindspore_timer(rwd, num_classes, runs)], seconds)[0]


def harness_ms(rwd: RWD, num_classes: int, runs: int, harness: Path, work: Path,
               seconds: float = REPORT_SECONDS) -> float:
    """Batch-1 milliseconds of ``tinynet(r, w, d)`` in the C++ harness (``harness_timer``), the best median over
    ``seconds``."""
    return best_medians([harness_timer(rwd, num_classes, runs, harness, work)], seconds)[0]
