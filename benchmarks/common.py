"""Shared by the benchmark scripts: the machine header, speed-up ratios and markdown tables."""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import mindspore as ms
import numpy as np

from tinynet_ms.latency import median_ms


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` is empty on most Linux systems)."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# /proc/cpuinfo flags that decide which kernels MindSpore, onnxruntime, OpenVINO and torch pick
ISA_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "avx512_bf16": "AVX-512 BF16",
             "amx_tile": "AMX"}


def cpu_features() -> str:
    """The vector extensions this CPU offers, of those in ``ISA_FLAGS`` (empty off Linux)."""
    try:
        flags = next(line for line in open("/proc/cpuinfo", encoding="utf-8") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return ""
    return ", ".join(name for flag, name in ISA_FLAGS.items() if flag in flags)


def variant_list(text: str) -> str:
    """argparse type of a ``--variants``/``--models`` option: comma-separated TinyNet variants, each checked (an
    unknown one is a usage error naming the choices, not a KeyError mid-benchmark); returned as given."""
    from tinynet_ms.models import VARIANTS

    unknown = [name for name in text.split(",") if name not in VARIANTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown variant {', '.join(map(repr, unknown))} (choose from "
                                         f"{', '.join(VARIANTS)})")
    return text


def header(device: str) -> str:
    return (f"# {time.strftime('%Y-%m-%d')} | {cpu_name()} ({cpu_features() or 'no AVX2'}) | {os.cpu_count()} cores | "
            f"MindSpore {ms.__version__} | {device}")


def replace_block(path: Path, name: str, text: str) -> None:
    """Replace what sits between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``path`` with ``text``: a
    page's generated part, the prose around it kept. Raises ValueError naming the file when the markers are not
    there once each."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    page = path.read_text(encoding="utf-8")
    if page.count(begin) != 1 or page.count(end) != 1 or page.index(begin) > page.index(end):
        raise ValueError(f"{path}: expected one '{begin}' ... '{end}' block for the generated tables")
    head, rest = page.split(begin)
    path.write_text(f"{head}{begin}\n{text.strip()}\n{end}{rest.split(end, 1)[1]}", encoding="utf-8")


def speedup(value: float, base: float, higher_is_better: bool = True) -> str:
    """'2.00x' = twice as good as the base, whichever way the metric points."""
    return f"{(value / base if higher_is_better else base / value):.2f}x"


def table(rows: list[dict], keys: list[str], title: str) -> str:
    lines = [title, " | ".join(keys), " | ".join("---" for _ in keys)]
    for r in rows:
        lines.append(" | ".join(f"{r[k]:.1f}" if isinstance(r[k], float) else str(r[k]) for k in keys))
    return "\n".join(lines)


def median_rows(rounds: list[list[dict]], keys: tuple[str, ...], values: tuple[str, ...]) -> list[dict]:
    """One row per ``keys`` (in first-seen order) with each of ``values`` the median over the rounds that have
    it, and ``rounds`` how many did (a runtime that failed in a round is left out of that round only)."""
    merged: dict[tuple, dict] = {}
    samples: dict[tuple, dict[str, list[float]]] = {}
    for rows in rounds:
        for row in rows:
            key = tuple(row[k] for k in keys)
            merged.setdefault(key, dict(row))
            for v in values:
                samples.setdefault(key, {}).setdefault(v, []).append(row[v])
    for key, row in merged.items():
        row.update({v: float(np.median(samples[key][v])) for v in values})
        row["rounds"] = len(samples[key][values[0]])
    return list(merged.values())


def timm_speed(python: str, *args: str) -> dict:
    """benchmarks/timm_speed.py run by ``python`` (an environment with torch + timm), after our own timings and
    never beside them (never both at once: the 2 cores would be oversubscribed): its JSON result."""
    import json
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parent / "timm_speed.py"
    run = subprocess.run([python, str(script), *args], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"timm_speed.py failed under {python}: {run.stderr[-1500:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def sgemm_gflops(n: int = 2048, runs: int = 5) -> float:
    """The machine's float32 matrix-multiply rate (n x n x n, every thread, median of ``runs``): the ceiling a
    CNN's FLOP/s is put against, its convolutions being matrix multiplies. The better of NumPy's BLAS and
    onnxruntime's MatMul (MLAS): NumPy's OpenBLAS 0.3.23 does not know every CPU (on a Sapphire Rapids VM it
    falls back to its SSE3 'Prescott' kernels, 40 of ~100 GFLOP/s), MLAS picks AVX-512 where there is one."""
    import onnxruntime
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "sgemm",
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "ab"],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    # one warm-up product each: threads started, pages touched
    best_ms = min(median_ms(lambda: a @ b, runs), median_ms(lambda: session.run(None, {"a": a, "b": b}), runs))
    return 2 * n ** 3 / (best_ms / 1e3) / 1e9


def peak_pct(img_per_sec: float, flops_per_image: float, peak_gflops: float) -> str:
    """Achieved FLOP/s as a percentage of ``peak_gflops``."""
    return f"{100 * img_per_sec * flops_per_image / (peak_gflops * 1e9):.1f}%"
