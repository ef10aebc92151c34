"""mindspore.dataset pipelines: training (C++ fused decode+crop, timm augmentations) and timm-exact eval."""
from __future__ import annotations

import io
from collections.abc import Sequence

import mindspore.dataset as ds
import mindspore.dataset.vision as vision
import numpy as np
from PIL import Image

from tinynet_ms.data.augment import RandAugment, random_erasing
from tinynet_ms.data.folder import Sample
from tinynet_ms.data.images import load_eval_image, normalize, open_rgb
from tinynet_ms.models.variants import DEFAULT_PREPROCESSING, Preprocessing


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
        sample = self.samples[index]
        if sample.native:
            data = np.fromfile(sample.path, dtype=np.uint8)
        else:  # formats the C++ decoder lacks (WebP, 16-bit PNG, ...) go through PIL as lossless PNG
            buf = io.BytesIO()
            open_rgb(sample.path).save(buf, format="PNG")
            data = np.frombuffer(buf.getvalue(), dtype=np.uint8)
        rng = sample_rng(self.seed, self.epoch, index)
        aug_seed = rng.integers(0, 2**31 - 1, size=2, dtype=np.int64)
        noise = rng.random(self.noise_size, dtype=np.float32)
        return data, np.array(sample.label, np.int32), aug_seed, noise


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
        image = load_eval_image(sample.path, self.image_size, preprocessing=self.preprocessing)
        return image, np.array(sample.label, np.int32)


def create_eval_dataset(samples: Sequence[Sample], image_size: int, batch_size: int,
                        preprocessing: Preprocessing = DEFAULT_PREPROCESSING, num_workers: int = 4) -> ds.Dataset:
    """Batches (image float32 NCHW, label int32) in file order, the last batch possibly smaller."""
    data = ds.GeneratorDataset(EvalSource(samples, image_size, preprocessing), ["image", "label"], shuffle=False,
                               num_parallel_workers=num_workers, python_multiprocessing=num_workers > 1)
    return data.batch(batch_size, drop_remainder=False)
