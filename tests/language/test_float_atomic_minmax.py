"""T.atomic_max / T.atomic_min on floats decide as TileLang 0.1.15's CUDA does (its
tl_templates/cuda/atomic.h: a compare-and-swap loop for float16 / bfloat16 that stores while the
value compares strictly smaller (greater), libcu++'s fetch_min / fetch_max for float32 / float64,
which store `v < old ? v : old`): the value is stored only when it is strictly smaller (greater)
than the stored one. So -0 into a stored +0 leaves +0 (and +0 into -0 leaves -0), a NaN value
never stores, a stored NaN stays, and infinities order as numbers. Checked bit for bit on the
CPU target, the emulator and the PTX interpreter (which runs NVRTC's PTX of the CUDA header), for
every ordered pair of ±0, ±1, NaN, ±inf, with the old value returned by return_prev."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tilewise
import tilewise.language as T

NAN, INF = float("nan"), float("inf")
VALUES = [0.0, -0.0, 1.0, -1.0, NAN, INF, -INF]
PAIRS = [(old, v) for old in VALUES for v in VALUES]
N = len(PAIRS)
TARGETS = [("cpu", None), ("cuda", "emulator"), ("cuda -arch=sm_80", "ptx")]
IDS = ["cpu", "emulator", "ptx"]


def _expect(old: float, v: float, op: str) -> float:
    """TileLang's rule written out: store v only when it compares strictly past old."""
    if op == "min":
        return v if v < old else old
    return v if old < v else old


def _npdt(dtype: str):
    return np.dtype(getattr(ml_dtypes, dtype)) if not hasattr(np, dtype) else np.dtype(dtype)


def _bits_equal(got, want, dtype: str):
    got = np.asarray(got, _npdt(dtype)).astype(np.float64)
    want = np.asarray(want, np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(want)), (got, want)
    ok = ~np.isnan(want)
    np.testing.assert_array_equal(got[ok], want[ok])
    np.testing.assert_array_equal(np.signbit(got[ok]), np.signbit(want[ok]))


def _compile(func, target, backend):
    extra = {} if backend is None else {"execution_backend": backend}
    return tilewise.compile(func, target=target, **extra)


CASES = [(t, d) for t in TARGETS for d in ("float32", "float16", "float64", "bfloat16")
         if t[1] != "ptx" or d in ("float32", "float16", "bfloat16")]


@pytest.mark.parametrize("t,dtype", CASES, ids=[f"{t[1] or 'cpu'}-{d}" for t, d in CASES])
def test_element_atomics(t, dtype):
    target, backend = t

    @T.prim_func
    def atom(V: T.Tensor((N,), dtype), Mx: T.Tensor((N,), dtype), Mn: T.Tensor((N,), dtype)):
        with T.Kernel(1, threads=64) as _:
            for i in T.Parallel(N):
                T.atomic_max(Mx[i], V[i])
                T.atomic_min(Mn[i], V[i])

    npdt = _npdt(dtype)
    old = np.array([p[0] for p in PAIRS]).astype(npdt)
    v = np.array([p[1] for p in PAIRS]).astype(npdt)
    mx, mn = old.copy(), old.copy()
    _compile(atom, target, backend)(v, mx, mn)
    _bits_equal(mx, [_expect(a, b, "max") for a, b in PAIRS], dtype)
    _bits_equal(mn, [_expect(a, b, "min") for a, b in PAIRS], dtype)


@pytest.mark.parametrize("target,backend", TARGETS, ids=IDS)
def test_return_prev_and_signed_zero(target, backend):
    """The old value comes back whatever was decided; one thread, so the order is the program's."""

    @T.prim_func
    def seq(V: T.Tensor((4,), "float32"), M: T.Tensor((2,), "float32"), Old: T.Tensor((8,), "float32")):
        with T.Kernel(1, threads=1) as _:
            for k in T.serial(4):
                Old[k] = T.atomic_min(M[0], V[k], return_prev=True)
                Old[k + 4] = T.atomic_max(M[1], V[k], return_prev=True)

    v = np.array([-0.0, NAN, 0.0, -INF], np.float32)
    m = np.array([0.0, -0.0], np.float32)
    old = np.zeros(8, np.float32)
    _compile(seq, target, backend)(v, m, old)
    # min: +0 keeps against -0, NaN and +0; -inf stores. max: -0 keeps against every one of them.
    _bits_equal(m, [-INF, -0.0], "float32")
    _bits_equal(old, [0.0, 0.0, 0.0, 0.0, -0.0, -0.0, -0.0, -0.0], "float32")


@pytest.mark.parametrize("target,backend", TARGETS, ids=IDS)
def test_stored_nan_stays(target, backend):
    @T.prim_func
    def many(V: T.Tensor((64,), "float32"), M: T.Tensor((2,), "float32")):
        with T.Kernel(1, threads=64) as _:
            for i in T.Parallel(64):
                T.atomic_min(M[0], V[i])
                T.atomic_max(M[1], V[i])

    v = np.linspace(-5, 5, 64).astype(np.float32)
    m = np.array([NAN, NAN], np.float32)
    _compile(many, target, backend)(v, m)
    assert np.isnan(m).all()
    m = np.array([INF, -INF], np.float32)
    v[7] = NAN
    _compile(many, target, backend)(v, m)
    _bits_equal(m, [-5.0, 5.0], "float32")
