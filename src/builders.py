"""Config → library objects, shared by train/eval/export so each is wired exactly once."""
from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

from tinynet_ms import TinyNet, create_model
from tinynet_ms.models.registry import load_weights
from tinynet_ms.data import ImageFolder, list_classes, scan_split

log = logging.getLogger("tinynet")


def build_network(cfg: SimpleNamespace, checkpoint_path: str | None = None, training: bool = False) -> TinyNet:
    """The configured network; for eval/export (``training=False``) without dropout and, with ``use_ema``,
    loading the EMA weights of a training checkpoint."""
    rwd = dict(r=cfg.r, w=cfg.w, d=cfg.d) if cfg.model == "tinynet" else {}
    net = create_model(cfg.model, num_classes=cfg.num_classes, drop_rate=cfg.drop_rate if training else 0.0,
                       drop_path_rate=cfg.drop_path_rate if training else 0.0, **rwd)
    if checkpoint_path:
        load_weights(net, checkpoint_path, use_ema=cfg.use_ema and not training)
    return net


def require_checkpoint(cfg: SimpleNamespace) -> str:
    if not cfg.checkpoint_path:
        raise ValueError("no weights given: pass --checkpoint_path (a .ckpt from train.py, or a converted / timm "
                         "pretrained file)")
    if not Path(cfg.checkpoint_path).is_file():
        raise FileNotFoundError(f"checkpoint_path '{cfg.checkpoint_path}' does not exist")
    return cfg.checkpoint_path


def image_size(cfg: SimpleNamespace, net: TinyNet) -> int:
    return cfg.image_size or net.spec.image_size


def scan_dataset(cfg: SimpleNamespace, split: str, classes: list[str] | None = None) -> ImageFolder:
    """Index DATA/split, checking every image once (cached under OUTPUT_DIR/.cache)."""
    root = Path(cfg.data_path)
    if not cfg.data_path or not root.is_dir():
        raise FileNotFoundError(f"data_path '{cfg.data_path}' is not a folder (expected DATA/train and DATA/val)")
    folder = scan_split(root / split, classes, Path(cfg.output_dir) / ".cache" / f"{split}_index.json",
                        workers=max(4, cfg.num_parallel_workers))
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
