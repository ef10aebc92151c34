"""The training augmentation is timm's in distribution: crop geometry against timm's sampling restated, and the crop
decoded at reduced size (libjpeg DCT scaling + crop decode, or Pillow's draft) against timm's full-size decode."""
import io
import math
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_pipeline import natural_image  # noqa: E402
from tinynet_ms.data import jpeg  # noqa: E402
from tinynet_ms.data.augment import random_resized_crop_box  # noqa: E402
from tinynet_ms.data.pipeline import TrainTransform  # noqa: E402


def _timm_box(width, height, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """timm's RandomResizedCropAndInterpolation.get_params with Python's random, as timm draws it; (left, top, w, h)."""
    area = width * height
    for _ in range(10):
        target = random.uniform(*scale) * area
        aspect = math.exp(random.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if w <= width and h <= height:
            return random.randint(0, width - w), random.randint(0, height - h), w, h
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def _ks(a, b) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    grid = np.sort(np.concatenate([a, b]))
    return float(np.abs(np.searchsorted(np.sort(a), grid, "right") / len(a)
                        - np.searchsorted(np.sort(b), grid, "right") / len(b)).max())


@pytest.mark.parametrize("size", [(500, 375), (120, 480)])  # a usual photo; a tall strip (the fallback path)
def test_crop_geometry_is_timms(size):
    """Area fraction, aspect ratio and centre of 20,000 crops, ours vs timm's sampling: every KS gap below 0.025 (the
    1-in-1000 critical value at this n is 0.0195; a scale range 0.1-1 instead of 0.08-1 gives 0.033, a linear
    instead of log-uniform ratio 0.07)."""
    n, (width, height) = 20000, size
    rng = np.random.default_rng(0)
    random.seed(0)
    ours = np.array([random_resized_crop_box(width, height, rng) for _ in range(n)], np.float64)
    timm = np.array([_timm_box(width, height) for _ in range(n)], np.float64)
    for boxes in (ours, timm):
        assert (boxes[:, 2] >= 1).all() and (boxes[:, 0] + boxes[:, 2] <= width).all()
        assert (boxes[:, 1] + boxes[:, 3] <= height).all()

    def stats(b):
        return {"area": b[:, 2] * b[:, 3] / (width * height), "log_aspect": np.log(b[:, 2] / b[:, 3]),
                "cx": (b[:, 0] + b[:, 2] / 2) / width, "cy": (b[:, 1] + b[:, 3] / 2) / height}
    mine, theirs = stats(ours), stats(timm)
    gaps = {k: _ks(mine[k], theirs[k]) for k in mine}
    assert max(gaps.values()) < 0.025, gaps


@pytest.fixture(scope="module")
def photos():
    """JPEG bytes of photo-like images at ImageNet's usual sizes and a large one (decoded at 1/2 and 1/4)."""
    rng = np.random.default_rng(3)
    out = []
    for w, h in [(500, 375), (375, 500), (1024, 768)] * 3:
        buf = io.BytesIO()
        natural_image(w, h, rng).save(buf, format="JPEG", quality=88)
        out.append(np.frombuffer(buf.getvalue(), np.uint8))
    return out


def _luma_gradient(rgb: np.ndarray) -> float:
    y = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return float(np.abs(np.diff(y, axis=0)).mean() + np.abs(np.diff(y, axis=1)).mean())


@pytest.mark.parametrize("decoder", ["libjpeg", "pillow-draft"])
@pytest.mark.parametrize("size", [106, 192])
def test_reduced_decode_keeps_timms_pixels(photos, size, decoder, monkeypatch):
    """Same crops, decoded at reduced size then resized (in C, or by Pillow) vs timm's full decode + crop + Pillow
    bicubic resize: ~1 level apart on average, the same mean colour and the same sharpness (luma gradient) within
    3%."""
    if decoder == "libjpeg" and jpeg.region_decoder() is None:
        pytest.skip("the JPEG crop decoder does not build here (g++ / jpeglib.h)")
    if decoder == "pillow-draft":
        monkeypatch.setitem(jpeg._state, "lib", None)
    rng = np.random.default_rng(5)
    diffs, means, grads, scaled = [], [], [], 0
    for data in photos:
        full = Image.open(io.BytesIO(data.tobytes())).convert("RGB")
        for _ in range(3):
            left, top, w, h = crop = random_resized_crop_box(*full.size, rng)
            scaled += jpeg.dct_scale(w, h, size) < 8
            reference = np.asarray(full.crop((left, top, left + w, top + h)).resize((size, size), Image.BICUBIC))
            ours = np.asarray(jpeg.crop_resized(data, lambda *_: crop, size))
            diffs.append(np.abs(ours.astype(np.float64) - reference).mean())
            means.append(ours.mean(axis=(0, 1)) - reference.mean(axis=(0, 1)))
            grads.append((_luma_gradient(ours), _luma_gradient(reference)))
    assert scaled >= 5  # the reduced decode was exercised
    assert np.mean(diffs) < 1.5 and max(diffs) < 3.0, diffs
    assert np.abs(np.mean(means, axis=0)).max() < 0.5
    ratio = sum(g for g, _ in grads) / sum(r for _, r in grads)
    assert 0.97 < ratio < 1.03, ratio


def test_full_size_crop_decode_is_pillows_pixels(photos):
    """At scale 8/8 the crop decoder returns exactly Pillow's pixels of that rectangle."""
    lib = jpeg.region_decoder()
    if lib is None:
        pytest.skip("the JPEG crop decoder does not build here (g++ / jpeglib.h)")
    data = photos[0]
    full = np.asarray(Image.open(io.BytesIO(data.tobytes())).convert("RGB"))
    out = np.empty((100, 120, 3), np.uint8)
    assert lib.tinynet_jpeg_decode_region(data.ctypes.data, data.size, 8, 37, 51, 157, 151, out.ctypes.data) == 0
    np.testing.assert_array_equal(out, full[51:151, 37:157])


def test_c_resize_is_pillows_bicubic(photos):
    """Pillow's kernel and taps: on photos ~0.2 levels apart (the passes' rounding order), unbiased; a box that is
    not inside the image is an error."""
    lib = jpeg.region_decoder()
    if lib is None:
        pytest.skip("the JPEG crop decoder does not build here (g++ / jpeglib.h)")
    rng = np.random.default_rng(0)
    diffs = []
    for data in photos:
        img = Image.open(io.BytesIO(data.tobytes())).convert("RGB")
        w, h = img.size
        for size in (106, 192, 300):  # shrink and enlarge
            x0, y0 = rng.uniform(0, w / 3), rng.uniform(0, h / 3)
            box = (x0, y0, rng.uniform(x0 + 50, w), rng.uniform(y0 + 50, h))
            ours = jpeg.resize_bicubic(np.asarray(img), box, size, lib).astype(np.int16)
            diffs.append(ours - np.asarray(img.resize((size, size), Image.BICUBIC, box=box), np.int16))
    assert max(np.abs(d).mean() for d in diffs) < 0.5 and max(np.abs(d).max() for d in diffs) <= 8
    assert abs(np.mean([d.mean() for d in diffs])) < 0.05
    with pytest.raises(ValueError, match="not inside"):
        jpeg.resize_bicubic(np.zeros((10, 10, 3), np.uint8), (0, 0, 11, 10), 5, lib)


def test_broken_and_cmyk_jpegs_are_decoded_by_pillow(photos, tmp_path):
    """What the crop decoder declines goes to Pillow: CMYK converts as timm's convert('RGB') does; a truncated
    file raises (libjpeg would pad it with grey), so the pipeline skips it."""
    cmyk = io.BytesIO()
    Image.open(io.BytesIO(photos[0].tobytes())).convert("CMYK").save(cmyk, format="JPEG", quality=90)
    data = np.frombuffer(cmyk.getvalue(), np.uint8)
    img, box = jpeg.decode_crop(data, lambda w, h: (10, 20, 200, 150), 106)
    expected = Image.open(io.BytesIO(cmyk.getvalue())).convert("RGB").crop((10, 20, 210, 170))
    got = img.resize((200, 150), Image.BICUBIC, box=box)
    assert np.abs(np.asarray(got, np.float64) - np.asarray(expected)).mean() < 1.5
    with pytest.raises(OSError):
        jpeg.decode_crop(photos[0][:3000], lambda w, h: (0, 0, w, h), 106)


def test_decoder_that_cannot_build_falls_back_with_one_line(photos, tmp_path, monkeypatch, caplog):
    source = tmp_path / "jpeg_crop.cc"  # a source no cached build was made from
    source.write_text(jpeg.SOURCE.read_text() + "// changed\n")
    monkeypatch.setattr(jpeg, "SOURCE", source)
    monkeypatch.setattr(jpeg, "_state", {})
    monkeypatch.setattr(jpeg.shutil, "which", lambda name: None)
    assert jpeg.region_decoder() is None and jpeg.region_decoder() is None
    assert caplog.text.count("training crops are decoded by Pillow") == 1 and "g++" in caplog.text
    img, box = jpeg.decode_crop(photos[2], lambda w, h: (0, 0, w, h), 106)
    assert img.size == (256, 192) and box == (0.0, 0.0, 256.0, 192.0)  # 1024x768 at Pillow's draft 1/4


def test_train_transform_replays_its_seed(photos):
    transform = TrainTransform(64, auto_augment="rand-m9-mstd0.5", re_prob=0.5)
    seed = np.array([4, 2], np.int64)
    a, b = transform(photos[0], seed), transform(photos[0], seed)
    assert a.shape == (3, 64, 64) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, transform(photos[0], np.array([4, 3], np.int64)))
