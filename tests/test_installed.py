"""The library stands on its own: built as a wheel and installed outside the checkout, every documented
``python -m tinynet_ms...`` command runs there, and nothing of the model zoo (src/, train.py, scripts/) is reachable."""
import json
import os
import subprocess
import sys

import pytest

from helpers import ROOT, SCRIPT_ENV


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``pip install .`` (no dependencies: those of this environment serve) into a folder outside the checkout; the
    environment that puts it first on the path, and a working directory outside the checkout."""
    root = tmp_path_factory.mktemp("installed")
    target, work = root / "site", root / "work"
    work.mkdir()
    build = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                            "--target", str(target), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    # downloads go to a closed local port: never to the internet from a test
    env = {**SCRIPT_ENV, "PYTHONPATH": str(target), "TINYNET_MS_HOME": str(root / "cache"),
           "TINYNET_MS_WEIGHTS_URL": "http://127.0.0.1:9/weights"}
    return target, work, env


def _run(installed, *args: str) -> subprocess.CompletedProcess:
    _, work, env = installed
    return subprocess.run([sys.executable, *args], cwd=work, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # builds a wheel and runs each command in a process of its own
def test_every_documented_library_command_runs_from_an_installed_package(installed):
    target, work, _ = installed
    where = _run(installed, "-c", "import tinynet_ms, importlib.util as u; print(tinynet_ms.__file__); "
                                  "print(u.find_spec('src'))")
    assert where.returncode == 0, where.stderr[-2000:]
    assert where.stdout.splitlines() == [str(target / "tinynet_ms" / "__init__.py"), "None"]
    profile = _run(installed, "-m", "tinynet_ms.profile", "tinynet_e", "--json")
    assert json.loads(profile.stdout.splitlines()[-1])["params"] == 2_042_972, profile.stderr[-2000:]
    design = _run(installed, "-m", "tinynet_ms.design", "--macs", "40M", "--json")
    assert design.returncode == 0 and json.loads(design.stdout.splitlines()[-1])["macs"] > 0, design.stderr[-2000:]
    demo = _run(installed, "-m", "tinynet_ms.data.demo", str(work / "data"), "--num_classes", "2",
                "--train_per_class", "1", "--val_per_class", "1")
    assert demo.returncode == 0 and (work / "data" / "val").is_dir(), demo.stderr[-2000:]
    # a model file written by the installed library (the ImageNet class names ship as package data), then read back
    export = _run(installed, "-c", "import mindspore as ms; ms.set_device('CPU'); from tinynet_ms import create_model;"
                                   "from tinynet_ms.export import export_and_verify;"
                                   "from tinynet_ms.classes import imagenet_class_names;"
                                   "net = create_model('tinynet_e', cpu_kernels=False);"
                                   "export_and_verify(net, 'e', 'ONNX', 1, 106, class_names=imagenet_class_names())")
    assert export.returncode == 0, export.stderr[-2000:]
    info = _run(installed, "-m", "tinynet_ms.export", "info", "e.onnx")
    assert json.loads(info.stdout)["input_shape"] == [1, 3, 106, 106], info.stderr[-2000:]
    offline = _run(installed, "-m", "tinynet_ms.hub", "download", "tinynet_e")
    assert offline.returncode == 1 and "127.0.0.1:9" in offline.stderr  # unreachable: one line, exit 1
    for module in ("convert", "quantize", "hub", "design", "profile", "export"):
        run = _run(installed, "-m", f"tinynet_ms.{module}", "--help")
        assert run.returncode == 0 and "usage:" in run.stdout, (module, run.stderr[-1000:])
    assert not any(p.name in ("src", "train.py", "scripts") for p in target.iterdir())
    assert os.path.commonpath([target, ROOT]) != str(ROOT)
