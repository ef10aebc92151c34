"""Per-step learning rate: linear warmup, then step decay every ``decay_epochs`` (timm's 'step' schedule)."""
from __future__ import annotations

import numpy as np

LR_SCALINGS = ("none", "linear")


def scaled_lr(lr: float, scaling: str, reference_batch: int, global_batch: int) -> float:
    """The peak LR a run uses. ``linear`` (Goyal et al. 2017; timm and MindCV scale TinyNet's recipe this way):
    ``lr`` is the LR for ``reference_batch`` images per step, scaled by global_batch / reference_batch;
    ``none``: ``lr`` as given."""
    if scaling not in LR_SCALINGS:
        raise ValueError(f"lr_scaling {scaling!r}: expected one of {', '.join(LR_SCALINGS)}")
    if reference_batch < 1 or global_batch < 1:
        raise ValueError(f"lr scaling needs positive batches, got reference {reference_batch}, global {global_batch}")
    return lr * global_batch / reference_batch if scaling == "linear" else lr


def step_lr_schedule(lr: float, steps_per_epoch: int, epochs: int, warmup_epochs: float = 3.0,
                     warmup_lr: float = 1e-6, decay_epochs: float = 2.4, decay_rate: float = 0.97) -> np.ndarray:
    """float32 array with the LR of every optimizer step of the run (index = global step)."""
    if steps_per_epoch < 1:
        raise ValueError("steps_per_epoch must be >= 1 (is the batch larger than the dataset shard?)")
    t = np.arange(steps_per_epoch * epochs, dtype=np.float64) / steps_per_epoch  # fractional epoch
    decayed = lr * decay_rate ** np.floor(t / decay_epochs)
    if warmup_epochs > 0:
        warm = warmup_lr + t * (lr - warmup_lr) / warmup_epochs
        decayed = np.where(t < warmup_epochs, warm, decayed)
    return decayed.astype(np.float32)

