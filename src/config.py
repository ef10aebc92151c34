"""YAML config + ``--key value`` command-line overrides. Unknown keys are errors, never silently ignored.

    python -m src.config CONFIG [--key value ...] --get KEY     # print one resolved value (for shell scripts)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

# key: (default, help). The default's type is the key's type.
KEYS: dict[str, tuple[Any, str]] = {
    # model
    "model": ("tinynet_a", "tinynet_a..tinynet_e, or 'tinynet' with r/w/d"),
    "r": (1.0, "resolution multiplier (model: tinynet)"),
    "w": (1.0, "width multiplier (model: tinynet)"),
    "d": (1.0, "depth multiplier (model: tinynet)"),
    "num_classes": (1000, "number of classes"),
    "image_size": (0, "input resolution; 0 = the variant's own"),
    "drop_rate": (0.2, "dropout before the classifier"),
    "drop_path_rate": (0.2, "stochastic depth rate of the last block"),
    "pretrained_checkpoint": ("", "start from these weights (.ckpt, timm .pth/.safetensors)"),
    # device
    "device_target": ("Ascend", "Ascend | GPU | CPU"),
    "device_id": (0, "device for a standalone run"),
    "mode": ("graph", "graph | pynative"),
    "cpu_kernels": (True, "CPU only: tinynet_ms.kernels (depthwise conv, Swish, im2col stem, MatMul pooling); not in export"),
    "amp_level": ("auto", "O0 | O2 | O3 | auto (O2 on Ascend/GPU, O0 on CPU)"),
    "loss_scale": (1024.0, "initial (dynamic) or fixed loss scale"),
    "loss_scale_mode": ("auto", "dynamic | fixed | auto (dynamic on Ascend/GPU, fixed on CPU)"),
    # data
    "data_path": ("", "dataset root with train/ and val/"),
    "batch_size": (128, "per-device batch size"),
    "num_parallel_workers": (8, "data pipeline workers per device"),
    "auto_augment": ("rand-m9-mstd0.5", "timm RandAugment string; none = off"),
    "re_prob": (0.2, "random erasing probability"),
    "hflip_prob": (0.5, "horizontal flip probability"),
    "min_crop_scale": (0.08, "lower area scale of RandomResizedCrop"),
    "crop_pct": (0.875, "eval: center-crop fraction of the resized image"),
    # optimisation
    "epochs": (450, "training epochs"),
    "lr": (0.048, "peak LR (absolute; the ImageNet configs use 0.048 for a global batch of 1024)"),
    "warmup_epochs": (3.0, "linear warmup epochs"),
    "warmup_lr": (1e-6, "LR at step 0"),
    "decay_epochs": (2.4, "step decay period in epochs"),
    "decay_rate": (0.97, "step decay factor"),
    "weight_decay": (1e-5, "L2 on conv/dense weights (not BN, not bias)"),
    "momentum": (0.9, "RMSProp momentum"),
    "rmsprop_decay": (0.9, "RMSProp mean-square decay"),
    "opt_eps": (1e-3, "RMSProp epsilon (TF-style, inside the sqrt)"),
    "label_smoothing": (0.1, "label smoothing"),
    "ema_decay": (0.9999, "EMA of the weights; 0 = off"),
    # run
    "seed": (42, "random seed (data order, augmentation, dropout, init)"),
    "output_dir": ("output", "where checkpoints, metrics and logs go"),
    "resume": ("", "'' = fresh, 'auto' = OUTPUT_DIR/checkpoints/last.ckpt if present, or a path"),
    "keep_checkpoint_max": (3, "epoch checkpoints kept besides last/best"),
    "log_interval": (50, "steps between progress lines"),
    "eval_interval": (1, "epochs between validations"),
    # eval / export
    "checkpoint_path": ("", "eval/export: weights to use (.ckpt, timm .pth/.safetensors)"),
    "use_ema": (False, "eval/export: take the EMA weights of a training checkpoint (last.ckpt)"),
    "result_file": ("", "eval: write {top1, top5, num_samples} JSON here"),
    "file_name": ("tinynet", "export: output file name without extension"),
    "file_format": ("MINDIR", "export: MINDIR | ONNX | AIR"),
}


class ConfigError(ValueError):
    pass


def _coerce(key: str, value: Any, source: str) -> Any:
    default = KEYS[key][0]
    if value is None:
        return default
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"config key '{key}' ({source}) expects {type(default).__name__}, got {value!r}") from None


def _unknown(key: str, source: str) -> ConfigError:
    close = [k for k in KEYS if k.split("_")[0] == key.split("_")[0]]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown config key '{key}' ({source}){hint} Known keys: {', '.join(KEYS)}")


def parse_overrides(args: list[str]) -> dict[str, str]:
    """``--key value`` pairs (also ``--key=value``) → dict; anything else is an error."""
    out, i = {}, 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or arg == "--":
            raise ConfigError(f"expected --key value, got '{arg}'")
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args):
                raise ConfigError(f"--{arg[2:]} needs a value")
            key, value = arg[2:], args[i + 1]
            i += 2
        out[key] = value
    return out


def load_config(config_path: str | Path | None = None, overrides: list[str] | dict | None = None) -> SimpleNamespace:
    """Defaults ← YAML file ← command-line overrides, every key checked and typed."""
    values = {k: v for k, (v, _) in KEYS.items()}
    if config_path:
        path = Path(config_path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must be a mapping of config keys")
        for key, value in data.items():
            if key not in KEYS:
                raise _unknown(key, str(path))
            values[key] = _coerce(key, value, str(path))
    items = parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides or {})
    for key, value in items.items():
        if key not in KEYS:
            raise _unknown(key, f"--{key}")
        values[key] = _coerce(key, value, f"--{key}")
    cfg = SimpleNamespace(**values)
    cfg.config_path = str(config_path or "")
    return cfg


def save_config(cfg: SimpleNamespace, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({k: getattr(cfg, k) for k in KEYS}, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m src.config")
    parser.add_argument("config_path")
    parser.add_argument("--get", required=True)
    args, rest = parser.parse_known_args(argv)
    try:
        cfg = load_config(args.config_path, rest)
        if args.get not in KEYS:
            raise _unknown(args.get, "--get")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(getattr(cfg, args.get))
    return 0


if __name__ == "__main__":
    sys.exit(main())
