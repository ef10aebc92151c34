"""The launcher behind ``scripts/run_distribute_train.sh``: start one machine's training ranks (through msrun, or
one process per rank for an Ascend rank table), and when a rank dies, say which one and how (exit code or
signal) and stop the others at once, instead of leaving them blocked in a collective for minutes.

    python -m src.launch --ranks N --log_dir DIR [--master_port P | --rank_table] [--cwd DIR] -- SCRIPT ARGS...

Exit code 0 when every rank logged its completion line, 1 when a rank failed, 2 on a usage error (busy port).
"""
from __future__ import annotations

import argparse
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

FINISHED = "training finished"  # every rank's last log line (src/trainer.py)
_MSRUN_WORKER_EXIT = re.compile(r"Worker process (\d+) exit with exception\. Error code: (-?\d+)")
STOP_GRACE_SECONDS = 10.0


def port_in_use(port: int) -> bool:
    """True when something listens on ``port``. SO_REUSEADDR: a just-finished run's TIME_WAIT sockets do not
    count, a listening socket does (msrun's scheduler could not bind it, and its workers would retry for
    minutes)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("", port))
        except OSError:
            return True
    return False


def how_it_ended(code: int) -> str:
    """A Popen return code in words: negative codes are signals."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class Failure:
    rank: int | None  # None: the process could not be matched to a rank
    pid: int
    code: int


class Group:
    """The processes this launcher started, stopped together with everything they spawned: msrun puts each
    worker in a session of its own, and MindSpore's dataset workers are a rank's children."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, cmd: Sequence[str], **kw) -> subprocess.Popen:
        proc = subprocess.Popen(list(cmd), start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def _tree(self) -> list[psutil.Process]:
        found = []
        for proc in self.procs:
            try:
                root = psutil.Process(proc.pid)
                found += [root, *root.children(recursive=True)]
            except psutil.Error:  # already gone
                pass
        return found

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM to the whole tree (read before signalling: orphans lose their parent link), SIGKILL to what
        is left after ``grace`` seconds."""
        tree = self._tree()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for process in tree:
                try:
                    process.send_signal(sig)
                except psutil.Error:
                    pass
            _, tree = psutil.wait_procs(tree, timeout=grace)
            if not tree:
                break
        for proc in self.procs:
            proc.poll()


def _rank_table(group: Group, ranks: int, script: list[str], log_dir: Path, cwd: str) -> Failure | None:
    """One process per rank with DEVICE_ID / RANK_ID; returns the first rank to fail, or None."""
    first_device = int(os.environ.get("DEVICE_START", "0"))
    procs = []
    for rank in range(ranks):
        env = dict(os.environ, DEVICE_ID=str(first_device + rank), RANK_ID=str(rank), RANK_SIZE=str(ranks))
        with open(log_dir / f"worker_{rank}.log", "wb") as log:
            procs.append(group.start([sys.executable, *script], cwd=cwd, env=env, stdout=log,
                                     stderr=subprocess.STDOUT))
    while True:
        codes = [p.poll() for p in procs]
        for rank, code in enumerate(codes):
            if code not in (None, 0):
                return Failure(rank, procs[rank].pid, code)
        if all(code == 0 for code in codes):
            return None
        time.sleep(0.5)


def _worker_ranks(msrun: psutil.Process, known: dict[int, int]) -> None:
    """Add msrun's worker processes to ``known`` (pid → rank), read from their RANK_ID (msrun sets it)."""
    try:
        children = msrun.children()
    except psutil.Error:
        return
    for child in children:
        if child.pid in known:
            continue
        try:
            env = child.environ()
        except psutil.Error:
            continue
        if env.get("MS_ROLE") == "MS_WORKER" and env.get("RANK_ID", "").isdigit():
            known[child.pid] = int(env["RANK_ID"])


def _msrun(group: Group, ranks: int, port: int, script: list[str], log_dir: Path, cwd: str) -> Failure | None:
    """msrun with its console streamed (framework warnings stay in the logs); returns the first worker msrun
    reports dead, or None when msrun ends cleanly."""
    cmd = ["msrun", f"--worker_num={ranks}", f"--local_worker_num={ranks}", f"--master_port={port}",
           f"--log_dir={log_dir}", "--join=True", *script]
    proc = group.start(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    msrun, ranks_of = psutil.Process(proc.pid), {}
    while True:
        _worker_ranks(msrun, ranks_of)
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line is None:
            proc.wait()
            return None if proc.returncode == 0 else Failure(None, proc.pid, proc.returncode)
        if not line.startswith(("[WARNING]", "[INFO]", "[DEBUG]")):
            print(line.rstrip("\n"), flush=True)
        dead = _MSRUN_WORKER_EXIT.search(line)
        if dead:
            pid = int(dead.group(1))
            return Failure(ranks_of.get(pid), pid, int(dead.group(2)))


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _tail(log: Path, n: int = 5) -> list[str]:
    """The last ``n`` lines of a rank's log that are not framework warnings."""
    return [line for line in _read(log).splitlines() if line.strip() and "WARNING" not in line][-n:]


def report(failure: Failure | None, ranks: int, log_dir: Path) -> int:
    """Every rank finished → 0. Otherwise name the rank that failed first and how, then each rank that did not
    finish, with the tail of its log; → 1."""
    unfinished = [r for r in range(ranks) if FINISHED not in _read(log_dir / f"worker_{r}.log")]
    if failure is None and not unfinished:
        return 0
    if failure is not None and failure.rank is not None:
        print(f"error: rank {failure.rank} (pid {failure.pid}) {how_it_ended(failure.code)}; the other ranks "
              f"were stopped", file=sys.stderr)
    elif failure is not None:
        print(f"error: a training process (pid {failure.pid}) {how_it_ended(failure.code)}; the ranks were "
              f"stopped", file=sys.stderr)
    cause = failure.rank if failure is not None else None
    for rank in sorted(unfinished, key=lambda r: r != cause):  # the rank that failed first, first
        log = log_dir / f"worker_{rank}.log"
        print(f"rank {rank} {'FAILED' if rank == cause else 'did not finish'}, see {log}", file=sys.stderr)
        for line in _tail(log):
            print(f"  rank {rank}: {line}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, required=True, help="processes (devices) on this machine")
    parser.add_argument("--log_dir", type=Path, required=True, help="worker_<rank>.log go here")
    parser.add_argument("--master_port", type=int, default=8118, help="msrun's scheduler port")
    parser.add_argument("--rank_table", action="store_true",
                        help="one process per rank (RANK_TABLE_FILE launch) instead of msrun")
    parser.add_argument("--cwd", default=os.getcwd(), help="the ranks' working directory")
    parser.add_argument("script", nargs=argparse.REMAINDER, help="-- SCRIPT ARGS...")
    args = parser.parse_args(argv)
    script = args.script[1:] if args.script[:1] == ["--"] else args.script
    if not script or args.ranks < 1:
        parser.error("needs --ranks >= 1 and -- SCRIPT ARGS...")
    if not args.rank_table and port_in_use(args.master_port):
        print(f"error: MASTER_PORT {args.master_port} is in use (another training run?): set MASTER_PORT to a "
              f"free port", file=sys.stderr)
        return 2
    args.log_dir.mkdir(parents=True, exist_ok=True)
    group = Group()
    # Ctrl-C or a cluster scheduler's SIGTERM stops every rank, not only this process.
    previous = {sig: signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if args.rank_table:
            failure = _rank_table(group, args.ranks, script, args.log_dir, args.cwd)
        else:
            failure = _msrun(group, args.ranks, args.master_port, script, args.log_dir, args.cwd)
    finally:
        group.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return report(failure, args.ranks, args.log_dir)


if __name__ == "__main__":
    sys.exit(main())
