"""max/min order -0 below +0 and ignore a NaN operand on every target (docs/API.md "Numbers"):
max(+0, -0) = max(-0, +0) = +0 and min(+0, -0) = min(-0, +0) = -0, as PTX max.f32/min.f32 and
TileLang's generated CUDA give them. Checked element-wise (every float type), in T.reduce_max /
T.reduce_min (CPU's vectorised row paths and the GPU's all-reduce) and in the constant folder, on
the CPU target, the emulator (CUDA and HIP) and the PTX interpreter. (T.atomic_max / T.atomic_min
on floats follow TileLang's own rule instead: tests/language/test_float_atomic_minmax.py.)"""
from __future__ import annotations

import shutil

import ml_dtypes
import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.ir import dtype as dt
from tilewise.ir import scalar_ops

NAN = float("nan")
# every ordered pair of these, the ±0 pairs being the point
VALUES = [0.0, -0.0, 1.0, -1.0, NAN]
PAIRS_A = np.array([a for a in VALUES for _ in VALUES] * 2)
PAIRS_B = np.array([b for _ in VALUES for b in VALUES] * 2)
N = 64  # 2 x 25 pairs, padded with (2, 3)
A64 = np.concatenate([PAIRS_A, np.full(N - PAIRS_A.size, 2.0)])
B64 = np.concatenate([PAIRS_B, np.full(N - PAIRS_B.size, 3.0)])


def _expect(a: float, b: float, op: str) -> float:
    """The rule written out case by case (not through numpy's fmax)."""
    if a != a:
        return b
    if b != b:
        return a
    if a == b == 0:
        neg = (np.signbit(a) and np.signbit(b)) if op == "max" else (np.signbit(a) or np.signbit(b))
        return -0.0 if neg else 0.0
    return max(a, b) if op == "max" else min(a, b)


def _targets():
    out = [("cpu", "cpu", None), ("emulator", "cuda", "emulator"), ("ptx", "cuda -arch=sm_80", "ptx")]
    if shutil.which("clang-19"):
        out.append(("hip", "hip -arch=gfx942", "emulator"))
    return out


TARGETS = _targets()
IDS = [t[0] for t in TARGETS]


def _compile(func, target, backend, out_idx):
    if backend is None:
        return tilewise.compile(func, out_idx=out_idx, target=target)
    return tilewise.compile(func, out_idx=out_idx, target=target, execution_backend=backend)


def _same(got: np.ndarray, want: np.ndarray):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(want)), (got, want)
    ok = ~np.isnan(want)
    np.testing.assert_array_equal(got[ok], want[ok])
    np.testing.assert_array_equal(np.signbit(got[ok]), np.signbit(want[ok]))


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16", "float8_e4m3fn"])
def test_constant_folder(dtype):
    d = dt.as_dtype(dtype)
    for a in VALUES:
        for b in VALUES:
            for op in ("max", "min"):
                if "float8" in dtype and (a != a or b != b):
                    continue  # float8_e4m3fn's NaN is one code; the NaN rule is checked elsewhere
                got = scalar_ops.fold_binary(op, d, a, b)
                _same(np.array([float(got)]), np.array([_expect(a, b, op)]))


# every type on the CPU and in the emulator; float32 and one narrow type on the slower PTX and HIP
# interpreters (the rule is the same scalar_ops code there)
ELEMENTWISE = [(t, dtype) for t in TARGETS
               for dtype in ("float32", "float64", "float16", "bfloat16", "float8_e4m3fn")
               if t[0] not in ("ptx", "hip") or dtype in ("float32", "float16")]


@pytest.mark.parametrize("t,dtype", ELEMENTWISE, ids=[f"{t[0]}-{d}" for t, d in ELEMENTWISE])
def test_elementwise(t, dtype):
    name, target, backend = t

    @T.prim_func
    def minmax(A: T.Tensor((N,), dtype), B: T.Tensor((N,), dtype), C: T.Tensor((N,), dtype),
               D: T.Tensor((N,), dtype)):
        with T.Kernel(1, threads=N) as _:
            for i in T.Parallel(N):
                C[i] = T.max(A[i], B[i])
                D[i] = T.min(A[i], B[i])

    npdt = np.dtype(getattr(ml_dtypes, dtype)) if not hasattr(np, dtype) else np.dtype(dtype)
    a, b = A64.astype(npdt), B64.astype(npdt)
    k = _compile(minmax, target, backend, [2, 3])
    c, d = k(a, b)
    if name == "hip" and dtype == "float32":  # v_max_f32 / v_min_f32 order -0 below +0 (in IEEE mode, as the kernels run)
        isa = k.get_isa()
        assert "v_max_f32" in isa and "v_min_f32" in isa
    wa, wb = a.astype(np.float64), b.astype(np.float64)
    _same(c, [_expect(x, y, "max") for x, y in zip(wa, wb)])
    _same(d, [_expect(x, y, "min") for x, y in zip(wa, wb)])


# rows of ±0 only: every mix of signs, so the answer is decided by the -0 < +0 rule alone
def _zero_rows(m: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    x = np.where(rng.random((m, n)) < 0.5, -0.0, 0.0)
    x[0] = -0.0
    x[1] = 0.0
    x[2, :] = -0.0
    x[2, n - 1] = 0.0  # one +0 in the last (tail) element
    x[3, :] = 0.0
    x[3, n // 2] = -0.0
    x[4, :] = NAN  # NaNs are ignored: mixed with zeros
    x[4, 3] = 0.0
    x[4, 7] = -0.0
    x[5, :] = NAN  # all NaN: the identity (-inf for max, +inf for min)
    return x.astype(np.float32)


@pytest.mark.parametrize("name,target,backend", TARGETS, ids=IDS)
@pytest.mark.parametrize("n", [128, 24])
def test_reduce_signed_zero(name, target, backend, n):
    """n=128: the CPU's vector paths (rows_block, reduce); 24: the omp simd loop."""
    M = 8

    @T.prim_func
    def red(A: T.Tensor((M, n), "float32"), Mx: T.Tensor((M,), "float32"), Mn: T.Tensor((M,), "float32")):
        with T.Kernel(1, threads=128) as _:
            a = T.alloc_fragment((M, n), "float32")
            mx = T.alloc_fragment((M,), "float32")
            mn = T.alloc_fragment((M,), "float32")
            T.copy(A, a)
            T.reduce_max(a, mx, dim=1)
            T.reduce_min(a, mn, dim=1)
            T.copy(mx, Mx)
            T.copy(mn, Mn)

    x = _zero_rows(M, n)
    mx, mn = _compile(red, target, backend, [1, 2])(x)
    want_max = [-np.inf if np.isnan(r).all() else 0.0 if not np.signbit(r[r == 0]).all() else -0.0 for r in x]
    want_min = [np.inf if np.isnan(r).all() else -0.0 if np.signbit(r[r == 0]).any() else 0.0 for r in x]
    _same(mx, want_max)
    _same(mn, want_min)
