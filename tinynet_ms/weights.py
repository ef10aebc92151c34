"""MindSpore checkpoint I/O with name/shape verification and atomic writes."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn


_SHOW = 6
# Keys a training checkpoint (last.ckpt) holds besides the network weights; loaders of weights skip them.
TRAIN_STATE_PREFIXES = ("ema.", "optimizer.", "train_state.")


class CheckpointMismatchError(ValueError):
    """Weights do not fit the network: names or shapes differ."""


def named_params(net: nn.Cell) -> dict[str, ms.Parameter]:
    """Every parameter of ``net`` (BN moving statistics too) under its structural name (``bn1.gamma``).

    Structural names, not ``Parameter.name``: MindSpore re-prefixes the latter when a cell is nested in a
    training cell and compiled (``net_with_loss.net.bn1.moving_mean``), which would break every checkpoint.
    """
    return dict(net.parameters_and_names())


def param_shapes(net: nn.Cell) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in named_params(net).items()}


def param_arrays(net: nn.Cell) -> dict[str, np.ndarray]:
    return {name: p.asnumpy() for name, p in named_params(net).items()}


def check_compatible(expected: Mapping[str, tuple[int, ...]], given: Mapping[str, tuple[int, ...]],
                     source: str, target: str) -> None:
    """Raise ``CheckpointMismatchError`` naming every missing, unexpected and wrongly shaped tensor."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    wrong = [k for k in expected if k in given and tuple(given[k]) != tuple(expected[k])]
    if not (missing or unexpected or wrong):
        return
    lines = [f"{source} does not fit {target}: {len(missing)} missing, {len(unexpected)} unexpected, "
             f"{len(wrong)} with the wrong shape (wrong model name, width/depth or --num_classes?)"]
    groups = (
        [f"  shape mismatch {k}: network {tuple(expected[k])}, weights {tuple(given[k])}" for k in wrong],
        [f"  missing from weights: {k} {tuple(expected[k])}" for k in missing],
        [f"  not in network: {k} {tuple(given[k])}" for k in unexpected],
    )
    for group in groups:  # the first few of each kind: enough to see the pattern, short enough to read
        lines += group[:_SHOW] + ([f"  ... and {len(group) - _SHOW} more like this"] if len(group) > _SHOW else [])
    raise CheckpointMismatchError("\n".join(lines))


def read_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of a MindSpore ``.ckpt`` as NumPy arrays; a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix in (".pth", ".pt", ".bin", ".safetensors"):
        raise ValueError(f"{path} is a PyTorch/timm file; convert it first: "
                         f"python -m tinynet_ms.convert {path} OUT.ckpt --model NAME")
    try:
        params = ms.load_checkpoint(str(path))
    except Exception as exc:  # MindSpore raises ValueError/RuntimeError variants for bad files
        raise ValueError(f"{path} is not a readable MindSpore checkpoint ({type(exc).__name__}: {exc})") from exc
    return {name: p.asnumpy() for name, p in params.items()}


def network_weights(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The network's own tensors of a checkpoint (drops optimizer, EMA and train-state entries)."""
    return {k: v for k, v in arrays.items() if not k.startswith(TRAIN_STATE_PREFIXES)}


def ema_weights(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The EMA copy of the network held by a training checkpoint (``ema.*``), under plain names."""
    return {k[len("ema."):]: v for k, v in arrays.items() if k.startswith("ema.")}


def load_arrays_into(net: nn.Cell, arrays: Mapping[str, np.ndarray], source: str) -> None:
    """Verify names and shapes both ways, then load ``arrays`` into ``net``."""
    check_compatible(param_shapes(net), {k: v.shape for k, v in arrays.items()}, source,
                     getattr(net, "label", type(net).__name__))
    for name, p in named_params(net).items():
        p.set_data(ms.Tensor(np.asarray(arrays[name]), p.dtype))


def save_checkpoint_atomic(arrays: Mapping[str, np.ndarray] | nn.Cell, path: str | os.PathLike) -> Path:
    """Write a ``.ckpt`` via a temporary file and ``os.replace`` so a crash never leaves a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(arrays, nn.Cell):
        arrays = param_arrays(arrays)
    payload = [{"name": k, "data": ms.Tensor(np.ascontiguousarray(v))} for k, v in arrays.items()]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".ckpt", dir=path.parent)
    os.close(fd)
    try:
        ms.save_checkpoint(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
