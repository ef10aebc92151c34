"""INT8 post-training quantization of an exported ONNX model, with its accuracy and speed cost measured.

    python -m tinynet_ms.quantize MODEL.onnx --data DATA [--num_calib 512] [--calib_batch 4] [--output MODEL_int8.onnx]

OpenVINO's NNCF post-training quantization of the ONNX graph, written back as ONNX in QDQ form
(QuantizeLinear/DequantizeLinear pairs): int8 per-output-channel symmetric weights, asymmetric 8-bit activations
(NNCF's ``MIXED`` preset), then NNCF's fast bias correction. NNCF because the harness's cpu backend is OpenVINO,
whose int8 kernels NNCF's placement is made for (it keeps the SE's tiny 1x1 convs in float).

Calibration: ``num_calib`` images of ``DATA/train`` (a fixed sample in a fixed shuffled order, so that batches mix
classes) run through the model's own eval transform (its sidecar's crop, interpolation, mean/std), in batches of
``calib_batch`` images whatever batch the file was exported with (a fixed-batch file is calibrated on a copy with a
free batch axis). A per-tensor activation range is the mean, over those batches, of each batch's min and max
(NNCF's ``MEAN_MINMAX`` with batchwise statistics off): the expected extreme of ``calib_batch`` images. The batch
is therefore the range estimator's one knob: 1 (per-image extremes) clips the images with the largest
activations; 32 (what this tool used before for a dynamic-batch file, by accident: NNCF computes per-image statistics
only for a dataset that reports its batch size) and NNCF's ``MINMAX`` waste levels on outliers; 4 reproduced the
float model's predictions best on every demo model measured (README, Results).

Then float and INT8 are scored on ``DATA/val`` (top-1/top-5 in onnxruntime, how often their top-1 classes agree, and
a paired 95% interval of the top-1 difference: on a small val set the difference is mostly which near-tied images
flip) and timed on one batch in onnxruntime and in OpenVINO as the harness runs it (median of ``--runs``, the models
in turn), printed as a table (``--json`` for the record). The sidecar is copied beside the INT8 file, so
run_infer_310.sh runs it as it runs the float one. onnxruntime reads the file too, but runs NNCF's placement
several times slower than the float model. Ascend 310 users quantize with their toolkit instead (AMCT, on the float
ONNX or the MindIR).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tinynet_ms.atomic import atomic_path, lock_output_file
from tinynet_ms.cli import UsageError, argument_type, positive_int, run_main
from tinynet_ms.data.folder import Sample, scan_split
from tinynet_ms.data.images import load_eval_image
from tinynet_ms.export import DYNAMIC, INPUT_NAME, load_exported, model_io_shapes, read_preprocessing, sidecar_path
from tinynet_ms.latency import interleaved_ms
from tinynet_ms.models import Preprocessing
from tinynet_ms.train.metrics import topk_correct

if TYPE_CHECKING:
    import onnx

# per-channel DequantizeLinear (its axis attribute) needs opset 13; MindSpore 2.10 writes opset 11
QDQ_OPSET = 13
DYNAMIC_BATCH = 32  # the batch a dynamic-batch file is scored and timed at
CALIB_BATCH = 4  # images per calibration batch: activation ranges are the mean of per-batch min/max
Z95 = 1.959964  # two-sided 95% normal quantile
# The harness's OpenVINO backend caps oneDNN below AMX (ascend310_infer/src/openvino_backend.cc): on AMX CPUs
# OpenVINO 2026.4 runs this network's int8 convolutions slower than f32 on its AMX path, faster on AVX-512 VNNI.
OPENVINO_ISA = "AVX512_CORE_BF16"


@dataclass(frozen=True)
class Scores:
    model: str
    top1: float
    top5: float
    latency_ms: float  # median onnxruntime time of one batch
    openvino_ms: float  # the same in OpenVINO, as the harness's cpu backend runs it (f32 where not int8)
    batch: int
    megabytes: float
    agreement: float  # share of DATA/val images whose top-1 class is the first (float) model's; 1 for that one
    top1_ci95: float  # half-width of a paired 95% interval of top1 minus the first model's top1; 0 for that one


@dataclass(frozen=True)
class Predictions:
    top1: float
    top5: float
    classes: np.ndarray  # top-1 class per val image
    correct: np.ndarray  # top-1 correct per val image


def _batches(samples: Sequence[Sample], batch: int, image_size: int, pre: Preprocessing, pad: bool = True
             ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(images, labels) in batches of ``batch``; with ``pad`` (a fixed-batch file needs it) the last one is padded
    with copies of its last image, and its labels are cut to the real ones."""
    for start in range(0, len(samples), batch):
        chunk = samples[start:start + batch]
        x = np.stack([load_eval_image(s.path, image_size, preprocessing=pre) for s in chunk])
        if pad and len(chunk) < batch:
            x = np.concatenate([x, np.repeat(x[-1:], batch - len(chunk), axis=0)])
        yield x, np.array([s.label for s in chunk])


def calibration_samples(samples: Sequence[Sample], num_calib: int, seed: int = 0) -> list[Sample]:
    """``num_calib`` training images drawn without replacement, the same ones in the same shuffled order every run
    (calibration batches then mix classes instead of following the sorted class folders)."""
    order = np.random.default_rng(seed).permutation(len(samples))[:num_calib]
    return [samples[i] for i in order]


def _prepared(model: Path, opset: int) -> onnx.ModelProto:
    """The float graph as NNCF gets it: at least ``opset``, with stale shape annotations dropped."""
    import onnx
    from onnx import version_converter

    proto = onnx.load(str(model))
    current = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if current < opset:
        proto = version_converter.convert_version(proto, opset)
    del proto.graph.value_info[:]
    return proto


def _free_batch(proto: onnx.ModelProto) -> dict[str, onnx.TensorShapeProto.Dimension]:
    """Make the batch axis of ``proto``'s input and outputs free (calibration batches need not match the exported
    batch); returns the axes as they were, for ``_restore_batch``."""
    import onnx

    exported = {}
    for value in [*proto.graph.input, *proto.graph.output]:
        if value.type.tensor_type.shape.dim:
            dim = value.type.tensor_type.shape.dim[0]
            exported[value.name] = onnx.TensorShapeProto.Dimension()
            exported[value.name].CopyFrom(dim)
            dim.dim_param = "batch"
    return exported


def _restore_batch(proto: onnx.ModelProto, exported: dict[str, onnx.TensorShapeProto.Dimension]) -> None:
    """Give ``proto``'s input and outputs back the batch axis they had in the exported file (fixed or free)."""
    for value in [*proto.graph.input, *proto.graph.output]:
        if value.name in exported:
            value.type.tensor_type.shape.dim[0].CopyFrom(exported[value.name])


def quantize_model(model: Path, output: Path, calib: Sequence[Sample], image_size: int, pre: Preprocessing,
                   calib_batch: int = CALIB_BATCH) -> Path:
    """Write the QDQ INT8 model (atomically) and copy the float model's sidecar beside it. Activation ranges: the
    mean over batches of ``calib_batch`` calibration images of each batch's min and max."""
    import logging

    import nncf
    import onnx
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

    logging.getLogger("nncf").setLevel(logging.WARNING)  # its progress bars and per-step INFO lines
    images = [x for x, _ in _batches(calib, calib_batch, image_size, pre, pad=False)]
    prepared = _prepared(model, QDQ_OPSET)
    exported_batch = _free_batch(prepared)
    quantized = nncf.quantize(
        prepared, nncf.Dataset(images, lambda x: {INPUT_NAME: x}),
        preset=nncf.QuantizationPreset.MIXED, subset_size=len(images),
        # min/max over each whole batch, averaged over the batches (explicit: NNCF's default depends on whether the
        # dataset reports a batch size)
        advanced_parameters=AdvancedQuantizationParameters(batchwise_statistics=False))
    _restore_batch(quantized, exported_batch)
    onnx.checker.check_model(quantized)
    with atomic_path(output) as tmp:
        onnx.save(quantized, str(tmp))
    if sidecar_path(model).is_file():
        with atomic_path(sidecar_path(output)) as tmp:
            shutil.copyfile(sidecar_path(model), tmp)
    return output


def accuracy(infer: Callable[[np.ndarray], list[np.ndarray]], val: Sequence[Sample], batch: int, image_size: int,
             pre: Preprocessing) -> tuple[Predictions, np.ndarray]:
    """``infer``'s (``export.load_exported``'s function) predictions on ``val``, and the first batch (for timing)."""
    correct5, classes, labels, first = 0, [], [], None
    for x, y in _batches(val, batch, image_size, pre):
        logits = infer(x)[0][:len(y)]
        correct5 += topk_correct(logits, y, ks=(5,))[0]
        classes.append(logits.argmax(axis=1))
        labels.append(y)
        first = x if first is None else first
    classes_, labels_ = np.concatenate(classes), np.concatenate(labels)
    correct = classes_ == labels_
    return Predictions(float(correct.mean()), correct5 / len(val), classes_, correct), first


def paired_ci95(correct: np.ndarray, reference: np.ndarray) -> float:
    """Half-width of a 95% normal interval for mean(correct) - mean(reference), the two scored on the same images
    (per-image differences in {-1, 0, 1}; only the images where the models differ contribute)."""
    diff = correct.astype(np.float64) - reference.astype(np.float64)
    return Z95 * float(diff.std(ddof=1)) / math.sqrt(len(diff)) if len(diff) > 1 else math.inf


def openvino_runner(model: Path, shape: Sequence[int]) -> Callable[[np.ndarray], object]:
    """``model`` in OpenVINO with the harness's settings (f32 inference precision, the latency hint; int8
    convolutions stay int8 under the f32 hint; oneDNN kept below AMX, whose int8 path is slower here: see
    ``OPENVINO_ISA``), reshaped to ``shape`` as the harness does for a dynamic batch."""
    import openvino as ov

    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", OPENVINO_ISA)  # read at the process's first compile
    core = ov.Core()
    graph = core.read_model(str(model))
    graph.reshape(list(shape))
    request = core.compile_model(graph, "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                "INFERENCE_PRECISION_HINT": "f32"}).create_infer_request()
    return lambda x: request.infer([x])


def score(models: Sequence[Path], val: Sequence[Sample], batch: int, image_size: int, pre: Preprocessing,
          runs: int) -> list[Scores]:
    """Top-1/top-5 of each model on ``val`` (onnxruntime), its agreement with the first model and the paired 95%
    interval of its top-1 difference from it, and its onnxruntime and OpenVINO times on one batch."""
    scored: list[Predictions] = []
    calls = []
    for m in models:
        onnxruntime = load_exported(m)
        predicted, x = accuracy(onnxruntime, val, batch, image_size, pre)
        openvino = openvino_runner(m, x.shape)
        scored.append(predicted)
        calls += [lambda f=onnxruntime, x=x: f(x), lambda f=openvino, x=x: f(x)]
    ms = interleaved_ms(calls, runs)
    reference = scored[0]
    return [Scores(m.name, p.top1, p.top5, ms[2 * i], ms[2 * i + 1], batch, m.stat().st_size / 1e6,
                   float(np.mean(p.classes == reference.classes)),
                   0.0 if i == 0 else paired_ci95(p.correct, reference.correct))
            for i, (m, p) in enumerate(zip(models, scored))]


def format_table(rows: Sequence[Scores]) -> str:
    lines = ["| model | top-1 | top-5 | top-1 agreement | onnxruntime ms / batch | OpenVINO ms / batch | batch | MB |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r.model} | {r.top1:.4f} | {r.top5:.4f} | {r.agreement:.4f} | {r.latency_ms:.2f} | "
              f"{r.openvino_ms:.2f} | {r.batch} | {r.megabytes:.2f} |" for r in rows]
    return "\n".join(lines)


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: one path once symlinks and spelling (./, ..) are resolved, or hard
    links to one inode."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # either one does not exist: not the same file
        return False


def run(args: argparse.Namespace) -> list[Scores]:
    model = Path(args.model)
    if not model.is_file():
        raise FileNotFoundError(f"model file not found: {model}")
    if model.suffix.lower() != ".onnx":
        raise UsageError(f"{model}: quantization takes the ONNX export (export.py --file_format ONNX)")
    output = Path(args.output) if args.output else model.with_name(model.stem + "_int8.onnx")
    for kept in (model, sidecar_path(model)):
        if _same_file(output, kept):  # the float model would be replaced, then scored against itself
            raise UsageError(f"--output {output} is {kept} itself: name another file (default "
                             f"{model.stem}_int8.onnx)")
    if output.is_dir():
        raise UsageError(f"--output {output} is a folder: name the INT8 file, e.g. {output / model.name}")
    (in_shape, out_shapes) = model_io_shapes(model)
    if len(out_shapes) != 1 or len(out_shapes[0]) != 2:
        shapes = ", ".join(f"({','.join('N' if d == DYNAMIC else str(d) for d in s)})" for s in out_shapes)
        raise UsageError(f"{model} outputs {shapes}: quantize takes a classifier export (one (N, classes) logits "
                         f"output); a backbone (export.py --features_only true) cannot be scored on DATA/val")
    batch = DYNAMIC_BATCH if in_shape[0] == DYNAMIC else in_shape[0]
    image_size = in_shape[2]
    pre, source = read_preprocessing(model)
    data = Path(args.data)
    train_split = scan_split(data / "train")
    train, val_split = train_split.samples, scan_split(data / "val", classes=train_split.classes)
    if not train or not val_split.samples:
        raise UsageError(f"{data}: train/ and val/ need images")
    num_classes = out_shapes[0][1]
    if num_classes not in (DYNAMIC, len(train_split.classes)):  # its scores would compare unrelated class indices
        raise ValueError(f"{model} has {num_classes} classes but {data / 'train'} has {len(train_split.classes)} "
                         f"class folders: quantize with the dataset the model was trained on")
    calib = calibration_samples(train, args.num_calib)
    print(f"calibrating on {len(calib)} images of {data / 'train'} at {image_size}px in batches of "
          f"{args.calib_batch} (preprocessing: {source})", flush=True)
    with lock_output_file(output, "quantization"):  # one writer of OUTPUT (an export, another quantization)
        quantize_model(model, output, calib, image_size, pre, args.calib_batch)
        print(f"wrote {output}", flush=True)
        rows = score([model, output], val_split.samples, batch, image_size, pre, args.runs)
    print(format_table(rows))
    print(f"INT8 - float top-1: {100 * (rows[1].top1 - rows[0].top1):+.2f} points on {len(val_split.samples)} "
          f"images (paired 95% interval +-{100 * rows[1].top1_ci95:.2f}; the top-1 classes agree on "
          f"{100 * rows[1].agreement:.1f}% of them); speed x{rows[0].latency_ms / rows[1].latency_ms:.2f} in "
          f"onnxruntime, x{rows[0].openvino_ms / rows[1].openvino_ms:.2f} in OpenVINO")
    if args.json:
        print(json.dumps([asdict(r) for r in rows]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinynet_ms.quantize", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the float ONNX (export.py --file_format ONNX)")
    parser.add_argument("--data", required=True, help="dataset root with train/ (calibration) and val/ (scoring)")
    parser.add_argument("--num_calib", type=argument_type(positive_int), default=512,
                        help="calibration images from DATA/train (default 512)")
    parser.add_argument("--calib_batch", type=argument_type(positive_int), default=CALIB_BATCH,
                        help="images per calibration batch; an activation range is the mean of the batches' "
                             f"min and max (default {CALIB_BATCH})")
    parser.add_argument("--output", default="", help="INT8 file (default MODEL_int8.onnx)")
    parser.add_argument("--runs", type=argument_type(positive_int), default=20, help="timed batches per model")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    args = parser.parse_args(argv)
    return run_main(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
