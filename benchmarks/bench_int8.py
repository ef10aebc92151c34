"""INT8 against float32 in the C++ harness (OpenVINO backend), TinyNet-E@106 and A@192 at batch 1 and 32: the
harness run as a user runs it, and the figure ``python -m tinynet_ms.quantize`` reports, side by side.

    python benchmarks/bench_int8.py [--models tinynet_e,tinynet_a] [--batches 1,32] [--rounds 5] [--runs 100]
                                    [--num_calib 128] [--json out.json]

Each network (random weights, 1000 classes) is exported as a dynamic-batch ONNX and quantized by
``tinynet_ms.quantize.quantize_model`` (what the CLI runs), calibrated on ``--num_calib`` demo-like generated images
(``tinynet_ms.data.demo``: procedurally drawn shapes on noisy backgrounds, upscaled to the network's input by its
eval transform). Speed hardly depends on the values, but the ranges do: these are a random network's ranges on
synthetic images, so the INT8 files are for timing only (accuracy is judged on a trained demo model:
docs/deployment.md). Then, per batch, ``--rounds`` rounds of float then INT8:

- harness: this script's rounds, one harness process per model and round timing ``--runs`` runs of a batch of
  those images (a quarter, at least 5, at batch 32), the median it reports (time_Result/test_perform_static.txt);
- report: ``tinynet_ms.quantize.harness_speed``, the quantize report's own measurement, taken the same way in its
  own rounds right before: the two columns differ by the machine's noise only.

Each figure is the median over the rounds, the ratio float32 / int8 the median of the rounds' ratios. On CPUs with
AMX the INT8 file is also timed with AMX allowed (``ONEDNN_MAX_CPU_ISA=ALL``; the harness keeps oneDNN below AMX).
``measure(...)`` returns the rows for bench_all.py.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import mindspore as ms
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.common import cpu_features, header, table, variant_list  # noqa: E402
from tinynet_ms import create_model  # noqa: E402
from tinynet_ms.data.demo import make_demo_dataset  # noqa: E402
from tinynet_ms.data.folder import scan_split  # noqa: E402
from tinynet_ms.data.images import load_eval_image  # noqa: E402
from tinynet_ms.export import export_network, read_preprocessing  # noqa: E402
from tinynet_ms.latency import harness_rounds  # noqa: E402
from tinynet_ms.models import VARIANTS  # noqa: E402
from tinynet_ms.quantize import calibration_samples, harness_speed, quantize_model, runs_at  # noqa: E402

HARNESS = ROOT / "ascend310_infer" / "out" / "main"

KEYS = ["model", "size", "batch", "float32_ms", "int8_ms", "ratio", "report_float32_ms", "report_int8_ms",
        "report_ratio", "runtime"]
AMX_KEYS = ["int8_amx_ms", "amx_ratio"]  # on CPUs with AMX: the INT8 file with oneDNN's AMX path allowed


@contextmanager
def _env(name: str, value: str):
    """``name=value`` in the environment the harness processes inherit, for the block."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


def _calibration_images(work: Path, num_calib: int) -> list:
    """``num_calib`` demo-like training images (generated once, 10 classes), in the quantizer's fixed order."""
    data = work / "demo"
    make_demo_dataset(data, num_classes=10, train_per_class=math.ceil(num_calib / 10), val_per_class=1, seed=0)
    return calibration_samples(scan_split(data / "train").samples, num_calib)


def _medians(ms: list[list[float]]) -> tuple[float, float, float]:
    """(float32 ms, int8 ms, ratio): medians over the rounds of [float32, int8] pairs, the ratio per round."""
    return (statistics.median(r[0] for r in ms), statistics.median(r[1] for r in ms),
            statistics.median(r[0] / r[1] for r in ms))


def measure(models: Sequence[str] = ("tinynet_e", "tinynet_a"), batches: Sequence[int] = (1, 32), rounds: int = 5,
            runs: int = 100, num_calib: int = 128, harness: Path = HARNESS) -> list[dict]:
    """One row per model and batch: ``KEYS`` (milliseconds per batch; ratio = float32 / int8, > 1 when INT8 is
    faster), plus ``AMX_KEYS`` on CPUs with AMX. ``harness`` must be built (ascend310_infer/build.sh)."""
    amx = "AMX" in cpu_features()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_int8_") as tmp:
        work = Path(tmp)
        calib = _calibration_images(work, num_calib)
        for name in models:
            size = VARIANTS[name].image_size
            net = create_model(name, cpu_kernels=False)
            net.set_train(False)
            float_model = export_network(net, work / f"{name}_f32", "ONNX", 1, size, dynamic_batch=True)
            pre, _ = read_preprocessing(float_model)
            int8_model = quantize_model(float_model, work / f"{name}_int8.onnx", calib, size, pre)
            x = np.stack([load_eval_image(s.path, size, preprocessing=pre) for s in calib[:max(batches)]])
            report = {s.batch: s for s in harness_speed(float_model, int8_model, x, batches, harness, rounds, runs)}
            for batch in batches:
                images = x[np.arange(batch) % len(x)]
                timed = harness_rounds(harness, [float_model, int8_model], images, runs_at(batch, runs), rounds,
                                       work / "harness").ms
                f32, i8, ratio = _medians(timed)
                r = report[batch]
                row = {"model": name, "size": size, "batch": batch, "float32_ms": f32, "int8_ms": i8, "ratio": ratio,
                       "report_float32_ms": r.float32_ms, "report_int8_ms": r.int8_ms, "report_ratio": r.speedup,
                       "runtime": r.runtime}
                if amx:
                    with _env("ONEDNN_MAX_CPU_ISA", "ALL"):
                        both = harness_rounds(harness, [float_model, int8_model], images, runs_at(batch, runs), rounds,
                                              work / "amx").ms
                    row["int8_amx_ms"], row["amx_ratio"] = _medians(both)[1:]
                rows.append(row)
                print(f"{name} batch {batch}: float32 {f32:.3f} ms, int8 {i8:.3f} ms (x{ratio:.2f}); report "
                      f"x{r.speedup:.2f}", file=sys.stderr, flush=True)
    return rows


def format_rows(rows: list[dict]) -> str:
    keys = KEYS + [k for k in AMX_KEYS if rows and k in rows[0]]
    shown = [{k: (f"{r[k]:.3f}" if k.endswith("_ms") else f"x{r[k]:.2f}" if k.endswith("ratio") else r[k])
              for k in keys} for r in rows]
    return table(shown, keys, "INT8 vs float32 in the C++ harness (ms per batch; ratio = float32 / int8, the median "
                              "of the rounds' ratios; report = tinynet_ms.quantize's figure)")


def _batches(text: str) -> tuple[int, ...]:
    try:
        batches = tuple(int(b) for b in text.split(","))
    except ValueError:
        batches = ()
    if not batches or min(batches) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got '{text}'")
    return batches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tinynet_e,tinynet_a", type=variant_list,
                        help="variants, at their own resolution")
    parser.add_argument("--batches", type=_batches, default=(1, 32), help="comma-separated (default 1,32)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of float32 then int8; figures are medians")
    parser.add_argument("--runs", type=int, default=100,
                        help="timed runs per harness process at batch 1 (a quarter, at least 5, above)")
    parser.add_argument("--num_calib", type=int, default=128, help="generated calibration images")
    parser.add_argument("--json", default="", help="also write the rows here")
    args = parser.parse_args(argv)
    models = args.models.split(",")
    unknown = [m for m in models if m not in VARIANTS]
    if unknown:
        parser.error(f"--models: unknown {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    if args.rounds < 1 or args.runs < 1 or args.num_calib < 1:
        parser.error("--rounds, --runs and --num_calib must be positive")
    ms.set_device("CPU")
    build = subprocess.run(["bash", str(ROOT / "ascend310_infer" / "build.sh")], capture_output=True, text=True)
    if build.returncode != 0 or not HARNESS.is_file():
        print(build.stdout[-2000:] + build.stderr[-2000:], file=sys.stderr)
        print("error: the C++ harness did not build (needs cmake, g++, libopencv-dev, pip openvino)", file=sys.stderr)
        return 1
    rows = measure(models, args.batches, args.rounds, args.runs, args.num_calib)
    print(header("CPU, C++ harness (OpenVINO backend)") + f" | {args.rounds} rounds, calibration: {args.num_calib} "
          "generated demo-like images")
    print(format_rows(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
