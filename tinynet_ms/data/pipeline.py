"""mindspore.dataset pipelines: training (timm's augmentations, crops decoded at reduced size) and timm-exact eval."""
from __future__ import annotations

import logging
from collections.abc import Sequence

import mindspore.dataset as ds
import numpy as np
from PIL import Image

from tinynet_ms.data.augment import RandAugment, random_erasing, random_resized_crop_box
from tinynet_ms.data.folder import Sample, read_checked
from tinynet_ms.data.images import load_eval_image, normalize
from tinynet_ms.data.jpeg import crop_resized, region_decoder
from tinynet_ms.models.variants import DEFAULT_PREPROCESSING, Preprocessing

log = logging.getLogger(__name__)


def _load_failed(sample: Sample, exc: Exception, instead: str) -> None:
    log.warning("skipping %s at load time (%s: %s): it changed or became unreadable after the scan; %s",
                sample.path, type(exc).__name__, exc, instead)


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random stream of one sample in one epoch: independent of worker, shard and resume."""
    return np.random.default_rng([seed, epoch, index])


class TrainSource:
    """Random-access source: encoded bytes, label, an augmentation seed and the network's noise row."""

    def __init__(self, samples: Sequence[Sample], seed: int, epoch: int, noise_size: int) -> None:
        self.samples, self.seed, self.epoch, self.noise_size = samples, seed, epoch, noise_size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        # A file that went bad after the scan is replaced by the next good one (as timm's loader does), so the
        # epoch keeps its length and batch layout; the random draws stay those of ``index``.
        for offset in range(len(self.samples)):
            sample = self.samples[(index + offset) % len(self.samples)]
            try:
                data = read_checked(sample)
                break
            except Exception as exc:  # noqa: BLE001 - any read failure: skip the file, say which
                _load_failed(sample, exc, "using the next image instead")
        else:
            raise RuntimeError("no training image is readable any more: check the dataset folder")
        rng = sample_rng(self.seed, self.epoch, index)
        aug_seed = rng.integers(0, 2**31 - 1, size=2, dtype=np.int64)
        noise = rng.random(self.noise_size, dtype=np.float32)
        return data, np.array(sample.label, np.int32), aug_seed, noise


class TrainTransform:
    """One sample's augmentation in timm's order: RandomResizedCrop (bicubic) → horizontal flip → RandAugment (PIL)
    → normalise → random erasing, every draw from the sample's own generator (seeded by ``aug_seed``).

    The crop is decoded at reduced size (``jpeg.crop_resized``: DCT scaling, only the crop's pixels) and then resized
    with Pillow's antialiased bicubic from its exact (fractional) box: timm's geometry and filter, without decoding
    and shrinking the whole file at full size first."""

    def __init__(self, image_size: int, *, scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), hflip_prob: float = 0.5, auto_augment: str = "none",
                 re_prob: float = 0.0, preprocessing: Preprocessing = DEFAULT_PREPROCESSING) -> None:
        self.size, self.scale, self.ratio, self.hflip_prob = image_size, scale, ratio, hflip_prob
        self.rand_augment = None if auto_augment in ("", "none", None) else RandAugment.from_string(auto_augment)
        self.re_prob = re_prob
        self.mean, self.std = preprocessing.mean, preprocessing.std

    def __call__(self, data: np.ndarray, aug_seed: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(aug_seed.tolist())
        img = crop_resized(data, lambda w, h: random_resized_crop_box(w, h, rng, self.scale, self.ratio), self.size)
        if rng.random() < self.hflip_prob:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        if self.rand_augment is not None:
            img = self.rand_augment(img, rng)
        return random_erasing(normalize(np.asarray(img), self.mean, self.std), rng, self.re_prob)

    def batch(self, images: list[np.ndarray], aug_seeds: list[np.ndarray], _info=None) -> tuple[np.ndarray]:
        """A batch's images (float32 NCHW), each transformed as ``__call__`` does: the batch op's per_batch_map."""
        return (np.stack([self(data, seed) for data, seed in zip(images, aug_seeds)]),)


def create_train_dataset(samples: Sequence[Sample], image_size: int, batch_size: int, *, epoch: int = 0,
                         seed: int = 0, noise_size: int = 0, auto_augment: str = "none", re_prob: float = 0.0,
                         hflip_prob: float = 0.5, min_crop_scale: float = 0.08, num_workers: int = 4,
                         num_shards: int | None = None, shard_id: int | None = None,
                         preprocessing: Preprocessing = DEFAULT_PREPROCESSING) -> ds.Dataset:
    """One epoch of training batches (image float32 NCHW, label int32, noise float32 (B, noise_size)),
    normalised with ``preprocessing``'s mean/std (the network's: the same as at eval).

    The shuffle order follows ``(seed, epoch)``; every augmentation draw and the network noise follow
    ``(seed, epoch, sample)``, whatever the worker count. Building epoch k again replays it exactly.
    """
    ds.config.set_seed(seed * 1000 + epoch)
    region_decoder()  # built (or found unbuildable) once here, not in every worker
    source = TrainSource(samples, seed, epoch, noise_size)
    data = ds.GeneratorDataset(source, ["image", "label", "aug_seed", "noise"], shuffle=True,
                               num_shards=num_shards, shard_id=shard_id)
    transform = TrainTransform(image_size, scale=(min_crop_scale, 1.0), hflip_prob=hflip_prob,
                               auto_augment=auto_augment, re_prob=re_prob, preprocessing=preprocessing)
    # A worker augments a whole batch (the batch op's per_batch_map), as timm's loader workers do: one hand-over per
    # batch, not per image. Two or more workers are processes (the GIL-held part of the work, a quarter of it,
    # would serialise threads); one is a thread (no copy through shared memory).
    data = data.batch(batch_size, drop_remainder=True, per_batch_map=transform.batch,
                      input_columns=["image", "aug_seed"], output_columns=["image"],
                      num_parallel_workers=num_workers, python_multiprocessing=num_workers > 1)
    return data.project(["image", "label", "noise"])


class EvalSource:
    """Random-access source running ``load_eval_image`` — the eval tensor is the documented function."""

    def __init__(self, samples: Sequence[Sample], image_size: int, preprocessing: Preprocessing) -> None:
        self.samples, self.image_size, self.preprocessing = samples, image_size, preprocessing

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        sample = self.samples[index]
        try:
            image = load_eval_image(read_checked(sample).tobytes(), self.image_size,
                                    preprocessing=self.preprocessing)
        except Exception as exc:  # noqa: BLE001 - the batch keeps its row, ``evaluate`` leaves it out
            _load_failed(sample, exc, "left out of the scores")
            return np.zeros((3, self.image_size, self.image_size), np.float32), np.array(-1, np.int32)
        return image, np.array(sample.label, np.int32)


def create_eval_dataset(samples: Sequence[Sample], image_size: int, batch_size: int,
                        preprocessing: Preprocessing = DEFAULT_PREPROCESSING, num_workers: int = 4) -> ds.Dataset:
    """Batches (image float32 NCHW, label int32) in file order, the last batch possibly smaller. An image that
    cannot be read any more is a row with label -1, which ``evaluate`` does not count."""
    data = ds.GeneratorDataset(EvalSource(samples, image_size, preprocessing), ["image", "label"], shuffle=False,
                               num_parallel_workers=num_workers, python_multiprocessing=num_workers > 1)
    return data.batch(batch_size, drop_remainder=False)
