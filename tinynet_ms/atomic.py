"""Atomic file writes: the one way tinynet_ms writes a file that a crash, a kill or a concurrent reader must never
see half-written (checkpoints, metrics, indexes, compiled kernels, offline tensors, results)."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
