"""CUDA C++ -> cubin (and PTX) with NVRTC, through `cuda.bindings.nvrtc`. Needs no GPU."""
from __future__ import annotations

import functools
import glob
import hashlib
import os
import re
import sys
from dataclasses import dataclass

from .toolkit import INCLUDE_DIR, SHARED_INCLUDE_DIR, cuda_include_dir

ARCHS = ("sm_80", "sm_86", "sm_89", "sm_90", "sm_90a")  # what tilewise targets and tests
_ARCH = re.compile(r"sm_\d{2,3}[af]?")  # any other real architecture NVRTC knows, e.g. a newer GPU


class NvrtcError(RuntimeError):
    """NVRTC rejected the source; `log` is NVRTC's full message."""

    def __init__(self, message: str, log: str = "", source: str = ""):
        self.log = log
        self.source = source
        super().__init__(message)


@dataclass(frozen=True)
class NvrtcOutput:
    cubin: bytes
    ptx: str | None  # only when asked for
    log: str  # warnings (empty when clean)
    arch: str
    options: tuple[str, ...]


def _nvrtc():
    try:
        from cuda.bindings import nvrtc
    except ImportError as e:  # pragma: no cover - the cuda extra is installed in tests
        raise NvrtcError(
            "NVRTC is not available: install tilewise's `cuda` extra (pip install 'tilewise[cuda]')"
        ) from e
    return nvrtc


def _check(nvrtc, result: tuple, what: str):
    """Raise on an error code; return the call's single output (or the tuple of outputs)."""
    err, *out = result
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        _, msg = nvrtc.nvrtcGetErrorString(err)
        raise NvrtcError(f"NVRTC {what} failed: {msg.decode(errors='replace')}")
    return out[0] if len(out) == 1 else tuple(out)


def nvrtc_version() -> tuple[int, int]:
    nvrtc = _nvrtc()
    major, minor = _check(nvrtc, nvrtc.nvrtcVersion(), "version query")
    return int(major), int(minor)


@functools.cache
def toolchain_fingerprint() -> str:
    """What besides the source and options decides the cubin (for disk cache keys): the NVRTC
    library and the contents of tw_cuda.h and the shared headers it includes. A pip-installed NVRTC (where cuda.bindings looks
    first) is named by its files' sizes and times, so that a cache hit need not load it (loading
    libnvrtc costs far more than the rest of a hit); any other is asked for its version."""
    digest = hashlib.sha256()
    for path in [os.path.join(INCLUDE_DIR, "tw_cuda.h")] + sorted(glob.glob(os.path.join(SHARED_INCLUDE_DIR, "*.h"))):
        with open(path, "rb") as f:
            digest.update(f.read())
    header = digest.hexdigest()[:16]
    libs = _pip_nvrtc_files()
    if libs:
        ident = hashlib.sha256("\n".join(libs).encode()).hexdigest()[:16]
        return f"nvrtc-pip-{ident}-tw_cuda-{header}"
    major, minor = nvrtc_version()
    return f"nvrtc-{major}.{minor}-tw_cuda-{header}"


def _pip_nvrtc_files() -> list[str]:
    """path:size:mtime of the libnvrtc files of the first site directory holding any (the
    nvidia-cuda-nvrtc wheels: nvidia/cu13/lib, nvidia/cuda_nvrtc/lib), or [] if none does."""
    for base in sys.path:
        found = glob.glob(os.path.join(base or ".", "nvidia", "*", "lib", "libnvrtc*.so*"))
        if found:
            rows = []
            for path in sorted(found):
                st = os.stat(path)
                rows.append(f"{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}")
            return rows
    return []


def compile_options(arch: str, fast_math: bool = False, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The NVRTC command line used for `arch` (part of any cache key)."""
    if arch not in ARCHS and not _ARCH.fullmatch(arch):
        raise ValueError(f"unsupported CUDA architecture {arch!r}; supported: {', '.join(ARCHS)}")
    opts = [
        f"--gpu-architecture={arch}",
        "-std=c++17",
        f"-I{INCLUDE_DIR}",
        f"-I{SHARED_INCLUDE_DIR}",
        f"-I{cuda_include_dir()}",
        # multiply-adds are fused where the IR says (transform/contract_fma.py), nowhere else
        "--fmad=false",
    ]
    if fast_math:
        opts.append("--use_fast_math")
    return tuple(opts) + tuple(extra)


def nvrtc_compile(
    source: str,
    arch: str = "sm_80",
    *,
    fast_math: bool = False,
    ptx: bool = False,
    options: tuple[str, ...] = (),
    name: str = "tilewise_kernel.cu",
) -> NvrtcOutput:
    """Compile CUDA C++ for one real architecture. Results are memoised on (source, options), so a
    kernel compiled twice in one process costs one NVRTC run. Raises NvrtcError with the log."""
    opts = compile_options(arch, fast_math, tuple(options))
    return _compile_cached(source, name, opts, bool(ptx), arch)


def compile_cubin(source: str, arch: str = "sm_80", *, fast_math: bool = False, options: tuple[str, ...] = ()) -> bytes:
    return nvrtc_compile(source, arch, fast_math=fast_math, options=options).cubin


def compile_ptx(source: str, arch: str = "sm_80", *, fast_math: bool = False) -> str:
    out = nvrtc_compile(source, arch, fast_math=fast_math, ptx=True)
    assert out.ptx is not None
    return out.ptx


@functools.lru_cache(maxsize=256)
def _compile_cached(source: str, name: str, opts: tuple[str, ...], want_ptx: bool, arch: str) -> NvrtcOutput:
    nvrtc = _nvrtc()
    prog = _check(nvrtc, nvrtc.nvrtcCreateProgram(source.encode(), name.encode(), 0, [], []), "program creation")
    try:
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), [o.encode() for o in opts])
        log = _log(nvrtc, prog)
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise NvrtcError(_failure_message(name, arch, log, source), log, source)
        size = _check(nvrtc, nvrtc.nvrtcGetCUBINSize(prog), "cubin size query")
        cubin = bytearray(size)
        _check(nvrtc, nvrtc.nvrtcGetCUBIN(prog, cubin), "cubin retrieval")
        text = None
        if want_ptx:
            size = _check(nvrtc, nvrtc.nvrtcGetPTXSize(prog), "PTX size query")
            buf = bytearray(size)
            _check(nvrtc, nvrtc.nvrtcGetPTX(prog, buf), "PTX retrieval")
            text = bytes(buf).rstrip(b"\0").decode()
        return NvrtcOutput(bytes(cubin), text, log, arch, opts)
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


def _log(nvrtc, prog) -> str:
    size = _check(nvrtc, nvrtc.nvrtcGetProgramLogSize(prog), "log size query")
    if size <= 1:
        return ""
    buf = bytearray(size)
    nvrtc.nvrtcGetProgramLog(prog, buf)
    return bytes(buf).rstrip(b"\0").decode(errors="replace").strip()


_ERROR_LINE = re.compile(r"^(.*?)\((\d+)\): (?:catastrophic )?error", re.M)


def _failure_message(name: str, arch: str, log: str, source: str) -> str:
    """The log, followed by the generated lines it points at (the source itself is not on disk)."""
    lines = source.splitlines()
    shown = []
    for m in _ERROR_LINE.finditer(log):
        if m.group(1) != name:
            continue
        n = int(m.group(2))
        if 1 <= n <= len(lines) and n not in shown:
            shown.append(n)
        if len(shown) == 5:
            break
    msg = f"NVRTC failed to compile {name} for {arch}:\n{log}"
    if shown:
        msg += "\ngenerated source at the error lines:\n" + "\n".join(f"{n:5d} | {lines[n - 1]}" for n in shown)
    return msg
