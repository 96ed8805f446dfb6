"""Compiles generated C++ into a shared library with the system's g++ and loads it."""
from __future__ import annotations

import ctypes
import errno
import functools
import os
import shutil
import subprocess
import warnings
from pathlib import Path

from ...errors import CompileError, InternalError
from .pch import pch_dir, use_pch

# the renderer's first line in a file holding T.import_source / T.call_extern code (codegen.py)
USER_CODE = "// tilewise: this file holds user code (T.import_source / T.call_extern)"

INCLUDE_DIR = Path(__file__).parent / "include"
FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17", "-fno-math-errno", "-fno-strict-aliasing", "-ffp-contract=off", "-w"]


@functools.cache
def link_flags() -> tuple[str, ...]:
    """gold links a kernel's library in a third of the time of the default linker (ld.bfd), which
    is a fifth of a cold compile once the headers come precompiled; the code is the same."""
    return ("-fuse-ld=gold",) if shutil.which("ld.gold") else ()


@functools.cache
def compiler() -> str:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        raise RuntimeError("the CPU target needs a C++ compiler (g++); install it or set CXX")
    return cxx


@functools.cache
def compiler_id() -> str:
    """Identifies what a built library depends on, for cache keys: the flags, the headers and the
    host CPU (-march=native code may not run on another CPU). Not the compiler itself, so that a
    cached kernel loads without a compiler being run or even installed."""
    headers = "".join(p.read_text() for p in sorted(INCLUDE_DIR.glob("*.h")))
    import hashlib

    return hashlib.sha256((" ".join(FLAGS + list(link_flags())) + headers + _host_cpu()).encode()).hexdigest()[:16]


@functools.cache
def _host_cpu() -> str:
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            info = f.read().split("\n\n")[0]
        keep = [ln for ln in info.splitlines() if ln.split(":")[0].strip() in ("vendor_id", "model name", "flags", "Features")]
        return platform.machine() + "\n".join(keep)
    except OSError:
        return platform.machine() + platform.processor()


def build_shared_library(source: str, out_path: Path, extra_flags=(), cache=None) -> None:
    """Compile `source` to `out_path` (written to a temporary name, then renamed); `extra_flags`
    (the user's compile_flags) come after tilewise's own, so they can override them. With the
    kernel cache given (tilewise.jit.cache), tilewise's headers come precompiled where they can
    (pch.py)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    src_path = out_path.with_suffix(f".{os.getpid()}.cpp")
    tmp_so = out_path.with_suffix(f".{os.getpid()}.tmp.so")
    includes = [f"-I{INCLUDE_DIR}"]
    compiled, pch = source, None
    split = use_pch(source, extra_flags) if cache is not None else None
    if split is not None:
        pch = pch_dir(split[0], compiler(), FLAGS, INCLUDE_DIR, _host_cpu(), cache)
        if pch is not None:
            compiled = split[1]
            includes.insert(0, f"-I{pch}")
    src_path.write_text(compiled)
    cmd = [compiler(), *FLAGS, *link_flags(), *extra_flags, *includes, str(src_path), "-o", str(tmp_so)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 and pch is not None:
        # the precompiled header's entry may have been removed meanwhile (clear_cache): the
        # headers themselves then, whose messages are the ones worth reporting anyway
        src_path.write_text(source)
        cmd = [c for c in cmd if c != f"-I{pch}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        import tempfile

        if "No space left on device" in proc.stderr or "Disk quota exceeded" in proc.stderr:
            raise OSError(errno.ENOSPC, f"no space left on the device while compiling a kernel into {out_path.parent}: "
                          + proc.stderr[-500:])
        kept = Path(tempfile.mkdtemp(prefix="tilewise-failed-")) / "kernel.cpp"
        kept.write_text(source)
        if USER_CODE in source:
            raise CompileError("the C++ generated with your T.import_source / T.call_extern code did not compile "
                               "(on the CPU target an external function must be C++ visible in the file):\n"
                               + proc.stderr[-4000:] + f"\n(source kept at {kept})")
        raise InternalError(
            "the generated C++ did not compile:\n" + proc.stderr[-4000:] + f"\n(source kept at {kept})"
        )
    os.replace(tmp_so, out_path)
    src_path.unlink(missing_ok=True)


def load_library(path: Path, entry: str):
    # libgomp spins 300k iterations waiting for work by default; when other processes share the
    # cores (test workers, a second program) that turns a tiny kernel into milliseconds. A short
    # spin keeps hand-offs fast on an idle machine. Read once, when libgomp first loads.
    os.environ.setdefault("GOMP_SPINCOUNT", "20000")
    lib = ctypes.CDLL(str(path))
    _guard_fork()
    fn = getattr(lib, entry)
    fn.restype = ctypes.c_int32
    fn.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int64)]
    return lib, fn


_fork_guarded = False
fork_warning = True  # off while the autotuner forks its crash probes (autotuner/sandbox.py)


def _guard_fork() -> None:
    """OpenMP's thread pool does not survive fork(): a child process (a DataLoader worker, a
    multiprocessing fork pool) whose parent ran a parallel region hangs in its first one. So a
    child forked after kernels were loaded runs them on one thread, and says so once."""
    global _fork_guarded
    if _fork_guarded or not hasattr(os, "register_at_fork"):
        return
    _fork_guarded = True
    os.register_at_fork(after_in_child=_single_threaded_after_fork)


def _single_threaded_after_fork() -> None:
    for name in ("libgomp.so.1", "libomp.so", "libiomp5.so"):
        try:
            omp = ctypes.CDLL(name, mode=os.RTLD_NOLOAD)
        except OSError:
            continue
        omp.omp_set_num_threads(1)
        if not fork_warning:
            return
        warnings.warn("tilewise: this process was forked after CPU kernels ran; OpenMP does not survive fork, so "
                      "they run on one thread here (use the 'spawn' start method for parallel kernels in children)",
                      RuntimeWarning, stacklevel=2)
        return
