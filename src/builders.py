"""Config → library objects, shared by train/eval/export so each is wired exactly once."""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

from src.config import KEYS, ConfigError, not_a_file
from tinynet_ms import TinyNet, TinyNetFeatures, create_model
from tinynet_ms.models.tinynet import select_levels
from tinynet_ms.data import ImageFolder, list_classes, scan_split
from tinynet_ms.hub import pretrained_checkpoint
from tinynet_ms.kernels import CPU_KERNELS
from tinynet_ms.models.fold import fold_batchnorm
from tinynet_ms.models import GENERIC_NAME, VARIANTS, Preprocessing, known_model, model_spec
from tinynet_ms.weights import load_weights

log = logging.getLogger("tinynet")


def build_network(cfg: SimpleNamespace, checkpoint_path: str | None = None, training: bool = False,
                  for_export: bool = False) -> TinyNet | TinyNetFeatures:
    """The configured network; for eval/export (``training=False``) without dropout and, with ``use_ema``,
    loading the EMA weights of a training checkpoint. ``cpu_kernels`` (auto/on/off) is ``create_model``'s;
    a network built for export takes the stock cells (exported graphs hold them in any case).
    ``features_only`` (export only) builds the backbone."""
    if cfg.features_only and not for_export:
        raise ConfigError("config key 'features_only': the backbone has no classifier, so it cannot be trained or "
                          "evaluated here; export it (export.py --features_only true) or build it in your own "
                          "code with tinynet_ms.create_model(..., features_only=True)")
    if for_export and not cfg.features_only and str(cfg.out_indices) != KEYS["out_indices"].default:
        # the classifier has no levels to pick: ignoring the key would export something else than was asked for
        raise ConfigError(f"config key 'out_indices' ('{cfg.out_indices}') picks backbone levels and needs "
                          f"features_only true: add --features_only true to export the backbone, or drop out_indices "
                          f"to export the classifier")
    backbone = dict(features_only=True, out_indices=out_indices(cfg)) if cfg.features_only else {}
    if training and not checkpoint_path:
        checkpoint_path = official_weights(cfg)  # fine-tuning from ImageNet (the EMA copy takes the net's weights)
    net = create_model(cfg.model, num_classes=cfg.num_classes, drop_rate=cfg.drop_rate if training else 0.0,
                       drop_path_rate=cfg.drop_path_rate if training else 0.0,
                       cpu_kernels=False if for_export else CPU_KERNELS[cfg.cpu_kernels], **backbone,
                       **model_args(cfg))
    if checkpoint_path:
        # training starts from them (fine-tuning: a classifier of another class count is initialised afresh);
        # eval and export need the weights' own head
        load_weights(net, checkpoint_path, use_ema=cfg.use_ema and not training, new_head=training)
    return net


def eval_network(cfg: SimpleNamespace, checkpoint_path: str) -> TinyNet:
    """The network eval.py scores and predict.py runs: the configured one with its weights, every BatchNorm folded
    into its conv (inference only: the same logits, fewer ops)."""
    return fold_batchnorm(build_network(cfg, checkpoint_path))


def model_args(cfg: SimpleNamespace) -> dict[str, float]:
    """The r/w/d arguments of ``create_model`` for the configured model, after checking the model exists (a
    config error, reported before any data is read)."""
    try:
        if known_model(cfg.model) != GENERIC_NAME:
            return {}
        model_spec(cfg.model, r=cfg.r, w=cfg.w, d=cfg.d)
    except ValueError as exc:
        raise ConfigError(f"config key 'model': {exc}") from None
    return dict(r=cfg.r, w=cfg.w, d=cfg.d)


def out_indices(cfg: SimpleNamespace) -> tuple[int, ...]:
    """``out_indices`` ("1,2,3,4") as the feature levels, checked against the configured model."""
    levels = model_spec(cfg.model, **model_args(cfg)).feature_levels
    try:
        indices = tuple(int(v) for v in str(cfg.out_indices).split(","))
        select_levels(levels, indices)
    except ValueError as exc:
        raise ConfigError(f"config key 'out_indices' ('{cfg.out_indices}'): {exc}") from None
    return indices


def official_weights(cfg: SimpleNamespace) -> str | None:
    """With ``pretrained: true``, the official ImageNet weights of ``model`` (the cached .ckpt, downloaded and
    converted on first use by tinynet_ms.hub), else None."""
    if not cfg.pretrained:
        return None
    if cfg.model not in VARIANTS:
        raise ConfigError(f"config key 'pretrained': official weights exist for {', '.join(sorted(VARIANTS))}, not "
                          f"for '{cfg.model}'; pass --pretrained_checkpoint / --checkpoint_path instead")
    return str(pretrained_checkpoint(cfg.model))


def require_checkpoint(cfg: SimpleNamespace) -> str:
    if not cfg.checkpoint_path and cfg.pretrained:
        return official_weights(cfg)
    if not cfg.checkpoint_path:
        raise ConfigError("no weights given: pass --checkpoint_path (a .ckpt from train.py, or a converted / timm "
                         "pretrained file) or --pretrained true (the official ImageNet weights)")
    if not Path(cfg.checkpoint_path).is_file():
        raise FileNotFoundError(f"checkpoint_path '{cfg.checkpoint_path}' {not_a_file(cfg.checkpoint_path)}")
    return cfg.checkpoint_path


def image_size(cfg: SimpleNamespace, net: TinyNet) -> int:
    """``image_size``, or (0) the network's own."""
    return cfg.image_size or net.spec.image_size


def preprocessing(cfg: SimpleNamespace, net: TinyNet) -> Preprocessing:
    """The network's eval preprocessing (its variant record), with ``crop_pct`` when the config sets one."""
    if not cfg.crop_pct:
        return net.preprocessing
    try:
        return replace(net.preprocessing, crop_pct=cfg.crop_pct)
    except ValueError as exc:
        raise ConfigError(f"config key 'crop_pct': {exc}") from None


def scan_dataset(cfg: SimpleNamespace, split: str, classes: list[str] | None = None) -> ImageFolder:
    """Index DATA/split, checking every image once (cached under OUTPUT_DIR/.cache)."""
    root = Path(cfg.data_path)
    if not cfg.data_path or not root.is_dir():
        raise FileNotFoundError(f"data_path '{cfg.data_path}' is not a folder (expected DATA/train and DATA/val)")
    folder = scan_split(root / split, classes, Path(cfg.output_dir) / ".cache" / f"{split}_index.json",
                        workers=max(4, cfg.num_parallel_workers))
    unknown = sorted(set(list_classes(root / split)) - set(folder.classes))
    if unknown:  # e.g. a val/ class that train/ lacks: the network has no output for it
        log.warning("%s: %d class folder(s) not in the class list are ignored: %s", root / split, len(unknown),
                    ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else ""))
    if len(folder.classes) != cfg.num_classes:
        raise ValueError(f"{root / split} has {len(folder.classes)} classes but num_classes is {cfg.num_classes}; "
                         f"pass --num_classes {len(folder.classes)}")
    log.info("%s: %d images in %d classes (%d unreadable skipped)", root / split, len(folder),
             len(folder.classes), len(folder.skipped))
    return folder


def dataset_classes(cfg: SimpleNamespace) -> list[str]:
    """Class names = sorted folders of train/ (val/ when there is no train/, e.g. on an eval box)."""
    root = Path(cfg.data_path)
    return list_classes(root / "train") if (root / "train").is_dir() else list_classes(root / "val")
