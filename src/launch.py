"""The launcher behind ``scripts/run_distribute_train.sh`` and ``scripts/run_standalone_train.sh``: start one
machine's training ranks (through msrun, one process per rank for an Ascend rank table, or one plain process) and
watch them, because a bare msrun leaves the user waiting and guessing:

- when a rank dies, say which one and how (exit code or signal; code 2 is the entry points' configuration error)
  and stop the others at once, instead of leaving them blocked in a collective for minutes;
- Ctrl-C, SIGTERM or SIGHUP stops every rank with everything it spawned (msrun puts each worker in a session of
  its own, out of reach of the terminal's signals) and prints one line saying how to resume;
- msrun's port: ``--master_port`` (the user's MASTER_PORT) is used as given and refused at once when busy; without
  it the launcher takes ``--default_port`` when free, else any free port, and says which.

    python -m src.launch --ranks N --log_dir DIR [--master_port P | --rank_table | --single] [--cwd DIR]
                         [--resume_command TEXT] -- SCRIPT ARGS...

Exit codes (``tinynet_ms.cli``'s): 0 every rank logged its completion line, 1 a rank failed, 2 a usage or config
error (a busy MASTER_PORT, or a rank that exited with code 2); 128 + N when stopped by signal N.
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import psutil

EXIT_FAILED, EXIT_USAGE = 1, 2  # tinynet_ms.cli's codes; importing it would load MindSpore into the launcher
FINISHED = "training finished"  # every rank's last log line (src/trainer.py)
DEFAULT_PORT = 8118  # msrun's port when MASTER_PORT is not set and this one is free
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.5
_MSRUN_WORKER_EXIT = re.compile(r"Worker process (\d+) exit with exception\. Error code: (-?\d+)")
_FRAMEWORK_LINE = ("[WARNING]", "[INFO]", "[DEBUG]")  # MindSpore's: they stay in the logs, off the console


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


def free_port() -> int:
    """A port nobody listens on now (the OS's choice)."""
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def msrun_port(requested: int | None, default: int = DEFAULT_PORT) -> tuple[int | None, str]:
    """(port, one line for the console) — or (None, error line) when the requested port is busy. A requested port
    (MASTER_PORT) is the user's choice, and every node of a multi-node job must agree on it, so it is never
    replaced; otherwise a second run on the machine (a demo beside a training) must not die on the default."""
    if requested is not None:
        if port_in_use(requested):
            return None, (f"error: MASTER_PORT {requested} is in use (another training run?): set MASTER_PORT to a "
                          f"free port, or unset it to let the launcher choose one")
        return requested, f"msrun port {requested} (MASTER_PORT)"
    if not port_in_use(default):
        return default, f"msrun port {default} (set MASTER_PORT to choose another)"
    port = free_port()
    return port, f"msrun port {port}: {default} is in use (another training run?); set MASTER_PORT to choose one"


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


class StopRequest:
    """The first stop signal received. The handler only records it: an exception raised inside Popen or a log
    write could orphan a child; the watch loops poll it every POLL_SECONDS."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def _record(self, signum: int, _frame) -> None:
        self.signum = self.signum or signum

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        previous = {sig: signal.signal(sig, self._record) for sig in STOP_SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class Group:
    """The processes this launcher started, stopped together with everything they spawned: msrun puts each
    worker in a session of its own, MindSpore's dataset workers are a rank's children, and a rank that was
    killed leaves its children orphaned (no longer below us, but still in the rank's session)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.sessions: set[int] = set()  # session ids of what we started (its pid) and of msrun's workers

    def start(self, cmd: Sequence[str], **kw) -> subprocess.Popen:
        proc = subprocess.Popen(list(cmd), start_new_session=True, **kw)
        self.procs.append(proc)
        self.sessions.add(proc.pid)
        return proc

    def _members(self) -> list[psutil.Process]:
        found: dict[int, psutil.Process] = {}
        for proc in self.procs:
            try:
                root = psutil.Process(proc.pid)
                found.update((p.pid, p) for p in (root, *root.children(recursive=True)))
            except psutil.Error:  # already gone
                pass
        for process in psutil.process_iter():  # the orphans
            try:
                if process.pid not in found and os.getsid(process.pid) in self.sessions:
                    found[process.pid] = process
            except OSError:  # gone meanwhile
                pass
        return list(found.values())

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> list[psutil.Process]:
        """SIGTERM to every member (read before signalling: orphans lose their parent link), SIGKILL to what
        is left after ``grace`` seconds. Returns the processes that survived even that (normally none)."""
        members = self._members()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for process in members:
                try:
                    process.send_signal(sig)
                except psutil.Error:
                    pass
            _, members = psutil.wait_procs(members, timeout=grace)
            if not members:
                break
        for proc in self.procs:
            proc.poll()
        return members


def _output(proc: subprocess.Popen, stop: StopRequest, log: TextIO | None = None) -> Iterator[str | None]:
    """``proc``'s (merged) output line by line, echoed to the console without MindSpore's framework lines, every
    line copied to ``log``; None after POLL_SECONDS of silence, so the caller can poll. Ends at EOF, on a stop
    request, or once ``proc`` has exited and stays silent (a dataset worker it left may hold the pipe open)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    while not stop.signum:
        try:
            line = lines.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if proc.poll() is not None:
                return
            yield None
            continue
        if line is None:
            return
        if log is not None:
            log.write(line)
            log.flush()
        if not line.startswith(_FRAMEWORK_LINE):
            print(line.rstrip("\n"), flush=True)
        yield line


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


def _msrun(group: Group, stop: StopRequest, ranks: int, port: int, script: list[str], log_dir: Path,
           cwd: str) -> Failure | None:
    """msrun with its console streamed (it writes the rank logs itself); returns the first worker msrun reports
    dead, or None when msrun ends cleanly or a stop was requested."""
    cmd = ["msrun", f"--worker_num={ranks}", f"--local_worker_num={ranks}", f"--master_port={port}",
           f"--log_dir={log_dir}", "--join=True", *script]
    proc = group.start(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                       errors="replace")
    msrun, ranks_of = psutil.Process(proc.pid), {}
    for line in _output(proc, stop):
        _worker_ranks(msrun, ranks_of)
        group.sessions.update(ranks_of)  # each worker leads a session of its own
        dead = _MSRUN_WORKER_EXIT.search(line or "")
        if dead:
            pid = int(dead.group(1))
            group.sessions.add(pid)
            return Failure(ranks_of.get(pid), pid, int(dead.group(2)))
    if stop.signum:
        return None
    code = proc.wait()
    return None if code == 0 else Failure(None, proc.pid, code)


def _rank_table(group: Group, stop: StopRequest, ranks: int, script: list[str], log_dir: Path,
                cwd: str) -> Failure | None:
    """One process per rank with DEVICE_ID / RANK_ID; returns the first rank to fail, or None."""
    first_device = int(os.environ.get("DEVICE_START", "0"))
    procs = []
    for rank in range(ranks):
        env = dict(os.environ, DEVICE_ID=str(first_device + rank), RANK_ID=str(rank), RANK_SIZE=str(ranks))
        with open(log_dir / f"worker_{rank}.log", "wb") as log:
            procs.append(group.start([sys.executable, *script], cwd=cwd, env=env, stdout=log,
                                     stderr=subprocess.STDOUT))
    while not stop.signum:
        codes = [p.poll() for p in procs]
        for rank, code in enumerate(codes):
            if code not in (None, 0):
                return Failure(rank, procs[rank].pid, code)
        if all(code == 0 for code in codes):
            return None
        time.sleep(POLL_SECONDS)
    return None


def _single(group: Group, stop: StopRequest, script: list[str], log_dir: Path, cwd: str) -> Failure | None:
    """One process, no msrun (one device: msrun's scheduler would run the script too and train a second time),
    its output on the console and in ``worker_0.log``."""
    with open(log_dir / "worker_0.log", "w") as log:
        proc = group.start([sys.executable, *script], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, bufsize=1, errors="replace")
        for _ in _output(proc, stop, log):
            pass
    if stop.signum:
        return None
    code = proc.wait()
    return None if code == 0 else Failure(0, proc.pid, code)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _tail(log: Path, n: int = 5) -> list[str]:
    """The last ``n`` lines of a rank's log that are not MindSpore's framework lines."""
    return [line for line in _read(log).splitlines() if line.strip() and not line.startswith(_FRAMEWORK_LINE)][-n:]


def _own_error(log: Path) -> str:
    """The last ``error: ...`` line a rank printed (every entry point's one-line failure), without the prefix."""
    errors = [line for line in _read(log).splitlines() if line.startswith("error: ")]
    return errors[-1].removeprefix("error: ") if errors else ""


def report(failure: Failure | None, ranks: int, log_dir: Path, console_has_all: bool = False) -> int:
    """Every rank finished → 0. Otherwise name the rank that failed first, how, and its own error line, then each
    rank that did not finish with the tail of its log; → 2 when the rank failed with the entry points'
    config-error code, else 1. ``console_has_all``: a single process whose whole output is on the console
    already: only what it did not say itself (its own ``error:`` line stays the one error line)."""
    unfinished = [r for r in range(ranks) if FINISHED not in _read(log_dir / f"worker_{r}.log")]
    if failure is None and not unfinished:
        if not console_has_all:  # a single process said so itself
            print(f"all {ranks} ranks finished")
        return 0
    code = EXIT_USAGE if failure is not None and failure.code == EXIT_USAGE else EXIT_FAILED
    if console_has_all:
        log = log_dir / "worker_0.log"
        if failure is None:
            print(f"error: the training ended without its completion line ('{FINISHED}'); see {log}", file=sys.stderr)
        elif not _own_error(log):
            print(f"error: the training (pid {failure.pid}) {how_it_ended(failure.code)}; see {log}", file=sys.stderr)
        return code
    cause = failure.rank if failure is not None else None
    if failure is not None:
        who = f"rank {failure.rank}" if failure.rank is not None else "a training process"
        kind = ", a configuration error" if code == EXIT_USAGE else ""
        own = _own_error(log_dir / f"worker_{failure.rank}.log") if failure.rank is not None else ""
        print(f"error: {who} (pid {failure.pid}) {how_it_ended(failure.code)}{kind}{': ' + own if own else ''}; "
              f"the {'other ' if failure.rank is not None else ''}ranks were stopped", file=sys.stderr)
    for rank in sorted(unfinished, key=lambda r: r != cause):  # the rank that failed first, first
        log = log_dir / f"worker_{rank}.log"
        print(f"rank {rank} {'FAILED' if rank == cause else 'did not finish'}, see {log}", file=sys.stderr)
        for line in _tail(log):
            print(f"  rank {rank}: {line}", file=sys.stderr)
    return code


def stopped(signum: int, survivors: list[psutil.Process], resume_command: str) -> str:
    """The one line printed when a signal stopped the run."""
    ranks = ("every rank was stopped" if not survivors else
             f"{len(survivors)} process(es) did not stop: pids {' '.join(str(p.pid) for p in survivors)}")
    return (f"stopped by {signal.Signals(signum).name}; {ranks}; resume with: "
            f"{resume_command or 'the same command plus --resume auto'}")


def _run(args: argparse.Namespace, group: Group, stop: StopRequest, script: list[str],
         port: int | None) -> Failure | None:
    """Start the ranks the way ``args`` asks and watch them: the first failure, or None."""
    if args.single:
        return _single(group, stop, script, args.log_dir, args.cwd)
    if args.rank_table:
        return _rank_table(group, stop, args.ranks, script, args.log_dir, args.cwd)
    return _msrun(group, stop, args.ranks, port, script, args.log_dir, args.cwd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, default=1, help="processes (devices) on this machine")
    parser.add_argument("--log_dir", type=Path, required=True, help="worker_<rank>.log go here")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--master_port", type=int, help="msrun's scheduler port, used as given (MASTER_PORT)")
    how.add_argument("--rank_table", action="store_true",
                     help="one process per rank (RANK_TABLE_FILE launch) instead of msrun")
    how.add_argument("--single", action="store_true", help="one process without msrun (one device)")
    parser.add_argument("--default_port", type=int, default=DEFAULT_PORT,
                        help="msrun's port without --master_port when free (else any free port)")
    parser.add_argument("--cwd", default=os.getcwd(), help="the ranks' working directory")
    parser.add_argument("--resume_command", default="", help="the command that resumes this run (printed on a stop)")
    parser.add_argument("script", nargs=argparse.REMAINDER, help="-- SCRIPT ARGS...")
    args = parser.parse_args(argv)
    script = args.script[1:] if args.script[:1] == ["--"] else args.script
    if not script or args.ranks < 1 or (args.single and args.ranks != 1):
        parser.error("needs --ranks >= 1 (1 with --single) and -- SCRIPT ARGS...")
    with StopRequest().installed() as stop:  # first: the caller's pid is this process from here on
        port = None
        if not (args.rank_table or args.single):
            port, line = msrun_port(args.master_port, args.default_port)
            print(line, file=sys.stderr if port is None else sys.stdout, flush=True)
            if port is None:
                return EXIT_USAGE
        args.log_dir.mkdir(parents=True, exist_ok=True)
        group, failure = Group(), None
        try:
            if not stop.signum:  # none arrived during the port check
                failure = _run(args, group, stop, script, port)
        finally:
            survivors = group.stop()
        if stop.signum:
            print(stopped(stop.signum, survivors, args.resume_command), file=sys.stderr, flush=True)
            return 128 + stop.signum
    return report(failure, args.ranks, args.log_dir, console_has_all=args.single)


if __name__ == "__main__":
    sys.exit(main())
