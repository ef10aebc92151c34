"""INT8 post-training quantization of an exported ONNX model, with its accuracy and speed cost measured.

    python -m tinynet_ms.quantize MODEL.onnx --data DATA [--num_calib 512] [--output MODEL_int8.onnx]

OpenVINO's NNCF post-training quantization of the ONNX graph, written back as ONNX in QDQ form
(QuantizeLinear/DequantizeLinear pairs): int8 per-output-channel symmetric weights, asymmetric 8-bit activations
(NNCF's ``MIXED`` preset), ranges calibrated on ``num_calib`` images of ``DATA/train`` run through the model's own
eval transform (its sidecar's crop, interpolation, mean/std), then NNCF's bias correction. NNCF because the
harness's cpu backend is OpenVINO, whose int8 kernels NNCF's placement is made for (it keeps the SE's tiny 1x1
convs in float; its bias correction recovers part of the rounding bias): on the demo model it lost 4 points where
onnxruntime's ``quantize_static`` lost 17. onnxruntime reads the file too, but runs NNCF's placement several
times slower than the float model. Then float and INT8 are scored on ``DATA/val`` (top-1/top-5, onnxruntime) and
timed on one batch in onnxruntime and in OpenVINO as the harness runs it (median of ``--runs``, the models in
turn), printed as a table (``--json`` for the record). The sidecar is copied beside the INT8 file, so
run_infer_310.sh runs it as it runs the float one. Ascend 310 users quantize with their toolkit instead (AMCT,
on the float ONNX or the MindIR).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tinynet_ms.atomic import atomic_path
from tinynet_ms.cli import UsageError, argument_type, positive_int, run_main
from tinynet_ms.data.folder import Sample, scan_split
from tinynet_ms.data.images import load_eval_image
from tinynet_ms.export import DYNAMIC, INPUT_NAME, load_exported, model_io_shapes, read_preprocessing, sidecar_path
from tinynet_ms.latency import interleaved_ms
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
    openvino_ms: float  # the same in OpenVINO, as the harness's cpu backend runs it (f32 where not int8)
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
    import logging

    import nncf
    import onnx

    logging.getLogger("nncf").setLevel(logging.WARNING)  # its progress bars and per-step INFO lines
    with tempfile.TemporaryDirectory(prefix="tinynet_quant_") as work:
        prepared = Path(work) / "prepared.onnx"
        _at_least_opset(model, prepared, QDQ_OPSET)
        images = [x for x, _ in _batches(calib, batch, image_size, pre)]
        quantized = nncf.quantize(onnx.load(str(prepared)), nncf.Dataset(images, lambda x: {INPUT_NAME: x}),
                                  preset=nncf.QuantizationPreset.MIXED, subset_size=len(images))
        with atomic_path(output) as tmp:
            onnx.save(quantized, str(tmp))
    if sidecar_path(model).is_file():
        with atomic_path(sidecar_path(output)) as tmp:
            shutil.copyfile(sidecar_path(model), tmp)
    return output


def accuracy(infer: Callable[[np.ndarray], list[np.ndarray]], val: Sequence[Sample], batch: int, image_size: int,
             pre: Preprocessing) -> tuple[float, float, np.ndarray]:
    """Top-1, top-5 of ``infer`` (``export.load_exported``'s function) on ``val``, and the first batch (for
    timing)."""
    correct, first = np.zeros(2, np.int64), None
    for x, labels in _batches(val, batch, image_size, pre):
        correct += topk_correct(infer(x)[0][:len(labels)], labels)
        first = x if first is None else first
    return float(correct[0] / len(val)), float(correct[1] / len(val)), first


def openvino_runner(model: Path, shape: Sequence[int]) -> Callable[[np.ndarray], object]:
    """``model`` in OpenVINO with the harness's settings (f32 inference precision, the latency hint; int8
    convolutions stay int8 under the f32 hint), reshaped to ``shape`` as the harness does for a dynamic batch."""
    import openvino as ov

    core = ov.Core()
    graph = core.read_model(str(model))
    graph.reshape(list(shape))
    request = core.compile_model(graph, "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                "INFERENCE_PRECISION_HINT": "f32"}).create_infer_request()
    return lambda x: request.infer([x])


def score(models: Sequence[Path], val: Sequence[Sample], batch: int, image_size: int, pre: Preprocessing,
          runs: int) -> list[Scores]:
    """Top-1/top-5 of each model on ``val`` (onnxruntime), and its onnxruntime and OpenVINO times on one batch."""
    scored, calls = [], []
    for m in models:
        onnxruntime = load_exported(m)
        top1, top5, x = accuracy(onnxruntime, val, batch, image_size, pre)
        openvino = openvino_runner(m, x.shape)
        scored.append((top1, top5))
        calls += [lambda f=onnxruntime, x=x: f(x), lambda f=openvino, x=x: f(x)]
    ms = interleaved_ms(calls, runs)
    return [Scores(m.name, top1, top5, ms[2 * i], ms[2 * i + 1], batch, m.stat().st_size / 1e6)
            for i, (m, (top1, top5)) in enumerate(zip(models, scored))]


def format_table(rows: Sequence[Scores]) -> str:
    lines = ["| model | top-1 | top-5 | onnxruntime ms / batch | OpenVINO ms / batch | batch | MB |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.model} | {r.top1:.4f} | {r.top5:.4f} | {r.latency_ms:.2f} | {r.openvino_ms:.2f} | {r.batch} | "
              f"{r.megabytes:.2f} |" for r in rows]
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
    rows = score([model, output], val_split.samples, batch, image_size, pre, args.runs)
    print(format_table(rows))
    print(f"INT8 - float top-1: {100 * (rows[1].top1 - rows[0].top1):+.2f} points on {len(val_split.samples)} "
          f"images; speed x{rows[0].latency_ms / rows[1].latency_ms:.2f} in onnxruntime, "
          f"x{rows[0].openvino_ms / rows[1].openvino_ms:.2f} in OpenVINO")
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
