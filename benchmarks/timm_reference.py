"""timm's TinyNet trained on an ImageFolder dataset with tinynet_ms's recipe keys, in plain PyTorch: the reference
side of ``compare_timm.py``. Runs in an environment with torch, torchvision and timm only (never a tinynet_ms
dependency); prints one JSON object per epoch.

    python benchmarks/timm_reference.py DATA --model tinynet_e --image_size 32 --epochs 6 --batch_size 64 --lr 0.003
"""
import argparse
import json
import math
import time

import timm
import torch
from timm.optim import RMSpropTF
from torch.utils.data import DataLoader
from torchvision import datasets, transforms as T



def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--model", default="tinynet_e")
    ap.add_argument("--image_size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--warmup_epochs", type=float, default=1.0)
    ap.add_argument("--warmup_lr", type=float, default=1e-6)
    ap.add_argument("--decay_epochs", type=float, default=1.0)
    ap.add_argument("--decay_rate", type=float, default=0.9)
    ap.add_argument("--weight_decay", type=float, default=1e-5)
    ap.add_argument("--label_smoothing", type=float, default=0.1)
    ap.add_argument("--drop_rate", type=float, default=0.2)
    ap.add_argument("--min_crop_scale", type=float, default=0.5)
    ap.add_argument("--hflip_prob", type=float, default=0.5)
    # The eval preprocessing comes from tinynet_ms's model record (compare_timm.py passes it): no defaults here.
    ap.add_argument("--crop_pct", type=float, required=True)
    ap.add_argument("--mean", type=float, nargs=3, required=True)
    ap.add_argument("--std", type=float, nargs=3, required=True)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    return ap.parse_args()


def main():
    a = parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    size = a.image_size
    train_tf = T.Compose([T.RandomResizedCrop(size, scale=(a.min_crop_scale, 1.0),
                                              interpolation=T.InterpolationMode.BICUBIC),
                          T.RandomHorizontalFlip(a.hflip_prob), T.ToTensor(), T.Normalize(a.mean, a.std)])
    eval_tf = T.Compose([T.Resize(math.floor(size / a.crop_pct), interpolation=T.InterpolationMode.BICUBIC),
                         T.CenterCrop(size), T.ToTensor(), T.Normalize(a.mean, a.std)])
    train = datasets.ImageFolder(f"{a.data}/train", train_tf)
    val = datasets.ImageFolder(f"{a.data}/val", eval_tf)
    train_loader = DataLoader(train, a.batch_size, shuffle=True, num_workers=a.workers, drop_last=True,
                              persistent_workers=a.workers > 0)
    val_loader = DataLoader(val, 256, num_workers=a.workers)
    model = timm.create_model(a.model, num_classes=len(train.classes), drop_rate=a.drop_rate)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = RMSpropTF([{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                    lr=a.lr, alpha=0.9, eps=1e-3, momentum=0.9)
    steps = len(train_loader)

    def lr_at(step):
        t = step / steps
        if t < a.warmup_epochs:
            return a.warmup_lr + t * (a.lr - a.warmup_lr) / a.warmup_epochs
        return a.lr * a.decay_rate ** math.floor(t / a.decay_epochs)

    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=a.label_smoothing)
    step = 0
    for epoch in range(a.epochs):
        model.train()
        start, total = time.time(), 0.0
        for x, y in train_loader:
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            total += loss.item()
            step += 1
        seconds = time.time() - start
        model.eval()
        top1 = top5 = count = 0
        with torch.no_grad():
            for x, y in val_loader:
                best = model(x).topk(min(5, len(train.classes)), 1).indices
                top1 += (best[:, 0] == y).sum().item()
                top5 += (best == y[:, None]).any(1).sum().item()
                count += len(y)
        print(json.dumps({"epoch": epoch + 1, "train_loss": total / steps, "val_top1": top1 / count,
                          "val_top5": top5 / count, "epoch_seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
