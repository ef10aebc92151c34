"""Image decoding shared by every pipeline: PIL → RGB exactly as timm's loader, plus the eval transform."""
from __future__ import annotations

import io
import math
import os

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CROP_PCT = 0.875
# Formats MindSpore's C++ decoder reads; others are re-encoded as PNG before reaching it.
NATIVE_FORMATS = ("JPEG", "PNG", "BMP")


def open_rgb(source: str | os.PathLike | bytes) -> Image.Image:
    """Decode fully and convert to RGB (gray, CMYK, palette, RGBA → RGB), as timm's ``.convert('RGB')``."""
    img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    img.load()
    return img.convert("RGB")


def eval_resize_size(image_size: int, crop_pct: float = DEFAULT_CROP_PCT) -> int:
    return math.floor(image_size / crop_pct)


def eval_transform(img: Image.Image, image_size: int, crop_pct: float = DEFAULT_CROP_PCT) -> np.ndarray:
    """timm's eval transform: bicubic (antialiased) shorter side → floor(S / crop_pct), center crop S×S,
    /255, ImageNet mean/std. Returns float32 (3, S, S)."""
    short = eval_resize_size(image_size, crop_pct)
    w, h = img.size
    if w <= h:
        size = (short, int(short * h / w))
    else:
        size = (int(short * w / h), short)
    if size != (w, h):
        img = img.resize(size, Image.BICUBIC)
    w, h = img.size
    top, left = int(round((h - image_size) / 2.0)), int(round((w - image_size) / 2.0))
    img = img.crop((left, top, left + image_size, top + image_size))
    return normalize(np.asarray(img, dtype=np.uint8))


def normalize(hwc_uint8: np.ndarray) -> np.ndarray:
    """HWC uint8 → CHW float32 with ImageNet mean/std."""
    x = hwc_uint8.astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def load_eval_image(path: str | os.PathLike, image_size: int, crop_pct: float = DEFAULT_CROP_PCT) -> np.ndarray:
    """Exactly the tensor the eval pipeline feeds the network for ``path``: float32 (3, S, S)."""
    return eval_transform(open_rgb(path), image_size, crop_pct)
