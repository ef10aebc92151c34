"""One writer per output (issue 33): a training's output_dir, a cube search's directory, an exported or quantized
file are locked by whoever writes them (tinynet_ms.atomic's one lock), a second writer is refused at once with one
line naming who holds it; the ranks of one launch share their launcher's lock. What a refused or resumed run finds
of the previous run (its logs, its metrics/curves/config) is kept. The launcher's own cases: test_launch.py."""
import os
import re
import signal
import subprocess
import sys

import pytest

from helpers import ROOT, write_tiny_onnx
from src import launch
from src.config import ConfigError
from src.context import RunContext
from src.trainer import check_output_dir
from tinynet_ms.atomic import LOCK_TOKEN_ENV, InUse, lock_directory, lock_output_file

IN_USE = "is in use by another training (pid {pid}): wait for it to finish or stop it, or choose another --output_dir"


def test_one_writer_holds_a_directory_and_the_processes_of_its_job_share_it(tmp_path, monkeypatch):
    monkeypatch.delenv(LOCK_TOKEN_ENV, raising=False)
    held = launch.lock_output_dir(tmp_path / "out")
    with pytest.raises(InUse, match=f"^{re.escape(repr(str(tmp_path / 'out')))} "
                                    f"{re.escape(IN_USE.format(pid=os.getpid()))}$"):
        launch.lock_output_dir(tmp_path / "out")
    monkeypatch.setenv(LOCK_TOKEN_ENV, "another job")
    with pytest.raises(InUse):
        lock_directory(tmp_path / "out", "training", "wait")
    monkeypatch.setenv(LOCK_TOKEN_ENV, held.token)  # a rank its launcher started
    with lock_directory(tmp_path / "out", "training", "wait") as share:
        assert share.fd is None and share.token == held.token
    held.release()
    monkeypatch.delenv(LOCK_TOKEN_ENV)
    with launch.lock_output_dir(tmp_path / "out"):  # free again
        pass
    with lock_output_file(tmp_path / "m.onnx", "export"):  # a file's lock: removed when released
        with pytest.raises(InUse, match=f"^{tmp_path / 'm.onnx'} is in use by another export "):
            lock_output_file(tmp_path / "m.onnx", "quantization")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    (tmp_path / "a_file").write_text("")
    with pytest.raises(OSError, match=rf"^{re.escape(str(tmp_path / 'a_file' / 'm.onnx'))} cannot be written \("):
        lock_output_file(tmp_path / "a_file" / "m.onnx", "export")  # named as the output, not as its lock file


def test_a_node_starting_while_the_holder_writes_its_token_still_joins(tmp_path, monkeypatch):
    """The nodes of a multi-node job start at the same moment: node 0 found node 1's launcher holding the shared
    output_dir's lock before it had written its job token, and was refused ('in use by another process')."""
    import fcntl
    import json
    import threading

    (tmp_path / ".lock").write_text("")
    fd = os.open(tmp_path / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # held, nothing written yet
    job = "msrun 10.0.0.1:8118 x2"
    writer = threading.Timer(0.3, os.pwrite, (fd, json.dumps({"holder": "training", "pid": 1, "token": job}).encode(),
                                              0))
    writer.start()
    try:
        assert launch.lock_output_dir(tmp_path, job=job).fd is None  # a share in node 1's lock
    finally:
        writer.join()
        os.close(fd)


@pytest.mark.slow  # a process
def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from src.launch import lock_output_dir; "
                               f"lock_output_dir({str(tmp_path)!r}); print('held', flush=True); time.sleep(600)"],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(InUse, match=f"pid {holder.pid}"):
            launch.lock_output_dir(tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with launch.lock_output_dir(tmp_path):
        pass


def _train_args(data, out) -> list[str]:
    return ["--config_path", str(ROOT / "configs" / "demo.yaml"), "--data_path", str(data), "--device_target", "CPU",
            "--output_dir", str(out)]


def test_a_training_into_a_directory_in_use_is_refused_before_it_touches_it(tmp_path, capsys, monkeypatch):
    """Two trainings into one output_dir both ran to the end, interleaving metrics.jsonl, each replacing the other's
    config and best.ckpt (and the second one's start removed the first one's in-flight temporaries)."""
    from src.app import run_app
    from src.trainer import run_training

    monkeypatch.delenv(LOCK_TOKEN_ENV, raising=False)
    out = tmp_path / "out"
    held = launch.lock_output_dir(out)  # the first run's (its launcher's, or its train.py's)
    (out / "metrics.jsonl").write_text('{"epoch": 1}\n')
    (out / ".metrics.x1y2.jsonl").write_text("being written")
    try:
        assert run_app(run_training, _train_args(tmp_path / "data", out), "", "train.py") == 2
    finally:
        held.release()
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: '{out}' " + IN_USE.format(pid=os.getpid())], err
    assert sorted(p.name for p in out.iterdir()) == [".lock", ".metrics.x1y2.jsonl", "checkpoints", "metrics.jsonl"]


def test_the_scripts_check_names_a_directory_in_use_as_such(tmp_path, capsys, monkeypatch):
    """The scripts' check before launching: a directory a run is writing is 'in use', not 'holds another run's
    files' (the way out it named, --resume auto, would only be refused next); a clean one held by the job's node 0
    (a multi-node job's shared directory) passes."""
    from src.app import main

    monkeypatch.delenv(LOCK_TOKEN_ENV, raising=False)
    out = tmp_path / "out"
    with launch.lock_output_dir(out):
        assert main(["--entry", "train.py", "--get", "output_dir", "--", *_train_args(tmp_path, out)]) == 0
        assert capsys.readouterr().out == f"{out}\n"
        (out / "config.yaml").write_text("the running run's\n")
        assert main(["--entry", "train.py", "--get", "output_dir", "--", *_train_args(tmp_path, out)]) == 2
        assert capsys.readouterr().err.splitlines() == [f"error: '{out}' " + IN_USE.format(pid=os.getpid())]


def test_a_second_launch_is_refused_before_any_rank_starts_and_the_logs_stay(tmp_path, capsys, monkeypatch):
    """The scripts' launcher takes the output_dir's lock first: a second job into it is refused with one line and
    exit 2 before any rank starts (and before the logs of the run in there are touched)."""
    monkeypatch.delenv(LOCK_TOKEN_ENV, raising=False)
    out = tmp_path / "out"
    (out / "logs").mkdir(parents=True)
    (out / "logs" / "worker_0.log").write_text("the running job's log\n")
    with launch.lock_output_dir(out):
        for mode in (["--single"], ["--rank_table"], ["--master_port", "1"]):
            code = launch.main(["--ranks", "1", "--log_dir", str(out / "logs"), "--output_dir", str(out), *mode,
                                "--", "-c", f"open({str(tmp_path / 'started')!r}, 'w')"])
            captured = capsys.readouterr()
            assert code == 2 and captured.err.splitlines() == [f"error: '{out}' " + IN_USE.format(pid=os.getpid())]
            assert not captured.out
    assert not (tmp_path / "started").exists()
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["worker_0.log"]
    assert (out / "logs" / "worker_0.log").read_text() == "the running job's log\n"


def test_the_search_export_and_quantize_take_the_same_locks(tmp_path, demo_data, capsys, monkeypatch):
    """A cube search and a training exclude each other from a directory; an export and a quantization writing one
    file exclude each other (either would replace the file, or its sidecar, under the other's check)."""
    from src.app import run_app
    from src.exporting import run_export
    from src.search import lock
    from tinynet_ms.quantize import main as quantize

    monkeypatch.delenv(LOCK_TOKEN_ENV, raising=False)
    with launch.lock_output_dir(tmp_path / "search"):
        with pytest.raises(InUse, match="is in use by another training"):
            lock(tmp_path / "search")
    os.close(lock(tmp_path / "search"))

    model = write_tiny_onnx(tmp_path / "float.onnx", num_classes=4)
    target = tmp_path / "net.onnx"
    with lock_output_file(target, "quantization"):
        assert run_app(run_export, ["--config_path", str(ROOT / "configs" / "demo.yaml"), "--checkpoint_path",
                                    str(tmp_path / "w.ckpt"), "--file_name", str(tmp_path / "net"), "--file_format",
                                    "ONNX"], "", "export.py") == 2
        assert capsys.readouterr().err.splitlines() == [
            f"error: {target} is in use by another quantization (pid {os.getpid()}): wait for it to finish, or write "
            f"another file"]
    with lock_output_file(target, "export"):
        assert quantize([str(model), "--data", str(demo_data), "--num_calib", "4", "--runs", "1", "--output",
                         str(target)]) == 2
        assert capsys.readouterr().err.splitlines()[-1].startswith(f"error: {target} is in use by another export")
    assert not target.exists()


def _old_files(out, *names):
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        (out / name).write_text("the other run's\n")


@pytest.mark.parametrize("names", [("metrics.jsonl",), ("curves.png",), ("config.yaml",),
                                   ("metrics.jsonl", "curves.png", "config.yaml")])
def test_metrics_curves_or_config_without_checkpoints_are_another_runs(tmp_path, names):
    """An output_dir holding only another run's metrics.jsonl / curves.png / config.yaml (no checkpoints) was taken
    over silently: refused as a checkpoint is, unless --resume auto (that run, killed before its first checkpoint,
    starts again in place) or --overwrite true (they are deleted first)."""
    from types import SimpleNamespace

    out = tmp_path / "out"
    _old_files(out, *names)
    cfg = SimpleNamespace(output_dir=str(out), resume="", overwrite=False)
    with pytest.raises(ConfigError, match=rf"^output_dir '{out}' holds another run's files \({', '.join(names)}; no "
                                          rf"checkpoint\): pass --resume auto to continue it, --overwrite true"):
        check_output_dir(cfg, RunContext("CPU"))
    with pytest.raises(ConfigError, match="holds another run's files"):  # the scripts' check before the launch
        check_output_dir(cfg, RunContext("CPU", rank=1, world=2), only_check=True)
    assert all((out / name).read_text() == "the other run's\n" for name in names)
    # a rank > 0 starting after its rank 0 wrote this run's config.yaml: rank 0 decided already
    check_output_dir(cfg, RunContext("CPU", rank=1, world=2))
    check_output_dir(SimpleNamespace(output_dir=str(out), resume="auto", overwrite=False), RunContext("CPU"))
    check_output_dir(SimpleNamespace(output_dir=str(out), resume="", overwrite=True), RunContext("CPU"))
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints"]


def test_rotated_logs_keep_every_previous_run(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    for run in ("first", "second", "third"):
        assert launch.rotate_logs(logs, ["worker_0.log", "worker_1.log", "scheduler.log"]) == (
            [] if run == "first" else ["worker_0.log.1", "worker_1.log.1"])
        for rank in (0, 1):
            (logs / f"worker_{rank}.log").write_text(f"{run} run, rank {rank}\n")
        (logs / "scheduler.log").write_text("")  # an empty log is not kept
    assert (logs / "worker_1.log").read_text() == "third run, rank 1\n"
    assert (logs / "worker_1.log.1").read_text() == "second run, rank 1\n"
    assert (logs / "worker_1.log.2").read_text() == "first run, rank 1\n"
