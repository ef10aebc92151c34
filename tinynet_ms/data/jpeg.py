"""A training crop decoded at reduced size: only the crop's pixels, at no less than the network's resolution.

timm decodes the whole file at full size, then crops and shrinks it (an ImageNet crop is ~3x larger than a 224
input, ~5x larger than TinyNet-E's 106). Here the JPEG decoder does both: libjpeg-turbo's DCT scaling (1/2, 1/4,
1/8) and its crop/skip API (``jpeg_crop.cc``, compiled with g++ against the system's ``jpeglib.h`` on first use,
like the CPU kernels), else Pillow's draft mode (the whole image at the same scale). The crop keeps at least
``size`` pixels each way, so the bicubic resize that follows still shrinks it (or keeps its size) as timm's
does; the box is returned in the decoded image's coordinates, fractions kept, so the geometry is timm's.
"""
from __future__ import annotations

import ctypes
import hashlib
import io
import logging
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from tinynet_ms.atomic import atomic_path
from tinynet_ms.data.images import to_rgb
from tinynet_ms.kernels.build import _cpu_flags, cache_dir

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("jpeg_crop.cc")
# -mavx2 where the building CPU has it (the resize's vertical pass vectorises), not -march=native: the cached
# library may be used on another machine of the same kind.
_FLAGS = ["-std=c++17", "-O3", "-shared", "-fPIC", *(["-mavx2"] if "avx2" in _cpu_flags() else [])]
_lock = threading.Lock()
_state: dict[str, object] = {}  # "lib": the loaded library or None once building it failed


def _build() -> Path:
    source = SOURCE.read_bytes()
    # Keyed by source and flags only: a C library built by another compiler version links the same.
    target = cache_dir() / f"jpeg-{hashlib.sha256(source + ' '.join(_FLAGS).encode()).hexdigest()[:16]}.so"
    if target.is_file():
        return target
    cxx = shutil.which("g++")
    if cxx is None:
        raise RuntimeError("g++ was not found on PATH")
    with atomic_path(target, mode=0o777) as tmp:  # a concurrent builder writes identical bytes
        proc = subprocess.run([cxx, *_FLAGS, "-o", str(tmp), str(SOURCE), "-ljpeg"], capture_output=True,
                              text=True, check=False, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "g++ failed")
    return target


def region_decoder() -> ctypes.CDLL | None:
    """The compiled crop decoder, or None (said once per process) when it cannot be built here."""
    with _lock:
        if "lib" not in _state:
            try:
                lib = ctypes.CDLL(str(_build()))
                lib.tinynet_jpeg_decode_region.argtypes = [ctypes.c_void_p, ctypes.c_size_t] + \
                    [ctypes.c_int] * 5 + [ctypes.c_void_p]
                lib.tinynet_jpeg_decode_region.restype = ctypes.c_int
                lib.tinynet_resize_bicubic.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 2 + \
                    [ctypes.c_double] * 4 + [ctypes.c_int] * 2 + [ctypes.c_void_p]
                lib.tinynet_resize_bicubic.restype = ctypes.c_int
                lib.tinynet_jpeg_size.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p]
                lib.tinynet_jpeg_size.restype = ctypes.c_int
                _state["lib"] = lib
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                log.warning("training crops are decoded by Pillow (slower): the JPEG crop decoder could not be "
                            "built (%s); it needs g++ and libjpeg's headers (apt-get install g++ libjpeg-dev)", exc)
                _state["lib"] = None
        return _state["lib"]  # type: ignore[return-value]


def dct_scale(width: int, height: int, size: int) -> int:
    """The smallest m in (1, 2, 4, 8) at which a ``width`` x ``height`` crop decoded at m/8 of its size is still
    ``size`` pixels or more each way (8: full size). Powers of two only: libjpeg-turbo's 1/2 and 1/4 inverse DCTs
    are its vectorised ones, and the 3/8, 5/8, ... ones shrink fine patterns less cleanly (a 2-pixel checkerboard
    comes out 3-4 levels off Pillow's bicubic at 3/8, 1 level at 1/2)."""
    for m in (1, 2, 4):
        if width * m >= 8 * size and height * m >= 8 * size:
            return m
    return 8


Box = tuple[float, float, float, float]


def _scaled_region(data: np.ndarray, lib: ctypes.CDLL, image_size: tuple[int, int], crop: tuple[int, int, int, int],
                   size: int) -> tuple[np.ndarray, Box] | None:
    left, top, w, h = crop
    m = dct_scale(w, h, size)
    # the decoder's scaled image is ceil(W m / 8) x ceil(H m / 8); pixel k covers source [8k/m, 8(k+1)/m)
    full_w, full_h = (-(-n * m // 8) for n in image_size)
    x0, y0 = left * m // 8, top * m // 8
    x1, y1 = min(full_w, -(-(left + w) * m // 8)), min(full_h, -(-(top + h) * m // 8))
    out = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
    if lib.tinynet_jpeg_decode_region(data.ctypes.data, data.size, m, x0, y0, x1, y1, out.ctypes.data) != 0:
        return None
    f = m / 8
    return out, (left * f - x0, top * f - y0, (left + w) * f - x0, (top + h) * f - y0)


def resize_bicubic(rgb: np.ndarray, box: Box, size: int, lib: ctypes.CDLL) -> np.ndarray:
    """Pillow's ``Image.resize((size, size), BICUBIC, box=box)`` of an RGB array in C, in about half Pillow's time:
    the same kernel and fixed-point taps; its passes may run in the other order than Pillow's (see jpeg_crop.cc)."""
    rgb = np.ascontiguousarray(rgb)
    out = np.empty((size, size, 3), np.uint8)
    if lib.tinynet_resize_bicubic(rgb.ctypes.data, rgb.shape[1], rgb.shape[0], *box, size, size, out.ctypes.data):
        raise ValueError(f"box {box} is not inside the {rgb.shape[1]}x{rgb.shape[0]} image")
    return out


def crop_resized(data: np.ndarray | bytes, crop_fn: Callable[[int, int], tuple[int, int, int, int]],
                 size: int) -> Image.Image:
    """timm's RandomResizedCrop of the encoded image ``data`` for the crop ``crop_fn(width, height)`` chooses: the
    crop, resized to ``size`` x ``size`` with Pillow's antialiased bicubic — decoded at reduced size and resized in C
    where the decoder builds (``decode_crop``), else by Pillow."""
    lib = region_decoder()
    region, box = decode_crop(data, crop_fn, size, as_array=lib is not None)
    if isinstance(region, np.ndarray):
        return Image.fromarray(resize_bicubic(region, box, size, lib))
    return region.resize((size, size), Image.BICUBIC, box=box)


def decode_crop(data: np.ndarray | bytes, crop_fn: Callable[[int, int], tuple[int, int, int, int]], size: int,
                as_array: bool = False) -> tuple[Image.Image | np.ndarray, Box]:
    """Decode the encoded image ``data`` for the crop ``crop_fn(width, height) -> (left, top, w, h)`` chooses (in
    source pixels): an RGB image holding the crop at ``size`` pixels or more each way (fewer only where the crop
    itself has fewer), and the crop's box in that image's coordinates (for ``Image.resize(..., box=box)``).
    ``as_array``: the C decoder's region as an HWC uint8 array where it decoded it (else a PIL image). Raises what
    Pillow raises on a file it cannot decode."""
    data = np.frombuffer(data, np.uint8) if isinstance(data, bytes) else np.ascontiguousarray(data, np.uint8)
    lib = region_decoder()
    if lib is not None and data[:2].tobytes() == b"\xff\xd8":  # a JPEG: its size from libjpeg, not Pillow's parser
        size_wh = np.zeros(2, np.int32)
        if lib.tinynet_jpeg_size(data.ctypes.data, data.size, size_wh.ctypes.data, size_wh[1:].ctypes.data) == 0:
            image_size = (int(size_wh[0]), int(size_wh[1]))
            crop = crop_fn(*image_size)
            done = _scaled_region(data, lib, image_size, crop, size)
            if done is not None:
                return done if as_array else (Image.fromarray(done[0]), done[1])
            return _pillow_crop(data, crop, size)  # what libjpeg declines (corrupt data): Pillow decides
    img = Image.open(io.BytesIO(data.tobytes()))
    return _pillow_crop(img, crop_fn(*img.size), size)


def _pillow_crop(img: Image.Image | np.ndarray, crop: tuple[int, int, int, int], size: int) -> tuple[Image.Image, Box]:
    """``decode_crop`` by Pillow: the whole image, JPEGs in draft mode (1/2, 1/4 or 1/8) where the crop allows."""
    if isinstance(img, np.ndarray):
        img = Image.open(io.BytesIO(img.tobytes()))
    left, top, w, h = crop
    scale = 1.0
    reduce = min(w // size, h // size)
    if img.format == "JPEG" and reduce >= 2:
        full_w = img.size[0]
        _, box = img.draft(img.mode, (img.size[0] // reduce, img.size[1] // reduce))
        scale = full_w / box[2]
    return to_rgb(img), (left / scale, top / scale, (left + w) / scale, (top + h) / scale)
