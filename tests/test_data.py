"""Data: folder scan with bad files, timm-exact eval tensor, deterministic train pipeline, augmentations."""
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import BROKEN, write_odd_images
from tinynet_ms.data import (IMAGENET_MEAN, IMAGENET_STD, create_eval_dataset, create_train_dataset,
                             load_eval_image, open_rgb, scan_split)
from tinynet_ms.data.augment import _OPS, RandAugment, random_erasing


@pytest.fixture(scope="module")
def odd_split(tmp_path_factory):
    root = tmp_path_factory.mktemp("odd") / "train"
    files = write_odd_images(root / "a_mixed")
    write_odd_images(root / "b_mixed")
    (root / "c_empty").mkdir()
    return root, files


def test_scan_skips_broken_files_and_keeps_empty_classes(odd_split, caplog):
    root, _ = odd_split
    folder = scan_split(root, cache_file=root.parent / "cache.json")
    assert folder.classes == ["a_mixed", "b_mixed", "c_empty"]
    assert sorted(p.rsplit("/", 1)[1] for p, _ in folder.skipped) == sorted(BROKEN * 2)
    assert len(folder) == 14 and {s.label for s in folder.samples} == {0, 1}
    native = {s.path.rsplit("/", 1)[1]: s.native for s in folder.samples if s.label == 0}
    assert native["rgb.jpg"] and native["cmyk.jpg"] and native["rgba.png"]
    assert not native["deep.png"] and not native["web.webp"] and not native["palette.gif"]
    assert "class 'c_empty' has no images" in caplog.text
    assert "skipping unreadable image" in caplog.text and "truncated.jpg" in caplog.text
    again = scan_split(root, cache_file=root.parent / "cache.json")  # from the cache: same answer
    assert [s.path for s in again.samples] == [s.path for s in folder.samples]


def test_scan_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset folder not found: .*nowhere"):
        scan_split(tmp_path / "nowhere")
    (tmp_path / "train").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        scan_split(tmp_path / "train")
    (tmp_path / "train" / "x").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        scan_split(tmp_path / "train")


def _timm_reference(path, size, crop_pct=0.875):
    """torchvision Resize(int) + CenterCrop + ToTensor + Normalize, as timm's eval transform composes them (on a
    16-bit gray image, after scaling it to 8 bits: timm's plain convert('RGB') would clip it white)."""
    img = Image.open(path)
    if img.mode.startswith("I"):
        img = Image.fromarray((np.asarray(img).astype(np.int64) // 256).astype(np.uint8))
    img = img.convert("RGB")
    w, h = img.size
    short = math.floor(size / crop_pct)
    ow, oh = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    img = img.resize((ow, oh), Image.BICUBIC)
    top, left = int(round((oh - size) / 2.0)), int(round((ow - size) / 2.0))
    arr = np.asarray(img.crop((left, top, left + size, top + size)), np.float32) / 255.0
    return ((arr - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


@pytest.mark.parametrize("name", ["rgb.jpg", "gray.jpg", "cmyk.jpg", "rgba.png", "palette.gif", "deep.png",
                                  "web.webp"])
@pytest.mark.parametrize("size", [32, 45])
def test_load_eval_image_matches_timm_transform(odd_split, name, size):
    _, files = odd_split
    x = load_eval_image(files[name], size)
    assert x.shape == (3, size, size) and x.dtype == np.float32
    step = 1 / 255 / min(IMAGENET_STD)  # one 8-bit step after normalisation
    assert np.abs(x - _timm_reference(files[name], size)).max() <= step


@pytest.mark.parametrize("dtype,suffix", [(np.uint16, ".png"), (np.int32, ".tif")])  # PIL modes I;16 and I
def test_16_bit_gray_is_scaled_not_clipped(tmp_path, dtype, suffix):
    """A 0..65535 gradient keeps 256 levels (PIL's convert('RGB') leaves 13, nearly all white)."""
    ramp = np.tile(np.arange(0, 65536, 64, dtype=np.int64), (4, 1))  # 4 x 1024
    path = tmp_path / f"ramp{suffix}"
    Image.fromarray(ramp.astype(dtype)).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb = np.asarray(open_rgb(path))
    assert rgb.dtype == np.uint8 and len(np.unique(rgb)) == 256
    np.testing.assert_array_equal(rgb[..., 0], ramp >> 8)
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_eval_pipeline_feeds_exactly_load_eval_image(odd_split):
    root, _ = odd_split
    folder = scan_split(root)
    data = create_eval_dataset(folder.samples, 40, batch_size=5, num_workers=2)
    images, labels = [], []
    for image, label in data.create_tuple_iterator(num_epochs=1):
        images.append(image.asnumpy())
        labels.append(label.asnumpy())
    images = np.concatenate(images)
    assert images.shape == (len(folder), 3, 40, 40)
    np.testing.assert_array_equal(np.concatenate(labels), [s.label for s in folder.samples])
    for i, sample in enumerate(folder.samples):
        np.testing.assert_array_equal(images[i], load_eval_image(sample.path, 40))


def _epoch(samples, epoch, seed=3, num_workers=2, **kw):
    data = create_train_dataset(samples, 32, 4, epoch=epoch, seed=seed, noise_size=7,
                                auto_augment="rand-m9-mstd0.5", re_prob=0.5, num_workers=num_workers, **kw)
    return [tuple(t.asnumpy() for t in batch) for batch in data.create_tuple_iterator(num_epochs=1)]


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_train_pipeline_decodes_odd_images_and_replays_epochs(odd_split):
    root, _ = odd_split
    samples = scan_split(root).samples
    first = _epoch(samples, epoch=2)
    assert len(first) == len(samples) // 4
    image, label, noise = first[0]
    assert image.shape == (4, 3, 32, 32) and image.dtype == np.float32 and np.isfinite(image).all()
    assert label.dtype == np.int32 and noise.shape == (4, 7) and ((noise >= 0) & (noise < 1)).all()
    again = _epoch(samples, epoch=2)
    for a, b in zip(first, again):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)  # same (seed, epoch): bit-identical epoch
    other = _epoch(samples, epoch=3)
    assert not np.array_equal(first[0][0], other[0][0])


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_train_epoch_does_not_depend_on_the_worker_count(odd_split):
    """Every draw (crop, flip, RandAugment, erasing, noise) is the sample's own: 1 or 2 workers, the same epoch."""
    root, _ = odd_split
    samples = scan_split(root).samples
    for a, b in zip(_epoch(samples, epoch=1, num_workers=1), _epoch(samples, epoch=1, num_workers=2)):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_train_crop_resizes_as_pil_does(tmp_path, fmt):
    """The training crop is resized with Pillow's antialiased bicubic, as timm's RandomResizedCrop on PIL images:
    with the whole image as the crop (scale 1), the tensor is PIL's resize. OpenCV's bicubic (no antialiasing)
    aliases this 96 -> 32 px checkerboard by 50-100 levels on average."""
    from tinynet_ms.data.folder import Sample

    yy, xx = np.mgrid[:96, :96]
    pattern = np.stack([((xx // 2 + yy // 2) % 2) * 255, xx * 2, yy * 2], -1).astype(np.uint8)
    path = tmp_path / f"checker.{fmt.lower()}"
    Image.fromarray(pattern).save(path, format=fmt, quality=95)
    data = create_train_dataset([Sample(str(path), 0, True)] * 4, 32, 4, hflip_prob=0.0, min_crop_scale=1.0,
                                num_workers=1)
    image = next(data.create_tuple_iterator(output_numpy=True))[0][0]
    pixels = (image.transpose(1, 2, 0) * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)) * 255
    reference = np.asarray(Image.open(path).convert("RGB").resize((32, 32), Image.BICUBIC), np.float64)
    # Mean over pixels: a crop may still be a pixel narrower (ratio jitter), and the JPEG is decoded at 1/2 size
    # before the resize (DCT scaling, ~1.5 levels on this 2-pixel pattern); OpenCV's bicubic is 50-100 off.
    assert np.abs(pixels - reference).mean(axis=(0, 1)).max() <= 2.0


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_train_pipeline_shards_disjointly(demo_data):
    samples = scan_split(demo_data / "train").samples  # 48 images
    shards = [_epoch(samples, epoch=0, num_shards=2, shard_id=r) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 6
    noise = [np.concatenate([b[2] for b in s]) for s in shards]  # noise rows identify samples
    assert not {r.tobytes() for r in noise[0]} & {r.tobytes() for r in noise[1]}


def test_rand_augment_parsing_and_ops():
    ra = RandAugment.from_string("rand-m9-mstd0.5")
    assert (ra.magnitude, ra.num_ops, ra.magnitude_std) == (9.0, 2, 0.5)
    assert RandAugment.from_string("rand-m7-n3-mstd0.5-p0.7").num_ops == 3
    for bad in ("auto-m9", "rand-x9"):
        with pytest.raises(ValueError, match="auto_augment"):
            RandAugment.from_string(bad)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 30, 3), dtype=np.uint8))
    rng = np.random.default_rng(1)
    for name, (level, op) in _OPS.items():  # every op runs at every magnitude, keeping size and mode
        for m in (0.0, 2.0, 9.0, 10.0):
            out = op(img, level(m, rng) if level else None)
            assert out.size == img.size and out.mode == "RGB", (name, m)
    a = np.asarray(ra(img, np.random.default_rng(5)))
    b = np.asarray(ra(img, np.random.default_rng(5)))
    np.testing.assert_array_equal(a, b)


def test_random_erasing():
    x = np.zeros((3, 20, 20), np.float32)
    assert random_erasing(x, np.random.default_rng(0), prob=0.0) is x
    y = random_erasing(x, np.random.default_rng(0), prob=1.0)
    changed = (y != 0).any(axis=0)
    assert 0.02 * 400 * 0.5 <= changed.sum() <= 400 / 3 * 1.5 and (x == 0).all()


def test_files_gone_bad_after_the_scan_are_skipped_at_load(tmp_path, demo_data, caplog):
    """A file deleted, truncated or replaced after the scan (its checked bytes are gone) is a logged skip at
    load time, never a crash: training takes the next image (the epoch keeps its batches), eval leaves the row
    out of the scores (label -1, not counted by ``evaluate``)."""
    import shutil

    import mindspore as ms

    from tinynet_ms.train import evaluate

    shutil.copytree(demo_data, tmp_path / "d")
    train, val = scan_split(tmp_path / "d" / "train").samples, scan_split(tmp_path / "d" / "val").samples
    Path(train[0].path).unlink()
    Path(train[5].path).write_bytes(Path(train[5].path).read_bytes()[:200])  # truncated JPEG: SIGFPE in C++
    Path(val[1].path).unlink()
    Path(val[2].path).write_bytes(Path(val[2].path).read_bytes()[:-10])
    batches = _epoch(train, epoch=0, num_workers=1)
    assert len(batches) == len(train) // 4
    assert np.isfinite(np.concatenate([b[0] for b in batches])).all()

    labels = np.concatenate([b[1].asnumpy() for b in create_eval_dataset(val, 32, 5, num_workers=1)
                             .create_tuple_iterator(num_epochs=1)])
    assert list(np.flatnonzero(labels < 0)) == [1, 2] and len(labels) == len(val)
    with caplog.at_level("WARNING"):
        Path(train[1].path).unlink()
        _epoch(train[:4], epoch=0, num_workers=1)
    assert f"skipping {train[1].path} at load time" in caplog.text

    class Uniform:  # logits favouring class 0 for every row
        def set_train(self, mode):
            pass

        def __call__(self, image):
            return ms.Tensor(np.tile(np.arange(4, 0, -1, dtype=np.float32), (image.shape[0], 1)))

    eval_data = create_eval_dataset(val, 32, 5, num_workers=1)
    top1, _, count = evaluate(Uniform(), eval_data.create_tuple_iterator(num_epochs=1))
    assert count == len(val) - 2 and top1 == sum(s.label == 0 for i, s in enumerate(val) if i not in (1, 2))


def test_normalize_is_torchvision_to_tensor_then_normalize_bit_for_bit():
    """Each step rounded to float32 in timm's order (/255, - mean, / std): the eval tensor the C++ harness and timm
    compute, exactly (a fused x * scale - shift differs in the last bit)."""
    from tinynet_ms.data.images import normalize

    x = np.random.default_rng(0).integers(0, 256, (37, 29, 3), dtype=np.uint8)
    mean, std = np.float32([0.485, 0.456, 0.406]), np.float32([0.229, 0.224, 0.225])
    expected = ((x.astype(np.float32) / np.float32(255.0) - mean) / std).transpose(2, 0, 1)
    got = normalize(x, mean.tolist(), std.tolist())
    assert got.dtype == np.float32 and got.flags.c_contiguous and np.array_equal(got, expected)
