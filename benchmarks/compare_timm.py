"""Training parity with timm: the same data and recipe trained by tinynet_ms (train.py, or msrun data parallel
through scripts/run_distribute_train.sh) and by timm (benchmarks/timm_reference.py), one after the other, then the
per-epoch train loss and val top-1 of both as a table, JSON and a plot.

    python benchmarks/compare_timm.py --dataset fashion-mnist --epochs 6 --device_num 2 --out out/parity
    python benchmarks/compare_timm.py --dataset demo --epochs 10 --seeds 42,1,2   # mean +- std over seeds
    python benchmarks/compare_timm.py --data DATA --num_classes 10 ...   # any ImageFolder dataset

The timm side needs a Python with torch, torchvision and timm: ``--timm_python`` (or $TIMM_PYTHON; e.g. the venv that
``../shared/tools/timm_reference_env.sh`` builds), else this interpreter if timm imports. Both sides use the recipe
of the parity issue: TinyNet-E from scratch, RMSProp-TF (0.9, 0.9, 1e-3), linear warmup then step decay, weight
decay on conv/dense weights, label smoothing, dropout, RandomResizedCrop bicubic + flip, timm's eval transform; no
drop-path, EMA, RandAugment or random erasing. Runs are sequential: never time two frameworks on shared cores.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.datasets import fashion_mnist_folder  # noqa: E402
from tinynet_ms.models import preprocessing_of  # noqa: E402

# Recipe keys passed to both sides under the same names (tinynet_ms config key == timm_reference.py flag).
RECIPE = {"lr": 0.003, "warmup_epochs": 1.0, "warmup_lr": 1e-6, "decay_epochs": 1.0, "decay_rate": 0.9,
          "weight_decay": 1e-5, "label_smoothing": 0.1, "drop_rate": 0.2, "min_crop_scale": 0.5, "hflip_prob": 0.5}
# Switched off on our side because the reference loop has no such feature.
OURS_ONLY_OFF = {"drop_path_rate": 0, "ema_decay": 0, "auto_augment": "none", "re_prob": 0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="ImageFolder dataset (DATA/train/<class>/*, DATA/val/<class>/*)")
    src.add_argument("--dataset", choices=("fashion-mnist", "demo"),
                     help="build one: Fashion-MNIST from Debian's dataset-fashion-mnist package, or the demo set")
    ap.add_argument("--train_size", type=int, default=20000, help="fashion-mnist: first N training images")
    ap.add_argument("--val_size", type=int, default=10000, help="fashion-mnist: first N test images")
    ap.add_argument("--model", default="tinynet_e")
    ap.add_argument("--num_classes", type=int, default=10)
    ap.add_argument("--image_size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch_size", type=int, default=64, help="global batch (split over --device_num workers)")
    ap.add_argument("--device_num", type=int, default=1, help="ours: msrun workers (1 = one train.py process)")
    ap.add_argument("--seeds", default="42", help="comma-separated; several seeds report mean +- std per epoch")
    for key, value in RECIPE.items():
        ap.add_argument(f"--{key}", type=float, default=value)
    ap.add_argument("--timm_python", default=os.environ.get("TIMM_PYTHON", ""))
    ap.add_argument("--reuse", action="store_true", help="keep the finished runs already in --out")
    ap.add_argument("--out", default="output/compare_timm")
    return ap.parse_args(argv)


def _timm_python(requested: str) -> str:
    candidates = [requested] if requested else [sys.executable]
    for py in candidates:
        if subprocess.run([py, "-c", "import timm, torchvision"], capture_output=True).returncode == 0:
            return py
    raise SystemExit(f"error: no Python with timm + torchvision ({candidates[0]}); pass --timm_python or set "
                     f"TIMM_PYTHON (e.g. the venv from ../shared/tools/timm_reference_env.sh)")


def prepare_data(a: argparse.Namespace, out: Path) -> Path:
    if a.data:
        return Path(a.data)
    data = out / f"data-{a.dataset}"
    if not (data / "val").is_dir():
        if a.dataset == "fashion-mnist":
            fashion_mnist_folder(data, a.train_size, a.val_size)
        else:
            from tinynet_ms.data.demo import make_demo_dataset
            make_demo_dataset(data, num_classes=a.num_classes)
    return data


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _finished(path: Path, epochs: int) -> list[dict] | None:
    records = _read_jsonl(path) if path.is_file() else []
    return records if len(records) == epochs else None


def run_ours(a: argparse.Namespace, data: Path, out: Path, seed: int) -> list[dict]:
    run_dir = out / "ours"
    if a.reuse and (done := _finished(run_dir / "metrics.jsonl", a.epochs)):
        return done
    shutil.rmtree(run_dir, ignore_errors=True)
    overrides = {"model": a.model, "num_classes": a.num_classes, "image_size": a.image_size, "epochs": a.epochs,
                 "batch_size": a.batch_size // a.device_num, "seed": seed, "device_target": "CPU",
                 "output_dir": run_dir, "log_interval": 50, **{k: getattr(a, k) for k in RECIPE}, **OURS_ONLY_OFF}
    flags = [s for k, v in overrides.items() for s in (f"--{k}", str(v))]
    config = ROOT / "configs" / "demo.yaml"
    if a.device_num > 1:
        cmd = ["bash", str(ROOT / "scripts" / "run_distribute_train.sh"), str(data), str(config), str(a.device_num)]
    else:
        cmd = [sys.executable, str(ROOT / "train.py"), "--config_path", str(config), "--data_path", str(data)]
    subprocess.run(cmd + flags, cwd=ROOT, check=True)
    return _read_jsonl(run_dir / "metrics.jsonl")


def run_timm(a: argparse.Namespace, data: Path, out: Path, seed: int) -> list[dict]:
    if a.reuse and (done := _finished(out / "timm.jsonl", a.epochs)):
        return done
    flags = [s for k in ("model", "image_size", "epochs", "batch_size", *RECIPE) for s in (f"--{k}", str(getattr(a, k)))]
    pre = preprocessing_of(a.model)  # the record's, as our side uses
    flags += ["--seed", str(seed), "--crop_pct", str(pre.crop_pct), "--mean", *map(str, pre.mean),
              "--std", *map(str, pre.std)]
    proc = subprocess.run([_timm_python(a.timm_python), str(ROOT / "benchmarks" / "timm_reference.py"), str(data)]
                          + flags, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    (out / "timm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def compare(ours: list[list[dict]], timm: list[list[dict]]) -> list[dict]:
    """Per epoch: mean and std over the seeds' runs of each side, and the relative difference of the means."""
    rows = []
    for epoch in range(min(len(runs) for runs in ours + timm)):
        row = {"epoch": epoch + 1}
        for side, runs in (("ours", ours), ("timm", timm)):
            for key, name in (("train_loss", "loss"), ("val_top1", "top1")):
                values = np.array([run[epoch].get(key, np.nan) for run in runs], np.float64)
                row[f"{name}_{side}"], row[f"{name}_{side}_std"] = float(values.mean()), float(values.std())
        row["loss_rel_diff"] = row["loss_ours"] / row["loss_timm"] - 1.0
        rows.append(row)
    return rows


def markdown(rows: list[dict], title: str) -> str:
    def cell(r: dict, key: str) -> str:
        return f"{r[key]:.4f}" + (f" +- {r[key + '_std']:.4f}" if r.get(key + "_std") else "")

    lines = [title, "", "| epoch | train loss, ours | train loss, timm | diff | val top-1, ours | val top-1, timm |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['epoch']} | {cell(r, 'loss_ours')} | {cell(r, 'loss_timm')} | {r['loss_rel_diff']:+.1%} | "
                     f"{cell(r, 'top1_ours')} | {cell(r, 'top1_timm')} |")
    return "\n".join(lines)


def plot(rows: list[dict], png: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for side, style in (("ours", "-o"), ("timm", "--s")):
        label = "tinynet_ms" if side == "ours" else "timm"
        for ax, key in ((ax1, "loss"), (ax2, "top1")):
            ax.errorbar(epochs, [r[f"{key}_{side}"] for r in rows], [r[f"{key}_{side}_std"] for r in rows],
                        fmt=style, capsize=3, label=label)
    ax1.set(xlabel="epoch", ylabel="train loss")
    ax2.set(xlabel="epoch", ylabel="val top-1")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    seeds = [int(v) for v in a.seeds.split(",")]
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = prepare_data(a, out)
    ours, timm = [], []
    for seed in seeds:  # one side after the other: never two frameworks on the same cores at once
        run_out = out / f"seed_{seed}"
        run_out.mkdir(exist_ok=True)
        ours.append(run_ours(a, data, run_out, seed))
        timm.append(run_timm(a, data, run_out, seed))
    rows = compare(ours, timm)
    where = f"ours {a.device_num} worker(s) x {a.batch_size // a.device_num}, timm 1 process x {a.batch_size}"
    title = (f"{a.model}@{a.image_size} on {a.data or a.dataset}, {a.epochs} epochs, "
             f"seed{'s' if len(seeds) > 1 else ''} {a.seeds} ({where})")
    (out / "compare.json").write_text(json.dumps({"title": title, "rows": rows}, indent=1))
    plot(rows, out / "compare.png", title)
    report = markdown(rows, title)
    (out / "compare.md").write_text(report + "\n")
    print(report)
    last = rows[-1]
    print(f"final epoch: train loss {last['loss_rel_diff']:+.1%} vs timm, val top-1 "
          f"{(last['top1_ours'] - last['top1_timm']) * 100:+.2f} points; plot {out / 'compare.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
