"""Compiles generated C++ into a shared library with the system's g++ and loads it."""
from __future__ import annotations

import ctypes
import functools
import os
import shutil
import subprocess
from pathlib import Path

from ...errors import InternalError

INCLUDE_DIR = Path(__file__).parent / "include"
FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17", "-fno-math-errno", "-w"]


@functools.lru_cache(maxsize=None)
def compiler() -> str:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        raise RuntimeError("the CPU target needs a C++ compiler (g++); install it or set CXX")
    return cxx


@functools.lru_cache(maxsize=None)
def compiler_id() -> str:
    """Identifies the compiler, flags and headers, for cache keys."""
    try:
        ver = subprocess.run([compiler(), "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        ver = "unknown"
    headers = "".join(p.read_text() for p in sorted(INCLUDE_DIR.glob("*.h")))
    import hashlib

    return hashlib.sha256((ver + " ".join(FLAGS) + headers).encode()).hexdigest()[:16]


def build_shared_library(source: str, out_path: Path) -> None:
    """Compile `source` to `out_path` (written to a temporary name, then renamed)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    src_path = out_path.with_suffix(f".{os.getpid()}.cpp")
    tmp_so = out_path.with_suffix(f".{os.getpid()}.tmp.so")
    src_path.write_text(source)
    cmd = [compiler(), *FLAGS, f"-I{INCLUDE_DIR}", str(src_path), "-o", str(tmp_so)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        import tempfile

        kept = Path(tempfile.mkdtemp(prefix="tilewise-failed-")) / "kernel.cpp"
        kept.write_text(source)
        raise InternalError(
            "the generated C++ did not compile:\n" + proc.stderr[-4000:] + f"\n(source kept at {kept})"
        )
    os.replace(tmp_so, out_path)
    src_path.unlink(missing_ok=True)


def load_library(path: Path, entry: str):
    lib = ctypes.CDLL(str(path))
    fn = getattr(lib, entry)
    fn.restype = ctypes.c_int32
    fn.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int64)]
    return lib, fn
