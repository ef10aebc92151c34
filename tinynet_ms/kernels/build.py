"""Compiles the C++ kernel sources (``*.cc`` + ``common.h`` in this package) into one shared library.

``build_library()`` runs g++ (``$CXX`` if set) once per source/compiler/flags combination and keeps the result in
``$TINYNET_MS_HOME/kernels/kernels-<hash>.so`` (default ``~/.cache/tinynet_ms/kernels``). The file is written to a
temporary name and renamed, so concurrent processes (msrun workers) never see a torn library. Flags: ``-O3``, plus
``-mavx2 -mfma`` when the building CPU has both (not ``-march=native``: the library may be reused on another
machine of the same kind). The pointwise kernels link MindSpore's own oneDNN (``mindspore/lib/libdnnl.so.3``, whose
sgemm picks its kernels for the CPU at run time) when that installation has it, else they use a plain loop.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import threading
from pathlib import Path

from tinynet_ms.atomic import atomic_path

HERE = Path(__file__).parent
SOURCES = (HERE / "depthwise.cc", HERE / "swish.cc", HERE / "channel.cc", HERE / "batchnorm.cc", HERE / "pointwise.cc")
DNNL = "libdnnl.so.3"  # MindSpore 2.x CPU wheels ship oneDNN 3 in mindspore/lib
HEADERS = (HERE / "common.h", HERE / "gemm.h")

_lock = threading.Lock()
_library: Path | None = None


def cache_dir() -> Path:
    home = os.environ.get("TINYNET_MS_HOME", str(Path.home() / ".cache" / "tinynet_ms"))
    return Path(home) / "kernels"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _mindspore_lib() -> Path | None:
    """MindSpore's ``lib`` folder, found without importing MindSpore."""
    spec = importlib.util.find_spec("mindspore")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    return next((Path(f) / "lib" for f in folders if (Path(f) / "lib" / DNNL).is_file()), None)


def compile_flags() -> list[str]:
    isa = ["-mavx2", "-mfma"] if {"avx2", "fma"} <= _cpu_flags() else []
    dnnl = ["-DTINYNET_DNNL"] if _mindspore_lib() is not None else []
    return ["-std=c++17", "-O3", *isa, "-shared", "-fPIC", "-pthread", *dnnl]


def link_flags() -> list[str]:
    """After the sources (linkers that drop unneeded libraries look at what comes before them)."""
    lib = _mindspore_lib()
    return [f"-L{lib}", f"-l:{DNNL}", f"-Wl,-rpath,{lib}"] if lib is not None else []


def _compiler() -> str:
    cxx = os.environ.get("CXX", "g++")
    path = shutil.which(cxx)
    if path is None:
        raise RuntimeError(
            f"the CPU kernels must be compiled, but the C++ compiler '{cxx}' was not found on PATH: "
            f"install g++ (e.g. apt-get install g++), set CXX to a compiler, or build the network with "
            f"create_model(..., cpu_kernels=False)")
    return path


def build_library(force: bool = False) -> Path:
    """Path of the compiled kernel library, compiling it first if this source/compiler/flags has no build yet."""
    global _library
    with _lock:
        if _library is not None and _library.is_file() and not force:
            return _library
        missing = [str(p) for p in SOURCES + HEADERS if not p.is_file()]
        if missing:
            raise RuntimeError(f"the kernel sources {missing} are missing from this installation (package data "
                               f"tinynet_ms/kernels/*.cc and *.h must be installed with the package)")
        cxx = _compiler()
        flags = compile_flags()
        link = link_flags()
        version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False).stdout
        digest = hashlib.sha256()
        for part in [p.read_bytes() for p in SOURCES + HEADERS] + [version.encode(), " ".join(flags + link).encode()]:
            digest.update(part)
            digest.update(b"\0")
        out_dir = cache_dir()
        target = out_dir / f"kernels-{digest.hexdigest()[:16]}.so"
        if force or not target.is_file():
            # atomic: a concurrent builder (another msrun worker) replaces it with identical bytes
            with atomic_path(target, mode=0o777) as tmp:
                proc = subprocess.run([cxx, *flags, "-o", str(tmp), *map(str, SOURCES), *link], capture_output=True,
                                      text=True, check=False, timeout=300)
                if proc.returncode != 0:
                    raise RuntimeError(f"compiling the CPU kernels failed ({cxx} {' '.join(flags)}):\n"
                                       f"{proc.stdout}{proc.stderr}")
        _check_white_list(target)
        _library = target
        return target


def _check_white_list(path: Path) -> None:
    allowed = os.environ.get("MS_CUSTOM_AOT_WHITE_LIST")
    if allowed is None:
        return
    allowed, real = os.path.realpath(allowed), os.path.realpath(path)
    if os.path.commonpath([allowed, real]) != allowed:
        raise RuntimeError(f"MS_CUSTOM_AOT_WHITE_LIST={allowed} does not contain the kernel library {real}; "
                           f"set TINYNET_MS_HOME to a directory inside the white list")
