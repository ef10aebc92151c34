"""Image decoding shared by every pipeline: PIL → RGB exactly as timm's loader, plus the eval transform."""
from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from PIL import Image

from tinynet_ms.models.variants import DEFAULT_PREPROCESSING, IMAGENET_MEAN, IMAGENET_STD, Preprocessing

_PIL_FILTERS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}  # Pillow's, antialiased when shrinking
# Formats MindSpore's C++ decoder reads; others are re-encoded as PNG before reaching it.
NATIVE_FORMATS = ("JPEG", "PNG", "BMP")


_HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # 16-bit gray PNG/TIFF (Pillow opens them so)


def open_rgb(source: str | os.PathLike | bytes) -> Image.Image:
    """Decode fully and convert to RGB (gray, CMYK, palette, RGBA → RGB), as timm's ``.convert('RGB')`` — except
    that 16-bit gray samples are scaled to 8 bits (x >> 8, as Pillow itself does for 16-bit RGB and the C++
    harness for both), where ``convert`` would clip everything above 255 to white."""
    return to_rgb(Image.open(io.BytesIO(source) if isinstance(source, bytes) else source))


def to_rgb(img: Image.Image) -> Image.Image:
    """``open_rgb`` of an image already opened (and possibly put in draft mode)."""
    img.load()
    if img.mode in _HIGH_BIT_MODES:
        samples = np.clip(np.asarray(img).astype(np.int64), 0, 65535)
        img = Image.fromarray((samples >> 8).astype(np.uint8), "L")
    return img.convert("RGB")


def eval_resize_size(image_size: int, crop_pct: float) -> int:
    return math.floor(image_size / crop_pct)


def eval_transform(img: Image.Image, image_size: int, preprocessing: Preprocessing = DEFAULT_PREPROCESSING
                   ) -> np.ndarray:
    """timm's eval transform: shorter side → floor(S / crop_pct) (PIL bicubic or bilinear, antialiased), center
    crop S×S, /255, mean/std. Returns float32 (3, S, S)."""
    short = eval_resize_size(image_size, preprocessing.crop_pct)
    w, h = img.size
    if w <= h:
        size = (short, int(short * h / w))
    else:
        size = (int(short * w / h), short)
    if size != (w, h):
        img = img.resize(size, _PIL_FILTERS[preprocessing.interpolation])
    w, h = img.size
    top, left = int(round((h - image_size) / 2.0)), int(round((w - image_size) / 2.0))
    img = img.crop((left, top, left + image_size, top + image_size))
    return normalize(np.asarray(img, dtype=np.uint8), preprocessing.mean, preprocessing.std)


def normalize(hwc_uint8: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """HWC uint8 → CHW float32: /255, then (x - mean) / std per channel — each step rounded to float32 as timm's
    ToTensor + Normalize (and the C++ harness) do, so eval tensors are theirs bit for bit; in place, no copies."""
    out = np.empty((hwc_uint8.shape[2], *hwc_uint8.shape[:2]), np.float32)
    np.divide(hwc_uint8.transpose(2, 0, 1), np.float32(255.0), out=out, dtype=np.float32)
    out -= np.asarray(mean, np.float32)[:, None, None]
    out /= np.asarray(std, np.float32)[:, None, None]
    return out


def load_eval_image(path: str | os.PathLike | bytes, image_size: int, crop_pct: float | None = None,
                    preprocessing: Preprocessing = DEFAULT_PREPROCESSING) -> np.ndarray:
    """Exactly the tensor the eval pipeline feeds the network for ``path`` (or its bytes): float32 (3, S, S).
    ``crop_pct`` (default: ``preprocessing``'s, i.e. the TinyNet record's) overrides the record's when given."""
    if crop_pct is not None:
        preprocessing = replace(preprocessing, crop_pct=crop_pct)
    return eval_transform(open_rgb(path), image_size, preprocessing)
