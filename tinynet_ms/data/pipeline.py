"""mindspore.dataset pipelines: training (C++ fused decode+crop, timm augmentations) and timm-exact eval."""
from __future__ import annotations

import io
import logging
from collections.abc import Sequence

import mindspore.dataset as ds
import mindspore.dataset.vision as vision
import numpy as np
from PIL import Image

from tinynet_ms.data.augment import RandAugment, random_erasing
from tinynet_ms.data.folder import Sample, read_checked
from tinynet_ms.data.images import load_eval_image, normalize, open_rgb
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
                data = self._encoded(sample)
                break
            except Exception as exc:  # noqa: BLE001 - any read/decode failure: skip the file, say which
                _load_failed(sample, exc, "using the next image instead")
        else:
            raise RuntimeError("no training image is readable any more: check the dataset folder")
        rng = sample_rng(self.seed, self.epoch, index)
        aug_seed = rng.integers(0, 2**31 - 1, size=2, dtype=np.int64)
        noise = rng.random(self.noise_size, dtype=np.float32)
        return data, np.array(sample.label, np.int32), aug_seed, noise

    @staticmethod
    def _encoded(sample: Sample) -> np.ndarray:
        data = read_checked(sample)
        if sample.native:
            return data
        # formats the C++ decoder lacks (WebP, 16-bit PNG, ...) go through PIL as lossless PNG
        buf = io.BytesIO()
        open_rgb(data.tobytes()).save(buf, format="PNG")
        return np.frombuffer(buf.getvalue(), dtype=np.uint8)


class TrainAugment:
    """Python stage after the C++ crop/flip: RandAugment (PIL) → normalise → random erasing."""

    def __init__(self, auto_augment: str = "none", re_prob: float = 0.0,
                 preprocessing: Preprocessing = DEFAULT_PREPROCESSING) -> None:
        self.rand_augment = None if auto_augment in ("", "none", None) else RandAugment.from_string(auto_augment)
        self.re_prob = re_prob
        self.mean, self.std = preprocessing.mean, preprocessing.std

    def __call__(self, image: np.ndarray, aug_seed: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(aug_seed.tolist())
        if self.rand_augment is not None:
            image = np.asarray(self.rand_augment(Image.fromarray(image), rng))
        return random_erasing(normalize(image, self.mean, self.std), rng, self.re_prob)


def create_train_dataset(samples: Sequence[Sample], image_size: int, batch_size: int, *, epoch: int = 0,
                         seed: int = 0, noise_size: int = 0, auto_augment: str = "none", re_prob: float = 0.0,
                         hflip_prob: float = 0.5, min_crop_scale: float = 0.08, num_workers: int = 4,
                         num_shards: int | None = None, shard_id: int | None = None,
                         preprocessing: Preprocessing = DEFAULT_PREPROCESSING) -> ds.Dataset:
    """One epoch of training batches (image float32 NCHW, label int32, noise float32 (B, noise_size)),
    normalised with ``preprocessing``'s mean/std (the network's: the same as at eval).

    The shuffle order and the C++ crop/flip draws follow ``(seed, epoch)``; RandAugment, erasing and the
    network noise follow ``(seed, epoch, sample)``. Building epoch k again replays it exactly.
    """
    ds.config.set_seed(seed * 1000 + epoch)
    source = TrainSource(samples, seed, epoch, noise_size)
    data = ds.GeneratorDataset(source, ["image", "label", "aug_seed", "noise"], shuffle=True,
                               num_parallel_workers=num_workers, num_shards=num_shards, shard_id=shard_id)
    # PILCUBIC is Pillow's antialiased bicubic, as timm's RandomResizedCrop on PIL images: identical pixels. The
    # OpenCV BICUBIC is not antialiased: downscaled crops (every ImageNet crop) alias, 3.6/255 off at only 2x.
    data = data.map([vision.RandomCropDecodeResize(image_size, scale=(min_crop_scale, 1.0),
                                                   ratio=(3 / 4, 4 / 3), interpolation=vision.Inter.PILCUBIC),
                     vision.RandomHorizontalFlip(hflip_prob)],
                    input_columns="image", num_parallel_workers=num_workers)
    data = data.map(TrainAugment(auto_augment, re_prob, preprocessing), input_columns=["image", "aug_seed"],
                    output_columns=["image"], num_parallel_workers=num_workers,
                    python_multiprocessing=num_workers > 1)
    data = data.project(["image", "label", "noise"])
    return data.batch(batch_size, drop_remainder=True)


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
