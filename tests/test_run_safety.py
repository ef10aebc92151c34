"""A run never loses another run's work: a fresh run refuses an output_dir that holds checkpoints unless told."""
from types import SimpleNamespace

import pytest

from src.config import ConfigError
from src.context import RunContext
from src.trainer import check_output_dir


def _cfg(out, **kw):
    return SimpleNamespace(output_dir=str(out), resume=kw.get("resume", ""), overwrite=kw.get("overwrite", False))


def _old_run(out):
    (out / "checkpoints").mkdir(parents=True)
    for name in ("best.ckpt", "last.ckpt", "epoch_0002.ckpt", "epoch_0003.ckpt"):
        (out / "checkpoints" / name).write_bytes(b"old")
    (out / "metrics.jsonl").write_text('{"epoch": 1}\n')


def test_fresh_run_over_checkpoints_is_refused_naming_the_ways_out(tmp_path):
    _old_run(tmp_path / "out")
    with pytest.raises(ConfigError, match="holds another run's checkpoints .*--resume auto.*--overwrite true"):
        check_output_dir(_cfg(tmp_path / "out"), RunContext("CPU"))
    assert (tmp_path / "out" / "checkpoints" / "best.ckpt").read_bytes() == b"old"  # untouched


def test_resume_auto_continues_and_overwrite_removes_every_old_file(tmp_path):
    out = tmp_path / "out"
    _old_run(out)
    check_output_dir(_cfg(out, resume="auto"), RunContext("CPU"))  # last.ckpt is there: continue it
    assert (out / "checkpoints" / "last.ckpt").exists()
    check_output_dir(_cfg(out, overwrite=True), RunContext("CPU", rank=1, world=2))  # only rank 0 deletes
    assert (out / "checkpoints" / "last.ckpt").exists()
    check_output_dir(_cfg(out, overwrite=True), RunContext("CPU", rank=0, world=2))
    assert not list((out / "checkpoints").iterdir()) and not (out / "metrics.jsonl").exists()


def test_empty_or_new_output_dir_is_fine_and_a_file_is_an_error(tmp_path):
    check_output_dir(_cfg(tmp_path / "new"), RunContext("CPU"))
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        check_output_dir(_cfg(tmp_path / "f"), RunContext("CPU"))


def test_non_finite_states_are_never_written(tmp_path):
    import numpy as np

    from tinynet_ms.weights import save_checkpoint_atomic

    good = {"a.weight": np.ones(3, np.float32), "train_state.epoch": np.array(2, np.int32)}
    bad = {**good, "bn1.moving_variance": np.array([1.0, np.nan, np.inf], np.float32)}
    with pytest.raises(FloatingPointError, match="1 tensors are not finite .*bn1.moving_variance"):
        save_checkpoint_atomic(bad, tmp_path / "last.ckpt")
    assert not list(tmp_path.iterdir())  # neither the file nor a temporary
    assert save_checkpoint_atomic(good, tmp_path / "last.ckpt").is_file()


def test_metrics_are_valid_json_with_null_for_non_finite(tmp_path):
    import json

    from tinynet_ms.train import MetricsLog

    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.append({"epoch": 1, "train_loss": float("nan"), "lr": 0.1, "val_top1": float("inf")})
    line = (tmp_path / "metrics.jsonl").read_text().strip()
    assert json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in metrics")) == {
        "epoch": 1, "train_loss": None, "lr": 0.1, "val_top1": None}


def test_a_diverged_epoch_stops_naming_the_newest_checkpoint(tmp_path):
    """Trainer._check_finite on a network with a NaN statistic: the run stops before saving anything."""
    import mindspore as ms
    import numpy as np

    from src.trainer import Trainer
    from tinynet_ms import create_model
    from tinynet_ms.train import TrainState

    trainer = Trainer.__new__(Trainer)  # only the pieces _check_finite reads
    trainer.net = create_model("tinynet", w=0.25, d=0.35, num_classes=4, cpu_kernels=False)
    trainer.ema_net, trainer.ckpt_dir, trainer.state = None, tmp_path / "checkpoints", TrainState(epoch=3)
    record = {"train_loss": float("nan"), "skipped_steps": 5}
    trainer._check_finite(3, record)  # finite: nothing happens
    trainer.net.bn1.moving_variance.set_data(ms.Tensor(np.full(32, np.nan, np.float32)))
    with pytest.raises(FloatingPointError, match="epoch 4 diverged.*bn1.moving_variance.*first epoch"):
        trainer._check_finite(3, record)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(FloatingPointError, match=r"resume from .*last.ckpt \(epoch 3\) with --resume auto"):
        trainer._check_finite(3, record)


def test_stale_temporaries_of_a_killed_write_are_removed(tmp_path):
    out = tmp_path / "out"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / ".last.abc123.ckpt").write_bytes(b"")  # what kill -9 during a save leaves
    (out / ".metrics.x1y2.jsonl").write_text("")
    (out / ".curves.q9r8.png").write_bytes(b"")
    (out / "checkpoints" / "last.ckpt").write_bytes(b"whole")
    check_output_dir(_cfg(out, resume="auto"), RunContext("CPU"))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.ckpt"]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints"]


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_a_checkpoint_write_killed_inside_mindspore_leaves_nothing_the_next_run_keeps(tmp_path):
    """kill -9 while mindspore.save_checkpoint writes its own temporary (.<stem>.<random>.tmp, renamed when
    whole): the next run's start removes it (CI once found one left, the name nobody cleaned)."""
    import signal
    import subprocess
    import sys
    import time

    ckpts = tmp_path / "out" / "checkpoints"
    ckpts.mkdir(parents=True)
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys, numpy as np\n"
        "from tinynet_ms.weights import save_checkpoint_atomic\n"
        "big = {f'w{i}': np.ones((1024, 1024), np.float32) for i in range(64)}\n"
        "while True: save_checkpoint_atomic(big, sys.argv[1])\n"), str(ckpts / "last.ckpt")])
    try:
        deadline = time.monotonic() + 120
        while not list(ckpts.glob(".last.*.tmp")):
            assert writer.poll() is None and time.monotonic() < deadline, "the writer never got to mindspore's write"
            time.sleep(0.005)
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait(timeout=60)
    assert list(ckpts.glob(".last.*")), "killed after the write finished: nothing to clean"
    check_output_dir(_cfg(tmp_path / "out", resume="auto"), RunContext("CPU"))
    assert [p.name for p in ckpts.iterdir() if p.name.startswith(".")] == []


def test_nested_images_count_and_broken_links_and_unknown_val_classes_are_logged(tmp_path, caplog):
    from PIL import Image

    from tinynet_ms.data import scan_split

    for cls in ("a", "b"):
        (tmp_path / "val" / cls / "sub").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "val" / cls / "top.png")
        Image.new("RGB", (8, 8)).save(tmp_path / "val" / cls / "sub" / f"deep_{cls}.png")
    (tmp_path / "val" / "a" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    with caplog.at_level("WARNING"):
        folder = scan_split(tmp_path / "val", ["a"])
    assert sorted(s.path.rsplit("/", 1)[1] for s in folder.samples) == ["deep_a.png", "top.png"]  # walked, as torchvision
    assert "gone.jpg: not a readable file" in caplog.text
    from src.builders import scan_dataset  # the app names val/ classes that train/ lacks

    cfg = SimpleNamespace(data_path=str(tmp_path), output_dir=str(tmp_path / "out"), num_parallel_workers=1,
                          num_classes=1)
    scan_dataset(cfg, "val", ["a"])
    assert "1 class folder(s) not in the class list are ignored: b" in caplog.text


def test_divergence_is_told_from_a_window_loss_or_from_skipped_steps():
    from src.trainer import divergence_sign

    assert divergence_sign(2.1, 2.3, 0, 10, 10) is None  # learning
    assert divergence_sign(5.2, 2.3, 0, 10, 10) is None  # the early rise of a healthy run (timm's demo recipe)
    assert divergence_sign(5.98, 5.98, 0, 15, 10) is None  # its first window, when that is the whole epoch
    assert "far above its start 245" in divergence_sign(7912.0, 245.0, 0, 2, 4)  # --lr 5, seen at step 4
    assert "far above its start 2.303" in divergence_sign(9.5, 0.4, 0, 10, 10)  # ln C when the start was lower
    assert divergence_sign(9.0, 0.4, 0, 10, 10) is None
    assert "NaN or inf" in divergence_sign(float("nan"), 2.3, 0, 10, 10)
    assert "6 of the last 10 steps overflowed" in divergence_sign(2.0, 2.3, 6, 10, 10)
    assert divergence_sign(2.0, 2.3, 5, 10, 10) is None  # half is not most


def test_an_output_dir_that_cannot_be_written_is_refused_before_training(tmp_path):
    import os

    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ConfigError, match="output_dir '.*a_file/run' cannot be written"):
        check_output_dir(_cfg(tmp_path / "a_file" / "run"), RunContext("CPU"))
    if os.geteuid() != 0:  # root writes into read-only folders anyway
        (tmp_path / "ro").mkdir(mode=0o555)
        with pytest.raises(ConfigError, match="output_dir '.*ro' cannot be written .*permissions"):
            check_output_dir(_cfg(tmp_path / "ro"), RunContext("CPU"))
