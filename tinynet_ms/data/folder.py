"""ImageNet-style folders (``split/<class>/<image>``): class index, file checks, skip log."""
from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from tinynet_ms.atomic import write_text_atomic
from tinynet_ms.data.images import NATIVE_FORMATS
from tinynet_ms.records import RecordError, read_json

log = logging.getLogger(__name__)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")


@dataclass
class Sample:
    path: str
    label: int
    native: bool  # MindSpore's C++ decoder can read the file as it is
    size: int = -1  # bytes when scanned (-1: unknown); a different size at load time means the file changed


def read_checked(sample: Sample) -> np.ndarray:
    """The file's bytes, or OSError if it vanished, became unreadable or changed size since the scan — the C++
    decoder must never see bytes the scan did not check (a truncated JPEG kills it with SIGFPE)."""
    data = np.fromfile(sample.path, dtype=np.uint8)
    if sample.size >= 0 and data.size != sample.size:
        raise OSError(f"{data.size} bytes, {sample.size} when scanned: the file changed after the scan")
    return data


@dataclass
class ImageFolder:
    root: Path
    classes: list[str]
    samples: list[Sample]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def __len__(self) -> int:
        return len(self.samples)


def _require_dir(split_dir: Path) -> None:
    if not split_dir.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {split_dir} (expected DATA/train/<class>/* and "
                                f"DATA/val/<class>/*)")


def list_classes(split_dir: str | os.PathLike) -> list[str]:
    split_dir = Path(split_dir)
    _require_dir(split_dir)
    classes = sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ValueError(f"{split_dir} has no class sub-folders (expected {split_dir}/<class>/<image>)")
    return classes


def check_image(path: str | os.PathLike) -> tuple[str | None, bool]:
    """(problem or None, native). Decodes the whole file with PIL — in JPEG draft mode (DCT-scaled, ~8×
    cheaper) — because MindSpore's C++ decoder kills the process (SIGFPE) on truncated/corrupt JPEGs."""
    try:
        with Image.open(path) as img:
            fmt = img.format
            if fmt == "JPEG":
                img.draft("RGB", (img.size[0] // 8 or 1, img.size[1] // 8 or 1))
            img.load()  # raises OSError on truncated or corrupt data
            if img.size[0] < 1 or img.size[1] < 1:
                return "empty image", False
            # 16-bit / float PNGs: the C++ decoder does not take them, PIL converts them.
            native = fmt in NATIVE_FORMATS and img.mode in ("1", "L", "P", "RGB", "RGBA", "CMYK", "LA")
        return None, native
    except Exception as exc:  # any decode failure means: skip this file
        return f"{type(exc).__name__}: {exc}", False


def _cached(hit: object, key: str) -> bool:
    """Whether a cache entry is this file's as it is now: [its key, problem or None, native]. The cache is a file
    anyone may have edited: an entry of another shape is checked again, not trusted."""
    return isinstance(hit, list) and len(hit) == 3 and hit[0] == key and isinstance(hit[1], (str, type(None))) \
        and isinstance(hit[2], bool)


def _cache_key(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def scan_split(split_dir: str | os.PathLike, classes: list[str] | None = None,
               cache_file: str | os.PathLike | None = None, workers: int = 8) -> ImageFolder:
    """Index ``split_dir``; every image is checked once (results cached by size+mtime in ``cache_file``).

    Images anywhere below a class folder belong to it (as torchvision's ImageFolder walks them); unreadable files
    and broken links are skipped and logged; an empty class folder keeps its index (so labels stay aligned).
    """
    split_dir = Path(split_dir)
    _require_dir(split_dir)
    classes = classes or list_classes(split_dir)
    paths: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        class_dir = split_dir / name
        found = sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS) \
            if class_dir.is_dir() else []
        files = [p for p in found if p.is_file()]  # a dangling symlink is no image
        for broken in sorted(set(found) - set(files)):
            log.warning("skipping %s: not a readable file (a broken link?)", broken)
        if not files:
            log.warning("class '%s' has no images in %s", name, split_dir)
        paths += [(p, label) for p in files]
    if not paths:
        raise ValueError(f"no images found under {split_dir} (extensions: {', '.join(IMAGE_EXTENSIONS)})")

    cache: dict[str, list] = {}
    if cache_file and Path(cache_file).is_file():
        try:
            cache = read_json(cache_file, "it is rebuilt")
        except (OSError, RecordError):  # only a cache: checked again and rewritten below
            cache = {}
        cache = cache if isinstance(cache, dict) else {}

    def check(item: tuple[Path, int]):
        path = item[0]
        key = _cache_key(path)
        hit = cache.get(str(path))
        if _cached(hit, key):
            return path, key, hit[1], hit[2]
        problem, native = check_image(path)
        return path, key, problem, native

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(check, paths))

    samples, skipped, new_cache = [], [], {}
    for (path, label), (_, key, problem, native) in zip(paths, results):
        new_cache[str(path)] = [key, problem, native]
        if problem:
            log.warning("skipping unreadable image %s (%s)", path, problem)
            skipped.append((str(path), problem))
        else:
            samples.append(Sample(str(path), label, native, int(key.split(":", 1)[0])))  # key: "size:mtime"
    if not samples:
        raise ValueError(f"none of the {len(paths)} images under {split_dir} could be decoded")
    if cache_file:
        write_text_atomic(cache_file, json.dumps(new_cache))
    return ImageFolder(split_dir, classes, samples, skipped)


def sample_names(samples: list[Sample]) -> list[str]:
    """File names without extension: what the offline-inference files are called (``<name>.bin``,
    ``<name>_0.bin``), so they must be unique across class folders."""
    seen: dict[str, str] = {}
    for sample in samples:
        name = Path(sample.path).stem
        if name in seen:
            raise ValueError(f"two images are both named '{name}' ({seen[name]} and {sample.path}); offline "
                             f"inference names its files by image name: rename one")
        seen[name] = sample.path
    return list(seen)

