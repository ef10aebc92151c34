"""Shared by the benchmark scripts: the machine header, speed-up ratios and markdown tables."""
from __future__ import annotations

import os
import platform
import time

import mindspore as ms


def header(device: str) -> str:
    return (f"# {time.strftime('%Y-%m-%d')} | {platform.processor() or platform.machine()} | {os.cpu_count()} cores | "
            f"MindSpore {ms.__version__} | {device}")


def speedup(value: float, base: float, higher_is_better: bool = True) -> str:
    """'2.00x' = twice as good as the base, whichever way the metric points."""
    return f"{(value / base if higher_is_better else base / value):.2f}x"


def table(rows: list[dict], keys: list[str], title: str) -> str:
    lines = [title, " | ".join(keys), " | ".join("---" for _ in keys)]
    for r in rows:
        lines.append(" | ".join(f"{r[k]:.1f}" if isinstance(r[k], float) else str(r[k]) for k in keys))
    return "\n".join(lines)


def timm_speed(python: str, *args: str) -> dict:
    """benchmarks/timm_speed.py run by ``python`` (an environment with torch + timm), after our own timings and
    never beside them: its JSON result."""
    import json
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parent / "timm_speed.py"
    run = subprocess.run([python, str(script), *args], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"timm_speed.py failed under {python}: {run.stderr[-1500:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])
