"""timm's training loader on this machine, the reference side of bench_pipeline.py (``--timm_python``). Runs in an
environment with torch and timm only (``bash ../shared/tools/timm_reference_env.sh``), never a tinynet_ms
dependency; prints one JSON object.

    python benchmarks/timm_pipeline.py --data DATA/train --size 106 --workers 2 --batches 30

What a timm user runs (timm's train.py): ``timm.data.create_dataset`` (an ImageFolder-style ``ImageDataset``) and
``timm.data.create_loader(is_training=True, ...)`` with the paper's augmentation: RandomResizedCrop (bicubic,
scale 0.08-1, ratio 3/4-4/3), flip 0.5, RandAugment ``rand-m9-mstd0.5``, random erasing 0.2 (mode 'pixel'),
ImageNet mean/std; batch 32, ``--workers`` worker processes, no CUDA prefetcher (everything on the CPU, as ours).
The caller pins this process to its cores; the workers inherit that.
"""
import argparse
import json
import math
import time

import torch
from timm.data import create_dataset, create_loader


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="an ImageFolder split (DATA/train)")
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--workers", type=int, required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--batches", type=int, default=30, help="timed batches, after --warmup")
    ap.add_argument("--warmup", type=int, default=3, help="batches before the timing (worker start-up)")
    args = ap.parse_args()
    dataset = create_dataset("", root=args.data, is_training=True)
    # one long epoch, as on ImageNet: the file list repeated (a worker restart per short epoch is not a user's cost)
    needed = (args.warmup + args.batches + 4 * args.workers + 2) * args.batch
    dataset.reader.samples = dataset.reader.samples * math.ceil(needed / len(dataset.reader.samples))
    loader = create_loader(dataset, input_size=(3, args.size, args.size), batch_size=args.batch, is_training=True,
                           use_prefetcher=False, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), hflip=0.5,
                           auto_augment="rand-m9-mstd0.5", re_prob=0.2, re_mode="pixel", interpolation="bicubic",
                           num_workers=args.workers)
    batches = iter(loader)
    for _ in range(args.warmup):
        next(batches)
    t0 = time.perf_counter()
    for _ in range(args.batches):
        images, _ = next(batches)
    seconds = time.perf_counter() - t0
    assert images.shape == (args.batch, 3, args.size, args.size) and images.dtype == torch.float32
    print(json.dumps({"img_per_sec": args.batches * args.batch / seconds, "workers": args.workers,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
