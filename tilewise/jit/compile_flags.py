"""`compile_flags=` (TileLang's extra nvcc flags) for tilewise's toolchains, and one-time
warnings for options that cannot take effect.

TileLang passes the flags to nvcc. tilewise compiles CUDA with NVRTC, so a flag takes effect when
NVRTC accepts it (macros -D/-U, --use_fast_math, -lineinfo, --maxrregcount, --ftz, --fmad,
--ptxas-options=... split into one option per ptxas flag, ...): each flag is tried on a tiny
program once per architecture, and a flag NVRTC rejects (nvcc-only ones such as -O3,
--expt-relaxed-constexpr, -Wno-...) is dropped with a warning naming it. On the CPU target the
flags g++ understands (-D, -U, -O, -f, -m, -W, -g) are added to its command line after
tilewise's own; the CUDA-only ones warn."""
from __future__ import annotations

import functools
import shlex

from ..errors import warn_once  # noqa: F401  (re-exported: the jit layer's callers import it from here)

_GCC_PREFIXES = ("-D", "-U", "-O", "-f", "-m", "-W", "-g")
_PROBE = 'extern "C" __global__ void tw_probe(float* a) { a[threadIdx.x] += 1.0f; }\n'


def normalize(flags) -> tuple[str, ...]:
    """None, a string (split like a shell would) or a list of strings -> a tuple of flags."""
    if flags is None:
        return ()
    if isinstance(flags, str):
        return tuple(shlex.split(flags))
    if not isinstance(flags, (list, tuple)) or not all(isinstance(f, str) for f in flags):
        raise TypeError(f"compile_flags must be a string or a list of strings, got {flags!r}")
    out: list[str] = []
    for f in flags:
        out += shlex.split(f) if " " in f.strip() else [f.strip()]
    return tuple(f for f in out if f)


def _expand_ptxas(flags: tuple[str, ...]) -> list[str]:
    """--ptxas-options=a,b / -Xptxas=a,b / -Xptxas a,b -> one --ptxas-options=x per flag."""
    out: list[str] = []
    it = iter(flags)
    for f in it:
        value = None
        for head in ("--ptxas-options=", "-Xptxas=", "--ptxas-options ", "-Xptxas "):
            if f.startswith(head):
                value = f[len(head):]
        if f in ("-Xptxas", "--ptxas-options"):
            value = next(it, "")
        if value is None:
            out.append(f)
        else:
            out += [f"--ptxas-options={v}" for v in value.split(",") if v]
    return out


@functools.lru_cache(maxsize=512)
def _nvrtc_accepts(flag: str, arch: str) -> bool | None:
    """None when NVRTC itself is not available (then nothing can be checked or compiled)."""
    from ..backend.cuda.nvrtc import NvrtcError, nvrtc_compile

    try:
        nvrtc_compile(_PROBE, arch, options=(flag,), name="tw_flag_probe.cu")
    except NvrtcError as e:
        if "not available" in str(e):
            return None
        return False
    return True


def for_nvrtc(flags: tuple[str, ...], arch: str) -> tuple[str, ...]:
    """The flags NVRTC accepts for `arch`; the others warn once and are left out."""
    keep: list[str] = []
    for f in _expand_ptxas(flags):
        ok = _nvrtc_accepts(f, arch)
        if ok is False:
            warn_once(("nvrtc", f), f"compile_flags: {f!r} has no effect: tilewise compiles CUDA with NVRTC, which does "
                                    "not accept it (an nvcc-only option); it is left out", stacklevel=4)
            continue
        keep.append(f)
    return tuple(keep)


def for_clang(flags: tuple[str, ...]) -> tuple[str, ...]:
    """The flags clang takes on the HIP target: the same families as g++'s."""
    return _gcc_family(flags, "clang", "the HIP target; clang")


def for_gcc(flags: tuple[str, ...]) -> tuple[str, ...]:
    """The flags g++ takes on the CPU target; CUDA-only ones warn once and are left out."""
    return _gcc_family(flags, "gcc", "the CPU target (a CUDA compiler option); g++")


def _gcc_family(flags: tuple[str, ...], compiler: str, where: str) -> tuple[str, ...]:
    keep: list[str] = []
    for f in flags:
        if f.startswith(_GCC_PREFIXES) and not f.startswith("--"):
            keep.append(f)
        else:
            warn_once((compiler, f), f"compile_flags: {f!r} has no effect on {where} takes -D, -U, -O, -f, -m, -W "
                                     "and -g flags", stacklevel=5)
    return tuple(keep)
