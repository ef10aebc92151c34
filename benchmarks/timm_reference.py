"""timm's TinyNet trained on an ImageFolder dataset with tinynet_ms's recipe keys, in plain PyTorch: the reference
side of ``compare_timm.py``. Runs in an environment with torch, torchvision and timm only (never a tinynet_ms
dependency); prints one JSON object per epoch.

    python benchmarks/timm_reference.py DATA --model tinynet_e --image_size 32 --epochs 6 --batch_size 64 --lr 0.003
    python benchmarks/timm_reference.py DATA ... --world 2   # torch DDP (gloo), 2 processes x batch_size / 2

``--world N`` is timm's train.py under ``torchrun --nproc_per_node N`` as far as a run's numbers go: N processes
seeded ``seed + rank``, a DistributedSampler shuffling with ``seed`` per epoch, gradients averaged by DDP, BatchNorm
per replica (no SyncBN; buffers not broadcast) with the running statistics averaged over the replicas at each
epoch's end (timm's ``--dist-bn reduce``, as tinynet_ms's data-parallel trainer does); rank 0 evaluates.

The LR follows the recipe per optimizer step (linear warmup, then ``decay_rate ** floor(step / steps_per_epoch /
decay_epochs)``: TF's staircase decay, tinynet_ms's schedule), not timm's StepLRScheduler, which changes the LR only
at epoch ends (``floor(epoch / decay_epochs)`` over whole epochs, the warmup epochs at their start value): the
comparison is of the training, with one schedule on both sides.
"""
import argparse
import json
import math
import os
import socket
import sys
import time

import timm
import torch
import torch.distributed as dist
from timm.optim import RMSpropTF
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from torchvision import datasets, transforms as T


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--model", default="tinynet_e")
    ap.add_argument("--image_size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch_size", type=int, default=64, help="global batch (split over --world processes)")
    ap.add_argument("--world", type=int, default=1, help="DDP processes (gloo); 1 = a single process")
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--warmup_epochs", type=float, default=1.0)
    ap.add_argument("--warmup_lr", type=float, default=1e-6)
    ap.add_argument("--decay_epochs", type=float, default=1.0)
    ap.add_argument("--decay_rate", type=float, default=0.9)
    ap.add_argument("--weight_decay", type=float, default=1e-5)
    ap.add_argument("--opt_eps", type=float, default=1e-3, help="RMSProp's epsilon (the paper's 1e-3; timm's "
                                                                 "train.py leaves RMSpropTF's 1e-10 unless --opt-eps)")
    ap.add_argument("--label_smoothing", type=float, default=0.1)
    ap.add_argument("--drop_rate", type=float, default=0.2)
    ap.add_argument("--min_crop_scale", type=float, default=0.5)
    ap.add_argument("--hflip_prob", type=float, default=0.5)
    # The eval preprocessing comes from tinynet_ms's model record (compare_timm.py passes it): no defaults here.
    ap.add_argument("--crop_pct", type=float, required=True)
    ap.add_argument("--mean", type=float, nargs=3, required=True)
    ap.add_argument("--std", type=float, nargs=3, required=True)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2, help="torch threads in all (split over --world processes)")
    ap.add_argument("--workers", type=int, default=1, help="data-loader workers per process")
    a = ap.parse_args()
    if a.world < 1 or a.batch_size % a.world:
        ap.error(f"--batch_size {a.batch_size} must split evenly over --world {a.world}")
    return a


def step_lr(a, step, steps_per_epoch):
    t = step / steps_per_epoch
    if t < a.warmup_epochs:
        return a.warmup_lr + t * (a.lr - a.warmup_lr) / a.warmup_epochs
    return a.lr * a.decay_rate ** math.floor(t / a.decay_epochs)


def train(rank, a, port):
    distributed = a.world > 1
    if distributed:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=a.world)
    torch.manual_seed(a.seed + rank)  # timm's random_seed(seed, rank); DDP broadcasts rank 0's initial weights
    torch.set_num_threads(max(1, a.threads // a.world))
    size, batch = a.image_size, a.batch_size // a.world
    train_tf = T.Compose([T.RandomResizedCrop(size, scale=(a.min_crop_scale, 1.0),
                                              interpolation=T.InterpolationMode.BICUBIC),
                          T.RandomHorizontalFlip(a.hflip_prob), T.ToTensor(), T.Normalize(a.mean, a.std)])
    eval_tf = T.Compose([T.Resize(math.floor(size / a.crop_pct), interpolation=T.InterpolationMode.BICUBIC),
                         T.CenterCrop(size), T.ToTensor(), T.Normalize(a.mean, a.std)])
    train_set = datasets.ImageFolder(f"{a.data}/train", train_tf)
    sampler = DistributedSampler(train_set, a.world, rank, shuffle=True, seed=a.seed) if distributed else None
    train_loader = DataLoader(train_set, batch, shuffle=sampler is None, sampler=sampler, num_workers=a.workers,
                              drop_last=True, persistent_workers=a.workers > 0)
    classes = len(train_set.classes)
    model = timm.create_model(a.model, num_classes=classes, drop_rate=a.drop_rate)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = RMSpropTF([{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                    lr=a.lr, alpha=0.9, eps=a.opt_eps, momentum=0.9)
    net = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False) if distributed else model
    steps = len(train_loader)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=a.label_smoothing)
    step = 0
    for epoch in range(a.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        net.train()
        start, total = time.time(), torch.zeros(1, dtype=torch.float64)
        for x, y in train_loader:
            for group in opt.param_groups:
                group["lr"] = step_lr(a, step, steps)
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            total += loss.item()
            step += 1
        seconds = time.time() - start
        if distributed:
            dist.all_reduce(total)
            total /= a.world
            for buf in model.buffers():  # timm's distribute_bn(reduce=True): the replicas' BN statistics averaged
                if buf.is_floating_point():
                    dist.all_reduce(buf)
                    buf /= a.world
        if rank == 0:
            top1, top5 = evaluate(model, f"{a.data}/val", eval_tf, classes, a.workers)
            print(json.dumps({"epoch": epoch + 1, "train_loss": total.item() / steps, "val_top1": top1,
                              "val_top5": top5, "epoch_seconds": seconds}), flush=True)
    if distributed:
        # Leave without tearing down: torch 2.13's gloo process group can deadlock in its destructor (it joins its
        # worker thread holding the GIL while that thread needs the GIL to free a finished allreduce's tensors), and
        # the rank would hang forever. Everything it reports is flushed by now.
        dist.barrier()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def evaluate(model, folder, tf, classes, workers):
    model.eval()
    top1 = top5 = count = 0
    with torch.no_grad():
        for x, y in DataLoader(datasets.ImageFolder(folder, tf), 256, num_workers=workers):
            best = model(x).topk(min(5, classes), 1).indices
            top1 += (best[:, 0] == y).sum().item()
            top5 += (best == y[:, None]).any(1).sum().item()
            count += len(y)
    return top1 / count, top5 / count


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    a = parse_args()
    if a.world == 1:
        train(0, a, 0)
    else:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, a.threads // a.world)))
        torch.multiprocessing.spawn(train, (a, free_port()), nprocs=a.world, join=True)


if __name__ == "__main__":
    main()
