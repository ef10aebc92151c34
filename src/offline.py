"""Offline inference I/O around the C++ harness: ``preprocess.py`` writes the exact eval tensors and the
labels, ``postprocess.py`` scores the harness's result files."""
from __future__ import annotations

import json
import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from tinynet_ms.atomic import atomic_path, write_text_atomic
from tinynet_ms.data import load_eval_image, sample_names, scan_split
from tinynet_ms.models import DEFAULT_PREPROCESSING, Preprocessing
from tinynet_ms.records import Field, RecordError, check_fields, read_json, shown
from tinynet_ms.train.metrics import topk_correct

log = logging.getLogger("tinynet")
LABEL_FILE, TENSOR_DIR = "label.json", "img_data"


def _write_tensor(job: tuple[str, str, int, Preprocessing]) -> None:
    path, out, size, preprocessing = job
    with atomic_path(out) as tmp:  # raw float32 (3, S, S), C order
        load_eval_image(path, size, preprocessing=preprocessing).tofile(tmp)


def preprocess(data_path: str, output_path: str, image_size: int,
               preprocessing: Preprocessing = DEFAULT_PREPROCESSING, input_type: str = "bin",
               workers: int = 4) -> dict[str, int]:
    """Write ``OUTPUT/label.json`` ({image name: class index}, classes = sorted sub-folders of DATA) and,
    for ``bin``, ``OUTPUT/img_data/<name>.bin`` holding exactly ``load_eval_image``'s tensor."""
    if input_type not in ("bin", "image"):
        raise ValueError(f"input_type '{input_type}' is not bin or image")
    folder = scan_split(data_path, workers=workers)  # unreadable files: logged and skipped
    names = sample_names(folder.samples)
    out = Path(output_path)
    tensors = out / TENSOR_DIR
    tensors.mkdir(parents=True, exist_ok=True)
    for stale in tensors.glob("*.bin"):  # a previous run's files would be inferred too
        stale.unlink()
    if input_type == "bin":
        jobs = [(s.path, str(tensors / f"{n}.bin"), image_size, preprocessing)
                for s, n in zip(folder.samples, names)]
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(_write_tensor, jobs, chunksize=16))
    labels = {n: s.label for s, n in zip(folder.samples, names)}
    write_text_atomic(out / LABEL_FILE, json.dumps(labels, indent=0) + "\n")
    log.info("%d images of %d classes -> %s%s", len(labels), len(folder.classes), out / LABEL_FILE,
             f" and {tensors}/*.bin ({image_size}x{image_size})" if input_type == "bin" else "")
    return labels


def read_results(result_path: str, names: list[str]) -> tuple[list[str], np.ndarray]:
    """(names that have a ``<name>_0.bin``, their float32 logits stacked). Each file must hold the same whole number
    of float32 logits, all finite: argmax(NaN) is class 0, so a broken input or model would score silently."""
    found, rows = [], []
    for name in names:
        path = Path(result_path) / f"{name}_0.bin"
        if path.is_file():
            size = path.stat().st_size
            if size == 0 or size % 4:
                raise ValueError(f"{path}: {size} bytes is not a float32 logits vector; run the harness again "
                                 f"(run_infer_310.sh)")
            found.append(name)
            rows.append(np.fromfile(path, np.float32))
    if not rows:
        raise FileNotFoundError(f"no result files (<name>_0.bin) for the labelled images in '{result_path}'")
    sizes = {r.size for r in rows}
    if len(sizes) != 1:
        raise ValueError(f"result files in '{result_path}' hold different numbers of logits: {sorted(sizes)}")
    logits = np.stack(rows)
    broken = [n for n, ok in zip(found, np.isfinite(logits).all(axis=1)) if not ok]
    if broken:
        raise ValueError(f"{len(broken)} of {len(found)} result files in '{result_path}' hold NaN/inf logits (first: "
                         f"{broken[0]}_0.bin): the model or its inputs are broken; check them, then run the harness "
                         f"again")
    return found, logits


def read_labels(label_file: str) -> dict[str, int]:
    """preprocess.py's label file, checked: {image name: class index}, each name a plain file name (the harness's
    logits for it are read from RESULT_PATH/<name>_0.bin: a name holding a path would read a file elsewhere)."""
    if not Path(label_file).is_file():
        raise FileNotFoundError(f"label file not found: {label_file} (written by preprocess.py)")
    fix = "write it again with preprocess.py"
    labels = read_json(label_file, fix)
    check_fields(labels, dict.fromkeys(labels if isinstance(labels, dict) else (), Field("int", "[0, 1e7]")),
                 label_file, fix)
    for name in labels:
        if Path(name).name != name or name in (".", ".."):
            raise RecordError(f"{label_file}: key {shown(name)} is not an image name (a file name without a "
                              f"folder); {fix}")
    return labels


def postprocess(result_path: str, label_file: str, output: str = "acc.log") -> dict:
    """Top-1/top-5 of the harness's logits; writes ``output`` and returns the numbers."""
    labels = read_labels(label_file)
    found, logits = read_results(result_path, list(labels))
    missing = len(labels) - len(found)
    if missing:
        log.warning("%d of %d labelled images have no result file in %s (not counted)", missing, len(labels),
                    result_path)
    targets = np.array([labels[n] for n in found])
    if targets.max() >= logits.shape[1]:  # labels the model cannot predict: the data is not the model's
        raise ValueError(f"{label_file} has class index {targets.max()} but the result files in '{result_path}' "
                         f"hold {logits.shape[1]} logits: the data has more classes than the model; score it on its "
                         f"own dataset")
    top1, top5 = topk_correct(logits, targets)
    result = {"top1": top1 / len(found), "top5": top5 / len(found), "num_samples": len(found)}
    line = f"top1: {result['top1']:.6f} top5: {result['top5']:.6f}"
    write_text_atomic(output, f"{line}\nnum_samples: {len(found)}\nmissing: {missing}\n")
    print(line, flush=True)
    return result
