"""The launcher (src/launch.py, behind run_distribute_train.sh): the rank that dies is named with how it died and
the others are stopped at once (its busy-port check: test_training_e2e). Real msrun, real processes; the ranks
are small stand-in scripts, so a hang or a survivor shows in seconds."""
import signal
import socket
import sys
import textwrap
import time

import psutil
import pytest

from src import launch

# A rank stand-in: RANK_ID 1 dies as told, every other process (rank 0, msrun's scheduler) blocks like a rank
# waiting in a collective. It writes its pid so the test can check nobody survives.
RANK = textwrap.dedent("""
    import os, sys, time
    rank, how = int(os.environ.get("RANK_ID", "0")), sys.argv[1]
    role = os.environ.get("MS_ROLE", "MS_WORKER")
    open(os.path.join(sys.argv[2], f"{role}_{rank}.pid"), "w").write(str(os.getpid()))
    print(f"[rank {rank}] started", flush=True)
    if role == "MS_WORKER" and rank == 1 and how != "none":
        time.sleep(1)
        if how == "kill":
            os.kill(os.getpid(), 9)
        print("[rank 1] error: ValueError: something the user can fix", flush=True)
        sys.exit(1)
    time.sleep(600)
""")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def _run(tmp_path, how: str, mode: list[str], capsys):
    script = tmp_path / "rank.py"
    script.write_text(RANK)
    start = time.monotonic()
    code = launch.main(["--ranks", "2", "--log_dir", str(tmp_path / "logs"), *mode, "--cwd", str(tmp_path),
                        "--", str(script), how, str(tmp_path)])
    seconds = time.monotonic() - start
    pids = [int(p.read_text()) for p in tmp_path.glob("*.pid")]
    return code, seconds, capsys.readouterr().err, pids


@pytest.mark.parametrize("mode", [pytest.param("msrun", marks=pytest.mark.slow), "rank_table"])
@pytest.mark.parametrize("how", ["kill", "exit"])
def test_a_dead_rank_is_named_and_the_others_are_stopped(tmp_path, capsys, mode, how):
    flags = ["--rank_table"] if mode == "rank_table" else ["--master_port", str(_free_port())]
    code, seconds, err, pids = _run(tmp_path, how, flags, capsys)
    assert code == 1
    ending = "was killed by SIGKILL" if how == "kill" else "exited with code 1"
    assert "error: rank 1 (pid " in err and ending in err, err
    assert err.index("rank 1 FAILED") < err.index("rank 0 did not finish")  # the cause first
    if how == "exit":
        assert "rank 1: [rank 1] error: ValueError: something the user can fix" in err
    assert seconds < 40, f"the launcher took {seconds:.0f} s to stop the ranks"  # they would block for 600 s
    assert len(pids) >= 2 and not [p for p in pids if psutil.pid_exists(p)
                                   and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


@pytest.mark.slow  # an msrun launch
def test_launcher_signal_stops_every_rank(tmp_path):
    """SIGTERM to the launcher (a cluster scheduler's job stop, or Ctrl-C) stops the ranks too: msrun starts
    each worker in a session of its own, so signalling msrun's process group would leave them running."""
    import subprocess

    script = tmp_path / "rank.py"
    script.write_text(RANK)
    proc = subprocess.Popen([sys.executable, "-m", "src.launch", "--ranks", "2", "--log_dir", str(tmp_path / "l"),
                             "--master_port", str(_free_port()), "--", str(script), "none", str(tmp_path)])
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("MS_WORKER_*.pid"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    pids = [int(p.read_text()) for p in tmp_path.glob("*.pid")]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    time.sleep(0.5)
    assert len(pids) >= 2 and not [p for p in pids if psutil.pid_exists(p)
                                   and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_how_it_ended():
    assert launch.how_it_ended(-9) == "was killed by SIGKILL"
    assert launch.how_it_ended(-11) == "was killed by SIGSEGV"
    assert launch.how_it_ended(2) == "exited with code 2"
