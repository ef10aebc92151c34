"""Paths, the scripts' environment and test-data writers shared by the tests (plain module: ``from helpers import``)."""
import io
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
MINI_WEIGHTS = DATA / "timm_tinynet_mini.safetensors"  # timm's weights: non-trivial logits, 10 classes
# The scripts call `python` and `msrun`: make them this interpreter's, whether or not its venv is activated.
SCRIPT_ENV = {**os.environ, "GLOG_v": "3", "PYTHONUNBUFFERED": "1",
              "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
# train.py on 4 demo classes at 32 px, small and fast: what the end-to-end tests check is the machinery, not accuracy.
FAST = ["--device_target", "CPU", "--image_size", "32", "--batch_size", "8", "--num_parallel_workers", "1",
        "--log_interval", "2", "--ema_decay", "0.9", "--lr", "0.002", "--warmup_epochs", "0.5"]
# The CI's msrun run (conftest.two_worker_run): also the LR scaled to the global batch, 2 x 8 at 0.048 for 256.
TWO_WORKERS = [*FAST, "--epochs", "2", "--num_classes", "6", "--lr", "0.048", "--lr_scaling", "linear",
               "--lr_reference_batch", "256"]
BROKEN = ("truncated.jpg", "corrupt.jpg", "empty.jpg", "notes.png")


def write_odd_images(folder: Path) -> dict[str, Path]:
    """Images a real dataset contains: gray, CMYK, RGBA PNG, palette GIF, 16-bit PNG, WebP, odd sizes,
    plus broken ones (truncated JPEG, corrupt JPEG, empty file, text file with an image name)."""
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
    out.update({k: folder / k for k in BROKEN})
    return out


def timm_name(name: str) -> str:
    """Our parameter name as timm's state dict spells it (the converter's BatchNorm rename, inverted)."""
    from tinynet_ms.weights import TIMM_BN_RENAME

    module, _, leaf = name.rpartition(".")
    ours_to_timm = {ours: theirs for theirs, ours in TIMM_BN_RENAME.items()}
    return f"{module}.{ours_to_timm.get(leaf, leaf)}"


def as_timm_state(arrays: dict) -> dict:
    """Our parameter arrays as a timm state dict (with the num_batches_tracked timm writes beside each BatchNorm):
    what a timm / huawei-noah file of these weights holds."""
    out = {timm_name(name): value for name, value in arrays.items()}
    for name in arrays:
        if name.endswith(".moving_mean"):
            out[f"{name.rpartition('.')[0]}.num_batches_tracked"] = np.array(7, np.int64)
    return out


def write_tiny_onnx(path: Path, image_size: int = 48, num_classes: int = 10, weight: float = 0.01,
                    backbone: bool = False) -> Path:
    """A hand-made ONNX model (batch 1, 3 x S x S in; global average pool, then one Gemm) for tests that need a model
    file but no network compile: ``weight`` fills the Gemm's matrix (NaN: NaN logits for any input); ``backbone``
    ends at the pooled (1, 3, 1, 1) feature map, as a one-level features_only export ends at a feature map."""
    import onnx
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, image_size, image_size])
    nodes = [helper.make_node("GlobalAveragePool", ["image"], ["pooled"])]
    inits = []
    if backbone:
        output = helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [1, 3, 1, 1])
    else:
        nodes += [helper.make_node("Flatten", ["pooled"], ["flat"]),
                  helper.make_node("Gemm", ["flat", "w", "b"], ["logits"], transB=1)]  # OpenCV DNN's layout
        inits = [helper.make_tensor("w", TensorProto.FLOAT, [num_classes, 3], [weight] * (3 * num_classes)),
                 helper.make_tensor("b", TensorProto.FLOAT, [num_classes], list(np.arange(num_classes, dtype=float)))]
        output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, num_classes])
    graph = helper.make_graph(nodes, "tiny", [image], [output], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7  # readable by older runtimes (OpenCV DNN)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)
