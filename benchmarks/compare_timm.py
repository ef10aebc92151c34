"""Training parity with timm: the same data and recipe trained by tinynet_ms (train.py, or msrun data parallel
through scripts/run_distribute_train.sh) and by timm (benchmarks/timm_reference.py, one process or torch DDP), one
run after the other over several seeds, then per epoch each side's mean train loss and val top-1 with 95% intervals
and the interval of their difference, as a table, JSON and a plot.

    python benchmarks/compare_timm.py --dataset digits --epochs 30 --seeds 1,2,3,4,5 --out out/parity
    python benchmarks/compare_timm.py --dataset fashion-mnist --device_num 2 ...   # ours 2 x 16 vs timm DDP 2 x 16
    python benchmarks/compare_timm.py --data DATA --num_classes 10 ...   # any ImageFolder dataset

The timm side needs a Python with torch, torchvision and timm: ``--timm_python`` (or $TIMM_PYTHON; e.g. the venv that
``../shared/tools/timm_reference_env.sh`` builds), else this interpreter if timm imports. Both sides use the recipe
of the parity issues: TinyNet-E from scratch, RMSProp-TF (0.9, 0.9, 1e-3), linear warmup then step decay, weight
decay on conv/dense weights, label smoothing, dropout, RandomResizedCrop bicubic + flip, timm's eval transform; no
drop-path, EMA, RandAugment or random erasing. Runs are sequential (never two trainings on shared cores);
``--lock FILE`` holds an flock on FILE for each run only, so other jobs can interleave between runs.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.datasets import digits_folder, fashion_mnist_folder  # noqa: E402
from tinynet_ms.models import preprocessing_of  # noqa: E402

# Recipe keys passed to both sides under the same names (tinynet_ms config key == timm_reference.py flag).
RECIPE = {"lr": 0.003, "warmup_epochs": 1.0, "warmup_lr": 1e-6, "decay_epochs": 1.0, "decay_rate": 0.9,
          "weight_decay": 1e-5, "opt_eps": 1e-3, "label_smoothing": 0.1, "drop_rate": 0.2, "min_crop_scale": 0.5,
          "hflip_prob": 0.5}
# Switched off on our side because the reference loop has no such feature; the lr is absolute on both sides.
OURS_ONLY = {"drop_path_rate": 0, "ema_decay": 0, "auto_augment": "none", "re_prob": 0, "lr_scaling": "none"}
METRICS = (("train_loss", "loss"), ("val_top1", "top1"))
SUMMARY = {"late_loss": "mean train loss, last {late} epochs", "late_top1": "mean val top-1, last {late} epochs",
           "best_top1": "best val top-1"}  # one number per run
CONFIDENCE = 0.95


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="ImageFolder dataset (DATA/train/<class>/*, DATA/val/<class>/*)")
    src.add_argument("--dataset", choices=("fashion-mnist", "digits", "demo"),
                     help="build one: Fashion-MNIST from Debian's dataset-fashion-mnist package, scikit-learn's "
                          "digits, or the demo set")
    ap.add_argument("--train_size", type=int, default=20000, help="fashion-mnist: first N training images")
    ap.add_argument("--val_size", type=int, default=10000, help="fashion-mnist: first N test images")
    ap.add_argument("--train_per_class", type=int, default=144, help="digits: training images per class (the rest "
                                                                     "validate)")
    ap.add_argument("--model", default="tinynet_e")
    ap.add_argument("--num_classes", type=int, default=10)
    ap.add_argument("--image_size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch_size", type=int, default=64, help="global batch (split over the processes)")
    ap.add_argument("--device_num", type=int, default=1, help="ours: msrun workers (1 = one train.py process)")
    ap.add_argument("--timm_device_num", type=int, default=0,
                    help="timm: DDP processes (default: --device_num, the data-parallel reference)")
    ap.add_argument("--seeds", default="42", help="comma-separated; several seeds give per-epoch 95%% intervals")
    ap.add_argument("--late_epochs", type=int, default=0, help="the late-run summary: mean train loss over the "
                                                               "last N epochs (default: 5, at most --epochs)")
    for key, value in RECIPE.items():
        ap.add_argument(f"--{key}", type=float, default=value)
    ap.add_argument("--timm_python", default=os.environ.get("TIMM_PYTHON", ""))
    ap.add_argument("--lock", default="", help="flock this file around each training run (shared cores)")
    ap.add_argument("--reuse", action="store_true", help="keep the finished runs already in --out")
    ap.add_argument("--out", default="output/compare_timm")
    a = ap.parse_args(argv)
    a.timm_device_num = a.timm_device_num or a.device_num
    a.late_epochs = a.late_epochs or min(5, a.epochs)
    try:
        a.seed_list = [int(v) for v in a.seeds.split(",")]
    except ValueError:
        ap.error(f"--seeds {a.seeds!r}: expected comma-separated integers, e.g. 1,2,3")
    for name in ("device_num", "timm_device_num"):
        if a.batch_size % getattr(a, name):
            ap.error(f"--batch_size {a.batch_size} must split evenly over --{name} {getattr(a, name)}")
    if not 1 <= a.late_epochs <= a.epochs:
        ap.error(f"--late_epochs {a.late_epochs}: expected 1 to --epochs ({a.epochs})")
    return a


def _timm_python(requested: str) -> str:
    candidates = [requested] if requested else [sys.executable]
    for py in candidates:
        if subprocess.run([py, "-c", "import timm, torchvision"], capture_output=True).returncode == 0:
            return py
    raise SystemExit(f"error: no Python with timm + torchvision ({candidates[0]}); pass --timm_python or set "
                     f"TIMM_PYTHON (e.g. the venv from ../shared/tools/timm_reference_env.sh)")


def prepare_data(a: argparse.Namespace, out: Path) -> Path:
    """The dataset folder; a built one is named by its sizes, so another size never reuses it."""
    if a.data:
        return Path(a.data)
    name = {"fashion-mnist": f"fashion-mnist-{a.train_size}-{a.val_size}",
            "digits": f"digits-{a.train_per_class}", "demo": f"demo-{a.num_classes}"}[a.dataset]
    data = out / f"data-{name}"
    if not (data / "val").is_dir():
        if a.dataset == "fashion-mnist":
            fashion_mnist_folder(data, a.train_size, a.val_size)
        elif a.dataset == "digits":
            digits_folder(data, a.num_classes, a.train_per_class)
        else:
            from tinynet_ms.data.demo import make_demo_dataset
            make_demo_dataset(data, num_classes=a.num_classes)
    return data


@contextmanager
def cpu_lock(path: str) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (nothing when empty) for one training run."""
    if not path:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


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
                 "output_dir": run_dir, "log_interval": 50, **{k: getattr(a, k) for k in RECIPE}, **OURS_ONLY}
    flags = [s for k, v in overrides.items() for s in (f"--{k}", str(v))]
    config = ROOT / "configs" / "demo.yaml"
    if a.device_num > 1:
        cmd = ["bash", str(ROOT / "scripts" / "run_distribute_train.sh"), str(data), str(config), str(a.device_num)]
    else:
        cmd = [sys.executable, str(ROOT / "train.py"), "--config_path", str(config), "--data_path", str(data)]
    with cpu_lock(a.lock):
        subprocess.run(cmd + flags, cwd=ROOT, check=True)
    return _read_jsonl(run_dir / "metrics.jsonl")


def run_timm(a: argparse.Namespace, data: Path, out: Path, seed: int) -> list[dict]:
    if a.reuse and (done := _finished(out / "timm.jsonl", a.epochs)):
        return done
    keys = ("model", "image_size", "epochs", "batch_size", *RECIPE)
    flags = [s for k in keys for s in (f"--{k}", str(getattr(a, k)))]
    pre = preprocessing_of(a.model)  # the record's, as our side uses
    flags += ["--seed", str(seed), "--world", str(a.timm_device_num), "--crop_pct", str(pre.crop_pct),
              "--mean", *map(str, pre.mean), "--std", *map(str, pre.std)]
    with cpu_lock(a.lock):
        proc = subprocess.run([_timm_python(a.timm_python), str(ROOT / "benchmarks" / "timm_reference.py"),
                               str(data)] + flags, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    (out / "timm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


# -- statistics ----------------------------------------------------------------------------------------------------
def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student-t critical value for ``df`` degrees of freedom (Welch's may be fractional)."""
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, df))


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean of the runs and the t interval of that mean; one run has no interval (NaN bounds)."""
    x = np.asarray(values, np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = t_quantile(len(x) - 1, confidence) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return mean, mean - half, mean + half


def run_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Where one more run of this side lands (the t prediction interval: half-width t * sd * sqrt(1 + 1/n)): the
    side's seed scatter. Unlike the interval of the mean it does not shrink toward 0 as seeds are added, so another
    side that trains the same keeps its mean inside it more surely the more seeds it has."""
    x = np.asarray(values, np.float64)
    if len(x) < 2:
        return math.nan, math.nan
    half = t_quantile(len(x) - 1, confidence) * float(x.std(ddof=1)) * math.sqrt(1 + 1 / len(x))
    return float(x.mean()) - half, float(x.mean()) + half


def difference_interval(ours: Sequence[float], ref: Sequence[float],
                        confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """mean(ours) - mean(ref) with Welch's interval (unequal variances, Welch-Satterthwaite degrees of freedom): the
    seeds of the two frameworks are independent runs, not pairs (a seed draws other numbers in each)."""
    x, y = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    diff = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return diff, math.nan, math.nan
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(vx + vy)
    if se == 0.0:
        return diff, diff, diff
    df = (vx + vy) ** 2 / (vx ** 2 / (len(x) - 1) + vy ** 2 / (len(y) - 1))
    half = t_quantile(df, confidence) * se
    return diff, diff - half, diff + half


def _stats(row: dict, name: str, ours: Sequence[float], ref: Sequence[float]) -> None:
    for side, values in (("ours", ours), ("timm", ref)):
        row[f"{name}_{side}"], row[f"{name}_{side}_lo"], row[f"{name}_{side}_hi"] = mean_interval(values)
    row[f"{name}_diff"], row[f"{name}_diff_lo"], row[f"{name}_diff_hi"] = difference_interval(ours, ref)
    lo, hi = row[f"{name}_timm_runs_lo"], row[f"{name}_timm_runs_hi"] = run_interval(ref)
    row[f"{name}_inside"] = bool(lo <= row[f"{name}_ours"] <= hi) if not math.isnan(lo) else None
    lo, hi = row[f"{name}_diff_lo"], row[f"{name}_diff_hi"]
    row[f"{name}_differs"] = bool(lo > 0 or hi < 0) if not math.isnan(lo) else None


def compare(ours: list[list[dict]], timm: list[list[dict]]) -> list[dict]:
    """Per epoch, for train loss and val top-1: each side's mean over its seeds with the 95% interval of that mean,
    timm's run interval (its seed scatter) and whether ours' mean is inside it, and the difference of the means with
    its 95% interval (``differs``: the interval excludes 0)."""
    rows = []
    for epoch in range(min(len(runs) for runs in ours + timm)):
        row = {"epoch": epoch + 1}
        for key, name in METRICS:
            _stats(row, name, *([run[epoch].get(key, math.nan) for run in runs] for runs in (ours, timm)))
        rows.append(row)
    return rows


def late_summary(ours: list[list[dict]], timm: list[list[dict]], late: int) -> dict:
    """One number per run, then the same statistics over the runs: the mean train loss and the mean val top-1 of its
    last ``late`` epochs (the issue's late-run measures) and its best val top-1."""
    def per_run(runs: list[list[dict]]) -> dict[str, list[float]]:
        return {"late_loss": [float(np.mean([r["train_loss"] for r in run[-late:]])) for run in runs],
                "late_top1": [float(np.mean([r.get("val_top1", math.nan) for r in run[-late:]])) for run in runs],
                "best_top1": [max(r.get("val_top1", math.nan) for r in run) for run in runs]}

    runs_ours, runs_timm = per_run(ours), per_run(timm)
    summary = {"late_epochs": late, "runs_ours": runs_ours, "runs_timm": runs_timm}
    for name in SUMMARY:
        _stats(summary, name, runs_ours[name], runs_timm[name])
    return summary


def _cell(r: dict, key: str) -> str:
    lo, hi = r[f"{key}_lo"], r[f"{key}_hi"]
    return f"{r[key]:.4f}" + ("" if math.isnan(lo) else f" [{lo:.4f}, {hi:.4f}]")


def _runs(r: dict, name: str) -> str:
    lo, hi = r[f"{name}_timm_runs_lo"], r[f"{name}_timm_runs_hi"]
    return "-" if math.isnan(lo) else f"[{lo:.4f}, {hi:.4f}]" + ("" if r[f"{name}_inside"] else " !")


def _diff(r: dict, name: str) -> str:
    lo, hi = r[f"{name}_diff_lo"], r[f"{name}_diff_hi"]
    mark = " *" if r[f"{name}_differs"] else ""
    return f"{r[name + '_diff']:+.4f}" + ("" if math.isnan(lo) else f" [{lo:+.4f}, {hi:+.4f}]{mark}")


def markdown(rows: list[dict], title: str, summary: dict | None = None) -> str:
    lines = [title, "", "Mean over seeds [95% interval of the mean]; timm's runs = where 95% of timm's runs land (its "
             "seed scatter), ! where ours' mean is outside it; diff = ours - timm [Welch 95% interval], * where it "
             "excludes 0.", "",
             "| epoch | train loss, ours | train loss, timm | timm's runs | diff "
             "| val top-1, ours | val top-1, timm | timm's runs | diff |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['epoch']} | {_cell(r, 'loss_ours')} | {_cell(r, 'loss_timm')} | {_runs(r, 'loss')} | "
                     f"{_diff(r, 'loss')} | {_cell(r, 'top1_ours')} | {_cell(r, 'top1_timm')} | {_runs(r, 'top1')} | "
                     f"{_diff(r, 'top1')} |")
    if summary:
        lines += ["", "| per run | ours | timm | timm's runs | diff |", "|---|---|---|---|---|"]
        for name, label in SUMMARY.items():
            label = label.format(late=summary["late_epochs"])
            lines.append(f"| {label} | {_cell(summary, name + '_ours')} | {_cell(summary, name + '_timm')} | "
                         f"{_runs(summary, name)} | {_diff(summary, name)} |")
    return "\n".join(lines)


def verdict(rows: list[dict]) -> str:
    """Which epochs' differences exclude 0, against how many would by chance alone (each epoch is a 95% test: 1 in 20
    excludes 0 with no difference at all), and where ours' mean leaves timm's run interval, per metric."""
    parts = []
    for _, name in METRICS:
        if rows[0][f"{name}_differs"] is None:
            return "one seed per side: no intervals (pass several --seeds)"
        differs = [r["epoch"] for r in rows if r[f"{name}_differs"]]
        outside = [r["epoch"] for r in rows if r[f"{name}_inside"] is False]
        epochs = "epoch" if len(outside) == 1 else "epochs"
        parts.append(f"{name}: difference excludes 0 at {len(differs)} of {len(rows)} epochs {differs or ''} "
                     f"({(1 - CONFIDENCE) * len(rows):.1f} expected by chance); ours' mean outside timm's runs at "
                     f"{len(outside)} {epochs} {outside or ''}".replace("  ", " ").rstrip())
    return "; ".join(parts)


def plot(rows: list[dict], png: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 4))
    for side, color in (("ours", "C0"), ("timm", "C1")):
        label = "tinynet_ms" if side == "ours" else "timm"
        for ax, key in ((ax1, "loss"), (ax2, "top1")):
            ax.plot(epochs, [r[f"{key}_{side}"] for r in rows], "-o", ms=3, color=color, label=label)
            lo, hi = [r[f"{key}_{side}_lo"] for r in rows], [r[f"{key}_{side}_hi"] for r in rows]
            if not any(math.isnan(v) for v in lo):
                ax.fill_between(epochs, lo, hi, color=color, alpha=0.2)
    for ax, key in ((ax1, "loss"), (ax2, "top1")):  # timm's seed scatter: where ours' mean should stay
        lo, hi = [r[f"{key}_timm_runs_lo"] for r in rows], [r[f"{key}_timm_runs_hi"] for r in rows]
        if not any(math.isnan(v) for v in lo):
            ax.plot(epochs, lo, "--", color="C1", lw=0.8, label="timm's runs (95%)")
            ax.plot(epochs, hi, "--", color="C1", lw=0.8)
    ax3.axhline(0.0, color="k", lw=0.8)
    ax3.plot(epochs, [r["loss_diff"] for r in rows], "-o", ms=3, color="C2", label="ours - timm")
    lo, hi = [r["loss_diff_lo"] for r in rows], [r["loss_diff_hi"] for r in rows]
    if not any(math.isnan(v) for v in lo):
        ax3.fill_between(epochs, lo, hi, color="C2", alpha=0.2)
    ax1.set(xlabel="epoch", ylabel="train loss")
    ax2.set(xlabel="epoch", ylabel="val top-1")
    ax3.set(xlabel="epoch", ylabel="train loss difference (95% interval)")
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = prepare_data(a, out)
    ours, timm = [], []
    for seed in a.seed_list:  # one run after the other: never two trainings on the same cores at once
        run_out = out / f"seed_{seed}"
        run_out.mkdir(exist_ok=True)
        ours.append(run_ours(a, data, run_out, seed))
        timm.append(run_timm(a, data, run_out, seed))
    rows = compare(ours, timm)
    summary = late_summary(ours, timm, a.late_epochs)
    title = (f"{a.model}@{a.image_size} on {a.data or a.dataset}, {a.epochs} epochs, {len(a.seed_list)} seed(s) "
             f"{a.seeds}: ours {a.device_num} x {a.batch_size // a.device_num} "
             f"({'msrun' if a.device_num > 1 else 'train.py'}), timm {a.timm_device_num} x "
             f"{a.batch_size // a.timm_device_num} ({'DDP' if a.timm_device_num > 1 else 'one process'})")
    (out / "compare.json").write_text(json.dumps({"title": title, "seeds": a.seed_list, "rows": rows,
                                                  "late": summary}, indent=1))
    plot(rows, out / "compare.png", title)
    report = markdown(rows, title, summary) + "\n\n" + verdict(rows)
    (out / "compare.md").write_text(report + "\n")
    print(report)
    print(f"plot {out / 'compare.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
