import os

os.environ.setdefault("GLOG_v", "3")  # MindSpore's C++ warnings drown pytest output

from pathlib import Path  # noqa: E402

import sys  # noqa: E402

import mindspore as ms  # noqa: E402
import pytest  # noqa: E402

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
# The scripts call `python` and `msrun`: make them this interpreter's, whether or not its venv is activated.
SCRIPT_ENV = {**os.environ, "GLOG_v": "3", "PYTHONUNBUFFERED": "1",
              "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}

ms.set_device("CPU")


@pytest.fixture(params=[ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
def mode(request):
    previous = ms.get_context("mode")
    ms.set_context(mode=request.param)
    yield request.param
    ms.set_context(mode=previous)


def write_odd_images(folder: Path) -> dict[str, Path]:
    """Images a real dataset contains: gray, CMYK, RGBA PNG, palette GIF, 16-bit PNG, WebP, odd sizes,
    plus broken ones (truncated JPEG, corrupt JPEG, empty file, text file with an image name)."""
    import io

    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    rgb = Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8))
    files = {
        "rgb.jpg": lambda p: rgb.save(p, quality=92),
        "gray.jpg": lambda p: rgb.convert("L").resize((61, 29)).save(p),
        "cmyk.jpg": lambda p: rgb.convert("CMYK").save(p),
        "rgba.png": lambda p: rgb.convert("RGBA").resize((17, 90)).save(p),
        "palette.gif": lambda p: rgb.convert("P").save(p),
        "deep.png": lambda p: Image.fromarray(rng.integers(0, 65535, (40, 44)).astype(np.uint16)).save(p),
        "web.webp": lambda p: rgb.save(p, format="WEBP"),
    }
    out = {}
    for name, write in files.items():
        write(folder / name)
        out[name] = folder / name
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    (folder / "truncated.jpg").write_bytes(bytes(data[:300]))
    for i in range(400, min(900, len(data) - 2), 7):
        data[i] = 0
    (folder / "corrupt.jpg").write_bytes(bytes(data))
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("not an image")
    out.update({k: folder / k for k in ("truncated.jpg", "corrupt.jpg", "empty.jpg", "notes.png")})
    return out


BROKEN = ("truncated.jpg", "corrupt.jpg", "empty.jpg", "notes.png")


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """A tiny demo dataset (4 classes) for pipeline and training tests."""
    from tinynet_ms.data.demo import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("demo"), num_classes=4, train_per_class=12, val_per_class=6)


MINI_WEIGHTS = DATA / "timm_tinynet_mini.safetensors"  # timm's weights: non-trivial logits, 10 classes


@pytest.fixture(scope="session")
def mini_run(tmp_path_factory) -> dict:
    """10-class demo val set + a config for the timm fixture network (w 0.25, d 0.35) at 48 px."""
    import yaml

    from tinynet_ms.data.demo import make_demo_dataset

    root = tmp_path_factory.mktemp("mini")
    data = make_demo_dataset(root / "data", num_classes=10, train_per_class=1, val_per_class=4)
    config = root / "mini.yaml"
    config.write_text(yaml.safe_dump({
        "model": "tinynet", "w": 0.25, "d": 0.35, "num_classes": 10, "image_size": 48, "device_target": "CPU",
        "batch_size": 8, "num_parallel_workers": 2, "output_dir": str(root / "out")}))
    return {"data": data, "config": config, "weights": MINI_WEIGHTS, "root": root}
