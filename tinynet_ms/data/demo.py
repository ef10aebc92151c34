"""A small procedurally drawn dataset in the ImageNet folder layout, learnable in minutes on a CPU.

    python -m tinynet_ms.data.demo OUT [--num_classes 10] [--train_per_class 100] [--val_per_class 20] [--seed 0]

Class = shape (circle, square, triangle, cross, star) × fill style, drawn at a random position, size and
rotation on a noisy background of random colour. Each class also has its own hue (±15°, random saturation and
brightness): an easy cue that makes the first epochs learnable even at 32 px, while shape and fill must be
seen to separate the rest. JPEG files of varied sizes, deterministic by seed.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tinynet_ms.cli import argument_type, positive_int, run_main

SHAPES = ("circle", "square", "triangle", "cross", "star")
STYLES = ("filled", "outline")


def class_names(num_classes: int) -> list[str]:
    names = [f"{shape}_{style}" for style in STYLES for shape in SHAPES]
    if not 2 <= num_classes <= len(names):
        raise ValueError(f"num_classes must be in [2, {len(names)}], got {num_classes}")
    return names[:num_classes]


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        pts = [(math.cos(angle + k * math.pi / 2 + math.pi / 4), math.sin(angle + k * math.pi / 2 + math.pi / 4))
               for k in range(4)]
    elif shape == "triangle":
        pts = [(math.cos(angle + k * 2 * math.pi / 3), math.sin(angle + k * 2 * math.pi / 3)) for k in range(3)]
    elif shape == "star":
        pts = [((1.0 if k % 2 == 0 else 0.45) * math.cos(angle + k * math.pi / 5),
                (1.0 if k % 2 == 0 else 0.45) * math.sin(angle + k * math.pi / 5)) for k in range(10)]
    else:  # cross: a 12-gon plus sign
        a, b = 1.0, 0.33
        base = [(b, a), (b, b), (a, b), (a, -b), (b, -b), (b, -a), (-b, -a), (-b, -b), (-a, -b), (-a, b), (-b, b),
                (-b, a)]
        ca, sa = math.cos(angle), math.sin(angle)
        pts = [(x * ca - y * sa, x * sa + y * ca) for x, y in base]
    return [(cx + r * x, cy + r * y) for x, y in pts]


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    rgb = Image.new("HSV", (1, 1), (int(h / 360 * 255), int(s * 255), int(v * 255))).convert("RGB")
    return rgb.getpixel((0, 0))


def draw_sample(label: int, names: list[str], rng: np.random.Generator) -> Image.Image:
    shape, style = names[label].split("_")
    w, h = (int(v) for v in rng.integers(56, 97, size=2))
    background = rng.integers(0, 256, size=3) // 2 + 32  # muted, so the shape stands out
    noise = rng.normal(0, 18, size=(h, w, 3))
    img = Image.fromarray(np.clip(background + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    r = float(rng.uniform(0.22, 0.4) * min(w, h))
    cx, cy = float(rng.uniform(r, w - r)), float(rng.uniform(r, h - r))
    hue = (label * 360 / len(names) + rng.uniform(-15, 15)) % 360
    colour = _hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.55, 1.0))
    width = max(2, int(r * 0.22))
    if shape == "circle":
        box = (cx - r, cy - r, cx + r, cy + r)
        draw.ellipse(box, fill=colour) if style == "filled" else draw.ellipse(box, outline=colour, width=width)
    else:
        pts = _polygon(shape, cx, cy, r, float(rng.uniform(0, 2 * math.pi)))
        if style == "filled":
            draw.polygon(pts, fill=colour)
        else:
            draw.line(pts + [pts[0]], fill=colour, width=width, joint="curve")
    return img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 0.8))))


def make_demo_dataset(root: str | Path, num_classes: int = 10, train_per_class: int = 100, val_per_class: int = 20,
                      seed: int = 0) -> Path:
    """Write ``root/train/<class>/*.jpg`` and ``root/val/<class>/*.jpg``; returns ``root``."""
    root = Path(root)
    names = class_names(num_classes)
    for split, per_class, offset in (("train", train_per_class, 0), ("val", val_per_class, 1)):
        for label, name in enumerate(names):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                rng = np.random.default_rng([seed, offset, label, i])
                draw_sample(label, names, rng).save(folder / f"{name}_{i:04d}.jpg", quality=90)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinynet_ms.data.demo", description=__doc__.splitlines()[0])
    parser.add_argument("root", help="output folder: ROOT/train/<class>/*.jpg and ROOT/val/<class>/*.jpg")
    parser.add_argument("--num_classes", type=argument_type(_class_count), default=10,
                        help=f"classes, 2..{len(SHAPES) * len(STYLES)} (shape x fill style; default 10)")
    parser.add_argument("--train_per_class", type=argument_type(positive_int), default=100,
                        help="training images per class (default 100)")
    parser.add_argument("--val_per_class", type=argument_type(positive_int), default=20,
                        help="validation images per class (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed draws the same images (default 0)")
    args = parser.parse_args(argv)

    def run() -> None:
        root = make_demo_dataset(args.root, args.num_classes, args.train_per_class, args.val_per_class, args.seed)
        print(f"demo dataset: {root} ({args.num_classes} classes, {args.train_per_class}/{args.val_per_class} "
              f"train/val images per class)")

    return run_main(run)  # e.g. an unwritable ROOT: one error line, exit 1


def _class_count(text: str) -> int:
    """--num_classes as a count ``class_names`` can name (a usage error otherwise)."""
    class_names(int(text))
    return int(text)


if __name__ == "__main__":
    raise SystemExit(main())
