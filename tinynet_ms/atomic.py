"""Atomic file writes: the one way tinynet_ms writes a file that a crash, a kill or a concurrent reader must never
see half-written (checkpoints, metrics, indexes, compiled kernels, offline tensors, results); and the one lock that
keeps two writers out of one output (a training's or a cube search's directory, an exported or quantized file).

Standard library only: the training launcher imports it without loading MindSpore."""
from __future__ import annotations

import fcntl
import json
import os
import secrets
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tinynet_ms.cli import UsageError


def _read_umask() -> int:
    mask = os.umask(0)  # the only portable way to read it; done once, at import, before any threads write files
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextmanager
def atomic_path(path: str | os.PathLike, mode: int = 0o666, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an error it is renamed over ``path``
    in one step, otherwise removed. The temporary name ends in ``suffix`` (default: ``path``'s; some writers
    append their own when it is missing). ``mode`` (less the umask) replaces mkstemp's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix if suffix is None else suffix,
                               dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_temporaries(folder: str | os.PathLike, *suffixes: str) -> list[Path]:
    """Delete the temporaries a killed writer left in ``folder`` (``.<stem>.<random><suffix>``, atomic_path's
    names, for each of ``suffixes``); returns what was removed. Only for folders no other process is writing into
    at the time."""
    folder = Path(folder)
    found = (p for suffix in suffixes for p in folder.glob(f".*{suffix}")) if folder.is_dir() else ()
    stale = sorted({p for p in found if p.name.count(".") >= 2})
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


# -- one writer per output -----------------------------------------------------------------------------------------
LOCK_FILE = ".lock"  # in a directory that one run writes (a training's output_dir, a cube search's --out)
# The job a lock belongs to: a launcher that holds an output_dir's lock sets it for the processes it starts (msrun's
# ranks cannot inherit the lock itself: msrun closes inherited files), which then share the lock instead of being
# refused; any other process is another job.
LOCK_TOKEN_ENV = "TINYNET_LOCK_TOKEN"


class InUse(UsageError):
    """Another process holds the lock: exit code 2, as for a busy MASTER_PORT (nothing was started)."""


@dataclass
class OutputLock:
    """An exclusive ``fcntl.flock`` on ``path``, or a share in one this process's job holds (``fd`` None). The OS
    drops a flock when the last process holding its file closes it, so a kill -9 never leaves a stale lock."""
    path: Path
    fd: int | None
    token: str
    remove: bool = False  # delete the lock file on release (only where the fd never goes to another process)

    @property
    def env(self) -> dict[str, str]:
        """The environment that makes processes started by this one part of its job (they share the lock)."""
        return {LOCK_TOKEN_ENV: self.token}

    def release(self) -> None:
        if self.fd is None:
            return
        if self.remove and _is_open_file(self.fd, self.path):  # before unlocking: no other process has it yet
            self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *_exc) -> None:
        self.release()


def _is_open_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (a releasing holder may have removed it meanwhile)."""
    try:
        st, now = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino)


# How long a refused process waits for the holder to finish writing who it is: the nodes of a multi-node job start
# at the same moment, and one that read a half-written file could not tell that it belongs to the holder's job.
HOLDER_WRITE_SECONDS = 2.0


def _holder(fd: int) -> dict:
    """What the holder wrote into the lock file; {} for a foreign file, or a holder that did not write it in time."""
    deadline = time.monotonic() + HOLDER_WRITE_SECONDS
    while True:
        try:
            info = json.loads(os.pread(fd, 4096, 0))
            if isinstance(info, dict) and "token" in info:
                return info
        except (OSError, ValueError):  # being written: empty, or new text over the end of the old
            pass
        if time.monotonic() > deadline:
            return {}
        time.sleep(0.05)


def _who(info: dict) -> str:
    """The holder in words: 'another training (pid 123)'."""
    who = f"another {info['holder']}" if isinstance(info.get("holder"), str) else "another process"
    pid = info.get("pid")
    if not isinstance(pid, int):
        return who
    if info.get("host", socket.gethostname()) != socket.gethostname():  # a shared folder: a job on another machine
        return f"{who} (pid {pid} on {info['host']})"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:  # it died, but a process it started (and gave the lock to) still runs
        return f"{who} (pid {pid} has ended; a process it started still runs)"
    except OSError:  # another user's process: alive
        pass
    return f"{who} (pid {pid})"


def hold_lock(path: str | os.PathLike, holder: str, what: str, advice: str, remove: bool = False,
              job: str | None = None) -> OutputLock:
    """Take the lock file ``path`` (created if missing) without waiting, writing ``holder`` (what this process is,
    e.g. 'training'), its pid and host into it for the refusal of others. Held already by a process of this job
    (``job``, default ``TINYNET_LOCK_TOKEN``): a share in it. Held by anyone else: ``InUse``, one line '``what`` is
    in use by another <holder> (pid N): ``advice``'. ``remove``: delete the file on release (keep it where the fd is
    passed on to child processes, which may outlive this one)."""
    path = Path(path)
    job = job or os.environ.get(LOCK_TOKEN_ENV, "")
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # named as what cannot be written, not as the hidden lock file
            raise OSError(f"{what} cannot be written ({exc.strerror or exc}): choose another place or fix its "
                          f"permissions") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _holder(fd)
            os.close(fd)
            if job and info.get("token") == job:
                return OutputLock(path, None, job)
            raise InUse(f"{what} is in use by {_who(info)}: {advice}") from None
        if _is_open_file(fd, path):
            break
        os.close(fd)  # its last holder removed this file while we opened it: take the one now there
    token = job or secrets.token_hex(8)  # a process of a job whose lock went away keeps the job's token
    text = json.dumps({"holder": holder, "pid": os.getpid(), "host": socket.gethostname(), "token": token}).encode()
    os.pwrite(fd, text, 0)  # then cut the old end: the file is never empty, readers retry while it is not JSON
    os.ftruncate(fd, len(text))
    return OutputLock(path, fd, token, remove)


def lock_directory(folder: str | os.PathLike, holder: str, advice: str, job: str | None = None) -> OutputLock:
    """``folder``'s lock (``folder/.lock``, kept: a launcher or search passes it on to the processes it starts), for
    a process that writes the whole folder: a training, a cube search."""
    folder = Path(folder)
    return hold_lock(folder / LOCK_FILE, holder, f"'{folder}'", advice, job=job)


def lock_output_file(path: str | os.PathLike, holder: str) -> OutputLock:
    """The lock of one output file (``.NAME.lock`` beside it, removed on release): an export, a quantization."""
    path = Path(path)
    return hold_lock(path.with_name(f".{path.name}.lock"), holder, str(path), "wait for it to finish, or write another "
                     "file", remove=True)
