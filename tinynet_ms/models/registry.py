"""``create_model`` / ``list_models``: the named variants plus the generic (r, w, d) builder."""
from __future__ import annotations

import os
from pathlib import Path

from tinynet_ms.models.arch import VARIANTS, TinyNetSpec
from tinynet_ms.models.tinynet import TinyNet

GENERIC_NAME = "tinynet"  # create_model("tinynet", r=..., w=..., d=...)
PRETRAINED_URL = "https://github.com/huawei-noah/CV-Backbones/releases/download/v1.2.0/{name}.pth"
_TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


def list_models() -> list[str]:
    return sorted(VARIANTS)


def model_spec(name: str, **rwd: float) -> TinyNetSpec:
    """The (r, w, d) spec of a named variant, or of ``tinynet`` with explicit ``r``, ``w``, ``d``."""
    if name == GENERIC_NAME:
        unknown = set(rwd) - {"r", "w", "d"}
        if unknown:
            raise TypeError(f"unknown argument(s) for {GENERIC_NAME}: {sorted(unknown)}; expected r, w, d")
        return TinyNetSpec(**rwd)
    if name not in VARIANTS:
        raise ValueError(f"unknown model '{name}'; choose one of {list_models()} or '{GENERIC_NAME}' with r/w/d")
    if rwd:
        raise TypeError(f"{name} is a fixed variant; r/w/d ({sorted(rwd)}) only go with '{GENERIC_NAME}'")
    return VARIANTS[name]


def pretrained_dir() -> Path:
    return Path(os.environ.get("TINYNET_MS_HOME", Path.home() / ".cache" / "tinynet_ms"))


def _pretrained_path(name: str) -> Path:
    path = pretrained_dir() / f"{name}.ckpt"
    if not path.is_file():
        raise FileNotFoundError(
            f"no pretrained weights at {path}; download {PRETRAINED_URL.format(name=name)} and run: "
            f"python -m tinynet_ms.convert {name}.pth {path} --model {name}")
    return path


def create_model(name: str, num_classes: int = 1000, pretrained: bool = False,
                 checkpoint_path: str | os.PathLike | None = None, drop_rate: float = 0.2,
                 drop_path_rate: float = 0.0, **kwargs: float) -> TinyNet:
    """Build a TinyNet; optionally load weights (MindSpore ``.ckpt``, or timm ``.pth``/``.safetensors``).

    ``pretrained=True`` loads the converted official weights from ``$TINYNET_MS_HOME/<name>.ckpt``
    (default ``~/.cache/tinynet_ms``); nothing is downloaded at run time.
    """
    net = TinyNet(model_spec(name, **kwargs), num_classes=num_classes, drop_rate=drop_rate,
                  drop_path_rate=drop_path_rate)
    if pretrained and checkpoint_path is None:
        checkpoint_path = _pretrained_path(name)
    if checkpoint_path is not None:
        load_weights(net, checkpoint_path)
    return net


def load_weights(net: TinyNet, path: str | os.PathLike, use_ema: bool = False) -> None:
    """Load a ``.ckpt`` (training checkpoints too: their optimizer/EMA entries are skipped, or with
    ``use_ema`` their EMA weights are the ones loaded) or a timm state dict into ``net``; every name and
    shape is verified."""
    if Path(path).suffix in _TORCH_SUFFIXES:
        if use_ema:
            raise ValueError(f"{path}: use_ema applies to training checkpoints (last.ckpt); a timm file holds one "
                             f"set of weights (convert picks its state_dict_ema when present)")
        from tinynet_ms.convert import load_torch_weights_into
        load_torch_weights_into(net, path)
        return
    from tinynet_ms.checkpoint import ema_weights, load_arrays_into, network_weights, read_checkpoint
    arrays = read_checkpoint(path)
    if use_ema:
        arrays = ema_weights(arrays)
        if not arrays:
            raise ValueError(f"{path} holds no EMA weights (only last.ckpt of a run with ema_decay > 0 does); "
                             f"drop --use_ema")
        load_arrays_into(net, arrays, f"{path} (EMA)")
    else:
        load_arrays_into(net, network_weights(arrays), str(path))
