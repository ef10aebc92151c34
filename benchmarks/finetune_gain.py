"""What pretrained weights are worth on a small dataset of other classes: pretrain TinyNet on one real dataset
(Fashion-MNIST, 10 classes), then train on another (scikit-learn's digits, fewer classes, a few images each) from
scratch, fine-tuned from the pretrained weights (a fresh classifier), and as a linear probe (frozen backbone), with
the same recipe (configs/finetune.yaml) and epochs, over several seeds; prints a markdown table.

    python benchmarks/finetune_gain.py --out output/finetune_gain [--seeds 42,1,2] [--epochs 15]

Everything goes through train.py, as a user runs it. Needs Debian's dataset-fashion-mnist package and scikit-learn
(installed with the requirements). Runs are sequential; --reuse keeps finished runs.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import header  # noqa: E402
from benchmarks.datasets import digits_folder, fashion_mnist_folder  # noqa: E402

ARMS = {  # name -> train.py flags on top of the shared ones
    "from scratch": [],
    "fine-tuned": ["--pretrained_checkpoint", "{pretrained}"],
    # the head alone learns from small features: 10x the lr (configs/finetune.yaml says so)
    "linear probe": ["--pretrained_checkpoint", "{pretrained}", "--freeze_backbone", "true", "--lr", "0.02"],
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="output/finetune_gain", help="data, runs and the table go here")
    ap.add_argument("--model", default="tinynet_e")
    ap.add_argument("--image_size", type=int, default=32)
    ap.add_argument("--pretrain_epochs", type=int, default=6, help="Fashion-MNIST epochs")
    ap.add_argument("--pretrain_size", type=int, default=20000, help="Fashion-MNIST training images")
    ap.add_argument("--classes", type=int, default=5, help="digits 0..N-1 are the target classes")
    ap.add_argument("--train_per_class", type=int, default=30, help="target training images per class")
    ap.add_argument("--epochs", type=int, default=15, help="target epochs, every arm")
    ap.add_argument("--seeds", default="42,1,2", help="comma-separated seeds of the target runs")
    ap.add_argument("--reuse", action="store_true", help="keep finished runs in --out")
    return ap.parse_args(argv)


def _train(run_dir: Path, config: str, data: Path, a: argparse.Namespace, *flags: str) -> list[dict]:
    metrics = run_dir / "metrics.jsonl"
    if not (a.reuse and metrics.is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()):
        cmd = [sys.executable, str(ROOT / "train.py"), "--config_path", str(ROOT / "configs" / config),
               "--data_path", str(data), "--model", a.model, "--image_size", str(a.image_size),
               "--device_target", "CPU", "--num_parallel_workers", "2", "--output_dir", str(run_dir),
               "--overwrite", "true", "--resume", "", *flags]
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return [json.loads(line) for line in metrics.read_text().splitlines()]


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    out = Path(a.out).resolve()
    seeds = [int(s) for s in a.seeds.split(",")]
    source, target = out / "fashion-mnist", out / f"digits-{a.classes}x{a.train_per_class}"
    if not (source / "val").is_dir():
        fashion_mnist_folder(source, a.pretrain_size, 2000)
    if not (target / "val").is_dir():
        digits_folder(target, a.classes, a.train_per_class)
    start = time.time()
    # Pretraining: the recipe of benchmarks/compare_timm.py (demo.yaml with an absolute lr 0.003, batch 64).
    pre = _train(out / "pretrain", "demo.yaml", source, a, "--num_classes", "10", "--epochs", str(a.pretrain_epochs),
                 "--batch_size", "64", "--lr", "0.003", "--decay_epochs", "1", "--ema_decay", "0",
                 "--log_interval", "100")
    pretrained = out / "pretrain" / "checkpoints" / "best.ckpt"
    results: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for seed in seeds:
        for arm, extra in ARMS.items():
            flags = [f.format(pretrained=pretrained) for f in extra]
            results[arm].append(_train(out / f"{arm.replace(' ', '_')}_seed{seed}", "finetune.yaml", target, a,
                                       "--num_classes", str(a.classes), "--epochs", str(a.epochs),
                                       "--batch_size", "16", "--seed", str(seed), "--log_interval", "10", *flags))
    n_train = a.classes * a.train_per_class
    n_val = results["from scratch"][0][-1]["val_samples"]
    lines = [f"{header('CPU')} | `python benchmarks/finetune_gain.py --seeds {a.seeds} --epochs {a.epochs}` "
             f"({(time.time() - start) / 60:.0f} min)", "",
             f"{a.model}@{a.image_size}: pretrained on Fashion-MNIST ({a.pretrain_size} images, 10 classes, "
             f"{a.pretrain_epochs} epochs: val top-1 {pre[-1]['val_top1']:.3f}), then trained on digits 0-{a.classes - 1} "
             f"({n_train} training images, {n_val} val) for {a.epochs} epochs with configs/finetune.yaml; val top-1 "
             f"(best epoch), mean ± std over seeds {a.seeds}:", "",
             "| start | val top-1 | per seed | val top-1 after epoch 3 |", "|---|---|---|---|"]
    for arm, runs in results.items():
        best = np.array([max(r["val_top1"] for r in run) for run in runs])
        early = np.array([run[min(2, len(run) - 1)]["val_top1"] for run in runs])
        lines.append(f"| {arm} | {best.mean():.3f} ± {best.std():.3f} | {', '.join(f'{v:.3f}' for v in best)} | "
                     f"{early.mean():.3f} |")
    report = "\n".join(lines)
    (out / "finetune_gain.md").write_text(report + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
