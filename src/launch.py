"""The launcher behind ``scripts/run_distribute_train.sh`` and ``scripts/run_standalone_train.sh``: start one
machine's training ranks (through msrun, one process per rank for an Ascend rank table, or one plain process) and
watch them, because a bare msrun leaves the user waiting and guessing:

- when a rank dies, say which one and how (exit code or signal; code 2 is the entry points' configuration error)
  and stop the others at once, instead of leaving them blocked in a collective for minutes;
- Ctrl-C, SIGTERM or SIGHUP stops every rank with everything it spawned (msrun puts each worker in a session of
  its own, out of reach of the terminal's signals) and prints one line saying how to resume;
- msrun's port: ``--master_port`` (the user's MASTER_PORT) is used as given and refused at once when busy; without
  it the launcher takes ``--default_port`` when free, else any free port, and says which;
- several nodes (``--nodes`` > 1): the same command on every server, only ``--node_rank`` differing; msrun's own
  dynamic cluster connects them (its scheduler runs on the node that owns ``--master_addr``), this node's ranks are
  ``node_rank x ranks ...``, and a failure names the node as well as the rank. The port must then be given (every
  node must agree on it), and only node 0, which hosts the scheduler, checks that it is free;
- one run per output_dir (``--output_dir``): its lock (``tinynet_ms.atomic``) is taken before any rank starts, so a
  second training into the directory is refused at once (exit 2), and held till the end by the launcher and what it
  starts; the ranks' train.py share it instead of being refused;
- the previous run's logs (a resume, a re-run) are kept as ``worker_R.log.1`` ..., never truncated.

    python -m src.launch --ranks N --log_dir DIR [--output_dir DIR] [--master_port P | --rank_table | --single]
                         [--cwd DIR]
                         [--nodes M --node_rank R --master_addr HOST --cluster_time_out S]
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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import psutil

from tinynet_ms.atomic import InUse, OutputLock, lock_directory  # stdlib only: no MindSpore in the launcher
from tinynet_ms.cli import EXIT_FAILED, EXIT_USAGE

FINISHED = "training finished"  # every rank's last log line (src/trainer.py)
DEFAULT_PORT = 8118  # msrun's port when MASTER_PORT is not set and this one is free
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.5
_MSRUN_WORKER_EXIT = re.compile(r"Worker process (\d+) exit with exception\. Error code: (-?\d+)")
# MindSpore's scheduler (node 0) on a rank whose heartbeat stopped: the rank died, or its node went away.
_SCHEDULER_LOST = re.compile(r"The node: (\d+) is timed out")
# MindSpore's line (scheduler and ranks) when not every rank registered within msrun's --cluster_time_out.
_NOT_FORMED = "Failed to initialize distributed job cluster"
# A rank's line when the all-reduce ring (MindSpore's CPU collectives) got nothing from the rank before it.
_RING_RECEIVE = re.compile(r"Ring \w+ wait receiving \[(\d+),")
# A rank's line when msrun's scheduler (on node 0) went away: node 0 stopped, or the network between them did.
_SCHEDULER_GONE = "Failed to connect to the meta server"
# MS_NODE_TIMEOUT, MindSpore's documented heartbeat time-out of its dynamic cluster (default 30 s): a multi-node job
# whose rank on another node died stops after it, so the launcher shortens it unless the user set it (large clusters
# may need more: MindSpore advises raising it when collective set-up is slow).
NODE_TIMEOUT_SECONDS = 15
_FRAMEWORK_LINE = ("[WARNING]", "[INFO]", "[DEBUG]")  # MindSpore's: they stay in the logs, off the console
# train.py's own log lines ("12:03:04 [rank 1] epoch 1 ...", src/context.py): the run's progress, not why it failed
_PROGRESS_LINE = re.compile(r"\d\d:\d\d:\d\d (\[rank \d+\] )?")


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


def msrun_port(requested: int | None, default: int = DEFAULT_PORT, nodes: int = 1,
               hosts_scheduler: bool = True) -> tuple[int | None, str]:
    """(port, one line for the console) — or (None, error line) when the requested port is busy, or missing on a
    multi-node job. A requested port (MASTER_PORT) is the user's choice, and every node of a multi-node job must
    agree on it, so it is never replaced (nor guessed: a free port here means nothing on the other servers);
    otherwise a second run on the machine (a demo beside a training) must not die on the default. Only the node
    that hosts msrun's scheduler (``hosts_scheduler``: node 0) binds the port, so only there is a busy one an
    error; elsewhere it is the scheduler's port on another machine."""
    if requested is None and nodes > 1:
        return None, ("error: MASTER_PORT is not set: a multi-node job needs the same MASTER_PORT on every node "
                      "(a free port on node 0), e.g. MASTER_PORT=8118")
    if requested is not None:
        if not hosts_scheduler:
            return requested, f"msrun port {requested} (MASTER_PORT) of the scheduler on node 0"
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


def is_local_address(host: str) -> bool:
    """True when ``host`` names this machine (one of its addresses can be bound): msrun starts its scheduler on
    the node whose address ``--master_addr`` is, so node 0 must own it and no other node may."""
    try:
        address = socket.gethostbyname(host)
    except OSError:
        return False
    with socket.socket() as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Layout:
    """Where this node's ranks sit in the job: ``ranks`` of them here, ``nodes`` nodes with as many each, global
    ranks ``first`` ... ``first + ranks - 1`` (msrun numbers them ``node_rank x ranks + i``, as the model zoo's
    rank tables do with ``RANK_START``)."""
    ranks: int
    nodes: int = 1
    node_rank: int = 0
    first: int = 0

    @property
    def world(self) -> int:
        return self.ranks * self.nodes

    @property
    def here(self) -> range:
        return range(self.first, self.first + self.ranks)

    def name(self, rank: int | None) -> str:
        """'rank R', plus the node on a multi-node job (the user must know which server to look at)."""
        who = f"rank {rank}" if rank is not None else "a training process"
        return who if self.nodes == 1 else f"{who} on node {self.node_rank}"


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

    def __init__(self, lock: OutputLock | None = None) -> None:
        self.procs: list[subprocess.Popen] = []
        self.sessions: set[int] = set()  # session ids of what we started (its pid) and of msrun's workers
        # the output_dir's lock: what we start holds it too (should this process die first) and shares it (its env)
        self.pass_fds = () if lock is None or lock.fd is None else (lock.fd,)
        self.env = {} if lock is None else lock.env

    def start(self, cmd: Sequence[str], env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
        env = {**(os.environ if env is None else env), **self.env}
        proc = subprocess.Popen(list(cmd), start_new_session=True, pass_fds=self.pass_fds, env=env, **kw)
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


def _output(proc: subprocess.Popen, stop: StopRequest, log: TextIO | None = None,
            hidden: re.Pattern | None = None) -> Iterator[str | None]:
    """``proc``'s (merged) output line by line, echoed to the console without MindSpore's framework lines (nor those
    matching ``hidden``), every line copied to ``log``; None after POLL_SECONDS of silence, so the caller can poll.
    Ends at EOF, on a stop request, or once ``proc`` has exited and stays silent (a dataset worker it left may hold
    the pipe open)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    exited = False
    while not stop.signum:
        try:
            line = lines.get(timeout=POLL_SECONDS)
        except queue.Empty:
            # Ended only after a whole silent poll *after* the exit was seen: the reader thread may not yet have
            # queued the last lines written just before it (on a busy machine its error line was once lost).
            if exited:
                return
            exited = proc.poll() is not None
            yield None
            continue
        if line is None:
            return
        if log is not None:
            log.write(line)
            log.flush()
        if not line.startswith(_FRAMEWORK_LINE) and not (hidden and hidden.search(line)):
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


def msrun_command(layout: Layout, port: int, log_dir: Path, script: list[str], master_addr: str = "127.0.0.1",
                  cluster_time_out: int | None = None) -> list[str]:
    """msrun's command line for this node: ``--worker_num`` counts every node's ranks, ``--local_worker_num``
    this node's; with several nodes ``--master_addr`` / ``--node_rank`` place it in the cluster (msrun then names
    the rank logs by global rank). ``cluster_time_out``: how long msrun's dynamic cluster waits for every rank
    to join (MS_TOPO_TIMEOUT underneath; msrun's default 600 s)."""
    cmd = ["msrun", f"--worker_num={layout.world}", f"--local_worker_num={layout.ranks}", f"--master_port={port}"]
    if layout.nodes > 1:
        cmd += [f"--master_addr={master_addr}", f"--node_rank={layout.node_rank}"]
    if cluster_time_out is not None:
        cmd.append(f"--cluster_time_out={cluster_time_out}")
    return [*cmd, f"--log_dir={log_dir}", "--join=True", *script]


class LogWatch:
    """The complete lines added to some growing log files since the last look: scanned every second on a multi-node
    job without rereading hours of log each time."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.offsets = dict.fromkeys(paths, 0)

    def new(self) -> str:
        chunks = []
        for path, offset in self.offsets.items():
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = f.read()
            except OSError:  # not written yet
                continue
            data = data[:data.rfind(b"\n") + 1]  # a line being written is read whole next time
            self.offsets[path] = offset + len(data)
            chunks.append(data.decode(errors="replace"))
        return "".join(chunks)


def failed_elsewhere(text: str, layout: Layout) -> bool:
    """MindSpore's word, in this node's logs, that a rank on another node is gone (its scheduler lost the rank's
    heartbeat; an all-reduce waited for it in vain), that node 0's scheduler is, or that the cluster never formed:
    this node's ranks cannot go on, and stopping them now beats waiting for MindSpore to end them (seconds more,
    or until a time-out)."""
    lost = [int(rank) for rank in (*_SCHEDULER_LOST.findall(text), *_RING_RECEIVE.findall(text))]
    return (any(rank not in layout.here for rank in lost) or (layout.node_rank > 0 and _SCHEDULER_GONE in text)
            or _NOT_FORMED in text)


# msrun's console (the ranks' logs, tailed) without what report() says once, naming the rank: the ranks' own error
# lines (each rank of a data-parallel run often fails with the same one) and msrun's line on a worker's exit.
_SAID_IN_REPORT = re.compile(rf"^error: |{_MSRUN_WORKER_EXIT.pattern}")


def _msrun(group: Group, stop: StopRequest, cmd: list[str], cwd: str, layout: Layout,
           log_dir: Path) -> Failure | None:
    """msrun with its console streamed (it writes the rank logs itself); returns the first worker msrun reports
    dead (or msrun itself when this node's logs say another node failed), or None when msrun ends cleanly or a
    stop was requested."""
    proc = group.start(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                       errors="replace")
    msrun, ranks_of = psutil.Process(proc.pid), {}
    watch = LogWatch([log_dir / "scheduler.log", *(log_dir / f"worker_{rank}.log" for rank in layout.here)])
    looked = time.monotonic()
    for line in _output(proc, stop, hidden=_SAID_IN_REPORT):
        _worker_ranks(msrun, ranks_of)
        group.sessions.update(ranks_of)  # each worker leads a session of its own
        dead = _MSRUN_WORKER_EXIT.search(line or "")
        if dead:
            pid = int(dead.group(1))
            group.sessions.add(pid)
            return Failure(ranks_of.get(pid), pid, int(dead.group(2)))
        if layout.nodes > 1 and time.monotonic() - looked >= 1:
            looked = time.monotonic()
            if failed_elsewhere(watch.new(), layout):
                return Failure(None, proc.pid, EXIT_FAILED)  # report() names the cause from the logs
    if stop.signum:
        return None
    code = proc.wait()
    return None if code == 0 else Failure(None, proc.pid, code)


def _rank_table(group: Group, stop: StopRequest, layout: Layout, script: list[str], log_dir: Path,
                cwd: str) -> Failure | None:
    """One process per rank of this server with DEVICE_ID (DEVICE_START + i) and its global RANK_ID (the server's
    first rank + i) in a RANK_SIZE of every server's ranks; returns the first rank to fail, or None."""
    first_device = int(os.environ.get("DEVICE_START", "0"))
    procs = []
    for i, rank in enumerate(layout.here):
        env = dict(os.environ, DEVICE_ID=str(first_device + i), RANK_ID=str(rank), RANK_SIZE=str(layout.world))
        with open(log_dir / f"worker_{rank}.log", "ab") as log:
            procs.append(group.start([sys.executable, *script], cwd=cwd, env=env, stdout=log,
                                     stderr=subprocess.STDOUT))
    while not stop.signum:
        codes = [p.poll() for p in procs]
        for rank, proc, code in zip(layout.here, procs, codes):
            if code not in (None, 0):
                return Failure(rank, proc.pid, code)
        if all(code == 0 for code in codes):
            return None
        time.sleep(POLL_SECONDS)
    return None


def _single(group: Group, stop: StopRequest, script: list[str], log_dir: Path, cwd: str) -> Failure | None:
    """One process, no msrun (one device: msrun's scheduler would run the script too and train a second time),
    its output on the console and in ``worker_0.log``."""
    with open(log_dir / "worker_0.log", "a") as log:
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
    """The last ``n`` lines of a rank's log that can say why it failed (a traceback, MindSpore's [ERROR] lines): not
    MindSpore's framework lines nor the run's own progress lines."""
    return [line for line in _read(log).splitlines()
            if line.strip() and not line.startswith(_FRAMEWORK_LINE) and not _PROGRESS_LINE.match(line)][-n:]


def _own_error(log: Path) -> str:
    """The last ``error: ...`` line a rank printed (every entry point's one-line failure), without the prefix."""
    errors = [line for line in _read(log).splitlines() if line.startswith("error: ")]
    return errors[-1].removeprefix("error: ") if errors else ""


def lost_ranks(log_dir: Path) -> list[int]:
    """The ranks MindSpore's scheduler (on node 0, in ``log_dir``) lost the heartbeat of, first lost first: on a
    multi-node job the only word node 0 gets of a rank that died on another node."""
    found = [int(rank) for rank in _SCHEDULER_LOST.findall(_read(log_dir / "scheduler.log"))]
    return list(dict.fromkeys(found))


def _remote_cause(layout: Layout, log_dir: Path, master: str) -> str:
    """One line naming what on another node stopped this node's ranks, or '': a rank MindSpore's scheduler lost
    (node 0 sees that), else the rank an all-reduce waited for in vain, else node 0's scheduler gone (the other
    nodes: msrun runs it on node 0 and it ends with node 0's ranks)."""
    stopped = f"the ranks on node {layout.node_rank} were stopped"
    remote = [rank for rank in lost_ranks(log_dir) if rank not in layout.here]
    logs = {rank: _read(log_dir / f"worker_{rank}.log") for rank in layout.here}
    if not remote:
        for rank, text in logs.items():
            peers = [int(peer) for peer in _RING_RECEIVE.findall(text) if int(peer) not in layout.here]
            if peers:
                return (f"error: rank {rank} on node {layout.node_rank} could not receive from rank {peers[0]} on "
                        f"node {peers[0] // layout.ranks} (an all-reduce failed: that rank died or its node went "
                        f"away; see that node's console and logs); {stopped}")
        if layout.node_rank > 0 and any(_SCHEDULER_GONE in text for text in logs.values()):
            return (f"error: node 0's scheduler ({master}) went away: a rank on node 0 failed or node 0 was stopped "
                    f"(see node 0's console and logs); {stopped}")
        return ""
    rank, node = remote[0], remote[0] // layout.ranks
    return (f"error: rank {rank} on node {node} stopped answering (MindSpore's scheduler lost its heartbeat: it died "
            f"or node {node} went away; see node {node}'s log {log_dir.name}/worker_{rank}.log there); {stopped}")


def _not_formed(layout: Layout, log_dir: Path, master: str) -> str:
    """One line when msrun's cluster never formed (a node that never joined, or one that cannot reach ``master``),
    or ''."""
    logs = [log_dir / "scheduler.log", *(log_dir / f"worker_{rank}.log" for rank in layout.here)]
    if not any(_NOT_FORMED in _read(log) for log in logs):
        return ""
    return (f"error: the cluster did not form: not every node joined {master} within the cluster time-out "
            f"({layout.nodes} nodes x {layout.ranks} ranks expected); start the same command on every node with its "
            f"own NODE_RANK, check that each reaches MASTER_ADDR:MASTER_PORT, or raise CLUSTER_TIME_OUT")


def _cause_elsewhere(layout: Layout, log_dir: Path, master: str) -> str:
    """On a multi-node job, one line when this node's ranks failed because of another node (never joined, lost a
    rank, lost the scheduler), or '': then this node's own first failure is the cause."""
    if layout.nodes == 1:
        return ""
    return _not_formed(layout, log_dir, master) or _remote_cause(layout, log_dir, master)


def report(failure: Failure | None, layout: Layout, log_dir: Path, console_has_all: bool = False,
           master: str = "") -> int:
    """Every rank of this node finished → 0. Otherwise name the rank that failed first (and its node), how, and its
    own error line, then what became of each other rank that did not finish: failed too (its error, unless it is
    the same), stopped by us, or not finished; a log's tail only where no error line of its own says why; → 2 when
    the rank failed with the entry points' config-error code, else 1. ``console_has_all``: a single process whose whole output is on the
    console already: only what it did not say itself (its own ``error:`` line stays the one error line)."""
    unfinished = [r for r in layout.here if FINISHED not in _read(log_dir / f"worker_{r}.log")]
    if failure is None and not unfinished:
        if not console_has_all:  # a single process said so itself
            print(f"all {layout.ranks} ranks finished" if layout.nodes == 1 else
                  f"all {layout.ranks} rank(s) of node {layout.node_rank} finished ({layout.world} on {layout.nodes} "
                  f"nodes)")
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
    elsewhere = _cause_elsewhere(layout, log_dir, master)
    if elsewhere:  # this node's ranks were only the victims
        print(elsewhere, file=sys.stderr)
        cause = None
    first = _own_error(log_dir / f"worker_{cause}.log") if cause is not None else ""  # the failing rank's own
    if failure is not None and not elsewhere:
        who = layout.name(failure.rank)
        kind = ", a configuration error" if code == EXIT_USAGE else ""
        print(f"error: {who} (pid {failure.pid}) {how_it_ended(failure.code)}{kind}{': ' + first if first else ''}; "
              f"the {'other ' if failure.rank is not None else ''}ranks were stopped", file=sys.stderr)
    for rank in sorted(unfinished, key=lambda r: r != cause):  # the rank that failed first, first
        log = log_dir / f"worker_{rank}.log"
        own = _own_error(log)
        if rank == cause:
            what = "FAILED"
        elif own and own == first:
            what = "failed too, with the same error"
        elif own:
            what = f"failed{' too' if cause is not None else ''}: {own}"
        else:  # no error of its own: we stopped it, or (no failure seen) it ended without a word
            what = "was stopped" if failure is not None else "did not finish"
        print(f"rank {rank} {what}; see {log}", file=sys.stderr)
        if not own and (rank == cause or failure is None):  # why it failed is only in its log
            for line in _tail(log):
                print(f"  rank {rank}: {line}", file=sys.stderr)
    return code


# What a refused second training into the same output_dir is told (the launcher's refusal and train.py's).
IN_USE_ADVICE = "wait for it to finish or stop it, or choose another --output_dir"


def lock_output_dir(out: Path, job: str | None = None) -> OutputLock:
    """A training's output_dir lock: the launcher takes it before any rank starts (a second job into the directory
    is refused at once, nothing of the running one touched) and hands it to its ranks (train.py), which share it
    through ``TINYNET_LOCK_TOKEN``; ``job``: the token every node of a multi-node job agrees on (a shared
    output_dir)."""
    return lock_directory(out, "training", IN_USE_ADVICE, job=job)


def job_token(args: argparse.Namespace, layout: Layout) -> str | None:
    """What the launchers of one multi-node job have in common, so that they share a shared output_dir's lock (one
    node's launcher cannot hand its token to the others); None on one node (a fresh token per run)."""
    if layout.nodes == 1:
        return None
    if args.rank_table:
        return f"rank table {os.environ.get('RANK_TABLE_FILE', '')} x{layout.nodes}"
    return f"msrun {args.master_addr}:{args.master_port} x{layout.nodes}"


def log_names(args: argparse.Namespace, layout: Layout) -> list[str]:
    """The log files this node's run writes into ``--log_dir`` (msrun's scheduler runs on node 0)."""
    names = [f"worker_{rank}.log" for rank in layout.here]
    return names + ["scheduler.log"] if not (args.single or args.rank_table) and layout.node_rank == 0 else names


def rotate_logs(log_dir: Path, names: Sequence[str]) -> list[str]:
    """The previous run's logs (a resumed run's, a re-run's) kept as NAME.1 (NAME.2 the one before, and so on)
    instead of being truncated by this run (msrun opens its logs with 'w'); what was moved."""
    moved = []
    for name in names:
        log = log_dir / name
        if not log.is_file() or log.stat().st_size == 0:
            continue
        n = 1
        while (log_dir / f"{name}.{n}").exists():
            n += 1
        for k in range(n, 1, -1):
            os.replace(log_dir / f"{name}.{k - 1}", log_dir / f"{name}.{k}")
        os.replace(log, log_dir / f"{name}.1")
        moved.append(f"{name}.1")
    return moved


def stopped(signum: int, survivors: list[psutil.Process], resume_command: str) -> str:
    """The one line printed when a signal stopped the run."""
    ranks = ("every rank was stopped" if not survivors else
             f"{len(survivors)} process(es) did not stop: pids {' '.join(str(p.pid) for p in survivors)}")
    return (f"stopped by {signal.Signals(signum).name}; {ranks}; resume with: "
            f"{resume_command or 'the same command plus --resume auto'}")


def _run(args: argparse.Namespace, layout: Layout, group: Group, stop: StopRequest, script: list[str],
         port: int | None) -> Failure | None:
    """Start the ranks the way ``args`` asks and watch them: the first failure, or None."""
    if args.single:
        return _single(group, stop, script, args.log_dir, args.cwd)
    if args.rank_table:
        return _rank_table(group, stop, layout, script, args.log_dir, args.cwd)
    if layout.nodes > 1:
        os.environ.setdefault("MS_NODE_TIMEOUT", str(NODE_TIMEOUT_SECONDS))  # msrun's ranks inherit it
    cmd = msrun_command(layout, port, args.log_dir, script, args.master_addr, args.cluster_time_out)
    return _msrun(group, stop, cmd, args.cwd, layout, args.log_dir)


def layout_of(args: argparse.Namespace) -> tuple[Layout | None, str]:
    """This node's place in the job from ``--nodes`` / ``--node_rank`` (the script's NODE_NUM / NODE_RANK), with
    the first global rank: msrun's ``node_rank x ranks``; a rank table's ``RANK_START`` (the model zoo's
    per-server offset) when set. (None, one error line) for a layout that cannot work."""
    if args.nodes < 1 or not 0 <= args.node_rank < args.nodes:
        return None, (f"error: NODE_RANK must be in [0, NODE_NUM - 1] = [0, {args.nodes - 1}], got {args.node_rank}"
                      if args.nodes >= 1 else f"error: NODE_NUM must be a positive integer, got {args.nodes}")
    if args.nodes > 1 and args.single:
        return None, "error: a multi-node job runs through msrun or a rank table, not --single"
    first = args.node_rank * args.ranks
    start = os.environ.get("RANK_START", "") if args.rank_table else ""
    if start:
        if not start.isdigit():
            return None, f"error: RANK_START must be a non-negative integer (this server's first rank), got '{start}'"
        first = int(start)
    layout = Layout(args.ranks, args.nodes, args.node_rank, first)
    if args.nodes > 1 and not args.rank_table:
        local = is_local_address(args.master_addr)
        if args.node_rank == 0 and not local:
            return None, (f"error: MASTER_ADDR {args.master_addr} is not an address of this machine, but NODE_RANK 0 "
                          f"hosts msrun's scheduler: run NODE_RANK 0 on the server MASTER_ADDR names")
        if args.node_rank > 0 and local:
            return None, (f"error: MASTER_ADDR {args.master_addr} is this machine, but NODE_RANK {args.node_rank} "
                          f"must reach node 0's scheduler: set MASTER_ADDR to node 0's address")
    return layout, ""


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
    parser.add_argument("--nodes", type=int, default=1, help="nodes (servers) in the job, --ranks on each (NODE_NUM)")
    parser.add_argument("--node_rank", type=int, default=0, help="this node's index, 0 hosts the scheduler (NODE_RANK)")
    parser.add_argument("--master_addr", default="127.0.0.1",
                        help="node 0's address, reachable from every node (MASTER_ADDR)")
    parser.add_argument("--cluster_time_out", type=int,
                        help="seconds msrun waits for every rank to join the cluster (msrun's default: 600)")
    parser.add_argument("--cwd", default=os.getcwd(), help="the ranks' working directory")
    parser.add_argument("--output_dir", type=Path,
                        help="the training's output_dir: locked before any rank starts (another run there: refused, "
                             "exit 2), held till the end, shared with the ranks")
    parser.add_argument("--resume_command", default="", help="the command that resumes this run (printed on a stop)")
    parser.add_argument("script", nargs=argparse.REMAINDER, help="-- SCRIPT ARGS...")
    args = parser.parse_args(argv)
    script = args.script[1:] if args.script[:1] == ["--"] else args.script
    if not script or args.ranks < 1 or (args.single and args.ranks != 1):
        parser.error("needs --ranks >= 1 (1 with --single) and -- SCRIPT ARGS...")
    layout, error = layout_of(args)
    if layout is None:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    with StopRequest().installed() as stop, ExitStack() as held:  # first: the caller's pid is this process now
        lock = None
        if args.output_dir is not None:
            try:  # before the logs are touched: a refused run leaves the running one's alone
                lock = held.enter_context(lock_output_dir(args.output_dir, job_token(args, layout)))
            except InUse as exc:
                print(f"error: {exc}", file=sys.stderr, flush=True)
                return EXIT_USAGE
        port = None
        if not (args.rank_table or args.single):
            port, line = msrun_port(args.master_port, args.default_port, args.nodes, args.node_rank == 0)
            print(line, file=sys.stderr if port is None else sys.stdout, flush=True)
            if port is None:
                return EXIT_USAGE
        args.log_dir.mkdir(parents=True, exist_ok=True)
        kept = rotate_logs(args.log_dir, log_names(args, layout))
        if kept:
            print(f"the previous logs in {args.log_dir} are kept as {', '.join(kept)}", flush=True)
        group, failure = Group(lock), None
        try:
            if not stop.signum:  # none arrived during the port check
                failure = _run(args, layout, group, stop, script, port)
        finally:
            survivors = group.stop()
        if stop.signum:
            print(stopped(stop.signum, survivors, args.resume_command), file=sys.stderr, flush=True)
            return 128 + stop.signum
        return report(failure, layout, args.log_dir, console_has_all=args.single,
                      master=f"{args.master_addr}:{args.master_port}")


if __name__ == "__main__":
    sys.exit(main())
