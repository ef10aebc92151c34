"""Top-k accuracy, the per-epoch metrics.jsonl log and its plot."""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from mindspore import nn

from tinynet_ms.atomic import atomic_path, write_text_atomic
from tinynet_ms.records import Field, check_fields, parse_json, read_text_bounded


def topk_correct(logits: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> list[int]:
    """How many rows have their label among the top-k logits, for each k (k capped at the class count)."""
    order = np.argsort(-logits, axis=1)
    return [int((order[:, :min(k, logits.shape[1])] == labels[:, None]).any(axis=1).sum()) for k in ks]


def evaluate(net: nn.Cell, batches: Iterable) -> np.ndarray:
    """[top1_correct, top5_correct, count] over (image, label) batches, eval mode; rows labelled -1 (images
    that could not be read) are not counted."""
    net.set_train(False)
    totals = np.zeros(3, np.float64)
    for image, label in batches:
        logits = net(image).asnumpy().astype(np.float32)
        labels = label.asnumpy()
        kept = labels >= 0
        totals += [*topk_correct(logits[kept], labels[kept]), int(kept.sum())]
    return totals


def finite_or_null(record: dict) -> dict:
    """NaN/inf values as None: json.dumps would write bare NaN, which is not JSON."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}


# What a metrics.jsonl line may hold (a resume, the curves and the cube search read them back; the file may have been
# edited): the epoch, and numbers (None: NaN/inf, or not measured that epoch).
_NUMBERS = ("train_loss", "lr", "epoch_seconds", "img_per_sec", "loss_scale", "val_top1", "val_top5", "val_top1_ema",
            "val_top5_ema", "best_top1")
METRIC_FIELDS = {"epoch": Field("int", "[1, 1e7]"), "best_epoch": Field("int", "[-1, 1e7]", null=True),
                 "skipped_steps": Field("int", "[0, inf)", null=True),
                 **{k: Field("number", null=True) for k in _NUMBERS}}


class MetricsLog:
    """Append-only JSON lines, one object per epoch; on resume, entries after the restored epoch go."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def records(self) -> list[dict]:
        """The whole records; an unterminated last line (an append cut short by a kill) is no record. Each is
        checked (``METRIC_FIELDS``): a ``RecordError`` naming the file, line and key otherwise."""
        if not self.path.is_file():
            return []
        text = read_text_bounded(self.path, "delete the file: it is the run's history, not its state")
        whole = text if text.endswith("\n") else text[:text.rfind("\n") + 1]
        fix = "delete that line (or the file: it is the run's history, not its state)"
        return [check_fields(parse_json(line, f"{self.path} line {n}", fix), METRIC_FIELDS, f"{self.path} line {n}",
                             fix, required=("epoch",))
                for n, line in enumerate(whole.splitlines(), 1) if line.strip()]

    def truncate_after(self, epoch: int) -> None:
        # a fresh start (epoch 0) keeps nothing: what is there need not even read as metrics
        kept = [r for r in self.records() if r["epoch"] <= epoch] if epoch > 0 else []
        write_text_atomic(self.path, "".join(json.dumps(finite_or_null(r)) + "\n" for r in kept))

    def append(self, record: dict) -> None:
        """One line, or nothing: a write that fails part-way (a full disk, a file-size limit) is cut off again, so
        that no half line is left for the next append to continue."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = memoryview((json.dumps(finite_or_null(record)) + "\n").encode())
        with self.path.open("ab", buffering=0) as f:
            end = f.seek(0, os.SEEK_END)
            try:
                while data:
                    data = data[f.write(data):]
            except OSError:
                f.truncate(end)
                raise


def plot_curves(records: list[dict], png: str | os.PathLike) -> Path:
    """Loss and top-1 (and EMA top-1 when present) against epoch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [r.get("train_loss") for r in records], marker="o")
    ax1.set(xlabel="epoch", ylabel="train loss", title="training loss")
    ax2.plot(epochs, [r.get("val_top1") for r in records], marker="o", label="top-1")
    if any(r.get("val_top1_ema") is not None for r in records):
        ax2.plot(epochs, [r.get("val_top1_ema") for r in records], marker="s", label="top-1 (EMA)")
    ax2.set(xlabel="epoch", ylabel="val top-1", title="validation accuracy")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    png = Path(png)
    with atomic_path(png) as tmp:  # a reader (a dashboard) never sees half a PNG
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return png
