"""CPU: private tiles that only stage a row in from an input and out to an output are elided (the
block reads In and computes in Out's memory), when that cannot change any result."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tilewise
import tilewise.language as T


def softmax(M, N, block_M=1, dtype="float32"):
    @T.prim_func
    def sm(X: T.Tensor((M, N), dtype), Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M)) as bx:
            x = T.alloc_fragment((block_M, N), dtype)
            mx = T.alloc_fragment((block_M,), dtype)
            s = T.alloc_fragment((block_M,), dtype)
            T.copy(X[bx * block_M, 0], x)
            T.reduce_max(x, mx, dim=1)
            for i, j in T.Parallel(block_M, N):
                x[i, j] = T.exp(x[i, j] - mx[i])
            T.reduce_sum(x, s, dim=1)
            for i, j in T.Parallel(block_M, N):
                x[i, j] = x[i, j] / s[i]
            T.copy(x, Y[bx * block_M, 0])

    return sm


def ref_softmax(x):
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_softmax_row_is_computed_in_the_output():
    k = tilewise.compile(softmax(64, 200, block_M=4), target="cpu")
    src = k.get_kernel_source()
    assert "float x[" not in src  # no private copy of the rows
    assert "tw::row_max(-INFINITY, (&X[" in src or "rows_max" in src
    x = np.random.default_rng(0).standard_normal((64, 200)).astype(np.float32)
    y = np.zeros_like(x)
    k(x, y)
    np.testing.assert_allclose(y, ref_softmax(x), rtol=1e-5, atol=1e-7)
    # in place: the output is the input
    k(x, x)
    np.testing.assert_allclose(x, y, rtol=0, atol=0)


@settings(max_examples=12, deadline=None)
@given(m=st.integers(1, 40), n=st.integers(1, 70), block_m=st.sampled_from([1, 3, 8]))
def test_elision_only_where_the_region_is_inside(m, n, block_m):
    """Rows the tile does not divide: the last block's region sticks out of Y, so the tiles stay;
    results are numpy's either way."""
    k = tilewise.compile(softmax(m, n, block_M=block_m), target="cpu")
    assert ("float x[" in k.get_kernel_source()) == (m % block_m != 0)
    x = np.random.default_rng(m * 100 + n).standard_normal((m, n)).astype(np.float32)
    y = np.full_like(x, np.nan)
    k(x, y)
    np.testing.assert_allclose(y, ref_softmax(x), rtol=1e-5, atol=1e-7)


def test_no_early_output_when_the_block_reads_other_tensors_afterwards():
    """y = 2x + b: once the tile is written, the block reads B. Computing in Out's memory would
    let an in-place call (Out is B) read what it already wrote, so the tile stays."""
    M, N = 8, 32

    @T.prim_func
    def axpb(A: T.Tensor((M, N), "float32"), B: T.Tensor((M, N), "float32"), O: T.Tensor((M, N), "float32")):
        with T.Kernel(M) as bx:
            t = T.alloc_fragment((1, N), "float32")
            T.copy(A[bx, 0], t)
            for i, j in T.Parallel(1, N):
                t[i, j] = t[i, j] * 2
            for i, j in T.Parallel(1, N):
                t[i, j] = t[i, j] + B[bx, j]
            T.copy(t, O[bx, 0])

    k = tilewise.compile(axpb, target="cpu")
    a = np.random.default_rng(1).standard_normal((M, N)).astype(np.float32)
    b = np.random.default_rng(2).standard_normal((M, N)).astype(np.float32)
    want = 2 * a + b
    k(a, b, b)  # O is B
    np.testing.assert_array_equal(b, want)


@pytest.mark.parametrize("case", ["read_elsewhere", "gemm", "dtype", "written_input"])
def test_tiles_stay_when_elision_could_change_results(case):
    M = N = 16

    @T.prim_func
    def k1(A: T.Tensor((M, N), "float32"), O: T.Tensor((M, N), "float32"), P: T.Tensor((M, N), "float64")):
        with T.Kernel(1):
            t = T.alloc_shared((M, N), "float32")
            g = T.alloc_fragment((M, N), "float32")
            T.copy(A, t)
            if case == "read_elsewhere":
                for i, j in T.Parallel(M, N):
                    t[i, j] = t[i, j] + O[j, i]  # O is read: computing in O would change this
                T.copy(t, O)
            elif case == "gemm":
                T.clear(g)
                T.gemm(t, t, g)
                T.copy(g, O)
            elif case == "dtype":
                T.copy(t, P)
            else:
                for i, j in T.Parallel(M, N):
                    A[i, j] = 0.0  # A is written: t must keep A's old values
                T.copy(t, O)

    k = tilewise.compile(k1, target="cpu")
    # (a tile only read after its copy in is read from A instead, which changes nothing)
    assert ("t[" in k.get_kernel_source()) == (case != "dtype")
    a = np.random.default_rng(3).standard_normal((M, N)).astype(np.float32)
    o = np.random.default_rng(4).standard_normal((M, N)).astype(np.float32)
    p = np.zeros((M, N), np.float64)
    a0, o0 = a.copy(), o.copy()
    k(a, o, p)
    if case == "read_elsewhere":
        np.testing.assert_allclose(o, a0 + o0.T, rtol=1e-6)
    elif case == "gemm":
        np.testing.assert_allclose(o, a0 @ a0, rtol=1e-5, atol=1e-5)
    elif case == "dtype":
        np.testing.assert_array_equal(p, a0.astype(np.float64))
    else:
        np.testing.assert_array_equal(o, a0)
        assert not a.any()
        a[:] = a0
        k(a, a, p)  # O is A: the tile must still hold A's old values
        np.testing.assert_array_equal(a, a0)
