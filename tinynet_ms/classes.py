"""Class names: what a network's outputs mean, kept with its weights so that predictions read as names.

Where names live: a MindSpore ``.ckpt`` stores them as its ``class_names`` entry (``tinynet_ms.weights``; train.py
writes its dataset's class folders, ``python -m tinynet_ms.convert`` the ImageNet names of a 1000-class timm file);
an exported ``.mindir`` / ``.onnx`` in its sidecar ``<file>.json`` (``tinynet_ms.export``). A timm ``.pth`` /
``.safetensors`` holds none. ``resolve_class_names`` picks a network's names: the stored ones, else the ImageNet-1k
names for a 1000-class network (the released TinyNet weights), else ``class_0..class_{N-1}``. This module imports
only ``tinynet_ms.weights``, so the model factory and the weights hub can use it.

``data/imagenet_classes.txt`` is timm's ``ImageNetInfo().index_to_description(i)`` for i = 0..999 (WordNet lemmas in
the standard synset order, generated from timm 1.0.31's ``imagenet_synsets.txt`` and ``imagenet_synset_to_lemma.txt``),
so a class reads as it does in timm. Two classes share a name there ("crane": the bird 134, the machine 517), which
is why predictions also report the index.
"""
from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from tinynet_ms.weights import TORCH_SUFFIXES, read_checkpoint, read_class_names, save_checkpoint_atomic

log = logging.getLogger("tinynet")

IMAGENET_NUM_CLASSES = 1000
IMAGENET_CLASSES_FILE = Path(__file__).parent / "data" / "imagenet_classes.txt"

__all__ = ["IMAGENET_NUM_CLASSES", "checkpoint_class_names", "imagenet_class_names", "placeholder_class_names",
           "read_class_names", "resolve_class_names", "stored_class_names", "write_class_names"]


@functools.lru_cache(maxsize=1)
def _imagenet() -> tuple[str, ...]:
    names = tuple(IMAGENET_CLASSES_FILE.read_text(encoding="utf-8").splitlines())
    if len(names) != IMAGENET_NUM_CLASSES:  # a broken install, not a user error
        raise RuntimeError(f"{IMAGENET_CLASSES_FILE} holds {len(names)} names, not {IMAGENET_NUM_CLASSES}: reinstall "
                           f"tinynet_ms")
    return names


def imagenet_class_names() -> list[str]:
    """The ImageNet-1k class names in index order (as timm names them), shipped with the package."""
    return list(_imagenet())


def placeholder_class_names(num_classes: int) -> list[str]:
    """``class_0 .. class_{N-1}``: names for outputs nobody named, still unique and in index order."""
    return [f"class_{i}" for i in range(num_classes)]


def resolve_class_names(stored: Sequence[str] | None, num_classes: int, source: str) -> list[str]:
    """The names of a network's ``num_classes`` outputs: ``stored`` (what its weights file carries), else ImageNet's
    for 1000 classes, else placeholders, the last two with one log line naming ``source``. Stored names of another
    count are an error: they belong to other weights."""
    if stored is not None:
        if len(stored) != num_classes:
            raise ValueError(f"{source} stores {len(stored)} class names but the network has {num_classes} outputs: "
                             f"use the num_classes the weights were trained with, or store the right names "
                             f"(tinynet_ms.classes.write_class_names)")
        return list(stored)
    if num_classes == IMAGENET_NUM_CLASSES:
        log.info("%s stores no class names: 1000 outputs, so the ImageNet-1k names", source)
        return imagenet_class_names()
    log.info("%s stores no class names: naming its %d outputs class_0..class_%d (train.py's checkpoints store their "
             "dataset's names)", source, num_classes, num_classes - 1)
    return placeholder_class_names(num_classes)


def stored_class_names(path: str | os.PathLike | None) -> list[str] | None:
    """The names a weights file stores: a ``.ckpt``'s, or None (none stored; a timm ``.pth`` / ``.safetensors``
    never has any; no file)."""
    return read_class_names(path) if path and Path(path).suffix.lower() not in TORCH_SUFFIXES else None


def checkpoint_class_names(path: str | os.PathLike | None, num_classes: int) -> list[str]:
    """``resolve_class_names`` for a weights file (None: random weights)."""
    return resolve_class_names(stored_class_names(path), num_classes, str(path or "random weights"))


def write_class_names(path: str | os.PathLike, class_names: Sequence[str]) -> Path:
    """Store ``class_names`` in an existing ``.ckpt`` (rewritten atomically, its tensors unchanged): names for a
    checkpoint written before they were kept, or by another tool. A count other than the classifier's is refused."""
    arrays = read_checkpoint(path)
    head = arrays.get("classifier.bias")
    if head is not None and head.shape[0] != len(class_names):
        raise ValueError(f"{path} has a {head.shape[0]}-class classifier, {len(class_names)} names given: not written")
    return save_checkpoint_atomic(arrays, path, class_names=class_names)
