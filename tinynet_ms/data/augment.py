"""Training augmentations with timm's semantics, driven by an explicit per-sample NumPy generator.

Explicit generators (seeded from (seed, epoch, sample index)) make augmentation independent of which
worker process handles a sample, so a resumed run replays the exact same epoch.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from tinynet_ms.models.variants import IMAGENET_MEAN

_FILL = tuple(round(255 * m) for m in IMAGENET_MEAN)  # timm fills geometric ops with the mean colour
_MAX_LEVEL = 10.0


def _signed(rng: np.random.Generator, v: float) -> float:
    return -v if rng.random() > 0.5 else v


def _affine(img: Image.Image, matrix: tuple) -> Image.Image:
    return img.transform(img.size, Image.AFFINE, matrix, resample=Image.BICUBIC, fillcolor=_FILL)


def _solarize_add(img: Image.Image, add: int, thresh: int = 128) -> Image.Image:
    lut = [min(255, i + add) if i < thresh else i for i in range(256)]
    return img.point(lut * len(img.getbands()))


def _posterize(img: Image.Image, bits: int) -> Image.Image:
    if bits >= 8:
        return img
    if bits <= 0:  # keep 0 bits: black (Pillow >= 10 refuses bits=0, older Pillow returned this)
        return Image.new(img.mode, img.size)
    return ImageOps.posterize(img, bits)


# name -> (level [0, 10] -> argument, op). Arguments as timm's `rand` op set (not the 'increasing' one).
_OPS = {
    "AutoContrast": (None, lambda img, _: ImageOps.autocontrast(img)),
    "Equalize": (None, lambda img, _: ImageOps.equalize(img)),
    "Invert": (None, lambda img, _: ImageOps.invert(img)),
    "Rotate": (lambda m, rng: _signed(rng, m / _MAX_LEVEL * 30.0),
               lambda img, deg: img.rotate(deg, resample=Image.BICUBIC, fillcolor=_FILL)),
    "Posterize": (lambda m, rng: int(m / _MAX_LEVEL * 4), lambda img, bits: _posterize(img, bits)),
    "Solarize": (lambda m, rng: min(256, int(m / _MAX_LEVEL * 256)), lambda img, t: ImageOps.solarize(img, t)),
    "SolarizeAdd": (lambda m, rng: min(128, int(m / _MAX_LEVEL * 110)), _solarize_add),
    "Color": (lambda m, rng: m / _MAX_LEVEL * 1.8 + 0.1, lambda img, f: ImageEnhance.Color(img).enhance(f)),
    "Contrast": (lambda m, rng: m / _MAX_LEVEL * 1.8 + 0.1, lambda img, f: ImageEnhance.Contrast(img).enhance(f)),
    "Brightness": (lambda m, rng: m / _MAX_LEVEL * 1.8 + 0.1,
                   lambda img, f: ImageEnhance.Brightness(img).enhance(f)),
    "Sharpness": (lambda m, rng: m / _MAX_LEVEL * 1.8 + 0.1,
                  lambda img, f: ImageEnhance.Sharpness(img).enhance(f)),
    "ShearX": (lambda m, rng: _signed(rng, m / _MAX_LEVEL * 0.3), lambda img, s: _affine(img, (1, s, 0, 0, 1, 0))),
    "ShearY": (lambda m, rng: _signed(rng, m / _MAX_LEVEL * 0.3), lambda img, s: _affine(img, (1, 0, 0, s, 1, 0))),
    "TranslateXRel": (lambda m, rng: _signed(rng, m / _MAX_LEVEL * 0.45),
                      lambda img, t: _affine(img, (1, 0, t * img.size[0], 0, 1, 0))),
    "TranslateYRel": (lambda m, rng: _signed(rng, m / _MAX_LEVEL * 0.45),
                      lambda img, t: _affine(img, (1, 0, 0, 0, 1, t * img.size[1]))),
}


class RandAugment:
    """timm's RandAugment: ``num_ops`` ops drawn with replacement, each applied with probability 0.5 at
    magnitude N(magnitude, magnitude_std) clipped to [0, 10]."""

    def __init__(self, magnitude: float = 9.0, num_ops: int = 2, magnitude_std: float = 0.5,
                 prob: float = 0.5) -> None:
        self.magnitude, self.num_ops, self.magnitude_std, self.prob = magnitude, num_ops, magnitude_std, prob
        self.names = list(_OPS)

    @classmethod
    def from_string(cls, spec: str) -> "RandAugment":
        """Parse timm's config string, e.g. ``rand-m9-mstd0.5`` or ``rand-m7-n3-mstd0.5-p0.7``."""
        parts = spec.split("-")
        if parts[0] != "rand":
            raise ValueError(f"auto_augment '{spec}' is not supported: use 'rand-m<M>[-n<N>][-mstd<S>]' or 'none'")
        kwargs = {}
        keys = {"mstd": "magnitude_std", "m": "magnitude", "n": "num_ops", "p": "prob"}
        for part in parts[1:]:
            key = next((k for k in keys if part.startswith(k) and _is_number(part[len(k):])), None)
            if key is None:
                raise ValueError(f"auto_augment '{spec}': unknown part '{part}' (known: m, n, mstd, p)")
            value = float(part[len(key):])
            kwargs[keys[key]] = int(value) if key == "n" else value
        return cls(**kwargs)

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        for _ in range(self.num_ops):
            name = self.names[rng.integers(len(self.names))]
            if rng.random() > self.prob:
                continue
            m = self.magnitude
            if self.magnitude_std > 0:
                m = rng.normal(m, self.magnitude_std)
            m = float(min(_MAX_LEVEL, max(0.0, m)))
            level_fn, op = _OPS[name]
            img = op(img, level_fn(m, rng) if level_fn else None)
        return img


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def random_resized_crop_box(width: int, height: int, rng: np.random.Generator, scale: tuple[float, float] = (0.08, 1.0),
                            ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(left, top, w, h) of timm's RandomResizedCrop: up to ten draws of an area fraction uniform in ``scale`` and
    an aspect ratio log-uniform in ``ratio``, the first that fits placed uniformly; else the whole image, cut to the
    nearest allowed aspect ratio, centred."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    w, h = width, height
    if width / height < min(ratio):
        h = int(round(width / min(ratio)))
    elif width / height > max(ratio):
        w = int(round(height * max(ratio)))
    return (width - w) // 2, (height - h) // 2, w, h


def random_erasing(chw: np.ndarray, rng: np.random.Generator, prob: float, min_area: float = 0.02,
                   max_area: float = 1 / 3, min_aspect: float = 0.3) -> np.ndarray:
    """timm's RandomErasing, mode 'pixel': one box of N(0, 1) noise on the normalised image."""
    if prob <= 0 or rng.random() >= prob:
        return chw
    c, h, w = chw.shape
    log_ratio = (math.log(min_aspect), math.log(1 / min_aspect))
    for _ in range(10):
        area = rng.uniform(min_area, max_area) * h * w
        aspect = math.exp(rng.uniform(*log_ratio))
        eh, ew = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
        if ew < w and eh < h:
            top, left = int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1))
            chw = chw.copy()
            chw[:, top:top + eh, left:left + ew] = rng.standard_normal((c, eh, ew), dtype=np.float32)
            break
    return chw
