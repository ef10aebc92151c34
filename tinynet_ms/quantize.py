"""INT8 post-training quantization of an exported ONNX model, with its accuracy and speed cost measured.

    python -m tinynet_ms.quantize MODEL.onnx --data DATA [--num_calib 512] [--output MODEL_int8.onnx]

onnxruntime's static quantization in QDQ form (QuantizeLinear/DequantizeLinear pairs around each conv and
matmul): int8 per-output-channel weights, uint8 activations with ranges calibrated on ``num_calib`` images of
``DATA/train`` run through the model's own eval transform (its sidecar's crop, interpolation, mean/std). QDQ is
the form every runtime reads: onnxruntime runs it with its int8 kernels and OpenVINO (the C++ harness's cpu
backend) fuses the pairs into its own int8 convolutions, so one file serves both. Then float and INT8 are
scored on ``DATA/val`` (top-1/top-5) and timed in onnxruntime (median of ``--runs`` batches), printed as a table
(``--json`` for the record). The sidecar is copied beside the INT8 file, so run_infer_310.sh runs it as it runs
the float one. Ascend 310 users quantize with their toolkit instead (AMCT, on the float ONNX or the MindIR).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tinynet_ms.atomic import atomic_path
from tinynet_ms.cli import UsageError, argument_type, positive_int, run_main
from tinynet_ms.data.folder import Sample, scan_split
from tinynet_ms.data.images import load_eval_image
from tinynet_ms.export import DYNAMIC, model_io_shapes, read_preprocessing, sidecar_path
from tinynet_ms.models import Preprocessing
from tinynet_ms.train.metrics import topk_correct

# per-channel DequantizeLinear (its axis attribute) needs opset 13; MindSpore 2.10 writes opset 11
QDQ_OPSET = 13
DYNAMIC_BATCH = 32  # the batch a dynamic-batch file is calibrated, scored and timed at


@dataclass(frozen=True)
class Scores:
    model: str
    top1: float
    top5: float
    latency_ms: float  # median onnxruntime time of one batch
    batch: int
    megabytes: float


def _batches(samples: Sequence[Sample], batch: int, image_size: int, pre: Preprocessing
             ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(images, labels) in batches of exactly ``batch`` (a fixed-batch file needs it); the last one is padded with
    copies of its last image, and its labels are cut to the real ones."""
    for start in range(0, len(samples), batch):
        chunk = samples[start:start + batch]
        x = np.stack([load_eval_image(s.path, image_size, preprocessing=pre) for s in chunk])
        if len(chunk) < batch:
            x = np.concatenate([x, np.repeat(x[-1:], batch - len(chunk), axis=0)])
        yield x, np.array([s.label for s in chunk])


def calibration_samples(samples: Sequence[Sample], num_calib: int, seed: int = 0) -> list[Sample]:
    """``num_calib`` training images drawn without replacement, the same ones every run."""
    order = np.random.default_rng(seed).permutation(len(samples))[:num_calib]
    return [samples[i] for i in sorted(order)]


def _at_least_opset(model: Path, output: Path, opset: int) -> None:
    import onnx
    from onnx import version_converter

    proto = onnx.load(str(model))
    current = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    onnx.save(version_converter.convert_version(proto, opset) if current < opset else proto, str(output))


def quantize_model(model: Path, output: Path, calib: Sequence[Sample], batch: int, image_size: int,
                   pre: Preprocessing) -> Path:
    """Write the QDQ INT8 model (atomically) and copy the float model's sidecar beside it."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = ({"image": x} for x, _ in _batches(calib, batch, image_size, pre))

        def get_next(self) -> dict | None:
            return next(self.it, None)

    with tempfile.TemporaryDirectory(prefix="tinynet_quant_") as work:
        prepared = Path(work) / "prepared.onnx"
        _at_least_opset(model, prepared, QDQ_OPSET)
        quant_pre_process(str(prepared), str(prepared), skip_symbolic_shape=True)  # onnxruntime's advice for PTQ
        with atomic_path(output) as tmp:
            quantize_static(str(prepared), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
    if sidecar_path(model).is_file():
        with atomic_path(sidecar_path(output)) as tmp:
            shutil.copyfile(sidecar_path(model), tmp)
    return output


def score(model: Path, val: Sequence[Sample], batch: int, image_size: int, pre: Preprocessing, runs: int) -> Scores:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    correct, first = np.zeros(2, np.int64), None
    for x, labels in _batches(val, batch, image_size, pre):
        logits = session.run(None, {name: x})[0][:len(labels)]
        correct += topk_correct(logits, labels)
        first = x if first is None else first
    session.run(None, {name: first})  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {name: first})
        times.append((time.perf_counter() - start) * 1e3)
    return Scores(model.name, float(correct[0] / len(val)), float(correct[1] / len(val)), statistics.median(times),
                  batch, model.stat().st_size / 1e6)


def format_table(rows: Sequence[Scores]) -> str:
    lines = ["| model | top-1 | top-5 | onnxruntime ms / batch | batch | MB |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.model} | {r.top1:.4f} | {r.top5:.4f} | {r.latency_ms:.2f} | {r.batch} | {r.megabytes:.2f} |"
              for r in rows]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> list[Scores]:
    model = Path(args.model)
    if not model.is_file():
        raise FileNotFoundError(f"model file not found: {model}")
    if model.suffix.lower() != ".onnx":
        raise UsageError(f"{model}: quantization takes the ONNX export (export.py --file_format ONNX)")
    (in_shape, out_shapes) = model_io_shapes(model)
    if len(out_shapes) != 1:
        raise UsageError(f"{model} has {len(out_shapes)} outputs: only a classifier can be scored on DATA/val")
    batch = DYNAMIC_BATCH if in_shape[0] == DYNAMIC else in_shape[0]
    image_size = in_shape[2]
    pre, source = read_preprocessing(model)
    data = Path(args.data)
    train_split = scan_split(data / "train")
    train, val_split = train_split.samples, scan_split(data / "val", classes=train_split.classes)
    if not train or not val_split.samples:
        raise UsageError(f"{data}: train/ and val/ need images")
    calib = calibration_samples(train, args.num_calib)
    output = Path(args.output) if args.output else model.with_name(model.stem + "_int8.onnx")
    print(f"calibrating on {len(calib)} images of {data / 'train'} at {image_size}px, batch {batch} "
          f"(preprocessing: {source})", flush=True)
    quantize_model(model, output, calib, batch, image_size, pre)
    print(f"wrote {output}", flush=True)
    rows = [score(path, val_split.samples, batch, image_size, pre, args.runs) for path in (model, output)]
    print(format_table(rows))
    print(f"INT8 - float top-1: {100 * (rows[1].top1 - rows[0].top1):+.2f} points on {len(val_split.samples)} "
          f"images; latency x{rows[0].latency_ms / rows[1].latency_ms:.2f}")
    if args.json:
        print(json.dumps([asdict(r) for r in rows]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinynet_ms.quantize", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the float ONNX (export.py --file_format ONNX)")
    parser.add_argument("--data", required=True, help="dataset root with train/ (calibration) and val/ (scoring)")
    parser.add_argument("--num_calib", type=argument_type(positive_int), default=512,
                        help="calibration images from DATA/train (default 512)")
    parser.add_argument("--output", default="", help="INT8 file (default MODEL_int8.onnx)")
    parser.add_argument("--runs", type=argument_type(positive_int), default=20, help="timed batches per model")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    args = parser.parse_args(argv)
    return run_main(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
