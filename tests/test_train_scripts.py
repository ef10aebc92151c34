"""The training scripts as a user runs them (scripts/run_distribute_train.sh, run_standalone_train.sh) with the
real train.py: a config error is refused once before any rank starts; Ctrl-C or SIGTERM to the script's pid stops
every process of the run and prints the command that resumes it; MASTER_PORT unset survives a busy 8118; one
device trains once. The launcher's own cases (stand-in ranks, seconds each) are in test_launch.py."""
import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from helpers import ROOT, SCRIPT_ENV

# Small and slow enough to be stopped mid-run: 4 demo classes at 32 px, many epochs.
SMALL = ["--device_target", "CPU", "--image_size", "32", "--batch_size", "8", "--num_parallel_workers", "1",
        "--log_interval", "2", "--num_classes", "4"]
ENV = {k: v for k, v in SCRIPT_ENV.items() if k != "MASTER_PORT"}  # the launcher chooses


def _script(name: str, *args: str, out: Path, log: Path) -> subprocess.Popen:
    """The script in a session of its own (Ctrl-C reaches a terminal's foreground process group: this one)."""
    with open(log.with_suffix(".out"), "w") as stdout, open(log.with_suffix(".err"), "w") as stderr:
        return subprocess.Popen(["bash", f"scripts/{name}", *args, *SMALL, "--output_dir", str(out)], cwd=ROOT,
                                env=ENV, stdout=stdout, stderr=stderr, start_new_session=True)


def _wait_for_training(logs: list[Path], proc: subprocess.Popen, seconds: float = 300) -> None:
    """Until every rank logged its steps per epoch: the collective init and the data pipeline are up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        if all(log.is_file() and "steps/epoch" in log.read_text(errors="replace") for log in logs):
            return
        time.sleep(0.5)
    raise AssertionError(f"the ranks did not start training (exit code {proc.poll()})")


def _alive(processes: list[psutil.Process]) -> list[str]:
    alive = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(" ".join(process.cmdline()))
        except psutil.NoSuchProcess:
            pass
    return alive


@contextmanager
def _default_port_busy():
    """Another run's msrun on 8118 — or whatever already holds it, which is just as busy."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a finished run's TIME_WAIT is no listener
    try:
        sock.bind(("", 8118))
        sock.listen()
    except OSError:
        pass
    try:
        yield
    finally:
        sock.close()


def _stop(proc: subprocess.Popen, sig: signal.Signals) -> tuple[list[psutil.Process], list[str]]:
    """Send ``sig`` as a user would (SIGTERM to the script's pid; Ctrl-C: SIGINT to the terminal's process group),
    after reading the process tree it must take down; that tree and its command lines."""
    root = psutil.Process(proc.pid)
    tree = [root, *root.children(recursive=True)]
    commands = [" ".join(p.cmdline()) for p in tree]
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    return tree, commands


@pytest.mark.slow  # an msrun launch that trains
@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.long)])
def test_a_signal_to_the_distribute_script_stops_every_rank_and_says_how_to_resume(demo_data, tmp_path, sig):
    out = tmp_path / "out"
    with _default_port_busy():
        proc = _script("run_distribute_train.sh", str(demo_data), "configs/demo.yaml", "2", "--epochs", "50",
                       out=out, log=tmp_path / "console")
        _wait_for_training([out / "logs" / f"worker_{r}.log" for r in range(2)], proc)
        tree, commands = _stop(proc, sig)
        code = proc.wait(timeout=60)
    console, err = (tmp_path / "console.out").read_text(), (tmp_path / "console.err").read_text()
    assert code == 128 + sig, console[-2000:] + err
    assert "8118 is in use (another training run?); set MASTER_PORT to choose one" in console, console[:2000]
    # the script's pid is the launcher; below it msrun, its scheduler, the two workers (and their children)
    assert len(tree) >= 5 and "src.launch" in commands[0], commands
    time.sleep(0.5)
    assert not _alive(tree), _alive(tree)
    stopped = [line for line in err.splitlines() if line.startswith("stopped by")]
    assert stopped == [f"stopped by {sig.name}; every rank was stopped; resume with: bash "
                       f"scripts/run_distribute_train.sh {demo_data} configs/demo.yaml 2 --epochs 50 {' '.join(SMALL)} "
                       f"--output_dir {out} --resume auto"], err


@pytest.mark.slow  # trains
def test_a_signal_to_the_standalone_script_stops_the_training_and_says_how_to_resume(demo_data, tmp_path):
    out = tmp_path / "out"
    proc = _script("run_standalone_train.sh", str(demo_data), "configs/demo.yaml", "--epochs", "50", "--resume",
                   "", out=out, log=tmp_path / "console")
    _wait_for_training([out / "logs" / "worker_0.log"], proc)
    tree, commands = _stop(proc, signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    time.sleep(0.5)
    assert len(tree) >= 2 and "src.launch" in commands[0] and not _alive(tree), (commands, _alive(tree))
    err = (tmp_path / "console.err").read_text()
    assert err.strip().splitlines()[-1] == (
        f"stopped by SIGTERM; every rank was stopped; resume with: bash scripts/run_standalone_train.sh {demo_data} "
        f"configs/demo.yaml --epochs 50 {' '.join(SMALL)} --output_dir {out} --resume auto"), err


@pytest.mark.slow  # trains
def test_one_device_trains_once(demo_data, tmp_path):
    """msrun with one worker runs the script in its scheduler too: two trainings into one output_dir."""
    out = tmp_path / "out"
    proc = _script("run_distribute_train.sh", str(demo_data), "configs/demo.yaml", "1", "--epochs", "1", out=out,
                   log=tmp_path / "console")
    code = proc.wait(timeout=900)
    console = (tmp_path / "console.out").read_text()
    assert code == 0, console[-3000:] + (tmp_path / "console.err").read_text()
    assert console.count("training finished") == 1, console
    assert [p.name for p in (out / "logs").iterdir()] == ["worker_0.log"]
    assert (out / "metrics.jsonl").read_text().count('"epoch": 1,') == 1


@pytest.mark.parametrize("script", ["run_distribute_train.sh", "run_standalone_train.sh"])
@pytest.mark.parametrize("case,message", [
    ("--no_such_key 1", "unknown config key 'no_such_key'"),
    ("--epochs -3", "config key 'epochs' (--epochs) must be in [1, inf), got -3"),
    ("--model tinynet_z", "config key 'model': unknown model 'tinynet_z'"),
    ("holds_checkpoints", "holds another run's checkpoints (last.ckpt): pass --resume auto"),
])
@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_a_config_error_is_refused_once_before_any_rank_starts(demo_data, tmp_path, script, case, message):
    out = tmp_path / "out"
    extra = case.split() if case.startswith("--") else []
    if case == "holds_checkpoints":
        (out / "checkpoints").mkdir(parents=True)
        (out / "checkpoints" / "last.ckpt").write_bytes(b"")
    devices = ["2"] if script == "run_distribute_train.sh" else []
    run = subprocess.run(["bash", f"scripts/{script}", str(demo_data), "configs/demo.yaml", *devices, *SMALL, *extra,
                          "--output_dir", str(out)], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.count("error: ") == 1 and message in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert not run.stdout and not list(out.glob("logs/*.log"))


def test_resume_command_drops_the_old_resume_and_quotes_for_a_shell():
    words = ["bash", "scripts/run_distribute_train.sh", "/my data", "c.yaml", "2", "--resume", "x.ckpt", "--epochs",
             "3", "--resume=auto", "--output_dir", "o"]
    run = subprocess.run(["bash", "-c", 'source scripts/common.sh && resume_command "$@"', "-", *words], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.stdout == ("bash scripts/run_distribute_train.sh /my\\ data c.yaml 2 --epochs 3 --output_dir o "
                          "--resume auto\n"), run.stderr
