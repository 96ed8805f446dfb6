"""CPU: K loops of copy-copy-T.gemm run several K steps per T.gemm call
(transform/merge_gemm_k_steps.py). The micro-kernel sums each element of C in one chain over k
in order, so a kernel with block_K = 32 merged two steps at a time must give, bit for bit, what
the same kernel with block_K = 64 gives (one step per call, never merged), on ragged shapes,
with a tail step left over, for every transposition; accumulators of other types are left alone."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.transform.merge_gemm_k_steps import K_TARGET


@pytest.fixture(autouse=True)
def one_thread():
    """One OpenMP thread, so that these small grids form lock-step groups on any machine (the
    merged copies of A are then shared by a group, block_groups.py)."""
    import ctypes

    gomp = ctypes.CDLL("libgomp.so.1")
    before = gomp.omp_get_max_threads()
    gomp.omp_set_num_threads(1)
    yield
    gomp.omp_set_num_threads(before)


def gemm(M, N, K, bm, bn, bk, ta=False, tb=False, dtype="float32", accum="float32", out="float32",
         clear_each_step=False):
    a_shape = (K, M) if ta else (M, K)
    b_shape = (N, K) if tb else (K, N)

    @T.prim_func
    def main(A: T.Tensor(a_shape, dtype), B: T.Tensor(b_shape, dtype), C: T.Tensor((M, N), out)):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            As = T.alloc_shared((bk, bm) if ta else (bm, bk), dtype)
            Bs = T.alloc_shared((bn, bk) if tb else (bk, bn), dtype)
            Cl = T.alloc_fragment((bm, bn), accum)
            T.clear(Cl)
            for ko in T.Pipelined(T.ceildiv(K, bk), num_stages=3):
                if ta:
                    T.copy(A[ko * bk, by * bm], As)
                else:
                    T.copy(A[by * bm, ko * bk], As)
                if tb:
                    T.copy(B[bx * bn, ko * bk], Bs)
                else:
                    T.copy(B[ko * bk, bx * bn], Bs)
                T.gemm(As, Bs, Cl, transpose_A=ta, transpose_B=tb, clear_accum=clear_each_step)
            T.copy(Cl, C[by * bm, bx * bn])

    return tilewise.compile(main, target="cpu")


def _merged_k(kernel) -> set:
    """The K of every T.gemm call in the kernel's C++."""
    import re

    return {int(m.group(1)) for m in re.finditer(r"tw::gemm<\d+, \d+, (\d+),", kernel.get_kernel_source())}


@pytest.mark.parametrize("M,N,K,ta,tb", [(70, 150, 45, False, False), (130, 40, 160, False, True),
                                         (33, 65, 200, True, False), (33, 65, 200, True, True)])
def test_merged_steps_bit_identical(M, N, K, ta, tb):
    """block_K 16 merges K_TARGET / 16 steps per call (K = 45: three steps, none merged past the
    tail; 160: ten, 200: thirteen with a tail); the reference kernel takes K_TARGET at once."""
    bk = 16
    merged = gemm(M, N, K, 32, 48, bk, ta, tb)
    whole = gemm(M, N, K, 32, 48, K_TARGET, ta, tb)
    steps = -(-K // bk)
    f = K_TARGET // bk
    assert _merged_k(whole) == {K_TARGET}
    assert _merged_k(merged) == ({K_TARGET} if steps >= f else set()) | ({bk} if steps % f else set())
    rng = np.random.default_rng(M + N + K)
    a = rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
    c1 = np.full((M, N), np.nan, np.float32)
    c2 = np.full((M, N), np.nan, np.float32)
    merged(a, b, c1)
    whole(a, b, c2)
    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    np.testing.assert_allclose(c1, ref, rtol=1e-4, atol=1e-4 * np.sqrt(K))
    np.testing.assert_array_equal(c1, c2)


def test_canonical_gemm_merges_two_steps():
    """The examples' 128 x 128 x 32 fp32 GEMM: 64 per call, and its blocks run in bands
    (transform/gemm_bands.py)."""
    k = gemm(512, 512, 512, 128, 128, 32)
    assert _merged_k(k) == {64}
    assert "tw_band" in k.get_kernel_source()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((512, 512), dtype=np.float32)
    b = rng.standard_normal((512, 512), dtype=np.float32)
    c = np.empty((512, 512), np.float32)
    k(a, b, c)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-4, atol=1e-3)


def test_int8_merged_exact():
    """int8 -> int32 (tw_gemm_lowp.h): merged, and exact against numpy (ragged K, tail step)."""
    M, N, K = 50, 70, 90
    k = gemm(M, N, K, 32, 32, 16, dtype="int8", accum="int32", out="int32")
    assert K_TARGET in _merged_k(k)
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, (M, K), dtype=np.int8)
    b = rng.integers(-128, 128, (K, N), dtype=np.int8)
    c = np.empty((M, N), np.int32)
    k(a, b, c)
    np.testing.assert_array_equal(c, a.astype(np.int32) @ b.astype(np.int32))


def test_float16_accumulator_not_merged():
    """A float16 C tile is rounded at the end of every call: merging would round less often and
    change the result, so those loops are left as written."""
    M, N, K = 40, 48, 64
    k = gemm(M, N, K, 16, 16, 16, dtype="float16", accum="float16", out="float16")
    assert _merged_k(k) == {16}
    rng = np.random.default_rng(6)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    c = np.empty((M, N), np.float16)
    k(a, b, c)
    np.testing.assert_allclose(c.astype(np.float32), a.astype(np.float32) @ b.astype(np.float32), rtol=2e-2, atol=5e-2)


def test_clear_accum_not_merged():
    """clear_accum zeroes C at every step: only the last step counts, so steps are not merged."""
    M, N, K = 32, 32, 64
    k = gemm(M, N, K, 16, 16, 16, clear_each_step=True)
    assert _merged_k(k) == {16}
    rng = np.random.default_rng(7)
    a = rng.standard_normal((M, K), dtype=np.float32)
    b = rng.standard_normal((K, N), dtype=np.float32)
    c = np.empty((M, N), np.float32)
    k(a, b, c)
    np.testing.assert_allclose(c, a[:, 48:].astype(np.float64) @ b[48:].astype(np.float64), rtol=1e-5, atol=1e-5)
