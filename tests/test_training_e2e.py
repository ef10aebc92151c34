"""End-to-end training through the model-zoo entry points (CPU): msrun data parallel, resume, bad input."""
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import FAST, ROOT, SCRIPT_ENV


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_distributed_training_two_workers(two_worker_run):
    """msrun with 2 workers on messy data; also the LR scaled to the global batch: 2 x 8 at lr 0.048 for 256 ->
    0.048 x 16 / 256."""
    from tinynet_ms.train import step_lr_schedule

    out, run = two_worker_run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    logs = [(out / "logs" / f"worker_{r}.log").read_text() for r in range(2)]
    digests = [log.split("weights digest ")[1].split()[0] for log in logs]
    assert digests[0] == digests[1], "data-parallel ranks ended with different weights"
    assert "skipping unreadable image" in logs[0] and "truncated.jpg" in logs[0]
    assert "class 'zz_empty' has no images" in logs[0]
    records = _records(out)
    assert [r["epoch"] for r in records] == [1, 2]
    assert "lr 0.003 = 0.048 x 16 / 256 (lr_scaling linear: global batch 16 = 2 device(s) x 8" in logs[0]
    steps = int(re.search(r"(\d+) steps/epoch", logs[0]).group(1))
    expected = step_lr_schedule(0.003, steps, 2, warmup_epochs=0.5, decay_rate=0.9)  # demo.yaml's schedule
    assert [r["lr"] for r in records] == pytest.approx([expected[steps - 1], expected[-1]])
    for key in ("epoch", "train_loss", "lr", "val_top1", "val_top5", "img_per_sec", "val_top1_ema"):
        assert all(key in r for r in records), key
    assert records[-1]["val_samples"] == 4 * 6 + 7  # demo val + the readable odd images, split over ranks
    for name in ("checkpoints/last.ckpt", "checkpoints/best.ckpt", "curves.png", "config.yaml"):
        assert (out / name).is_file(), name


def _train(out: Path, *extra: str, data: str) -> tuple[subprocess.Popen, Path]:
    """Start train.py; its output goes to a file (a pipe nobody reads could fill up and block it)."""
    out.mkdir(parents=True, exist_ok=True)
    log = out.parent / f"{out.name}.{len(list(out.parent.glob(out.name + '.*.log')))}.log"
    cmd = [sys.executable, "train.py", "--config_path", "configs/demo.yaml", "--data_path", data, *FAST,
           "--num_classes", "4", "--output_dir", str(out), *extra]
    with log.open("w") as f:
        return subprocess.Popen(cmd, cwd=ROOT, env=SCRIPT_ENV, stdout=f, stderr=subprocess.STDOUT), log


TIMING = ("epoch_seconds", "img_per_sec")  # the only fields of a record that may differ between identical runs


def _check_after_kill(out: Path, when: str) -> None:
    """What a SIGKILL may leave: valid JSON records of epochs 1..n, once each; a whole last.ckpt at epoch n or
    n - 1 (the record is written first); every checkpoint readable."""
    from tinynet_ms.weights import read_checkpoint

    epochs = [r["epoch"] for r in _records(out)] if (out / "metrics.jsonl").is_file() else []
    assert epochs == list(range(1, len(epochs) + 1)), (when, epochs)
    ckpts = out / "checkpoints"
    done = int(read_checkpoint(ckpts / "last.ckpt")["train_state.epoch"].item()) if (ckpts / "last.ckpt").is_file() else 0
    assert len(epochs) in (done, done + 1), (when, epochs, done)
    for path in ckpts.glob("[!.]*.ckpt") if ckpts.is_dir() else ():
        assert read_checkpoint(path), (when, path)


@pytest.mark.slow
@pytest.mark.parametrize("kills", [1, pytest.param(5, marks=pytest.mark.perf)])
def test_random_sigkills_then_resume_auto_lose_nothing_and_match_the_uninterrupted_run(demo_data, tmp_path, kills):
    """SIGKILL at a random moment of a 3-epoch run (startup, compile, a step, eval, a checkpoint write), ``kills``
    times, each followed by --resume auto: nothing is lost or doubled, and the result is bit-identical to the run
    that was never interrupted (same machine, thread count and config: README, 'Reproducibility')."""
    import random

    data = str(demo_data)
    common = ("--epochs", "3", "--drop_path_rate", "0.2", "--re_prob", "0.3")
    start = time.monotonic()
    full, full_log = _train(tmp_path / "full", *common, data=data)
    assert full.wait(timeout=900) == 0, full_log.read_text()[-3000:]
    span = time.monotonic() - start
    out, rng = tmp_path / "killed", random.Random()
    # One moment in each fifth of an uninterrupted run's span: early kills hit the start-up and the compile,
    # late ones (after earlier progress was saved) the steps, the eval and the checkpoint writes.
    moments = [rng.uniform(i * span / kills, (i + 1) * span / kills) for i in range(kills)]
    for moment in moments:
        run, log = _train(out, *common, "--resume", "auto", data=data)
        try:
            assert run.wait(timeout=moment) == 0, log.read_text()[-3000:]  # finished before the kill: fine
        except subprocess.TimeoutExpired:
            run.send_signal(signal.SIGKILL)
            run.wait(timeout=60)
        _check_after_kill(out, f"killed at {moment:.1f} s of {span:.1f} s (moments {moments})")
    final, final_log = _train(out, *common, "--resume", "auto", data=data)
    assert final.wait(timeout=900) == 0, final_log.read_text()[-3000:]

    a, b = _records(tmp_path / "full"), _records(out)
    assert [r["epoch"] for r in b] == [1, 2, 3], moments
    for ra, rb in zip(a, b):
        assert {k: v for k, v in rb.items() if k not in TIMING} == {k: v for k, v in ra.items() if k not in TIMING}
    digest = re.compile(r"weights digest (\w+)")
    assert digest.search(final_log.read_text()).group(1) == digest.search(full_log.read_text()).group(1), moments
    assert not list((out / "checkpoints").glob(".*")), "a killed write's temporary survived the next run"


@pytest.mark.parametrize("case, expect, code", [
    ("no_train", "dataset folder not found", 1),
    ("unknown_key", "unknown config key 'learning_rate'", 2),
    ("bad_device", "'device_target' (--device_target) must be one of Ascend, GPU, CPU, got 'TPU'", 2),
    ("wrong_classes", "has 4 classes but num_classes is 10", 1),
])
@pytest.mark.slow  # a train.py process each; tests/test_cli.py covers the convention in-process
def test_bad_input_gives_one_line_error(demo_data, tmp_path, case, expect, code):
    data = demo_data
    extra = ["--num_classes", "4"]
    if case == "no_train":
        data = tmp_path / "data"
        shutil.copytree(demo_data / "val", data / "val")
    elif case == "unknown_key":
        extra += ["--learning_rate", "0.1"]
    elif case == "bad_device":
        extra += ["--device_target", "TPU"]
    elif case == "wrong_classes":
        extra = ["--num_classes", "10"]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "config.yaml").write_text("the earlier run's record\n")  # resumed below: a run's files
    cmd = [sys.executable, "train.py", "--config_path", "configs/demo.yaml", "--data_path", str(data), *FAST,
           "--output_dir", str(tmp_path / "out"), "--resume", "auto", *extra]
    run = subprocess.run(cmd, cwd=ROOT, env=SCRIPT_ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == code
    assert expect in run.stderr and "Traceback" not in run.stderr
    assert (tmp_path / "out" / "config.yaml").read_text() == "the earlier run's record\n"  # a failed start writes none


def test_scripts_print_usage():
    """Missing arguments: the usage on stderr, exit code 2; -h/--help (anywhere): the usage on stdout, exit 0."""
    for script in ("run_distribute_train.sh", "run_standalone_train.sh", "run_eval.sh", "run_infer_310.sh"):
        run = subprocess.run(["bash", f"scripts/{script}"], cwd=ROOT, capture_output=True, text=True)
        assert run.returncode == 2 and "usage: bash scripts/" in run.stderr
    for script in ("run_distribute_train.sh", "run_standalone_train.sh", "run_eval.sh", "run_infer_310.sh",
                   "run_demo.sh"):
        for args in (["--help"], ["-h"], ["DATA", "CONFIG", "--help"]):
            run = subprocess.run(["bash", f"scripts/{script}", *args], cwd=ROOT, capture_output=True, text=True)
            assert run.returncode == 0 and run.stdout.startswith(f"usage: bash scripts/{script}") and not run.stderr


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_busy_master_port_is_refused_before_launching(demo_data, tmp_path):
    """msrun's workers would retry a busy port for minutes; the launcher says so at once."""
    import socket

    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = subprocess.run(["bash", "scripts/run_distribute_train.sh", str(demo_data), "configs/demo.yaml", "2",
                              "--output_dir", str(tmp_path / "out")], cwd=ROOT,
                             env={**SCRIPT_ENV, "MASTER_PORT": str(port)}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and f"MASTER_PORT {port} is in use" in run.stderr, run.stderr
