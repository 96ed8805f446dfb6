"""Reducers (tileop/reducer.py): T.alloc_reducer + T.finalize_reducer in TileLang's two spellings
(in-place, with T.clear and `acc[i] += ...`; and T.reducer_init / T.reducer_update /
T.finalize_reducer(acc, dst)), replicated over every thread or following the loops, on the CPU,
in the CUDA emulator (cross-checked by the PTX interpreter) and through NVRTC for sm_80, against
numpy. M = 40 rows in blocks of 16 and K = 72 columns in tiles of 32: neither divides."""
from __future__ import annotations

import functools

import numpy as np
import pytest

import tilewise
import tilewise.language as T

M, K = 40, 72
BM, BK = 16, 32
TARGETS = ("cpu", "emulator")


def _compile(func, target, out_idx=None):
    if target == "cpu":
        return tilewise.compile(func, out_idx=out_idx, target="cpu")
    return tilewise.compile(func, out_idx=out_idx, target="cuda", execution_backend="emulator")


@functools.cache
def gemv_kernel(op: str, replication, threads: int = 128):
    """O[r] = op over k of A[r, k] * X[k] (sum), or of A[r, k] (max / min)."""

    @T.prim_func
    def gemv(A: T.Tensor((M, K), "float32"), X: T.Tensor((K,), "float32"), O: T.Tensor((M,), "float32")):
        with T.Kernel(T.ceildiv(M, BM), threads=threads) as bx:
            acc = T.alloc_reducer((BM,), "float32", op=op, replication=replication)
            if op == "sum":
                T.clear(acc)
            else:
                T.fill(acc, T.min_value("float32") if op == "max" else T.max_value("float32"))
            for ko in T.Pipelined(T.ceildiv(K, BK), num_stages=2):
                a = T.alloc_fragment((BM, BK), "float32")
                x = T.alloc_fragment((BK,), "float32")
                T.copy(A[bx * BM, ko * BK], a)
                T.copy(X[ko * BK], x)
                for i, j in T.Parallel(BM, BK):
                    if op == "sum":
                        acc[i] += a[i, j] * x[j]
                    elif op == "max":
                        acc[i] = T.max(acc[i], a[i, j])
                    else:
                        acc[i] = T.min(acc[i], a[i, j])
            T.finalize_reducer(acc)
            T.copy(acc, O[bx * BM])

    return gemv


def _gemv_reference(a, x, op):
    kpad = -(-K // BK) * BK
    ap = np.zeros((M, kpad), np.float64)
    ap[:, :K] = a
    if op == "sum":
        return (a.astype(np.float64) @ x.astype(np.float64))
    return ap.max(axis=1) if op == "max" else ap.min(axis=1)  # the tiles past K read zeros


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("op,replication", [("sum", "all"), ("sum", None), ("max", "none"), ("min", "all")])
def test_in_place_reducers(op, replication, target):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K)).astype(np.float32)
    x = rng.standard_normal(K).astype(np.float32)
    out = _compile(gemv_kernel(op, replication), target, out_idx=[2])(a, x)
    np.testing.assert_allclose(out, _gemv_reference(a, x, op), rtol=1e-5, atol=1e-5)


@functools.cache
def v2_kernel(op: str, dtype: str):
    """O[r] = init(r) op the op of A[r, :] (T.reducer_init / reducer_update / finalize into dst)."""

    @T.prim_func
    def reduce_rows(A: T.Tensor((M, K), dtype), O: T.Tensor((M,), dtype)):
        with T.Kernel(T.ceildiv(M, BM), threads=64) as bx:
            acc = T.alloc_reducer((BM,), dtype, op=op)
            res = T.alloc_fragment((BM,), dtype)
            T.reducer_init(acc, 5 + bx)
            for ko in T.serial(T.ceildiv(K, BK)):
                a = T.alloc_fragment((BM, BK), dtype)
                T.copy(A[bx * BM, ko * BK], a)
                for i, j in T.Parallel(BM, BK):
                    T.reducer_update(acc[i], a[i, j])
            T.finalize_reducer(acc, res)
            T.copy(res, O[bx * BM])

    return reduce_rows


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("op,dtype", [("sum", "float32"), ("bitor", "int32"), ("bitxor", "int32"), ("max", "int32")])
def test_init_update_finalize_into_a_destination(op, dtype, target):
    rng = np.random.default_rng(1)
    a = (rng.standard_normal((M, K)) if dtype == "float32" else rng.integers(-(2**20), 2**20, (M, K))).astype(dtype)
    out = _compile(v2_kernel(op, dtype), target, out_idx=[1])(a)
    kpad = -(-K // BK) * BK
    ap = np.zeros((M, kpad), a.dtype)
    ap[:, :K] = a  # the last tile reads zeros past K
    init = (5 + np.arange(M) // BM).astype(a.dtype)
    if op == "sum":
        np.testing.assert_allclose(out, a.astype(np.float64).sum(1) + init, rtol=1e-5, atol=1e-5)
    else:
        f = {"bitor": np.bitwise_or, "bitxor": np.bitwise_xor, "max": np.maximum}[op]
        np.testing.assert_array_equal(out, f(f.reduce(ap, axis=1), init))


def test_kernels_compile_with_nvrtc(nvrtc_check):
    nvrtc_check(gemv_kernel("sum", "all"), expect=("SHFL",), archs=("sm_80",))
    nvrtc_check(gemv_kernel("max", "none"), archs=("sm_80",))
    nvrtc_check(v2_kernel("bitor", "int32"), archs=("sm_80",))


def test_reducer_misuse_names_the_line():
    with pytest.raises(tilewise.CompileError, match="op='bitand' needs an integer or bool type") as info:

        @T.prim_func
        def bad(A: T.Tensor((4,), "float32")):
            with T.Kernel(1):
                T.alloc_reducer((4,), "float32", op="bitand")

    assert "test_reducer.py" in str(info.value)
    with pytest.raises(tilewise.CompileError, match="T.finalize_reducer: expected a buffer from T.alloc_reducer"):

        @T.prim_func
        def bad2(A: T.Tensor((4,), "float32")):
            with T.Kernel(1):
                f = T.alloc_fragment((4,), "float32")
                T.finalize_reducer(f)
    with pytest.raises(tilewise.CompileError, match="finalize into a destination fragment"):

        @T.prim_func
        def bad3(A: T.Tensor((4,), "float32")):
            with T.Kernel(1):
                r = T.alloc_reducer((4,), "float32")
                T.reducer_init(r, 1.0)
                T.finalize_reducer(r)
