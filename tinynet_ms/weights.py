"""Weights in and out of a network: read ``.ckpt`` / timm ``.pth`` / ``.safetensors``, map timm's names to ours,
check every name and shape both ways, load; write ``.ckpt`` atomically.

This is the one module that knows weight files. ``create_model(checkpoint_path=...)`` and the training state
(``tinynet_ms.train.state``) load through it; ``python -m tinynet_ms.convert`` is its command line.
``.pth`` files are read with ``torch.load(weights_only=True)`` — never a plain unpickle.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn

from tinynet_ms.atomic import atomic_path
from tinynet_ms.records import Field, RecordError, check_fields, parse_json

log = logging.getLogger("tinynet")

_SHOW = 6
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
# Keys a training checkpoint (last.ckpt) holds besides the network weights; loaders of weights skip them.
TRAIN_STATE_PREFIXES = ("ema.", "optimizer.", "train_state.")
# timm (PyTorch) BatchNorm leaf names -> MindSpore's; num_batches_tracked has no counterpart.
TIMM_BN_RENAME = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
_WRAPPER_KEYS = ("state_dict_ema", "state_dict", "model_ema", "model")  # timm/DeiT-style training checkpoints


class CheckpointMismatchError(ValueError):
    """Weights do not fit the network: names or shapes differ."""


class UnreadableCheckpoint(ValueError):
    """A ``.ckpt`` that is not a whole checkpoint (empty, truncated, corrupt): a caller may say what to do instead."""


def named_params(net: nn.Cell) -> dict[str, ms.Parameter]:
    """Every parameter of ``net`` (BN moving statistics too) under its structural name (``bn1.gamma``).

    Structural names, not ``Parameter.name``: MindSpore re-prefixes the latter when a cell is nested in a
    training cell and compiled (``net_with_loss.net.bn1.moving_mean``), which would break every checkpoint.
    """
    return dict(net.parameters_and_names())


def batchnorm_statistics(net: nn.Cell) -> list[ms.Parameter]:
    """The BatchNorm moving statistics: parameters that training updates without the optimizer."""
    return [p for name, p in named_params(net).items() if name.endswith(("moving_mean", "moving_variance"))]


def param_shapes(net: nn.Cell) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in named_params(net).items()}


def param_arrays(net: nn.Cell) -> dict[str, np.ndarray]:
    return {name: p.asnumpy() for name, p in named_params(net).items()}


def _label(net: nn.Cell) -> str:
    return getattr(net, "label", type(net).__name__)


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


# --- reading ------------------------------------------------------------------------------------------------

def _load_checkpoint(path: str | os.PathLike) -> dict:
    """MindSpore's dict of a ``.ckpt``: tensors and metadata entries (plain ``str`` values, ``CLASS_NAMES_KEY``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix.lower() in TORCH_SUFFIXES:
        raise ValueError(f"{path} is a PyTorch/timm file; convert it first: "
                         f"python -m tinynet_ms.convert {path} OUT.ckpt --model NAME")
    if path.stat().st_size == 0:  # MindSpore would only say its parameter dict is empty and blame filter_prefix
        raise UnreadableCheckpoint(f"{path} is empty (0 bytes), not a checkpoint: a write to it never finished")
    try:
        params = ms.load_checkpoint(str(path))
    except Exception as exc:  # MindSpore raises ValueError/RuntimeError variants for bad files
        raise UnreadableCheckpoint(f"{path} is not a readable MindSpore checkpoint ({type(exc).__name__}: {exc})") \
            from exc
    return params


def read_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of a MindSpore ``.ckpt`` as NumPy arrays; a clear error for anything else. Metadata entries
    (the class names: ``read_class_names``) are not tensors and are left out, so every value loads into a network."""
    return {name: p.asnumpy() for name, p in _load_checkpoint(path).items() if isinstance(p, ms.Tensor)}


# The checkpoint entry holding the class names (a JSON list, index order): what the outputs mean travels with the
# weights, so eval/export/predict can name classes without the dataset at hand.
CLASS_NAMES_KEY = "class_names"
# What a stored list of class names may be, wherever it is read back (a checkpoint, an export sidecar).
CLASS_NAMES_FIELD = Field("list", items=Field("str", max_len=1000), max_len=1_000_000)


def read_class_names(path: str | os.PathLike) -> list[str] | None:
    """The class names a ``.ckpt`` stores (``save_checkpoint_atomic(..., class_names=...)``), in index order; None
    when it stores none (written before names were kept, or by another tool). Checked (``CLASS_NAMES_FIELD``):
    a ``RecordError`` naming the file otherwise."""
    value = _load_checkpoint(path).get(CLASS_NAMES_KEY)
    if value is None:
        return None
    fix = "store them again with tinynet_ms.classes.write_class_names"
    if not isinstance(value, str):
        raise RecordError(f"{path}: key '{CLASS_NAMES_KEY}' is not a JSON list of names; {fix}")
    names = parse_json(value, f"{path}: key '{CLASS_NAMES_KEY}'", fix)
    return check_fields({CLASS_NAMES_KEY: names}, {CLASS_NAMES_KEY: CLASS_NAMES_FIELD}, path, fix)[CLASS_NAMES_KEY]


def read_torch_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A PyTorch state dict from ``.safetensors`` (NumPy API) or ``.pth`` (torch, weights only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix.lower() == ".safetensors":
        from safetensors.numpy import load_file
        try:
            return dict(load_file(str(path)))
        except Exception as exc:  # safetensors raises its own error types for torn/foreign files
            raise ValueError(f"{path} is not a readable safetensors file ({type(exc).__name__}: {exc})") from exc
    try:
        import torch
    except ImportError:
        raise ImportError(f"reading {path} needs PyTorch (pip install torch), which is not installed; "
                          f"or pass the same weights as .safetensors") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path} is not a weights-only PyTorch checkpoint ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0]})") from exc
    for key in _WRAPPER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict")
    out = {}
    for k, v in obj.items():
        if isinstance(v, torch.Tensor):
            out[k.removeprefix("module.")] = v.detach().cpu().float().numpy() if v.is_floating_point() \
                else v.detach().cpu().numpy()
    return out


def network_weights(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The network's own tensors of a checkpoint (drops optimizer, EMA and train-state entries)."""
    return {k: v for k, v in arrays.items() if not k.startswith(TRAIN_STATE_PREFIXES)}


def ema_weights(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The EMA copy of the network held by a training checkpoint (``ema.*``), under plain names."""
    return {k[len("ema."):]: v for k, v in arrays.items() if k.startswith("ema.")}


def without_unused(net: nn.Cell, arrays: Mapping[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """``arrays`` less the tensors ``net`` declares it has no use for (``unused_weights`` name prefixes: a backbone
    loading a classifier's weights leaves out the head), with one log line saying what was left out."""
    prefixes = tuple(getattr(net, "unused_weights", ()))
    kept = {k: v for k, v in arrays.items() if not (prefixes and k.startswith(prefixes))}
    if len(kept) < len(arrays):
        groups = sorted({p.rstrip(".") for p in prefixes if any(k.startswith(p) for k in arrays)})
        log.info("%s: %d tensors not in %s left out (%s)", source, len(arrays) - len(kept), _label(net),
                 ", ".join(groups))
    return kept


def with_fresh_head(net: nn.Cell, arrays: Mapping[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """``arrays`` with a freshly initialised classifier (``net.fresh_classifier()``) in place of one of another
    class count (or of none): fine-tuning pretrained weights on new classes, as timm's and MindCV's
    ``load_pretrained`` do. One log line says what was replaced. ``net``'s ``classifier_names`` (a TinyNet's
    ``classifier.weight``/``.bias``) are the tensors that may be replaced; every other tensor is left to the strict
    checks."""
    names = tuple(getattr(net, "classifier_names", ()))
    expected = param_shapes(net)
    if all(n in arrays and tuple(np.shape(arrays[n])) == expected[n] for n in names):
        return dict(arrays)
    old = arrays.get(names[0])
    what = f"its {np.shape(old)[0]}-class classifier" if old is not None else "no classifier"
    log.info("%s has %s: %s starts from a freshly initialised %d-class one (%s)", source, what, _label(net),
             expected[names[0]][0], ", ".join(names))
    return {**{k: v for k, v in arrays.items() if k not in names}, **net.fresh_classifier()}


def fit_to(net: nn.Cell, arrays: Mapping[str, np.ndarray], source: str, new_head: bool = False) -> dict[str, np.ndarray]:
    """``arrays`` (under ``net``'s names) made ready to load into ``net``: tensors it declares unused left out, with
    ``new_head`` a classifier of another class count replaced by ``net``'s fresh one; then every name and shape
    checked both ways."""
    arrays = without_unused(net, arrays, source)
    if new_head:
        arrays = with_fresh_head(net, arrays, source)
    check_compatible(param_shapes(net), {k: v.shape for k, v in arrays.items()}, source, _label(net))
    return arrays


def timm_to_mindspore(state: Mapping[str, np.ndarray], net: nn.Cell, source: str = "weights",
                      new_head: bool = False) -> dict[str, np.ndarray]:
    """Rename a timm state dict to ``net``'s parameter names, then ``fit_to`` ``net``."""
    expected = param_shapes(net)
    bn_modules = {name.rsplit(".", 1)[0] for name in expected if name.endswith(".moving_mean")}
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        module, _, leaf = key.rpartition(".")
        name = f"{module}.{TIMM_BN_RENAME.get(leaf, leaf)}" if module in bn_modules else key
        out[name] = np.asarray(value, dtype=np.float32)
    return fit_to(net, out, source, new_head)


def weights_for(net: nn.Cell, path: str | os.PathLike, use_ema: bool = False,
                new_head: bool = False) -> dict[str, np.ndarray]:
    """The tensors of ``path`` that ``net`` should load, under its names, verified: a ``.ckpt`` (a training
    checkpoint's optimizer/EMA entries skipped, or with ``use_ema`` its EMA weights taken) or a timm file.
    ``new_head``: weights of another class count keep ``net``'s fresh classifier (fine-tuning; see
    ``with_fresh_head``); without it they are a mismatch."""
    if Path(path).suffix.lower() in TORCH_SUFFIXES:
        if use_ema:
            raise ValueError(f"{path}: use_ema applies to training checkpoints (last.ckpt); a timm file holds one "
                             f"set of weights (its state_dict_ema is taken when present)")
        return timm_to_mindspore(read_torch_weights(path), net, str(path), new_head)
    arrays = read_checkpoint(path)
    if use_ema:
        arrays = ema_weights(arrays)
        if not arrays:
            raise ValueError(f"{path} holds no EMA weights (only last.ckpt of a run with ema_decay > 0 does); "
                             f"drop --use_ema")
        source = f"{path} (EMA)"
    else:
        arrays, source = network_weights(arrays), str(path)
    return fit_to(net, arrays, source, new_head)


# --- loading and writing ------------------------------------------------------------------------------------

def load_arrays_into(net: nn.Cell, arrays: Mapping[str, np.ndarray], source: str) -> None:
    """Verify names and shapes both ways, then load ``arrays`` into ``net``."""
    check_compatible(param_shapes(net), {k: v.shape for k, v in arrays.items()}, source, _label(net))
    for name, p in named_params(net).items():
        p.set_data(ms.Tensor(np.asarray(arrays[name]), p.dtype))


def load_weights(net: nn.Cell, path: str | os.PathLike, use_ema: bool = False, new_head: bool = False) -> None:
    """Load ``path`` (see ``weights_for``) into ``net``; every name and shape is verified first."""
    load_arrays_into(net, weights_for(net, path, use_ema, new_head), f"{path} (EMA)" if use_ema else str(path))


def non_finite(arrays: Mapping[str, np.ndarray]) -> list[str]:
    """Names of the floating-point tensors holding NaN or inf: a state not fit to save."""
    return [k for k, v in arrays.items() if np.issubdtype(np.asarray(v).dtype, np.floating)
            and not np.isfinite(v).all()]


# What a writer killed inside save_checkpoint_atomic leaves beside the checkpoint: atomic_path's temporary
# (.<stem>.<random>.ckpt) and mindspore.save_checkpoint's own, which it writes under that name with .tmp and renames.
CHECKPOINT_TEMPORARIES = (".ckpt", ".tmp")


def save_checkpoint_atomic(arrays: Mapping[str, np.ndarray] | nn.Cell, path: str | os.PathLike,
                           class_names: Sequence[str] | None = None) -> Path:
    """Write a ``.ckpt`` so that a crash never leaves a torn file; a non-finite tensor is refused (nothing is
    written), so every checkpoint on disk is one a run can return to. ``class_names`` (index order) are stored
    beside the tensors (``read_class_names``), so the file itself says what its outputs mean."""
    metadata = None
    if class_names is not None:
        if isinstance(class_names, str) or not all(isinstance(n, str) for n in class_names):
            raise TypeError(f"not writing {path}: class_names must be a sequence of strings, got {class_names!r:.80}")
        metadata = {CLASS_NAMES_KEY: json.dumps(list(class_names), ensure_ascii=False)}
    if isinstance(arrays, nn.Cell):
        arrays = param_arrays(arrays)
    bad = non_finite(arrays)
    if bad:
        raise FloatingPointError(f"not writing {path}: {len(bad)} tensors are not finite (first: {', '.join(bad[:3])})")
    payload = [{"name": k, "data": ms.Tensor(np.ascontiguousarray(v))} for k, v in arrays.items()]
    with atomic_path(path, suffix=".ckpt") as tmp:  # save_checkpoint appends .ckpt to a name without it
        try:
            ms.save_checkpoint(payload, str(tmp), append_dict=metadata)
        finally:
            tmp.with_suffix(".tmp").unlink(missing_ok=True)  # save_checkpoint's own temporary, if it failed
    return Path(path)
