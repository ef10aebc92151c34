"""Fixtures. Shared constants and writers live in helpers.py (a plain module), not here."""
import fcntl
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

os.environ.setdefault("GLOG_v", "3")  # MindSpore's C++ warnings drown pytest output

from pathlib import Path  # noqa: E402

import mindspore as ms  # noqa: E402
import pytest  # noqa: E402

from helpers import MINI_WEIGHTS, ROOT, SCRIPT_ENV, TWO_WORKERS, write_odd_images  # noqa: E402

ms.set_device("CPU")


def pytest_collection_modifyitems(items):
    """A perf or long test is slow too: the quick tier (-m "not slow") never runs one. Slow tests run first: the
    scheduler (xdist's worksteal) hands an idle worker the tail of a busy one's queue, so a run ends on short tests
    instead of one worker finishing a minutes-long end-to-end check while the other waits."""
    for item in items:
        if item.get_closest_marker("perf") or item.get_closest_marker("long"):
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: file order within each group


@pytest.fixture(autouse=True)
def _restore_execution_mode_and_logging():
    """Whatever a test does to the execution mode or the root log handlers (an in-process entry point's
    setup_logging binds one to that test's captured stderr), the next one starts from the same."""
    previous, handlers = ms.get_context("mode"), list(logging.root.handlers)
    yield
    ms.set_context(mode=previous)
    logging.root.handlers[:] = handlers


@pytest.fixture(params=[ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
def mode(request):
    ms.set_context(mode=request.param)
    return request.param


@pytest.fixture
def graph_mode():
    ms.set_context(mode=ms.GRAPH_MODE)


@pytest.fixture
def pynative_mode():
    ms.set_context(mode=ms.PYNATIVE_MODE)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """A tiny demo dataset (4 classes) for pipeline and training tests."""
    from tinynet_ms.data.demo import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("demo"), num_classes=4, train_per_class=12, val_per_class=6)


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


@contextmanager
def _made_once(tmp_path_factory, name: str) -> Iterator[tuple[Path, bool]]:
    """A folder shared by this session's pytest-xdist workers (their basetemps are subfolders of the session's), one
    worker at a time: (folder, True) for the worker that must fill it, (folder, False) once one has."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done = root / f"shared_{name}", root / f"shared_{name}" / ".done"
    with open(root / f"shared_{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fresh = not done.exists()
        folder.mkdir(exist_ok=True)
        yield folder, fresh
        done.touch()


@pytest.fixture(scope="session")
def messy_data(demo_data, tmp_path_factory) -> Path:
    """The demo data plus what real folders contain: broken files, odd formats, an empty class (6 classes)."""
    with _made_once(tmp_path_factory, "messy") as (folder, fresh):
        root = folder / "data"
        if fresh:
            shutil.copytree(demo_data, root)
            odd = write_odd_images(root / "train" / "zz_odd")
            for name in ("truncated.jpg", "corrupt.jpg", "empty.jpg"):
                shutil.copy(odd[name], root / "train" / "circle_filled" / name)
            shutil.copytree(root / "train" / "zz_odd", root / "val" / "zz_odd")
            (root / "train" / "zz_empty").mkdir()
    return root


@pytest.fixture(scope="session")
def two_worker_run(messy_data, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The CI's one-node msrun training (2 workers, 2 epochs, TWO_WORKERS on messy_data), run once per session
    (whichever xdist worker asks first): its output directory and the script's process. Checked by
    test_training_e2e; the multi-node test trains the same on two nodes and compares."""
    with _made_once(tmp_path_factory, "two_workers") as (folder, fresh):
        out, record = folder / "out", folder / "run.json"
        if fresh:
            args = ["bash", "scripts/run_distribute_train.sh", str(messy_data), "configs/demo.yaml", "2", *TWO_WORKERS,
                    "--output_dir", str(out)]
            run = subprocess.run(args, cwd=ROOT, env={**SCRIPT_ENV, "MASTER_PORT": "8131"}, capture_output=True,
                                 text=True, timeout=900)
            record.write_text(json.dumps([run.args, run.returncode, run.stdout, run.stderr]))
    return out, subprocess.CompletedProcess(*json.loads(record.read_text()))
