"""Classify image files: the top-k class names with softmax probabilities per image, with eval's preprocessing.

    classifier = network_classifier(net, image_size, preprocessing, class_names)   # a MindSpore network
    classifier = exported_classifier("tinynet_a.onnx")                             # or an exported file
    predictions, skipped = classify_files(classifier, find_images(["photos/"])[0], topk=5)
    print(format_predictions(predictions)); write_predictions(predictions, "out.csv")

Each image is ``tinynet_ms.data.load_eval_image`` of its file, so the top-1 is the network's argmax on exactly the
tensor eval.py scores. Batches have one shape (the last one padded), so a graph-mode network compiles once; a
fixed-batch exported file is fed its own batch. A file that cannot be decoded is skipped with one warning: a folder
of photos with one broken file still gets its predictions. The model zoo's ``predict.py`` is the command line.
"""
from __future__ import annotations

import csv
import glob
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn

from tinynet_ms.atomic import write_text_atomic
from tinynet_ms.classes import resolve_class_names
from tinynet_ms.data.folder import IMAGE_EXTENSIONS
from tinynet_ms.data.images import load_eval_image
from tinynet_ms.export import DYNAMIC, load_exported, model_io_shapes, read_preprocessing, sidecar_class_names
from tinynet_ms.models import Preprocessing

log = logging.getLogger("tinynet")

OUTPUT_FORMATS = (".csv", ".json")


@dataclass(frozen=True)
class Classifier:
    """What ``classify_files`` runs: ``run`` maps a float32 (N, 3, S, S) batch to (N, C) logits; ``class_names``
    name the C outputs; ``fixed_batch`` is the batch a fixed-shape exported file must be fed (None: any)."""

    run: Callable[[np.ndarray], np.ndarray]
    image_size: int
    preprocessing: Preprocessing
    class_names: list[str]
    fixed_batch: int | None = None


@dataclass(frozen=True)
class Prediction:
    """One image's top-k, most probable first: class names, their output indices (names can repeat: ImageNet has
    two 'crane's) and softmax probabilities."""

    file: str
    classes: tuple[str, ...]
    indices: tuple[int, ...]
    probs: tuple[float, ...]

    def to_dict(self) -> dict:
        return {"file": self.file, "topk": [{"class": c, "index": i, "prob": p}
                                            for c, i, p in zip(self.classes, self.indices, self.probs)]}


def network_classifier(net: nn.Cell, image_size: int, preprocessing: Preprocessing,
                       class_names: Sequence[str]) -> Classifier:
    """A MindSpore classifier network (set to inference) as a ``Classifier``."""
    net.set_train(False)
    return Classifier(lambda x: net(ms.Tensor(x)).asnumpy(), image_size, preprocessing, list(class_names))


def exported_classifier(path: str | os.PathLike, class_names: Sequence[str] | None = None) -> Classifier:
    """An exported ``.mindir`` / ``.onnx`` classifier as a ``Classifier``: input size and batch from the file, the
    preprocessing and class names from its sidecar (``class_names`` when the sidecar has none, e.g. the weights'
    own; else ``resolve_class_names``'s fallback)."""
    inputs, outputs = model_io_shapes(path)
    if len(outputs) != 1 or len(outputs[0]) != 2:
        raise ValueError(f"{path} outputs {len(outputs)} feature maps, not class scores (a backbone exported with "
                         f"--features_only true): predict needs a classifier; export without --features_only")
    preprocessing, source = read_preprocessing(path)
    if source.startswith("default"):
        log.warning("%s has no sidecar (%s.json, written by export.py): using the TinyNet default preprocessing",
                    path, path)
    stored = sidecar_class_names(path)
    names = resolve_class_names(stored if stored is not None else class_names, outputs[0][1], str(path))
    run_file = load_exported(path)
    batch = inputs[0] if inputs[0] != DYNAMIC else None
    return Classifier(lambda x: run_file(x)[0], inputs[2], preprocessing, names, batch)


def find_images(inputs: Sequence[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """(image files, inputs that named none): files as given, folders searched recursively and globs (``**``
    recursive) matched for image extensions, each file once, in input order (a folder's sorted)."""
    files: dict[Path, None] = {}  # ordered and without repeats
    unmatched = []
    for item in map(str, inputs):
        path = Path(item)
        if path.is_dir():
            found = _images_under(path)
        elif path.is_file():
            found = [path]
        elif any(c in item for c in "*?["):
            found = [f for m in sorted(glob.glob(item, recursive=True))
                     for f in (_images_under(Path(m)) if Path(m).is_dir() else [Path(m)])
                     if f.suffix.lower() in IMAGE_EXTENSIONS]
        else:
            found = []
        if not found:
            unmatched.append(item)
        files.update(dict.fromkeys(found))
    return list(files), unmatched


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and not p.is_dir())


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (a max shift first: large logits do not overflow)."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def top_k(probs: np.ndarray, k: int) -> np.ndarray:
    """The indices of each row's ``k`` largest values, largest first (ties: lower index first, as argmax)."""
    return np.argsort(-probs, axis=-1, kind="stable")[:, :k]


def classify_files(classifier: Classifier, files: Sequence[str | os.PathLike], topk: int = 5, batch_size: int = 32,
                   workers: int = 1, progress: bool = False) -> tuple[list[Prediction], list[tuple[str, str]]]:
    """(predictions of the readable files in order, (file, reason) of the skipped ones, unreadable or given NaN/inf
    scores, each logged once as a warning). ``workers`` threads decode; ``progress`` draws a bar on stderr."""
    k = min(topk, len(classifier.class_names))
    batch = classifier.fixed_batch or max(1, min(batch_size, len(files)))
    predictions, skipped = [], []
    bar = _ProgressBar(len(files)) if progress else None

    def load(path):
        try:
            return load_eval_image(path, classifier.image_size, preprocessing=classifier.preprocessing), None
        except Exception as exc:  # noqa: BLE001 - any decode failure: skip this file, say why
            return None, f"{type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(files), batch):
            chunk = [str(f) for f in files[start:start + batch]]
            images = []
            for path, (image, problem) in zip(chunk, pool.map(load, chunk)):
                if image is None:
                    if bar:
                        bar.clear()
                    log.warning("skipping %s: not a readable image (%s)", path, problem)
                    skipped.append((path, problem))
                else:
                    images.append((path, image))
            if images:
                x = np.zeros((batch, 3, classifier.image_size, classifier.image_size), np.float32)
                x[:len(images)] = np.stack([image for _, image in images])
                logits = classifier.run(x)[:len(images)]
                finite_rows = np.isfinite(logits).all(axis=1)
                probs = softmax(np.where(finite_rows[:, None], logits, 0.0))  # a NaN row is skipped below, unscored
                for (path, _), finite, row, best in zip(images, finite_rows, probs, top_k(probs, k)):
                    if not finite:  # NaN sorts as the largest: class 0 'predicted' with probability nan
                        if bar:
                            bar.clear()
                        log.warning("skipping %s: the model gave NaN/inf scores for it (a broken model file?)", path)
                        skipped.append((path, "NaN/inf scores"))
                        continue
                    predictions.append(Prediction(path, tuple(classifier.class_names[i] for i in best),
                                                  tuple(int(i) for i in best), tuple(float(row[i]) for i in best)))
            if bar:
                bar.update(start + len(chunk))
    if bar:
        bar.close()
    return predictions, skipped


class _ProgressBar:
    """One line on stderr, redrawn in place after each batch (cleared before a warning is logged)."""

    def __init__(self, total: int, width: int = 30) -> None:
        self.total, self.width, self.stream, self.text = total, width, sys.stderr, ""

    def update(self, done: int) -> None:
        filled = self.width * done // max(self.total, 1)
        self.text = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} images"
        self.stream.write(f"\r{self.text}")
        self.stream.flush()

    def clear(self) -> None:
        if self.text:
            self.stream.write("\r" + " " * len(self.text) + "\r")

    def close(self) -> None:
        if self.text:
            self.stream.write("\n")
            self.stream.flush()


def format_predictions(predictions: Sequence[Prediction]) -> str:
    """A console table: per image a row per rank (file, rank, probability, class index, class name)."""
    width = max([len("file")] + [len(p.file) for p in predictions])
    lines = [f"{'file':<{width}}  rank    prob  index  class"]
    for p in predictions:
        for rank, (name, index, prob) in enumerate(zip(p.classes, p.indices, p.probs), 1):
            lines.append(f"{p.file if rank == 1 else '':<{width}}  {rank:>4}  {prob:6.4f}  {index:>5}  {name}")
    return "\n".join(lines)


def write_predictions(predictions: Sequence[Prediction], path: str | os.PathLike) -> Path:
    """Write ``predictions`` (atomically) as ``.csv`` — a row per image: file, the class names in rank order, then
    their probabilities and indices — or ``.json``: a list of ``{"file", "topk": [{"class", "index", "prob"}]}``."""
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return write_text_atomic(path, json.dumps([p.to_dict() for p in predictions], indent=1,
                                                  ensure_ascii=False) + "\n")
    if suffix != ".csv":
        raise ValueError(f"{path}: predictions are written as {' or '.join(OUTPUT_FORMATS)}, not '{suffix}'")
    k = max((len(p.classes) for p in predictions), default=0)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    ranks = range(1, k + 1)
    writer.writerow(["file", *(f"top{r}" for r in ranks), *(f"prob{r}" for r in ranks), *(f"index{r}" for r in ranks)])
    for p in predictions:
        writer.writerow([p.file, *p.classes, *(f"{prob:.6f}" for prob in p.probs), *p.indices])
    return write_text_atomic(path, text.getvalue())
