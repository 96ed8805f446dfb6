"""Differential execution: the thread-IR emulator's result checked against the PTX interpreter's
on the same inputs (TILEWISE_EMULATOR_CROSSCHECK=ptx; the test suite turns it on). The emulator
checks the lowering; the interpreter runs what the renderer, tw_cuda.h and NVVM made of it, so a
disagreement is a bug in one of those (or in an interpreter).

Integers and bit patterns must agree exactly. Floating-point results may differ by what the two
legitimately do differently: the interpreter models `.approx` instructions (ex2, rcp, tanh, ...)
and the CUDA math library by correctly rounded values, the emulator uses numpy's functions, and
float atomics apply in a different order. (Multiply-add contraction is no longer one of them: the
IR decides it and NVRTC compiles with --fmad=false, docs/API.md Numbers.) Those differences are a few ulp of the values combined,
which cancellation can make large relative to a small result; so floats are compared against the
scale of the whole output: |emulator - ptx| <= tol * max|output| (+ tol), with tol 2^-16 for
32- and 64-bit floats and ~4 ulp of the format for narrower ones. Garbage (a wrong operand, a
missing wait, a wrong lane) is far outside that."""
from __future__ import annotations

import contextlib
import ctypes
import io

import numpy as np

from ..ir.buffer import Buffer

_TOL = {64: 2.0**-16, 32: 2.0**-16, 16: 2.0**-8, 8: 2.0**-2}


class CrosscheckError(AssertionError):
    """The emulator and the PTX interpreter disagree on a kernel's output."""


def snapshot(params, views) -> list:
    """Copies of the buffer arguments (same shape and strides) to run the second executor on.
    Arguments sharing memory (the same array as input and output, overlapping slices) share
    the copy's memory the same way: the second executor must see the aliasing the first saw."""
    out = list(views)
    spans = []  # (lo, hi, index) of the arrays with bytes
    for i, (p, v) in enumerate(zip(params, views)):
        if not (isinstance(p, Buffer) and isinstance(v, np.ndarray)):
            continue
        if v.size == 0:
            out[i] = v.copy()
            continue
        spans.append((*_byte_span(v), i))
    spans.sort()
    k = 0
    while k < len(spans):
        lo, hi, _ = spans[k]
        j = k + 1
        while j < len(spans) and spans[j][0] < hi:  # overlapping (transitively): one copy
            hi = max(hi, spans[j][1])
            j += 1
        group = spans[k:j]
        if len(group) == 1:
            out[group[0][2]] = _copy(views[group[0][2]])
        else:
            fresh = np.array(np.frombuffer((ctypes.c_uint8 * (hi - lo)).from_address(lo), dtype=np.uint8))
            for _, _, i in group:
                v = views[i]
                start = v.__array_interface__["data"][0] - lo  # the first element's byte
                out[i] = np.ndarray(v.shape, v.dtype, buffer=fresh, offset=start, strides=v.strides)
        k = j
    return out


def _byte_span(v: np.ndarray) -> tuple[int, int]:
    """The addresses [lo, hi) of every byte a (non-empty) array's elements occupy."""
    ptr = v.__array_interface__["data"][0]
    lo = ptr + sum(min(0, (n - 1) * s) for n, s in zip(v.shape, v.strides))
    hi = ptr + sum(max(0, (n - 1) * s) for n, s in zip(v.shape, v.strides)) + v.itemsize
    return lo, hi


def run_quietly(runtime, arrays, dims) -> None:
    """Run without printing: the first executor's device printf is the one tests read."""
    with contextlib.redirect_stdout(io.StringIO()):
        runtime.run(arrays, dims)


def compare(kernel_name: str, params, emulated, interpreted) -> None:
    for p, e, q in zip(params, emulated, interpreted):
        if not isinstance(p, Buffer) or not isinstance(e, np.ndarray):
            continue
        bad = _mismatch(p, e, q)
        if bad is None:
            continue
        i, n = bad
        idx = np.unravel_index(i, e.shape) if e.ndim else ()
        raise CrosscheckError(
            f"{kernel_name}: the thread-IR emulator and the PTX interpreter disagree on {p.name}: {n} element(s) "
            f"differ, the first at {tuple(int(x) for x in idx)}: emulator {e[idx]!r}, PTX {q[idx]!r}")


def _mismatch(p: Buffer, e: np.ndarray, q: np.ndarray):
    """(first differing flat index, count) or None."""
    if p.dtype.is_float:
        ev, qv = e.astype(np.float64), q.astype(np.float64)
        both_nan = np.isnan(ev) & np.isnan(qv)
        finite = np.abs(ev[np.isfinite(ev)]) if ev.size else np.zeros(0)
        scale = float(finite.max()) if finite.size else 0.0
        tol = _TOL[p.dtype.bits] * (scale + 1.0)
        with np.errstate(invalid="ignore"):  # inf - inf: equal infinities are caught by ==
            same = both_nan | (ev == qv) | (np.abs(ev - qv) <= tol)
    else:
        raw = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[e.itemsize]
        same = np.ascontiguousarray(e).view(raw) == np.ascontiguousarray(q).view(raw)
    if same.all():
        return None
    flat = np.flatnonzero(~same.reshape(-1))
    return int(flat[0]), len(flat)


def _copy(v: np.ndarray) -> np.ndarray:
    """A copy with the same strides over a copy of the memory (a strided view stays a view)."""
    if v.flags.c_contiguous or not isinstance(v.base, np.ndarray):
        return v.copy()
    base = v
    while isinstance(base.base, np.ndarray):
        base = base.base
    fresh = base.copy()
    off = v.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    start = fresh.reshape(-1).view(np.uint8)[off:]
    return np.lib.stride_tricks.as_strided(start.view(v.dtype), shape=v.shape, strides=v.strides)
