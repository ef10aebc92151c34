"""The launcher (src/launch.py, behind run_distribute_train.sh): the rank that dies is named with how it died and
the others are stopped at once (its busy-port check: test_training_e2e). Real msrun, real processes; the ranks
are small stand-in scripts, so a hang or a survivor shows in seconds."""
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

from helpers import ROOT
from src import launch

# A rank stand-in: the failing rank (1, or argv[3]) dies as told, every other process (rank 0, msrun's scheduler)
# blocks like a rank waiting in a collective, with a child of its own (like MindSpore's dataset workers); "finish"
# ends every process the way train.py does. It writes its pid and its child's so the test can check nobody survives.
RANK = textwrap.dedent("""
    import os, subprocess, sys, time
    rank, how = int(os.environ.get("RANK_ID", "0")), sys.argv[1]
    failing = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    role = os.environ.get("MS_ROLE", "MS_WORKER")
    open(os.path.join(sys.argv[2], f"{role}_{rank}.pid"), "w").write(str(os.getpid()))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open(os.path.join(sys.argv[2], f"child_of_{role}_{rank}.pid"), "w").write(str(child.pid))
    print(f"[rank {rank}] started", flush=True)
    if how == "finish":
        print(f"[rank {rank}] training finished", flush=True)
        child.kill()
        sys.exit(0)
    if role == "MS_WORKER" and rank == failing and how != "none":
        time.sleep(1)
        if how == "kill":
            os.kill(os.getpid(), 9)
        if how == "config":
            print("error: config key 'epochs' (--epochs) must be in [1, inf), got -3", flush=True)
            sys.exit(2)
        print("error: ValueError: something the user can fix", flush=True)  # the entry points' one line
        sys.exit(1)
    time.sleep(600)
""")


def _alive(pids: list[int]) -> list[int]:
    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def _run(tmp_path, how: str, mode: list[str], capsys, ranks: int = 2, failing: int = 1):
    script = tmp_path / "rank.py"
    script.write_text(RANK)
    start = time.monotonic()
    code = launch.main(["--ranks", str(ranks), "--log_dir", str(tmp_path / "logs"), *mode, "--cwd", str(tmp_path),
                        "--", str(script), how, str(tmp_path), str(failing)])
    seconds = time.monotonic() - start
    pids = [int(p.read_text()) for p in tmp_path.glob("*.pid")]
    time.sleep(0.2)
    out = capsys.readouterr()
    return code, seconds, out.err, pids, out.out


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
@pytest.mark.parametrize("how,mode", [  # msrun: a launch each (about 14 s), CI the kill, `long` the exit
    ("kill", "rank_table"), ("exit", "rank_table"), pytest.param("kill", "msrun", marks=pytest.mark.slow),
    pytest.param("exit", "msrun", marks=pytest.mark.long)])
def test_a_dead_rank_is_named_and_the_others_are_stopped(tmp_path, capsys, mode, how):
    flags = ["--rank_table"] if mode == "rank_table" else ["--master_port", str(launch.free_port())]
    code, seconds, err, pids, out = _run(tmp_path, how, flags, capsys)
    assert code == 1
    ending = "was killed by SIGKILL" if how == "kill" else "exited with code 1"
    assert "error: rank 1 (pid " in err and ending in err, err
    assert err.index("rank 1 FAILED") < err.index("rank 0 was stopped")  # the cause first
    if how == "exit":  # the rank's own error line, once: in the summary (not on msrun's console, not in a tail)
        assert "exited with code 1: ValueError: something the user can fix; the other ranks were stopped" in err
        assert (out + err).count("something the user can fix") == 1, out + err
    assert seconds < 40, f"the launcher took {seconds:.0f} s to stop the ranks"  # they would block for 600 s
    assert len(pids) >= 4 and not _alive(pids)


def _start_launcher(tmp_path, mode: list[str], ranks: int) -> subprocess.Popen:
    """The launcher as a process of its own (it installs signal handlers), its ranks blocking."""
    script = tmp_path / "rank.py"
    script.write_text(RANK)
    return subprocess.Popen([sys.executable, "-m", "src.launch", "--ranks", str(ranks), "--log_dir",
                             str(tmp_path / "l"), *mode, "--resume_command", "bash run.sh DATA --resume auto", "--",
                             str(script), "none", str(tmp_path)], cwd=ROOT, stderr=subprocess.PIPE, text=True)


def _wait_for(tmp_path, pattern: str, count: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while len(list(tmp_path.glob(pattern))) < count and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
@pytest.mark.parametrize("sig,mode", [  # msrun: CI sends SIGTERM, `long` SIGINT
    (signal.SIGTERM, "single"), (signal.SIGINT, "single"),
    pytest.param(signal.SIGTERM, "msrun", marks=pytest.mark.slow),
    pytest.param(signal.SIGINT, "msrun", marks=pytest.mark.long)])
def test_launcher_signal_stops_every_rank_and_says_how_to_resume(tmp_path, mode, sig):
    """SIGTERM to the launcher (a cluster scheduler's job stop) or SIGINT (Ctrl-C) stops the ranks and their
    children too: msrun starts each worker in a session of its own, so signalling msrun's process group would
    leave them running. One line says what happened and how to resume."""
    ranks = 2 if mode == "msrun" else 1
    flags = ["--master_port", str(launch.free_port())] if mode == "msrun" else ["--single"]
    proc = _start_launcher(tmp_path, flags, ranks)
    _wait_for(tmp_path, "child_of_MS_WORKER_*.pid", ranks)
    pids = [int(p.read_text()) for p in tmp_path.glob("*.pid")]
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == 128 + sig
    err = proc.stderr.read()
    time.sleep(0.5)
    assert len(pids) >= 2 * ranks and not _alive(pids)
    assert err.strip().splitlines()[-1] == (f"stopped by {sig.name}; every rank was stopped; resume with: "
                                            f"bash run.sh DATA --resume auto"), err
    assert err.count("stopped by") == 1, err


def test_msrun_port_default_busy_free_and_requested():
    """MASTER_PORT unset: the default when free, else a free port, said in one line; MASTER_PORT set and busy:
    refused (every node of a multi-node job must use the same port)."""
    free = launch.free_port()
    assert launch.msrun_port(None, default=free) == (free, f"msrun port {free} (set MASTER_PORT to choose another)")
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        port, line = launch.msrun_port(None, default=taken)
        assert port != taken and not launch.port_in_use(port)
        assert line == f"msrun port {port}: {taken} is in use (another training run?); set MASTER_PORT to choose one"
        port, line = launch.msrun_port(taken)
        assert port is None and line.startswith(f"error: MASTER_PORT {taken} is in use")


@pytest.mark.slow  # an msrun launch
def test_msrun_launch_works_while_the_default_port_is_busy(tmp_path, capsys):
    with socket.socket() as busy:  # another run's msrun holding the default port
        busy.bind(("", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        code, _, err, pids, out = _run(tmp_path, "finish", ["--default_port", str(taken)], capsys)
    assert code == 0, out + err
    assert f": {taken} is in use (another training run?); set MASTER_PORT to choose one" in out
    assert "[rank 0] training finished" in out and "[rank 1] training finished" in out
    assert out.strip().splitlines()[-1] == "all 2 ranks finished"


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_a_rank_config_error_is_named_as_one_and_exits_2(tmp_path, capsys):
    code, _, err, pids, _ = _run(tmp_path, "config", ["--rank_table"], capsys)
    assert code == 2
    assert err.splitlines()[0].startswith("error: rank 1 (pid ") and err.splitlines()[0].endswith(
        "exited with code 2, a configuration error: config key 'epochs' (--epochs) must be in [1, inf), got -3; "
        "the other ranks were stopped"), err
    assert not _alive(pids)


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
@pytest.mark.parametrize("how,code", [("config", 2), ("exit", 1), ("kill", 1)])
def test_single_process_failure_is_said_once(tmp_path, capsys, how, code):
    """One process without msrun (one device): its output is on the console as it comes, so the launcher adds
    an error line only when the process printed none of its own (killed by a signal)."""
    got, _, err, pids, out = _run(tmp_path, how, ["--single"], capsys, ranks=1, failing=0)
    assert got == code
    console = out + err
    assert console.count("error: ") == 1, console
    if how == "kill":
        assert "error: the training (pid " in err and "was killed by SIGKILL" in err
    else:  # its own line, on the console and in its log
        assert "error: " in out and "error: " in (tmp_path / "logs" / "worker_0.log").read_text()
    assert not _alive(pids)


def test_a_line_the_reader_queues_after_the_exit_is_seen_still_reaches_console_and_log(tmp_path, capsys):
    """The process has exited (a child of it holds the pipe open: no EOF) and its last line reaches the reader
    thread only once the launcher has seen the exit: it must still be printed and logged, not dropped."""
    exit_seen = threading.Event()

    class Exited:  # a Popen whose process is gone, its last line arriving late
        pid = 1

        def __init__(self) -> None:
            self.stdout = self._lines()

        @staticmethod
        def _lines():
            yield "[rank 0] started\n"
            exit_seen.wait(30)
            yield "error: config key 'epochs' must be >= 1\n"
            time.sleep(600)  # the pipe held open

        def poll(self) -> int:
            exit_seen.set()
            return 2

    with open(tmp_path / "worker_0.log", "w") as log:
        list(launch._output(Exited(), launch.StopRequest(), log))
    assert "error: config key" in capsys.readouterr().out
    assert "error: config key" in (tmp_path / "worker_0.log").read_text()


def test_a_rank_failure_says_each_error_once_and_what_became_of_each_rank(tmp_path, capsys):
    """Four ranks: rank 1 fails first, rank 0 with the same error, rank 2 with another, rank 3 was stopped by the
    launcher. Each error once (rank 0's was printed again in its tail, and rank 0 called 'did not finish'), no
    progress lines; a tail only for a rank whose log says why it failed in no error line of its own."""
    progress = "12:00:01 [rank {r}] epoch 1/3 step 2/6 loss 1.3863 lr 0.001000 img/s 12.0 eta 00:01:02\n"
    logs = {0: "error: data/val not found\n", 1: "error: data/val not found\n", 2: "error: out of memory\n", 3: ""}
    for rank, text in logs.items():
        (tmp_path / f"worker_{rank}.log").write_text(progress.format(r=rank) + "[INFO] ME(1) framework\n" + text)
    assert launch.report(launch.Failure(1, 99, 1), launch.Layout(4), tmp_path) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: rank 1 (pid 99) exited with code 1: data/val not found; the other ranks were stopped",
        f"rank 1 FAILED; see {tmp_path / 'worker_1.log'}",
        f"rank 0 failed too, with the same error; see {tmp_path / 'worker_0.log'}",
        f"rank 2 failed too: out of memory; see {tmp_path / 'worker_2.log'}",
        f"rank 3 was stopped; see {tmp_path / 'worker_3.log'}"]
    (tmp_path / "worker_1.log").write_text(progress.format(r=1) + "Traceback (most recent call last):\n"
                                           "  File \"train.py\", line 1\nKeyError: 'x'\n")
    assert launch.report(launch.Failure(1, 99, 1), launch.Layout(2), tmp_path) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: rank 1 (pid 99) exited with code 1; the other ranks were stopped",
        f"rank 1 FAILED; see {tmp_path / 'worker_1.log'}",
        "  rank 1: Traceback (most recent call last):", '  rank 1:   File "train.py", line 1', "  rank 1: KeyError: 'x'",
        f"rank 0 failed too: data/val not found; see {tmp_path / 'worker_0.log'}"]


@pytest.mark.slow  # processes
def test_a_rerun_keeps_the_previous_runs_logs(tmp_path, capsys):
    """A resumed (or re-run) standalone training truncated its log (msrun's ranks' logs too): the previous one is
    kept as worker_0.log.1, and the console says so."""
    for run in ("first", "second"):
        code, _, _, _, out = _run(tmp_path, "finish", ["--single"], capsys, ranks=1)
        assert code == 0 and (run == "first") == ("kept as" not in out), out
        with (tmp_path / "logs" / "worker_0.log").open("a") as log:
            log.write(f"{run} run\n")
    assert (tmp_path / "logs" / "worker_0.log.1").read_text().endswith("first run\n")
    assert (tmp_path / "logs" / "worker_0.log").read_text().endswith("second run\n")
    assert "the previous logs in" in out and "are kept as worker_0.log.1" in out


def test_how_it_ended():
    assert launch.how_it_ended(-9) == "was killed by SIGKILL"
    assert launch.how_it_ended(-11) == "was killed by SIGSEGV"
    assert launch.how_it_ended(2) == "exited with code 2"


# A rank-table rank stand-in: says which rank, device and world size the launcher gave it, and finishes.
RANK_TABLE_RANK = ("import os; print(f\"rank {os.environ['RANK_ID']} device {os.environ['DEVICE_ID']} size "
                   "{os.environ['RANK_SIZE']}\"); print('training finished')")


@pytest.mark.slow  # 16 processes
@pytest.mark.parametrize("offset", ["node_rank", "RANK_START"])
def test_a_two_server_rank_table_launches_16_distinct_ranks(tmp_path, capsys, monkeypatch, offset):
    """Two servers x 8 devices of one rank table: server 1's ranks are 8..15 (NODE_RANK x DEVICE_NUM, or the model
    zoo's RANK_START), device ids 0..7 on each, RANK_SIZE 16, and each server's logs are named by global rank."""
    script = tmp_path / "rank.py"
    script.write_text(RANK_TABLE_RANK)
    seen = []
    for server in (0, 1):
        if offset == "RANK_START":
            monkeypatch.setenv("RANK_START", str(8 * server))
        code = launch.main(["--ranks", "8", "--nodes", "2", "--node_rank", str(server), "--rank_table", "--log_dir",
                            str(tmp_path / f"server{server}"), "--cwd", str(tmp_path), "--", str(script)])
        out = capsys.readouterr()
        assert code == 0, out
        assert out.out.strip().splitlines()[-1] == f"all 8 rank(s) of node {server} finished (16 on 2 nodes)"
        for log in sorted((tmp_path / f"server{server}").glob("worker_*.log")):
            rank, device, size = log.read_text().split()[1:6:2]
            assert log.name == f"worker_{rank}.log" and size == "16"
            seen.append((int(rank), int(device)))
    assert sorted(seen) == [(rank, rank % 8) for rank in range(16)]


@pytest.mark.parametrize("argv,message", [
    (["--node_rank", "2"], "error: NODE_RANK must be in [0, NODE_NUM - 1] = [0, 1], got 2"),
    (["--node_rank", "1", "--master_addr", "127.0.0.1"], "error: MASTER_ADDR 127.0.0.1 is this machine, but"),
    (["--node_rank", "0", "--master_addr", "192.0.2.1"], "error: MASTER_ADDR 192.0.2.1 is not an address of this"),
    (["--node_rank", "0"], "error: MASTER_PORT is not set: a multi-node job needs the same MASTER_PORT on every node"),
])
def test_an_impossible_multi_node_layout_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    """Before anything starts (the port too: a missing one cannot be guessed for the other nodes)."""
    port = [] if argv == ["--node_rank", "0"] else ["--master_port", str(launch.free_port())]
    code = launch.main(["--ranks", "2", "--nodes", "2", *argv, *port, "--log_dir", str(tmp_path / "l"), "--",
                        "s.py"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(message) and err.count("\n") == 1, err
    assert not (tmp_path / "l").exists()


def test_msrun_command_across_nodes():
    """One node: msrun's command as before; several: the world in --worker_num, this node's ranks in
    --local_worker_num, and --master_addr / --node_rank (msrun then names the logs by global rank)."""
    one = launch.msrun_command(launch.Layout(2), 8118, launch.Path("L"), ["t.py"])
    assert one == ["msrun", "--worker_num=2", "--local_worker_num=2", "--master_port=8118", "--log_dir=L",
                   "--join=True", "t.py"]
    two = launch.msrun_command(launch.Layout(8, 2, 1, 8), 8118, launch.Path("L"), ["t.py"], "10.0.0.1", 60)
    assert two == ["msrun", "--worker_num=16", "--local_worker_num=8", "--master_port=8118", "--master_addr=10.0.0.1",
                   "--node_rank=1", "--cluster_time_out=60", "--log_dir=L", "--join=True", "t.py"]
    assert launch.msrun_port(None, nodes=2)[0] is None  # every node must be given the same port
    with socket.socket() as busy:  # node 0's scheduler binds the port; elsewhere it is node 0's, not ours
        busy.bind(("", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert launch.msrun_port(taken, nodes=2, hosts_scheduler=False)[0] == taken
        assert launch.msrun_port(taken, nodes=2, hosts_scheduler=True)[0] is None


def test_word_from_another_node_in_this_nodes_logs(tmp_path):
    """What makes node 1's launcher (ranks 8..15) stop at once: MindSpore's lines naming a rank elsewhere (or node
    0's scheduler gone), read as complete lines only, each once; a rank of its own is its own failure, not this."""
    node1 = launch.Layout(8, 2, 1, 8)
    log = tmp_path / "worker_9.log"
    watch = launch.LogWatch([tmp_path / "scheduler.log", log])
    assert watch.new() == ""  # nothing written yet
    log.write_text("[ERROR] ... RunRingAllReduce] Ring ReduceScatter wait receiving [10,1627] fa")
    assert watch.new() == ""  # a line still being written
    with log.open("a") as f:
        f.write("iled.\n")
    text = watch.new()
    assert text.endswith("failed.\n") and watch.new() == ""
    assert not launch.failed_elsewhere(text, node1)  # rank 10 is on this node
    assert launch.failed_elsewhere("Ring ReduceScatter wait receiving [3,1627] failed.", node1)
    assert launch.failed_elsewhere("Heartbeat] Failed to connect to the meta server. Maybe it has exited.", node1)
    node0 = launch.Layout(8, 2, 0, 0)
    assert launch.failed_elsewhere("UpdateTopoState] The node: 12 is timed out.", node0)
    assert not launch.failed_elsewhere("UpdateTopoState] The node: 5 is timed out.", node0)
    assert launch.failed_elsewhere("RuntimeError: Failed to initialize distributed job cluster because", node0)
