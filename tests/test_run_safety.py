"""A run never loses another run's work: a fresh run refuses an output_dir that holds checkpoints unless told."""
import re
from pathlib import Path
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


def _diverging_trainer(tmp_path, epoch=3):
    """A Trainer with only the pieces _check_diverged reads: a network, no EMA, ``epoch`` epochs saved."""
    from src.context import RunContext
    from src.trainer import Trainer
    from tinynet_ms import create_model
    from tinynet_ms.train import TrainState

    trainer = Trainer.__new__(Trainer)
    trainer.net = create_model("tinynet", w=0.25, d=0.35, num_classes=4, cpu_kernels=False)
    trainer.ema_net, trainer.ckpt_dir, trainer.state = None, tmp_path / "checkpoints", TrainState(epoch=epoch)
    trainer.cfg, trainer.ctx, trainer.resumed_from = SimpleNamespace(num_classes=4), RunContext("CPU"), None
    return trainer


def test_a_torn_last_metrics_line_is_no_record(tmp_path):
    """A kill in the middle of an append leaves an unterminated line: the resume reads the whole records before it
    (and truncate_after drops the torn one), where it failed to parse the file."""
    from tinynet_ms.train import MetricsLog

    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.append({"epoch": 1, "train_loss": 1.5})
    with log.path.open("a") as f:
        f.write('{"epoch": 2, "train_lo')
    assert log.records() == [{"epoch": 1, "train_loss": 1.5}]
    log.truncate_after(1)
    assert log.path.read_text() == '{"epoch": 1, "train_loss": 1.5}\n'


def test_a_diverged_epoch_stops_naming_the_newest_checkpoint(tmp_path):
    """Trainer._check_diverged: NaN statistics, or finite weights far past any learning run's (issue 33: 2.8e30
    passed the finiteness check and became last.ckpt), stop the run before anything of the epoch is saved."""
    import mindspore as ms
    import numpy as np

    from src.trainer import Stretch

    trainer = _diverging_trainer(tmp_path)
    healthy = Stretch(10, 14.0, 10, 0, 1024.0)
    trainer._check_diverged(3, healthy)  # nothing happens
    trainer.net.bn1.moving_variance.set_data(ms.Tensor(np.full(32, np.nan, np.float32)))
    with pytest.raises(FloatingPointError, match="epoch 4 diverged: 1 weight.*bn1.moving_variance.*lower --lr, then "
                                                 "--resume auto .it starts again: no epoch of this run was saved"):
        trainer._check_diverged(3, healthy)
    trainer.net.bn1.moving_variance.set_data(ms.Tensor(np.ones(32, np.float32)))
    trainer.net.conv_stem.weight.set_data(ms.Tensor(np.full(trainer.net.conv_stem.weight.shape, 2.8e30, np.float32)))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(FloatingPointError, match=r"epoch 4 diverged: conv_stem.weight reaches 2.8e\+30, past 1e\+06 .*"
                                                 r"lower --lr, then --resume auto \(nothing of this epoch was saved; "
                                                 r"the last good checkpoint .*last.ckpt, epoch 3, is kept\)"):
        trainer._check_diverged(3, healthy)


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


def _window(loss, steps=10, skipped=0, bad=0, scale=1024.0):
    """A Stretch of ``steps`` whose finite losses average ``loss``; ``bad`` of them NaN/inf (and so skipped too)."""
    from src.trainer import Stretch

    return Stretch(steps, loss * (steps - bad), steps - bad, skipped, scale)


def test_divergence_is_told_from_a_window_loss_or_from_skipped_steps():
    from src.trainer import divergence_sign

    assert divergence_sign(_window(2.1), 10, 2.3) is None  # learning
    assert divergence_sign(_window(5.2), 10, 2.3) is None  # the early rise of a healthy run (timm's demo recipe)
    assert divergence_sign(_window(5.98, 15), 10, 5.98) is None  # its first window, when that is the whole epoch
    assert "past 1000 ln C" in divergence_sign(_window(7912.0, 2), 4, 245.0)  # --lr 5, seen at step 4
    assert "far above its start 245" in divergence_sign(_window(1000.0, 2), 4, 245.0)
    assert "far above its start 2.303" in divergence_sign(_window(9.5), 10, 0.4)  # ln C when the start was lower
    assert divergence_sign(_window(9.0), 10, 0.4) is None
    assert divergence_sign(_window(26.7), 4) is None  # an epoch of the demo recipe's rise (19 ln C): no stop
    assert "NaN or inf at 6 of 10 steps: lower --lr" in divergence_sign(_window(2.0, skipped=6, bad=6), 10, 2.3)
    assert divergence_sign(_window(2.0, skipped=5, bad=5), 10, 2.3) is None  # half is not most
    # one NaN batch, skipped, leaves the mean of the others (it made the whole epoch's mean NaN)
    assert _window(2.0, skipped=1, bad=1).loss == 2.0


def test_a_loss_exploded_from_the_start_is_diverged_whatever_its_first_window():
    """Issue 33: 3.8e14 in the first window became the baseline, nothing was flagged, and a best.ckpt was saved."""
    from src.trainer import divergence_sign

    for start in (None, 3.8e14):
        assert "loss 3.8e+14 is past 1000 ln C = 2303" in divergence_sign(_window(3.8e14), 10, start)
    assert "loss 1387 is past 1000 ln C = 1386" in divergence_sign(_window(1387.0), 4)
    assert "the loss overflowed (inf)" in divergence_sign(_window(float("inf")), 4)  # finite losses summing past fp32


def test_overflowing_gradients_name_the_loss_scale():
    """Issue 33: --loss_scale 1e38 overflowed the gradients under a finite loss, and the message blamed the lr."""
    from src.trainer import divergence_sign

    sign = divergence_sign(_window(1.4, skipped=10, scale=1e38), 4)
    assert sign == ("10 of 10 steps were skipped, 10 of them for gradients overflowing at loss scale 1e+38: use a "
                    "smaller --loss_scale")
    assert "use --amp_level O0" in divergence_sign(_window(1.4, skipped=8, scale=1.0), 4, dynamic=True)  # at its floor
    assert divergence_sign(_window(1.4, skipped=8, scale=2.0 ** 14), 4, dynamic=True) is None  # still coming down


def test_an_output_dir_that_cannot_be_written_is_refused_before_training(tmp_path):
    import os

    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ConfigError, match="output_dir '.*a_file/run' cannot be written"):
        check_output_dir(_cfg(tmp_path / "a_file" / "run"), RunContext("CPU"))
    if os.geteuid() != 0:  # root writes into read-only folders anyway
        (tmp_path / "ro").mkdir(mode=0o555)
        with pytest.raises(ConfigError, match="output_dir '.*ro' cannot be written .*permissions"):
            check_output_dir(_cfg(tmp_path / "ro"), RunContext("CPU"))


def _train(out, data, *extra) -> int:
    """train.py in this process (its exit code; its error line on stderr): the timm-sized mini network on the demo
    data, 12 steps an epoch, EMA on (demo.yaml), two epoch checkpoints kept."""
    from helpers import ROOT
    from src.app import run_app
    from src.trainer import run_training

    return run_app(run_training, [
        "--config_path", str(ROOT / "configs" / "demo.yaml"), "--model", "tinynet", "--w", "0.25", "--d", "0.35",
        "--num_classes", "4", "--data_path", str(data), "--batch_size", "4", "--log_interval", "6",
        "--num_parallel_workers", "1", "--auto_augment", "none", "--lr", "3e-4", "--output_dir", str(out), *extra],
        "train.py", "train.py")


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.mark.slow
def test_a_diverged_epoch_never_replaces_the_good_checkpoints(demo_data, tmp_path, capfd):
    """Issue 33: --resume auto with a huge lr logged a diverged epoch, then saved it as last.ckpt (weights at 2.8e30,
    finite) and rotated an older epoch checkpoint out, exit 0. Also: a fixed --loss_scale given on resume applies
    (the diverged run's cure may be a smaller one; it used to continue the checkpoint's)."""
    import json

    out = tmp_path / "out"
    assert _train(out, demo_data, "--epochs", "2") == 0
    good = {p.name: p.read_bytes() for p in (out / "checkpoints").glob("*.ckpt")}
    assert sorted(good) == ["best.ckpt", "epoch_0001.ckpt", "epoch_0002.ckpt", "last.ckpt"]
    capfd.readouterr()
    assert _train(out, demo_data, "--epochs", "3", "--resume", "auto", "--lr", "1e4", "--loss_scale", "512") == 1
    err = capfd.readouterr().err
    [line] = _error_lines(err)
    assert re.fullmatch(r"error: epoch 3 diverged: .*: lower --lr, then --resume auto \(nothing of this epoch was "
                        r"saved; the last good checkpoint \S+/checkpoints/last.ckpt, epoch 2, is kept\)", line), line
    assert {p.name: p.read_bytes() for p in (out / "checkpoints").glob("*.ckpt")} == good  # none replaced or rotated
    assert [json.loads(r)["epoch"] for r in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert "fixed loss scale 512 (--loss_scale; the checkpoint's run had 1024)" in err


@pytest.mark.slow
@pytest.mark.parametrize("kill", ["after", pytest.param("before", marks=pytest.mark.long)])
def test_a_kill_around_writing_best_checkpoint_resumes_with_best_completed(demo_data, tmp_path, monkeypatch, kill):
    """Issue 33: kill -9 right after best.ckpt of epoch 1 (last.ckpt came next), then --resume auto, was refused
    ('pass --resume auto', which was passed): best.ckpt held an epoch no checkpoint knew. Now last.ckpt goes first;
    a kill right before best.ckpt leaves a last.ckpt naming its own epoch the best, whose weights the resume writes."""
    import numpy as np

    import src.trainer
    from tinynet_ms.weights import ema_weights, network_weights, read_checkpoint, read_class_names

    def killed_at_best(arrays, path, **kw):
        if Path(path).name != "best.ckpt":
            return written(arrays, path, **kw)
        if kill == "after":
            written(arrays, path, **kw)
        raise KeyboardInterrupt("kill -9")

    written = src.trainer.save_checkpoint_atomic
    monkeypatch.setattr(src.trainer, "save_checkpoint_atomic", killed_at_best)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        _train(out, demo_data, "--epochs", "1")
    monkeypatch.undo()
    ckpts = out / "checkpoints"
    assert (ckpts / "best.ckpt").exists() == (kill == "after")
    assert _train(out, demo_data, "--epochs", "1", "--resume", "auto") == 0
    last = read_checkpoint(ckpts / "last.ckpt")
    assert last["train_state.best_epoch"].item() == last["train_state.epoch"].item() == 1
    expected = ema_weights(last) if last["train_state.best_is_ema"].item() == 1 else network_weights(last)
    best = read_checkpoint(ckpts / "best.ckpt")
    assert best.keys() == expected.keys()
    assert all(np.array_equal(best[k], v) for k, v in expected.items())
    assert read_class_names(ckpts / "best.ckpt") == read_class_names(ckpts / "last.ckpt")


def test_an_empty_or_truncated_last_checkpoint_is_one_line_naming_it_and_the_way_on(demo_data, tmp_path, capfd):
    """Issue 33: a 0-byte last.ckpt gave MindSpore's 'parameter dict is empty ... filter_prefix'. Not a fallback to
    an epoch checkpoint (weights only: the optimizer and EMA would restart unasked); the error names the newest
    intact one."""
    import numpy as np

    from tinynet_ms.weights import save_checkpoint_atomic

    ckpts = tmp_path / "out" / "checkpoints"
    whole = save_checkpoint_atomic({"w": np.ones(1000, np.float32)}, ckpts / "epoch_0001.ckpt").read_bytes()
    (ckpts / "epoch_0002.ckpt").write_bytes(whole[:len(whole) // 2])  # torn too: not offered
    for body, why in ((b"", r"is empty \(0 bytes\), not a checkpoint"), (whole[:300], "is not a readable")):
        (ckpts / "last.ckpt").write_bytes(body)
        assert _train(tmp_path / "out", demo_data, "--epochs", "1", "--resume", "auto") == 1
        err = capfd.readouterr().err
        [line] = _error_lines(err)
        assert re.fullmatch(rf"error: \S+/last.ckpt {why}.*; it cannot be resumed\. Its run's newest intact weights "
                            rf"are (\S+/epoch_0001.ckpt): .*--pretrained_checkpoint \1 with another --output_dir; "
                            rf"or --overwrite true starts afresh", line), line
        assert "filter_prefix" not in err


def _saving_trainer(tmp_path):
    """A Trainer with the pieces _save reads: a mini network (no EMA), its optimizer and step, two epochs done."""
    import numpy as np
    from mindspore import nn

    from src.context import RunContext
    from src.trainer import Trainer
    from tinynet_ms import create_model
    from tinynet_ms.train import MetricsLog, TrainState, TrainStep, WithLoss, create_rmsprop

    trainer = Trainer.__new__(Trainer)
    trainer.net = create_model("tinynet", w=0.25, d=0.35, num_classes=4, cpu_kernels=False)
    trainer.optimizer = create_rmsprop(trainer.net, np.full(10, 1e-3, np.float32))
    trainer.step = TrainStep(WithLoss(trainer.net, nn.CrossEntropyLoss()), trainer.optimizer, check_grads=False)
    trainer.ema_net, trainer.ctx, trainer.ckpt_dir = None, RunContext("CPU"), tmp_path / "checkpoints"
    trainer.state, trainer.cfg = TrainState(epoch=2, best_top1=0.5, best_epoch=2, best_is_ema=0), SimpleNamespace(
        keep_checkpoint_max=2)
    trainer.metrics, trainer.train_set = MetricsLog(tmp_path / "metrics.jsonl"), SimpleNamespace(classes=list("abcd"))
    return trainer


@pytest.mark.parametrize("failing", ["metrics.jsonl", "last.ckpt", "epoch_0002.ckpt", "best.ckpt"])
def test_a_full_disk_names_the_file_and_the_way_on(tmp_path, monkeypatch, failing):
    """Issue 33: ENOSPC/EFBIG while saving named no file and no way on. Each of _save's writes, failing, is one line
    naming it; nothing before it in the order is undone (so --resume auto loses nothing)."""
    import errno
    import os

    import src.trainer
    from tinynet_ms.train import MetricsLog

    def full(write):
        def wrapped(*args, **kw):
            path = Path(kw.get("path") or next(a for a in args if isinstance(a, (str, Path))))
            if path.name == failing:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return write(*args, **kw)
        return wrapped

    monkeypatch.setattr(src.trainer, "save_train_state", full(src.trainer.save_train_state))
    monkeypatch.setattr(src.trainer, "save_checkpoint_atomic", full(src.trainer.save_checkpoint_atomic))
    monkeypatch.setattr(MetricsLog, "append", lambda self, record: full(lambda path: None)(self.path))
    trainer = _saving_trainer(tmp_path)
    with pytest.raises(OSError) as caught:
        trainer._save(1, {"epoch": 2}, best=trainer.net)
    assert caught.value.errno == errno.ENOSPC
    assert re.fullmatch(rf"cannot write \S+/{failing}: No space left on device \(.*\): free space or raise the limit, "
                        rf"then --resume auto; nothing is lost, .*", str(caught.value)), caught.value
    order = ["last.ckpt", "epoch_0002.ckpt", "best.ckpt"]
    written = sorted(p.name for p in trainer.ckpt_dir.glob("*")) if trainer.ckpt_dir.is_dir() else []
    assert written == sorted(order[:order.index(failing)] if failing in order else [])


@pytest.mark.slow  # a process
def test_a_file_size_limit_while_saving_is_one_line_and_leaves_no_half_record(tmp_path):
    """ulimit -f reached (SIGXFSZ ignored, as the trainer does: the write fails with EFBIG instead of a kill) while
    appending a metrics record and while MindSpore writes a checkpoint: each one line naming the file; the metrics
    keep their whole records only (a half line made the next resume fail to parse them), no temporary is left."""
    import json
    import subprocess
    import sys

    from helpers import ROOT, SCRIPT_ENV

    script = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "import numpy as np\n"
        "from src.trainer import Trainer\n"
        "from tinynet_ms.train import MetricsLog\n"
        "from tinynet_ms.weights import save_checkpoint_atomic\n"
        "out = Path(sys.argv[1])\n"
        "metrics = MetricsLog(out / 'metrics.jsonl')\n"
        "metrics.append({'epoch': 1, 'train_loss': 1.5})\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))\n"
        "big = {'w': np.ones(10000, np.float32)}\n"
        "writes = {out / 'metrics.jsonl': lambda: metrics.append({'epoch': 2, 'note': 'x' * 8000}),\n"
        "          out / 'last.ckpt': lambda: save_checkpoint_atomic(big, out / 'last.ckpt')}\n"
        "for path, write in writes.items():\n"
        "    try:\n"
        "        with Trainer._writing(None, path):\n"
        "            write()\n"
        "    except OSError as e:\n"
        "        print(f'error: {e}')\n")
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, env=SCRIPT_ENV, capture_output=True,
                         text=True, timeout=120)
    lines = _error_lines(run.stdout)
    assert [line.split(":")[1].strip() for line in lines] == ["cannot write " + str(tmp_path / n)
                                                               for n in ("metrics.jsonl", "last.ckpt")], run.stdout
    assert all("File too large" in line and "then --resume auto" in line for line in lines), lines
    assert [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [
        {"epoch": 1, "train_loss": 1.5}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]
