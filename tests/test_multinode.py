"""Multi-node training (issue 32) across real network hosts: two "servers" on this machine as network namespaces
joined by a veth pair, each with an address of its own, each running ``run_distribute_train.sh DATA CONFIG 1`` as
one node (NODE_NUM=2, NODE_RANK=0/1, MASTER_ADDR = node 0's address). msrun's dynamic cluster connects them over
that link only: nothing leaves the namespaces. Needs root (``ip netns``); skips with the reason otherwise.

Each test here launches msrun on two nodes (a minute or more on 2 cores): CI runs the training and one fault
direction; the shared-directory resume and the other direction are the `long` tier's."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from helpers import FAST, ROOT, SCRIPT_ENV, TWO_WORKERS

pytestmark = pytest.mark.slow

ADDRESSES = ("10.231.0.1", "10.231.0.2")  # only inside the namespaces
PORT = 29517  # node 0's namespace is fresh: any port is free there
STOP_SECONDS = 30  # the bound for every node to stop after a rank died
DIGEST = re.compile(r"weights digest (\w+)")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def hosts() -> Iterator[tuple[str, str]]:
    """Two namespaces (names unique to this process, so parallel runs do not collide) joined by a veth pair with
    10.231.0.1/24 and 10.231.0.2/24 and loopback up in each; deleted afterwards (the pair goes with them)."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (CI runs this test as root)")
    if shutil.which("ip") is None:
        pytest.skip("no 'ip' command (iproute2) for network namespaces")
    tag = os.getpid()
    names, links = (f"tn{tag}_0", f"tn{tag}_1"), (f"tv{tag}a", f"tv{tag}b")

    def teardown() -> None:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)

    try:
        for name in names:
            _ip("netns", "add", name)
        _ip("link", "add", links[0], "type", "veth", "peer", "name", links[1])
        for name, link, address in zip(names, links, ADDRESSES):
            _ip("link", "set", link, "netns", name)
            _ip("-n", name, "addr", "add", f"{address}/24", "dev", link)
            _ip("-n", name, "link", "set", link, "up")
            _ip("-n", name, "link", "set", "lo", "up")
    except subprocess.CalledProcessError as exc:
        teardown()
        subprocess.run(["ip", "link", "del", links[0]], capture_output=True)
        pytest.skip(f"cannot create network namespaces: {' '.join(exc.cmd)}: {exc.stderr.strip()}")
    yield names
    teardown()


def _node(hosts: tuple[str, str], rank: int, data: Path, out: Path, *extra: str,
          env: dict[str, str] | None = None, flags: tuple[str, ...] = (*FAST, "--num_classes", "4")) -> subprocess.Popen:
    """Node ``rank`` of two, one device, in its namespace, train.py ``flags`` then ``extra``; its console to
    ``out``.node<rank> (read by the test; two nodes may share ``out``, as on a shared filesystem)."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**SCRIPT_ENV, "NODE_NUM": "2", "NODE_RANK": str(rank), "MASTER_ADDR": ADDRESSES[0],
           "MASTER_PORT": str(PORT), **(env or {})}
    cmd = ["ip", "netns", "exec", hosts[rank], "bash", "scripts/run_distribute_train.sh", str(data),
           "configs/demo.yaml", "1", *flags, "--output_dir", str(out), *extra]
    with open(f"{out}.node{rank}", "w") as console:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=console, stderr=subprocess.STDOUT)


def _console(out: Path, rank: int) -> str:
    return Path(f"{out}.node{rank}").read_text()


def _losses(out: Path) -> list[float]:
    return [json.loads(line)["train_loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def _digest(log: Path) -> str:
    return DIGEST.search(log.read_text()).group(1)


def _trainers(out: Path) -> list[psutil.Process]:
    """The train.py processes (ranks, msrun's scheduler) of the run writing to ``out``."""
    found = []
    for process in psutil.process_iter():
        try:
            if "train.py" in " ".join(process.cmdline()) and str(out) in process.cmdline():
                found.append(process)
        except psutil.Error:
            pass
    return found


def test_two_nodes_train_like_one_node_with_two_workers(hosts, messy_data, two_worker_run, tmp_path):
    """2 nodes x 1 worker == 1 node x 2 workers (the CI's msrun run), same data, seed and flags: the same per-epoch
    train losses, bit for bit (tolerance 0: the same global batch is split over the same two ranks, and the
    all-reduce sums two values), and the same final weights digest on every rank. Global rank 0 (node 0) alone
    writes metrics and checkpoints; each node keeps its own rank's log, named by global rank."""
    nodes = [_node(hosts, rank, messy_data, tmp_path / f"node{rank}", flags=tuple(TWO_WORKERS)) for rank in (0, 1)]
    codes = [node.wait(timeout=900) for node in nodes]
    consoles = [_console(tmp_path / f"node{rank}", rank) for rank in (0, 1)]
    assert codes == [0, 0], "\n".join(console[-3000:] for console in consoles)
    assert consoles[0].strip().splitlines()[-1] == "all 1 rank(s) of node 0 finished (2 on 2 nodes)"
    node0, node1 = tmp_path / "node0", tmp_path / "node1"
    assert sorted(p.name for p in (node0 / "logs").glob("worker_*.log")) == ["worker_0.log"]
    assert sorted(p.name for p in (node1 / "logs").glob("worker_*.log")) == ["worker_1.log"]
    assert not (node1 / "metrics.jsonl").exists() and not (node1 / "checkpoints" / "last.ckpt").exists()
    assert (node0 / "checkpoints" / "last.ckpt").is_file()
    log0 = (node0 / "logs" / "worker_0.log").read_text()
    assert "on CPU x2 (amp O0, fixed loss scale): " in log0 and "global batch 16" in log0  # the cluster's batch

    one, run = two_worker_run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert len(_losses(node0)) == 2 and _losses(node0) == _losses(one)
    digests = {_digest(node0 / "logs" / "worker_0.log"), _digest(node1 / "logs" / "worker_1.log"),
               _digest(one / "logs" / "worker_0.log"), _digest(one / "logs" / "worker_1.log")}
    assert len(digests) == 1, digests


@pytest.mark.long
def test_resume_auto_in_a_shared_output_dir_resumes_every_rank(hosts, demo_data, tmp_path):
    """The layout docs/multinode.md asks for: both nodes write to one output directory (a shared filesystem): rank 0
    writes the checkpoints, every rank's log lands there under its global rank, and ``--resume auto`` resumes every
    rank on every node from the last complete epoch (a node that could not read it would start afresh)."""
    out = tmp_path / "shared"
    for epochs, resume in (("1", []), ("2", ["--resume", "auto"])):
        nodes = [_node(hosts, rank, demo_data, out, "--epochs", epochs, *resume) for rank in (0, 1)]
        codes = [node.wait(timeout=900) for node in nodes]
        assert codes == [0, 0], "\n".join(_console(out, rank)[-3000:] for rank in (0, 1))
    logs = [(out / "logs" / f"worker_{rank}.log").read_text() for rank in (0, 1)]
    assert all("resumed " in log and ": 1 epochs done" in log for log in logs), logs[1][-3000:]
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert len({_digest(out / "logs" / f"worker_{rank}.log") for rank in (0, 1)}) == 1


@pytest.mark.parametrize("victim", [1, pytest.param(0, marks=pytest.mark.long)])
def test_a_rank_killed_on_one_node_stops_every_node_within_seconds_and_is_named(hosts, demo_data, tmp_path, victim):
    """SIGKILL to one node's rank mid-training: that node's launcher names its rank and how it died. Node 0 learns
    of a rank lost on node 1 from MindSpore's scheduler (heartbeat lost, MS_NODE_TIMEOUT) and names it; node 1
    learns of node 0's failure by losing the scheduler and says so. Both end with exit 1 within STOP_SECONDS,
    leaving no training process behind."""
    outs = [tmp_path / f"node{rank}" for rank in (0, 1)]
    nodes = [_node(hosts, rank, demo_data, outs[rank], "--epochs", "50") for rank in (0, 1)]
    log0 = outs[0] / "logs" / "worker_0.log"
    deadline = time.monotonic() + 600
    while not (log0.exists() and "epoch 2/50" in log0.read_text()):  # training, past the compile
        assert time.monotonic() < deadline and all(node.poll() is None for node in nodes), _console(outs[0], 0)
        time.sleep(0.5)
    rank = [p for p in _trainers(outs[victim]) if p.environ().get("MS_ROLE") == "MS_WORKER"]
    assert len(rank) == 1
    killed = time.monotonic()
    rank[0].send_signal(signal.SIGKILL)
    codes = [node.wait(timeout=120) for node in nodes]
    seconds = time.monotonic() - killed
    consoles = [_console(out, rank) for rank, out in enumerate(outs)]
    print(f"rank {victim} killed: both nodes stopped {seconds:.1f} s later")
    assert codes == [1, 1], consoles
    assert f"error: rank {victim} on node {victim} (pid {rank[0].pid}) was killed by SIGKILL" in consoles[victim]
    other = consoles[1 - victim]  # whichever MindSpore noticed first: the scheduler, the all-reduce, the heartbeat
    told = {1: ["error: rank 1 on node 1 stopped answering", "could not receive from rank 1 on node 1 (an all-reduce"],
            0: [f"error: node 0's scheduler ({ADDRESSES[0]}:{PORT}) went away",
                "could not receive from rank 0 on node 0 (an all-reduce"]}[victim]
    assert any(line in other for line in told), other[-3000:]
    assert seconds < STOP_SECONDS, f"node {1 - victim} stopped {seconds:.0f} s after node {victim}'s rank died"
    time.sleep(1)
    assert not [p for out in outs for p in _trainers(out) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_a_node_that_never_joins_is_reported_after_a_bounded_wait(hosts, demo_data, tmp_path):
    """Node 0 alone (node 1 never starts): msrun's cluster time-out (CLUSTER_TIME_OUT) bounds the wait, and the
    launcher says the cluster did not form and what to check, instead of a rank's stack trace."""
    start = time.monotonic()
    node = _node(hosts, 0, demo_data, tmp_path / "node0", "--epochs", "1", env={"CLUSTER_TIME_OUT": "15"})
    assert node.wait(timeout=300) == 1
    console = _console(tmp_path / "node0", 0)
    assert (f"error: the cluster did not form: not every node joined {ADDRESSES[0]}:{PORT} within the cluster "
            f"time-out") in console, console[-3000:]
    assert time.monotonic() - start < 90


NODE_RANK_RANGE = "error: NODE_RANK must be an integer in [0, NODE_NUM - 1] = [0, 1], got"


@pytest.mark.parametrize("env,message", [
    ({"NODE_NUM": "0"}, "error: NODE_NUM must be a positive integer (the number of nodes), got '0'"),
    ({"NODE_NUM": "2", "NODE_RANK": "2"}, f"{NODE_RANK_RANGE} '2'"),
    ({"NODE_NUM": "2", "NODE_RANK": "-1"}, f"{NODE_RANK_RANGE} '-1'"),
    ({"NODE_NUM": "2", "MASTER_PORT": "x"}, "error: MASTER_PORT must be a port number (1-65535), got 'x'"),
    ({"NODE_NUM": "2", "MASTER_PORT": ""}, "error: MASTER_PORT is not set: a multi-node job needs the same"),
])
def test_a_bad_node_layout_is_one_line_and_exit_2(demo_data, tmp_path, env, message):
    """The script's own checks and the launcher's (a missing MASTER_PORT), before any rank starts."""
    run = subprocess.run(["bash", "scripts/run_distribute_train.sh", str(demo_data), "configs/demo.yaml", "1", *FAST,
                          "--output_dir", str(tmp_path / "o")], cwd=ROOT, env={**SCRIPT_ENV, **env},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.startswith(message) and run.stderr.count("\n") == 1, run.stderr
