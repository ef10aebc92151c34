"""The training input pipeline against timm's loader, per core, on ImageNet-like JPEGs with the paper's augmentation.

    python benchmarks/bench_pipeline.py --timm_python PY [--models tinynet_e,tinynet_a] [--cores 1,2] [--rounds 5]
                                        [--batches 30] [--images 320] [--work DIR] [--json out.json]

Each measurement is a fresh process pinned to k cores (``os.sched_setaffinity``, inherited by every worker it
starts) running k workers: ours is ``create_train_dataset(num_workers=k)``, timm's is its own loader
(``benchmarks/timm_pipeline.py`` under ``--timm_python``). Both at the variant's resolution with RandomResizedCrop
(bicubic, 0.08-1, 3/4-4/3), flip 0.5, RandAugment rand-m9-mstd0.5, random erasing 0.2 and normalisation, batch 32,
float32 NCHW out; start-up and the first 3 batches are not timed. The sides alternate (ours, timm, ours, ...) for
--rounds rounds; the table holds each side's median img/s, per core, and ours over timm's.

The JPEGs (made once into --work, default ~/.cache/tinynet_ms/bench_pipeline): --images files of ImageNet's usual
sizes (500x375 and 375x500 most, 500x333, 640x480, 800x600, 1024x768, ...), smooth multi-scale noise under shapes
and sensor-like grain, quality 85-90: decoding and resizing cost what they cost on photos (~3 bits per pixel).
Last, a calculation (labelled as such, with its source): the host cores one Ascend 910 would need to be fed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.common import table, variant_list  # noqa: E402

# (width, height) with weights: ImageNet's train set is mostly 500 px on the long side, a tail of larger photos
SIZES = ((500, 375, 6), (375, 500, 3), (500, 333, 2), (333, 500, 1), (640, 480, 2), (800, 600, 1), (1024, 768, 2),
         (768, 1024, 1))
DATA_VERSION = 1  # bump when the generator changes: the cached files are made again
PIPELINE_KEYS = ["model", "size", "cores", "workers", "ours_img_per_sec", "timm_img_per_sec", "ours_per_core",
                 "timm_per_core", "ours_vs_timm", "rounds"]

# A published Ascend 910 training rate (per device) for the calculation: EfficientNet-B0, batch 128 per device.
ASCEND_RATE = {"model": "EfficientNet-B0 @224", "ms_per_step": 168.78, "batch": 128,
               "source": "MindCV configs/efficientnet/README.md: efficientnet_b0, Ascend 910* x8, graph mode, "
                         "batch 128, 168.78 ms/step"}


def natural_image(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """Photo-like content: 1/f-ish colour noise over eight octaves, a few flat shapes with soft edges, grain."""
    acc = np.zeros((height, width, 3), np.float32)
    for octave in range(8):
        gw, gh = max(2, width >> (7 - octave)), max(2, height >> (7 - octave))
        grid = rng.standard_normal((gh, gw, 3)).astype(np.float32)
        grid = grid @ (np.eye(3, dtype=np.float32) + 0.3 * rng.standard_normal((3, 3)).astype(np.float32))
        up = np.stack([np.asarray(Image.fromarray(grid[..., c], "F").resize((width, height), Image.BICUBIC))
                       for c in range(3)], -1)
        acc += 2.0 ** (-0.45 * octave) * up
    acc = (acc - acc.mean()) / (acc.std() + 1e-6) * 45 + rng.uniform(80, 170, 3).astype(np.float32)
    img = Image.fromarray(np.clip(acc, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 9))):
        x, y, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.05, 0.3) * min(width, height)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse([x - r, y - r * rng.uniform(0.5, 1.5), x + r, y + r], fill=colour)
        else:
            draw.polygon([(x + r * math.cos(a), y + r * math.sin(a)) for a in np.sort(rng.uniform(0, 2 * math.pi, 5))],
                         fill=colour)
    grain = rng.normal(0, 10, (height, width, 3)).astype(np.float32)
    return Image.fromarray(np.clip(np.asarray(img.filter(ImageFilter.GaussianBlur(0.6)), np.float32) + grain, 0,
                                   255).astype(np.uint8))


def imagenet_like_jpegs(work: Path, count: int, classes: int = 8, seed: int = 0) -> Path:
    """``work/jpegs-<count>/train/<class>/*.jpg`` (made once; a manifest says which generator made them)."""
    root = work / f"jpegs-{count}"
    manifest = root / "manifest.json"
    spec = {"version": DATA_VERSION, "count": count, "classes": classes, "seed": seed}
    if manifest.is_file() and json.loads(manifest.read_text()) == spec:
        return root / "train"
    rng = np.random.default_rng(seed)
    sizes = [(w, h) for w, h, weight in SIZES for _ in range(weight)]
    for i in range(count):
        w, h = sizes[rng.integers(len(sizes))]
        folder = root / "train" / f"class_{i % classes:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        natural_image(w, h, rng).save(folder / f"{i:05d}.jpg", quality=int(rng.integers(85, 91)))
    manifest.write_text(json.dumps(spec))
    return root / "train"


def _pinned(cores: int):
    cpus = sorted(os.sched_getaffinity(0))[:cores]
    return lambda: os.sched_setaffinity(0, cpus)


def _child(cmd: list[str], cores: int) -> dict:
    run = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=_pinned(cores), cwd=ROOT)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed: {run.stderr[-1500:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def time_ours(data: Path, size: int, workers: int, batches: int, warmup: int = 3, batch: int = 32) -> dict:
    """In this process (the caller pins it): our training pipeline's img/s, as train.py builds it."""
    from tinynet_ms.data import create_train_dataset, scan_split

    samples = scan_split(data).samples
    needed = (warmup + batches + 4 * workers + 2) * batch
    samples = samples * math.ceil(needed / len(samples))  # one long epoch, as on ImageNet
    pipeline = create_train_dataset(samples, size, batch, epoch=0, seed=0, noise_size=0,
                                    auto_augment="rand-m9-mstd0.5", re_prob=0.2, hflip_prob=0.5, min_crop_scale=0.08,
                                    num_workers=workers)
    it = pipeline.create_tuple_iterator(num_epochs=1, output_numpy=True)
    for _ in range(warmup):
        next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        images = next(it)[0]
    seconds = time.perf_counter() - t0
    assert images.shape == (batch, 3, size, size) and images.dtype == np.float32
    return {"img_per_sec": batches * batch / seconds, "workers": workers}


def measure(timm_python: str, models: tuple[str, ...] = ("tinynet_e", "tinynet_a"), cores: tuple[int, ...] = (),
            rounds: int = 5, batches: int = 30, images: int = 320, work: str | os.PathLike | None = None,
            log=None) -> list[dict]:
    """One row per (model, cores): each side's median img/s over ``rounds`` alternating runs, per core, and ours over
    timm's (``PIPELINE_KEYS``). ``cores`` defaults to 1, 2 and all of this process's; ``timm_python`` empty: ours
    only (timm's columns None)."""
    from tinynet_ms.models.variants import VARIANTS

    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    available = len(os.sched_getaffinity(0))
    cores = tuple(cores) or tuple(sorted({1, min(2, available), available}))
    work = Path(work) if work else Path.home() / ".cache" / "tinynet_ms" / "bench_pipeline"
    data = imagenet_like_jpegs(work, images)
    cases = [(m, VARIANTS[m].image_size, k) for m in models for k in cores]
    samples: dict[tuple, dict[str, list[float]]] = {c: {"ours": [], "timm": []} for c in cases}
    for r in range(rounds):
        for case in cases:
            model, size, k = case
            common = ["--size", str(size), "--workers", str(k), "--batches", str(batches)]
            sides = [("ours", [sys.executable, str(Path(__file__).resolve()), "--time_ours", "--data", str(data),
                               *common])]
            if timm_python:
                sides.append(("timm", [timm_python, str(Path(__file__).with_name("timm_pipeline.py")), "--data",
                                       str(data), *common]))
            for side, cmd in sides:
                rate = _child(cmd, k)["img_per_sec"]
                samples[case][side].append(rate)
                log(f"  round {r + 1}/{rounds} {model}@{size} {k} core(s) {side}: {rate:.1f} img/s")
    rows = []
    for (model, size, k), got in samples.items():
        ours = float(np.median(got["ours"]))
        timm = float(np.median(got["timm"])) if got["timm"] else None
        rows.append({"model": model, "size": size, "cores": k, "workers": k, "ours_img_per_sec": ours,
                     "timm_img_per_sec": timm, "ours_per_core": ours / k, "timm_per_core": timm / k if timm else None,
                     "ours_vs_timm": f"{ours / timm:.2f}x" if timm else "-", "rounds": rounds})
    return rows


def ascend_rates(models: tuple[str, ...]) -> dict[str, float]:
    """Expected per-device training img/s of each model on an Ascend 910: the published EfficientNet-B0 rate scaled
    by MACs (B0's over the model's at its own resolution). An estimate: small networks fill a 910 less well, so
    this is the rate to feed at most."""
    from tinynet_ms.design import b0_macs
    from tinynet_ms.profile import profile_model

    b0 = ASCEND_RATE["batch"] / (ASCEND_RATE["ms_per_step"] / 1000)
    return {m: b0 * b0_macs() / profile_model(m).macs for m in models}


def cores_per_device(rows: list[dict]) -> list[dict]:
    """The calculation: host cores per 910 = its expected rate / our measured img/s per core (best per-core row of
    each model; timm's for comparison)."""
    models = tuple(dict.fromkeys(r["model"] for r in rows))
    rates = ascend_rates(models)
    out = []
    for m in models:
        mine = [r for r in rows if r["model"] == m]
        ours = max(r["ours_per_core"] for r in mine)
        timm = [r["timm_per_core"] for r in mine if r["timm_per_core"]]
        out.append({"model": m, "size": mine[0]["size"], "ascend_img_per_sec": rates[m], "ours_per_core": ours,
                    "cores_ours": rates[m] / ours, "timm_per_core": max(timm) if timm else None,
                    "cores_timm": rates[m] / max(timm) if timm else None})
    return out


def report(rows: list[dict]) -> str:
    """The pipeline table and the cores-per-device calculation, as markdown."""
    def fmt(rs: list[dict], keys: list[str]) -> list[dict]:
        return [{k: ("-" if r[k] is None else r[k]) for k in keys} for r in rs]

    calc = cores_per_device(rows)
    b0 = ASCEND_RATE["batch"] / (ASCEND_RATE["ms_per_step"] / 1000)
    lines = [table(fmt(rows, PIPELINE_KEYS), PIPELINE_KEYS,
                   "**Training input pipeline** (img/s, median of the rounds; k cores = the process tree pinned to k "
                   "cores, k workers; ImageNet-like JPEGs, RandomResizedCrop + flip + rand-m9-mstd0.5 + erasing 0.2 "
                   "+ normalise, batch 32)"),
             "",
             f"**Calculation, not a measurement: host cores one Ascend 910 needs.** Expected device rate = "
             f"{ASCEND_RATE['model']}'s published {b0:.0f} img/s ({ASCEND_RATE['source']}) x B0's MACs / the "
             f"model's MACs; cores = that rate / the best measured img/s per core above."]
    calc_keys = ["model", "size", "ascend_img_per_sec", "ours_per_core", "cores_ours", "timm_per_core", "cores_timm"]
    lines.append(table(fmt(calc, calc_keys), calc_keys, ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timm_python", default="",
                        help="a python with torch + timm (../shared/tools/timm_reference_env.sh): timm's loader is "
                             "measured in the same run, alternating with ours (without it: ours only)")
    parser.add_argument("--models", default="tinynet_e,tinynet_a", type=variant_list,
                        help="variants (each at its own resolution)")
    parser.add_argument("--cores", default="", help="core counts, e.g. 1,2 (default: 1, 2 and all)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=30, help="timed batches of 32 per measurement")
    parser.add_argument("--images", type=int, default=320, help="generated JPEGs (the list repeats as needed)")
    parser.add_argument("--work", default="", help="where the JPEGs are made once")
    parser.add_argument("--json", default="", help="also write the rows and the calculation here")
    parser.add_argument("--time_ours", action="store_true", help=argparse.SUPPRESS)  # one child measurement
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.time_ours:
        print(json.dumps(time_ours(Path(args.data), args.size, args.workers, args.batches)))
        return 0
    cores = tuple(int(c) for c in args.cores.split(",") if c)
    rows = measure(args.timm_python, tuple(args.models.split(",")), cores, args.rounds, args.batches, args.images,
                   args.work or None)
    print(report(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"pipeline": rows, "cores_per_device": cores_per_device(rows)},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
