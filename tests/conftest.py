"""Fixtures. Shared constants and writers live in helpers.py (a plain module), not here."""
import logging
import os
import shutil
import subprocess

os.environ.setdefault("GLOG_v", "3")  # MindSpore's C++ warnings drown pytest output

from pathlib import Path  # noqa: E402

import mindspore as ms  # noqa: E402
import pytest  # noqa: E402

from helpers import MINI_WEIGHTS, ROOT, SCRIPT_ENV, TWO_WORKERS, write_odd_images  # noqa: E402

ms.set_device("CPU")


# The modules whose tests launch msrun. Under pytest-xdist (the CI tier: -n 2 --dist loadgroup) they share one
# worker, so no two msrun jobs race for the default port or run four ranks on two cores; the other worker runs the rest.
MSRUN_MODULES = {"test_demo", "test_launch", "test_multinode", "test_train_scripts", "test_training_e2e"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items):
    """A perf or long test is slow too: the quick tier (-m "not slow") never runs one."""
    for item in items:
        if item.get_closest_marker("perf") or item.get_closest_marker("long"):
            item.add_marker(pytest.mark.slow)
        if item.module.__name__ in MSRUN_MODULES:
            item.add_marker(pytest.mark.xdist_group("msrun"))


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


@pytest.fixture(scope="session")
def messy_data(demo_data, tmp_path_factory) -> Path:
    """The demo data plus what real folders contain: broken files, odd formats, an empty class (6 classes)."""
    root = tmp_path_factory.mktemp("messy") / "data"
    shutil.copytree(demo_data, root)
    odd = write_odd_images(root / "train" / "zz_odd")
    for name in ("truncated.jpg", "corrupt.jpg", "empty.jpg"):
        shutil.copy(odd[name], root / "train" / "circle_filled" / name)
    shutil.copytree(root / "train" / "zz_odd", root / "val" / "zz_odd")
    (root / "train" / "zz_empty").mkdir()
    return root


@pytest.fixture(scope="session")
def two_worker_run(messy_data, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The CI's one-node msrun training (2 workers, 2 epochs, TWO_WORKERS on messy_data): its output directory and
    the script's process. Checked by test_training_e2e; the multi-node test trains the same on two nodes."""
    out = tmp_path_factory.mktemp("two_workers") / "out"
    run = subprocess.run(["bash", "scripts/run_distribute_train.sh", str(messy_data), "configs/demo.yaml", "2",
                          *TWO_WORKERS, "--output_dir", str(out)], cwd=ROOT, env={**SCRIPT_ENV, "MASTER_PORT": "8131"},
                         capture_output=True, text=True, timeout=900)
    return out, run
