"""Real datasets installable from package registries, written as ImageFolder trees for the benchmarks."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

# Debian/Ubuntu: apt-get install dataset-fashion-mnist (Zalando's IDX files, 60,000 train + 10,000 test, 28x28 gray).
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                         "ankle-boot")


def _read_idx(path: Path) -> np.ndarray:
    raw = gzip.open(path).read()
    if raw[2] != 8:  # IDX type byte: 0x08 = unsigned byte
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist_folder(out: str | Path, train_size: int = 20000, val_size: int = 10000,
                         source: Path = FASHION_MNIST_DIR) -> Path:
    """The first ``train_size`` training and ``val_size`` test images as PNGs in ``out/{train,val}/<class>/``."""
    if not (source / "train-images-idx3-ubyte.gz").is_file():
        raise FileNotFoundError(f"Fashion-MNIST not found in {source}: apt-get install dataset-fashion-mnist")
    out = Path(out)
    for split, prefix, count in (("train", "train", train_size), ("val", "t10k", val_size)):
        images = _read_idx(source / f"{prefix}-images-idx3-ubyte.gz")[:count]
        labels = _read_idx(source / f"{prefix}-labels-idx1-ubyte.gz")[:count]
        for name in FASHION_MNIST_CLASSES:
            (out / split / name).mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(images, labels)):
            Image.fromarray(image).save(out / split / FASHION_MNIST_CLASSES[label] / f"{i:05d}.png")
    return out


def digits_folder(out: str | Path, classes: int = 10, train_per_class: int = 30, seed: int = 0) -> Path:
    """scikit-learn's handwritten digits (UCI, 1,797 images of 8x8 at 17 gray levels; scikit-learn ships them) as
    PNGs in ``out/{train,val}/<digit>/``: digits ``0..classes-1``, ``train_per_class`` random images of each for
    training and the rest for validation."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    out = Path(out)
    for label in range(classes):
        index = rng.permutation(np.flatnonzero(digits.target == label))
        for split, part in (("train", index[:train_per_class]), ("val", index[train_per_class:])):
            folder = out / split / f"digit_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in part:
                Image.fromarray((digits.images[i] * 255 / 16).astype(np.uint8)).save(folder / f"{i:04d}.png")
    return out
