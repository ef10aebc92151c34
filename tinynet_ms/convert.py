"""Convert timm / huawei-noah TinyNet weights (.pth or .safetensors) to a MindSpore .ckpt.

    python -m tinynet_ms.convert tinynet_a.pth tinynet_a.ckpt --model tinynet_a [--num_classes 1000]

The mapping is a rename (BatchNorm weight/bias/running_mean/running_var → gamma/beta/moving_mean/
moving_variance; num_batches_tracked dropped), checked name-by-name and shape-by-shape in both directions.
``.pth`` files are read with ``torch.load(weights_only=True)`` — never a plain unpickle.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from mindspore import nn

from tinynet_ms.checkpoint import check_compatible, load_arrays_into, param_shapes, save_checkpoint_atomic

_BN_RENAME = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
_WRAPPER_KEYS = ("state_dict_ema", "state_dict", "model_ema", "model")  # timm/DeiT-style training checkpoints


def read_torch_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A PyTorch state dict from ``.safetensors`` (NumPy API) or ``.pth`` (torch, weights only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file
        return dict(load_file(str(path)))
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


def timm_to_mindspore(state: Mapping[str, np.ndarray], net: nn.Cell, source: str = "weights") -> dict[str, np.ndarray]:
    """Rename a timm state dict to ``net``'s parameter names and verify every name and shape."""
    expected = param_shapes(net)
    bn_modules = {name.rsplit(".", 1)[0] for name in expected if name.endswith(".moving_mean")}
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        module, _, leaf = key.rpartition(".")
        name = f"{module}.{_BN_RENAME.get(leaf, leaf)}" if module in bn_modules else key
        out[name] = np.asarray(value, dtype=np.float32)
    target = getattr(net, "label", type(net).__name__)
    check_compatible(expected, {k: v.shape for k, v in out.items()}, source, target)
    return out


def load_torch_weights_into(net: nn.Cell, path: str | os.PathLike) -> None:
    """Load timm / huawei-noah weights straight into a network (no intermediate file)."""
    arrays = timm_to_mindspore(read_torch_weights(path), net, str(path))
    load_arrays_into(net, arrays, str(path))


def convert(src: str | os.PathLike, dst: str | os.PathLike, model: str, num_classes: int = 1000,
            **model_kwargs) -> Path:
    """Convert ``src`` for ``model`` and write ``dst`` (.ckpt) atomically; returns ``dst``."""
    from tinynet_ms.models import create_model

    net = create_model(model, num_classes=num_classes, **model_kwargs)
    label = f"{src} (for {model}, {num_classes} classes)"
    arrays = timm_to_mindspore(read_torch_weights(src), net, label)
    return save_checkpoint_atomic(arrays, dst)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinynet_ms.convert", description=__doc__.splitlines()[0])
    parser.add_argument("src", help="timm / huawei-noah .pth or .safetensors")
    parser.add_argument("dst", help="output MindSpore .ckpt")
    parser.add_argument("--model", required=True, help="tinynet_a ... tinynet_e")
    parser.add_argument("--num_classes", type=int, default=1000)
    args = parser.parse_args(argv)
    try:
        out = convert(args.src, args.dst, args.model, args.num_classes)
    except (ValueError, FileNotFoundError, ImportError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}: {args.src} converted for {args.model} ({args.num_classes} classes), all tensors verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
