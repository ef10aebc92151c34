"""INT8 post-training quantization of an exported ONNX model, with its accuracy and speed cost measured.

    python -m tinynet_ms.quantize MODEL.onnx --data DATA [--num_calib 512] [--calib_batch 4] [--output MODEL_int8.onnx]
                                 [--harness ascend310_infer/out/main] [--batches 1,32] [--rounds 5] [--runs 100]

OpenVINO's NNCF post-training quantization of the ONNX graph, written back as ONNX in QDQ form
(QuantizeLinear/DequantizeLinear pairs): int8 per-output-channel symmetric weights, asymmetric 8-bit activations
(NNCF's ``MIXED`` preset) with one range per tensor, then NNCF's fast bias correction. NNCF because the harness's
cpu backend is OpenVINO, whose int8 kernels NNCF's placement is made for (it keeps the SE's tiny 1x1 convs in
float). One range per activation tensor, where NNCF would give the depthwise convolutions' inputs one per channel:
OpenVINO runs per-channel activation zero points only on its legacy convolution kernels, the depthwise ones slower
than float32 (docs/deployment.md).

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
flip) and timed in the C++ harness itself (``--harness``: the model zoo's ascend310_infer/out/main, its OpenVINO
backend; without it they are not timed): at each batch the file will run at (1 and 32 for a dynamic-batch file,
else its own), ``--rounds`` rounds of float then INT8, each one harness process timing ``--runs`` batches; the
figure is the median over the rounds. That is the one speed measurement of INT8 against float (run_demo.sh's
summary quotes it). onnxruntime, the scoring runtime, is timed too on one batch: it reads the file but runs NNCF's
placement several times slower than the float model. The sidecar is copied beside the INT8 file, so
run_infer_310.sh runs it as it runs the float one. Ascend 310 users quantize with their toolkit instead (AMCT, on
the float ONNX or the MindIR).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
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
from tinynet_ms.latency import harness_rounds, interleaved_ms
from tinynet_ms.models import Preprocessing
from tinynet_ms.train.metrics import topk_correct

if TYPE_CHECKING:
    import onnx

# per-channel DequantizeLinear (its axis attribute) needs opset 13; MindSpore 2.10 writes opset 11
QDQ_OPSET = 13
DYNAMIC_BATCH = 32  # the batch a dynamic-batch file is scored at
TIMED_BATCHES = (1, DYNAMIC_BATCH)  # the batches a dynamic-batch file is timed at: latency and throughput
CALIB_BATCH = 4  # images per calibration batch: activation ranges are the mean of per-batch min/max
Z95 = 1.959964  # two-sided 95% normal quantile


@dataclass(frozen=True)
class Scores:
    model: str
    top1: float
    top5: float
    onnxruntime_ms: float  # median onnxruntime time of one batch
    batch: int
    megabytes: float
    agreement: float  # share of DATA/val images whose top-1 class is the first (float) model's; 1 for that one
    top1_ci95: float  # half-width of a paired 95% interval of top1 minus the first model's top1; 0 for that one


@dataclass(frozen=True)
class Speed:
    """Float32 against INT8 in the C++ harness at one batch."""
    batch: int
    float32_ms: float  # median over the rounds of the harness's median milliseconds per batch
    int8_ms: float
    speedup: float  # median over the rounds of the round's float32_ms / int8_ms
    rounds: int
    runtime: str  # what ran the INT8 file, as the harness says (e.g. "OpenVINO 2026.4.1, f32 + int8, 2 streams")


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
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters

    logging.getLogger("nncf").setLevel(logging.WARNING)  # its progress bars and per-step INFO lines
    images = [x for x, _ in _batches(calib, calib_batch, image_size, pre, pad=False)]
    prepared = _prepared(model, QDQ_OPSET)
    exported_batch = _free_batch(prepared)
    quantized = nncf.quantize(
        prepared, nncf.Dataset(images, lambda x: {INPUT_NAME: x}),
        preset=nncf.QuantizationPreset.MIXED, subset_size=len(images),
        # min/max over each whole batch, averaged over the batches (explicit: NNCF's default depends on whether the
        # dataset reports a batch size); one range per activation tensor: NNCF's per-channel ranges on depthwise
        # inputs become per-channel zero points, which OpenVINO runs on its legacy kernels only
        advanced_parameters=AdvancedQuantizationParameters(
            batchwise_statistics=False, activations_quantization_params=QuantizationParameters(per_channel=False)))
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


def score(models: Sequence[Path], val: Sequence[Sample], batch: int, image_size: int, pre: Preprocessing,
          runs: int) -> list[Scores]:
    """Top-1/top-5 of each model on ``val`` (onnxruntime), its agreement with the first model and the paired 95%
    interval of its top-1 difference from it, and its onnxruntime time on one batch (the models in turn)."""
    scored: list[Predictions] = []
    calls = []
    for m in models:
        onnxruntime = load_exported(m)
        predicted, x = accuracy(onnxruntime, val, batch, image_size, pre)
        scored.append(predicted)
        calls.append(lambda f=onnxruntime, x=x: f(x))
    ms = interleaved_ms(calls, runs)
    reference = scored[0]
    return [Scores(m.name, p.top1, p.top5, ms[i], batch, m.stat().st_size / 1e6,
                   float(np.mean(p.classes == reference.classes)),
                   0.0 if i == 0 else paired_ci95(p.correct, reference.correct))
            for i, (m, p) in enumerate(zip(models, scored))]


def harness_speed(float_model: Path, int8_model: Path, x: np.ndarray, batches: Sequence[int], harness: Path,
                  rounds: int, runs: int) -> list[Speed]:
    """Float32 against INT8 in the C++ harness at each of ``batches``: ``rounds`` rounds of float then INT8, one
    harness process each timing ``runs_at(batch, runs)`` runs of a batch cut from the images ``x`` (repeated when
    there are fewer)."""
    speeds = []
    with tempfile.TemporaryDirectory(prefix="tinynet_int8_") as work:
        for batch in batches:
            images = x[np.arange(batch) % len(x)]
            timed = harness_rounds(harness, [float_model, int8_model], images, runs_at(batch, runs), rounds,
                                   Path(work))
            float_ms, int8_ms = zip(*timed.ms)
            speeds.append(Speed(batch, statistics.median(float_ms), statistics.median(int8_ms),
                                statistics.median(f / i for f, i in timed.ms), rounds, timed.backends[1]))
    return speeds


def format_table(rows: Sequence[Scores]) -> str:
    lines = ["| model | top-1 | top-5 | top-1 agreement | onnxruntime ms / batch | batch | MB |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.model} | {r.top1:.4f} | {r.top5:.4f} | {r.agreement:.4f} | {r.onnxruntime_ms:.2f} | {r.batch} | "
              f"{r.megabytes:.2f} |" for r in rows]
    return "\n".join(lines)


def format_speed(speeds: Sequence[Speed]) -> str:
    lines = ["| batch | float32 ms / batch | INT8 ms / batch | INT8 speed-up | C++ harness |", "|---|---|---|---|---|"]
    lines += [f"| {s.batch} | {s.float32_ms:.3f} | {s.int8_ms:.3f} | x{s.speedup:.2f} | {s.runtime} |" for s in speeds]
    return "\n".join(lines)


def _batches_arg(text: str) -> tuple[int, ...]:
    """'1,32' -> (1, 32): the batches to time a dynamic-batch file at."""
    try:
        batches = tuple(int(part) for part in text.split(","))
    except ValueError:
        batches = ()
    if not batches or min(batches) < 1:
        raise ValueError(f"expected positive integers separated by commas, got '{text}'")
    return batches


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: one path once symlinks and spelling (./, ..) are resolved, or hard
    links to one inode."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # either one does not exist: not the same file
        return False


def runs_at(batch: int, runs: int) -> int:
    """Timed runs of one batch: ``runs`` at batch 1, a quarter (at least 5) of them at larger batches."""
    return runs if batch == 1 else max(5, runs // 4)


def _harness(path: str) -> Path | None:
    """The harness binary to time with (``--harness``, which must exist), or None: no harness timing."""
    if path and not Path(path).is_file():
        raise UsageError(f"--harness {path} is not a file: build the harness (bash ascend310_infer/build.sh) and "
                         f"name its out/main")
    return Path(path) if path else None


def run(args: argparse.Namespace) -> tuple[list[Scores], list[Speed]]:
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
    harness = _harness(args.harness) if args.rounds else None
    (in_shape, out_shapes) = model_io_shapes(model)
    if len(out_shapes) != 1 or len(out_shapes[0]) != 2:
        shapes = ", ".join(f"({','.join('N' if d == DYNAMIC else str(d) for d in s)})" for s in out_shapes)
        raise UsageError(f"{model} outputs {shapes}: quantize takes a classifier export (one (N, classes) logits "
                         f"output); a backbone (export.py --features_only true) cannot be scored on DATA/val")
    batch = DYNAMIC_BATCH if in_shape[0] == DYNAMIC else in_shape[0]
    timed_batches = args.batches or (TIMED_BATCHES if in_shape[0] == DYNAMIC else (batch,))
    if in_shape[0] != DYNAMIC and set(timed_batches) != {batch}:
        raise UsageError(f"{model} has a fixed batch of {batch}: --batches can only be {batch} (export with "
                         f"--dynamic_batch true to time other batches)")
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
        rows = score([model, output], val_split.samples, batch, image_size, pre, runs_at(batch, args.runs))
        speeds = []
        if harness is not None:
            x, _ = next(_batches(val_split.samples[:max(timed_batches)], max(timed_batches), image_size, pre))
            print(f"timing float32 and INT8 in {harness} at batch {', '.join(map(str, timed_batches))} "
                  f"({args.rounds} rounds)", flush=True)
            speeds = harness_speed(model, output, x, timed_batches, harness, args.rounds, args.runs)
    print(format_table(rows))
    print(f"INT8 - float top-1: {100 * (rows[1].top1 - rows[0].top1):+.2f} points on {len(val_split.samples)} "
          f"images (paired 95% interval +-{100 * rows[1].top1_ci95:.2f}; the top-1 classes agree on "
          f"{100 * rows[1].agreement:.1f}% of them); onnxruntime "
          f"x{rows[0].onnxruntime_ms / rows[1].onnxruntime_ms:.2f} at batch {batch} (keep the float file for "
          f"onnxruntime)")
    if speeds:
        print(format_speed(speeds))
        print("INT8 speed-up in the C++ harness: " + ", ".join(f"x{s.speedup:.2f} at batch {s.batch}" for s in speeds)
              + f" (median of {args.rounds} interleaved rounds)")
    elif args.rounds:
        print("INT8 speed-up in the C++ harness: not timed (build it with bash ascend310_infer/build.sh and pass "
              "--harness ascend310_infer/out/main)")
    if args.json:
        print(json.dumps({"models": [asdict(r) for r in rows], "speed": [asdict(s) for s in speeds]}))
    return rows, speeds


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
    parser.add_argument("--batches", type=argument_type(_batches_arg), default=None,
                        help="batches to time float32 and INT8 at in the harness, e.g. 1,32 (default: 1 and "
                             f"{DYNAMIC_BATCH} for a dynamic-batch file, else its own batch)")
    parser.add_argument("--rounds", type=argument_type(_non_negative_int), default=5,
                        help="rounds of float32 then INT8 in the harness; the figure is their median (default 5; 0: "
                             "no harness timing)")
    parser.add_argument("--runs", type=argument_type(positive_int), default=100,
                        help="timed batches per harness process at batch 1, a quarter (at least 5) at larger "
                             "batches; onnxruntime's timing of the scoring batch alike (default 100)")
    parser.add_argument("--harness", default="",
                        help="the C++ harness binary that times float32 and INT8 (the model zoo's "
                             "ascend310_infer/out/main, built by ascend310_infer/build.sh); without it they are not "
                             "timed")
    parser.add_argument("--json", action="store_true", help="also print the scores and speeds as JSON")
    args = parser.parse_args(argv)
    return run_main(lambda: run(args))


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"expected 0 or a positive integer, got {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
