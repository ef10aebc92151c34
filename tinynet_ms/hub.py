"""The official pretrained weights on first use: download huawei-noah's release file, convert it, keep the .ckpt.

    python -m tinynet_ms.hub download tinynet_a [tinynet_e ...]   # pre-fetch, e.g. on a login node

``create_model(name, pretrained=True)`` (and the model zoo's ``--pretrained true``) loads
``<cache>/<name>.ckpt``; when it is missing, the file named by the variant record (``Variant.url``) is downloaded
into the cache, converted with the same checks as ``python -m tinynet_ms.convert`` (every tensor's name and
shape), and only the ``.ckpt`` is kept. A file that is already in the cache as ``<name>.pth`` (copied there by
hand) is converted without downloading.

Environment:

    TINYNET_MS_HOME         the cache folder (default ~/.cache/tinynet_ms)
    TINYNET_MS_WEIGHTS_URL  a base URL that replaces the release's: <base>/<name>.pth is fetched instead
                            (a mirror, an intranet copy, a local server in tests)

Safety: the download goes to a temporary file beside its final name, is fsynced and renamed only when complete
(the byte count matches Content-Length, and the SHA-256 matches when the record holds one), so an interrupted
download (dropped connection, Ctrl-C, kill) never leaves a torn file under the final name; temporaries of a killed
download are removed by the next one. A file that does not read as weights is an error and is not kept.
Processes sharing the cache (e.g. the ranks of a distributed run) take turns through a lock file: one downloads,
the others then find the .ckpt. Proxies: urllib's ``https_proxy`` / ``no_proxy`` variables apply.
Exit codes: see ``tinynet_ms.cli``.
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TextIO

from mindspore import nn

from tinynet_ms.atomic import atomic_path, remove_temporaries
from tinynet_ms.classes import IMAGENET_NUM_CLASSES, imagenet_class_names
from tinynet_ms.cli import run_main
from tinynet_ms.models.tinynet import TinyNet
from tinynet_ms.models.variants import VARIANTS, Variant
from tinynet_ms.weights import CHECKPOINT_TEMPORARIES, read_torch_weights, save_checkpoint_atomic, timm_to_mindspore

HOME_ENV = "TINYNET_MS_HOME"
URL_ENV = "TINYNET_MS_WEIGHTS_URL"
TIMEOUT = 60.0  # seconds without a byte before a download counts as failed (connect, then each read)
_CHUNK = 1 << 16
_RAW_SUFFIXES = (".pth", ".safetensors")  # what a release / mirror file may be; the reader goes by the suffix


class DownloadError(OSError):
    """A weights file could not be fetched whole (unreachable, HTTP error, broken off, wrong hash); nothing kept."""


def pretrained_dir() -> Path:
    """The weights cache: ``$TINYNET_MS_HOME`` or ``~/.cache/tinynet_ms``."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "tinynet_ms")


def _record(name: str) -> Variant:
    if name not in VARIANTS:
        raise ValueError(f"pretrained weights exist for {sorted(VARIANTS)} only, not '{name}'")
    return VARIANTS[name]


def weights_url(name: str) -> str:
    """Where the weights of variant ``name`` are fetched from: its record's URL, or the same file name under
    ``$TINYNET_MS_WEIGHTS_URL``."""
    url, base = _record(name).url, os.environ.get(URL_ENV, "").strip()
    return f"{base.rstrip('/')}/{url.rsplit('/', 1)[-1]}" if base else url


class _Progress:
    """A carriage-return percentage line on a terminal; nothing otherwise (the caller's one log line stays)."""

    def __init__(self, label: str, total: int | None, stream: TextIO, enabled: bool) -> None:
        self.label, self.total, self.stream, self.enabled = label, total, stream, enabled
        self.last, self.open = 0.0, False  # open: a line without its newline is on the terminal

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last < 0.2):
            return
        self.last = now
        size = f"{done / 1e6:.1f}" + (f"/{self.total / 1e6:.1f} MB" if self.total else " MB")
        pct = f"{100 * done / self.total:3.0f}% " if self.total else ""
        self.stream.write(f"\r{self.label}: {pct}{size}" + ("\n" if final else ""))
        self.stream.flush()
        self.open = not final

    def close(self) -> None:
        """End a line an interruption left open, so the error does not print over it."""
        if self.open:
            self.stream.write("\n")
            self.open = False


def _unreachable(url: str, exc: BaseException) -> DownloadError:
    """Why ``url`` could not be opened, in one line (urllib nests the cause in ``reason``)."""
    if isinstance(exc, urllib.error.HTTPError):
        reason = f"HTTP {exc.code} {exc.reason}"
    else:
        reason = getattr(exc, "reason", None) or exc
        reason = f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)
    return DownloadError(f"cannot download {url} ({reason})")


def download(url: str, dst: str | os.PathLike, sha256: str | None = None, progress: bool | None = None,
             timeout: float = TIMEOUT) -> Path:
    """Fetch ``url`` to ``dst`` all or nothing: a temporary beside ``dst``, fsynced, renamed once the byte count
    (Content-Length) and ``sha256`` (when given) check out. Any failure, Ctrl-C included, removes the temporary.
    ``progress``: a percentage line on stderr (default: when stderr is a terminal); one start line is always
    written, so a log shows what was fetched."""
    dst = Path(dst)
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _unreachable(url, exc) from None
    with response, atomic_path(dst) as tmp:
        total = int(response.headers.get("Content-Length") or 0) or None
        size = f" ({total / 1e6:.1f} MB)" if total else ""
        print(f"downloading {url}{size} to {dst}", file=sys.stderr, flush=True)
        bar = _Progress(dst.name, total, sys.stderr, sys.stderr.isatty() if progress is None else progress)
        digest, done = hashlib.sha256(), 0
        with open(tmp, "wb") as out, closing(bar):
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as exc:  # reset, timeout, IncompleteRead
                    raise DownloadError(f"download of {url} broke off after {done:,} bytes ({type(exc).__name__}: "
                                        f"{exc}); nothing was kept, run again to retry") from None
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                bar.update(done)
            bar.update(done, final=True)
            out.flush()
            os.fsync(out.fileno())
        if total is not None and done != total:
            raise DownloadError(f"download of {url} broke off after {done:,} of {total:,} bytes; nothing was kept, "
                                f"run again to retry")
        if sha256 and digest.hexdigest() != sha256.lower():
            raise DownloadError(f"{url} does not have the expected SHA-256 ({digest.hexdigest()}, expected {sha256}): "
                                f"a damaged or different file; nothing was kept")
    return dst


def convert_weights(src: str | os.PathLike, dst: str | os.PathLike, net: nn.Cell, label: str | None = None) -> Path:
    """A timm ``.pth`` / ``.safetensors`` renamed to ``net``'s names, every name and shape checked, written to
    ``dst`` (.ckpt) atomically. The one conversion: ``python -m tinynet_ms.convert`` runs it too. A 1000-class
    network's file gets the ImageNet-1k class names stored (what timm's / huawei-noah's weights were trained on)."""
    names = imagenet_class_names() if getattr(net, "num_classes", None) == IMAGENET_NUM_CLASSES else None
    return save_checkpoint_atomic(timm_to_mindspore(read_torch_weights(src), net, label or str(src)), dst,
                                  class_names=names)


@contextmanager
def _cache_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder/.lock`` exclusively (waiting for it): no other process fetches into the cache meanwhile, so
    its leftover temporaries are stale and a .ckpt that appeared while waiting is complete."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _by_hand(name: str, url: str, raw: Path, ckpt: Path) -> str:
    """Where the file goes when this machine cannot fetch it: the two ways, in the words of one error line."""
    return (f"get {url.rsplit('/', 1)[-1]} on a machine with internet access and copy it to {raw} (converted on "
            f"first use), or convert it yourself: python -m tinynet_ms.convert {raw.name} {ckpt} --model {name}")


def pretrained_checkpoint(name: str, cache_dir: str | os.PathLike | None = None, force: bool = False,
                          progress: bool | None = None) -> Path:
    """The converted official weights of variant ``name``: ``<cache>/<name>.ckpt``, downloaded and converted on
    first use (``force``: again, replacing it). Errors are one line naming the URL and where the file goes by hand:
    ``DownloadError`` (an OSError) when it cannot be fetched, ValueError when the file is not the weights."""
    record = _record(name)
    cache = Path(cache_dir) if cache_dir is not None else pretrained_dir()
    ckpt = cache / f"{name}.ckpt"
    if ckpt.is_file() and not force:
        return ckpt
    url = weights_url(name)
    raw = cache / Path(urllib.parse.urlparse(url).path).name
    if raw.suffix.lower() not in _RAW_SUFFIXES:
        raise ValueError(f"{url}: expected a .pth or .safetensors file name (check {URL_ENV})")
    with _cache_lock(cache):
        if ckpt.is_file() and not force:  # another process fetched it while this one waited
            return ckpt
        remove_temporaries(cache, *_RAW_SUFFIXES, *CHECKPOINT_TEMPORARIES)
        fetched = force or not raw.is_file()
        if fetched:
            try:
                download(url, raw, record.sha256, progress)
            except DownloadError as exc:
                raise DownloadError(f"{exc}; {_by_hand(name, url, raw, ckpt)}") from None
        net = TinyNet(record.spec, num_classes=record.num_classes, drop_rate=0.0, cpu_kernels=False)
        try:
            convert_weights(raw, ckpt, net, f"{url} (for {name})")
        except ImportError:
            raise  # PyTorch missing: the download is fine and stays for the next attempt
        except ValueError as exc:
            if fetched:
                raw.unlink(missing_ok=True)
            what = "it was not kept" if fetched else f"delete {raw} to download it again"
            raise ValueError(f"{url} did not give {name}'s weights ({str(exc).splitlines()[0]}); {what}") from None
        raw.unlink(missing_ok=True)
    return ckpt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinynet_ms.hub", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fetch = commands.add_parser("download", help="fetch and convert the official weights into the cache",
                                description="Fetch and convert the official weights of each NAME into the cache "
                                            "(already cached ones are left as they are).")
    fetch.add_argument("names", nargs="+", metavar="NAME", choices=sorted(VARIANTS),
                       help=f"variant(s): {', '.join(sorted(VARIANTS))}")
    fetch.add_argument("--cache_dir", default=None,
                       help=f"where the .ckpt files go (default: ${HOME_ENV} or ~/.cache/tinynet_ms)")
    fetch.add_argument("--force", action="store_true", help="download and convert again even when cached")
    args = parser.parse_args(argv)

    def run() -> None:
        for name in dict.fromkeys(args.names):
            print(f"{name}: {pretrained_checkpoint(name, args.cache_dir, args.force)}", flush=True)

    return run_main(run)


if __name__ == "__main__":
    sys.exit(main())
