"""CPU blocks of one grid row run in lock-step groups (backend/cpu/block_groups.py): the
statements that are alike for the group (a GEMM's copies of A) run once, the rest per block with
per-block tiles. Results must be those of running every block alone, bit for bit, on shapes
the tiles do not divide, grids whose rows are not whole groups, transposed operands, a third grid
dimension, and kernels the plan must leave alone."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tilewise
import tilewise.language as T


@pytest.fixture(autouse=True)
def one_thread():
    """Kernels size their groups by the blocks each thread gets (at least two groups a thread);
    with one OpenMP thread these small grids form groups of up to 4 on any machine."""
    import ctypes

    gomp = ctypes.CDLL("libgomp.so.1")
    before = gomp.omp_get_max_threads()
    gomp.omp_set_num_threads(1)
    yield
    gomp.omp_set_num_threads(before)


def gemm_kernel(M, N, K, bm, bn, bk, trans_a=False, trans_b=False, batch=0):
    a_shape = (K, M) if trans_a else (M, K)
    b_shape = (N, K) if trans_b else (K, N)
    if batch:
        a_shape, b_shape = (batch, *a_shape), (batch, *b_shape)
    c_shape = (batch, M, N) if batch else (M, N)

    @T.prim_func
    def main(A: T.Tensor(a_shape, "float32"), B: T.Tensor(b_shape, "float32"), C: T.Tensor(c_shape, "float32")):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), max(batch, 1)) as (bx, by, bz):
            As = T.alloc_shared((bk, bm) if trans_a else (bm, bk), "float32")
            Bs = T.alloc_shared((bn, bk) if trans_b else (bk, bn), "float32")
            Cl = T.alloc_fragment((bm, bn), "float32")
            T.clear(Cl)
            for ko in T.Pipelined(T.ceildiv(K, bk), num_stages=2):
                if batch:
                    if trans_a:
                        T.copy(A[bz, ko * bk, by * bm], As)
                    else:
                        T.copy(A[bz, by * bm, ko * bk], As)
                    if trans_b:
                        T.copy(B[bz, bx * bn, ko * bk], Bs)
                    else:
                        T.copy(B[bz, ko * bk, bx * bn], Bs)
                else:
                    if trans_a:
                        T.copy(A[ko * bk, by * bm], As)
                    else:
                        T.copy(A[by * bm, ko * bk], As)
                    if trans_b:
                        T.copy(B[bx * bn, ko * bk], Bs)
                    else:
                        T.copy(B[ko * bk, bx * bn], Bs)
                T.gemm(As, Bs, Cl, transpose_A=trans_a, transpose_B=trans_b)
            if batch:
                T.copy(Cl, C[bz, by * bm, bx * bn])
            else:
                T.copy(Cl, C[by * bm, bx * bn])

    # the blocks as written: GEMM kernels otherwise run in bands (transform/gemm_bands.py)
    return tilewise.compile(main, target="cpu", pass_configs={"tw.cpu.disable_gemm_bands": True})


def _ref(a, b, trans_a, trans_b):
    a = np.swapaxes(a, -1, -2) if trans_a else a
    b = np.swapaxes(b, -1, -2) if trans_b else b
    return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32)


def _check(M, N, K, bm, bn, bk, ta, tb, batch, seed):
    k = gemm_kernel(M, N, K, bm, bn, bk, ta, tb, batch)
    src = k.get_kernel_source()
    assert "tw_grp" in src, "the GEMM's blocks should run in groups"
    rng = np.random.default_rng(seed)
    lead = (batch,) if batch else ()
    a = rng.standard_normal(lead + ((K, M) if ta else (M, K)), dtype=np.float32)
    b = rng.standard_normal(lead + ((N, K) if tb else (K, N)), dtype=np.float32)
    c = np.full(lead + (M, N), np.nan, np.float32)
    k(a, b, c)
    np.testing.assert_allclose(c, _ref(a, b, ta, tb), rtol=1e-4, atol=1e-4 * np.sqrt(K))


@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
def test_grouped_gemm_ragged(ta, tb):
    """10 x 3 blocks: rows of 10 blocks are groups of 4, 4 and 2; no tile divides. (Tiles of
    different shapes.)"""
    _check(M=70, N=150, K=45, bm=32, bn=16, bk=16, ta=ta, tb=tb, batch=0, seed=1)


@pytest.mark.parametrize("ta,tb", [(False, True), (True, False)])
def test_grouped_gemm_equal_copy_shapes(ta, tb):
    """NT and TN with square tiles: the copies of A and B have the same shape, and fuse_loops
    leaves them apart (they only feed T.gemm), so the A copy still runs once per group."""
    _check(M=70, N=150, K=45, bm=32, bn=32, bk=16, ta=ta, tb=tb, batch=0, seed=4)


def test_grouped_gemm_batched():
    """A third grid dimension: the group's slower indices come from the group number."""
    _check(M=40, N=100, K=33, bm=16, bn=32, bk=8, ta=False, tb=False, batch=3, seed=2)


@settings(max_examples=6, deadline=None)
@given(M=st.integers(1, 90), N=st.integers(17, 200), K=st.integers(1, 70), ta=st.booleans(), tb=st.booleans(),
       seed=st.integers(0, 99))
def test_grouped_gemm_shapes(M, N, K, ta, tb, seed):
    _check(M, N, K, 32, 16, 16, ta, tb, 0, seed)


def test_grouped_equals_single_blocks():
    """Lock-step groups change no summation order: the result is bit-identical to running each
    block alone (a grid of one block is never grouped)."""
    M, N, K, bm, bn, bk = 64, 96, 40, 32, 16, 8
    rng = np.random.default_rng(3)
    a = rng.standard_normal((M, K), dtype=np.float32)
    b = rng.standard_normal((K, N), dtype=np.float32)
    c1, c2 = np.empty((M, N), np.float32), np.empty((M, N), np.float32)
    grouped = gemm_kernel(M, N, K, bm, bn, bk)
    assert "tw_grp" in grouped.get_kernel_source()
    grouped(a, b, c1)
    one = gemm_kernel(bm, bn, K, bm, bn, bk)
    assert "tw_grp" not in one.get_kernel_source()
    for i in range(M // bm):
        for j in range(N // bn):
            out = np.empty((bm, bn), np.float32)
            one(np.ascontiguousarray(a[i * bm:(i + 1) * bm]), np.ascontiguousarray(b[:, j * bn:(j + 1) * bn]), out)
            c2[i * bm:(i + 1) * bm, j * bn:(j + 1) * bn] = out
    np.testing.assert_array_equal(c1, c2)


def test_not_grouped_when_tensor_read_after_write():
    """A statement without bx that reads a tensor the kernel writes stays per block (here every
    block reads Flag, which block 0 writes): the result is the per-block one."""
    n = 64

    @T.prim_func
    def main(X: T.Tensor((n,), "float32"), Y: T.Tensor((n,), "float32")):
        with T.Kernel(4) as (bx,):
            t = T.alloc_fragment((16,), "float32")
            u = T.alloc_fragment((16,), "float32")
            T.copy(X[0], t)  # no bx, but X is written below: per block
            for i in T.Parallel(16):
                u[i] = t[i] + 1
            T.copy(u, X[bx * 16])
            T.copy(u, Y[bx * 16])

    k = tilewise.compile(main, target="cpu")
    x = np.arange(n, dtype=np.float32)
    y = np.empty(n, np.float32)
    k(x, y)
    # each block reads X[0:16] as it is when the block starts; block 0 overwrites it first when
    # blocks run in order on one thread, but the test only requires every block's read to be
    # either the original or block 0's result, never a stale group-wide copy mixed with both
    orig = np.arange(16, dtype=np.float32) + 1
    for bx in range(4):
        assert np.array_equal(y[bx * 16:(bx + 1) * 16], orig) or np.array_equal(y[bx * 16:(bx + 1) * 16], orig + 1)


def test_not_grouped_with_atomics():
    """Atomics (and other order-dependent calls) keep blocks apart."""
    n = 128

    @T.prim_func
    def main(X: T.Tensor((n,), "float32"), S: T.Tensor((1,), "float32")):
        with T.Kernel(4) as (bx,):
            t = T.alloc_fragment((32,), "float32")
            s = T.alloc_fragment((1,), "float32")
            T.copy(X[bx * 32], t)
            T.reduce_sum(t, s, dim=0)
            T.atomic_add(S[0], s[0])

    k = tilewise.compile(main, target="cpu")
    assert "tw_grp" not in k.get_kernel_source()
    x = np.ones(n, np.float32)
    s = np.zeros(1, np.float32)
    k(x, s)
    assert s[0] == n


def test_grouped_convolution_down_the_column():
    """The implicit-GEMM convolution's grid is one filter block wide: its blocks are grouped down
    the column (by) and share the filter tiles, which come through a T.reshape view of the
    filter tensor; the im2col gathers stay per block."""
    import sys
    from pathlib import Path

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples" / "convolution"))
    from example_convolution import convolution

    n, c, h, w, f, kk = 2, 12, 9, 11, 20, 3
    k = tilewise.compile(convolution(n, c, h, w, f, kk, kk, 1, 1, 1, 32, 32, 16, dtype="float32"), out_idx=[-1],
                         target="cpu")
    assert "tw_grp" in k.get_kernel_source()
    g = torch.Generator().manual_seed(4)
    data = torch.randn(n, h, w, c, generator=g)
    weight = torch.randn(kk, kk, c, f, generator=g)
    out = k(data, weight)
    ref = torch.nn.functional.conv2d(data.permute(0, 3, 1, 2), weight.permute(3, 2, 0, 1), padding=1)
    torch.testing.assert_close(out, ref.permute(0, 2, 3, 1), rtol=1e-4, atol=1e-4)


def test_calls_that_write_through_pointers():
    """T.reduce_max renders as a call given the output tile's address: the tile it writes is the
    block's own, even when shared statements (W's copy and row sums, the same for every block of
    a grid row) split the block's statements between the reduction and the read of its result."""
    rows, cols = 16, 32

    @T.prim_func
    def main(X: T.Tensor((8 * rows, cols), "float32"), W: T.Tensor((2 * rows, cols), "float32"),
             Y: T.Tensor((2, 8 * rows), "float32")):
        with T.Kernel(8, 2) as (bx, by):
            s = T.alloc_fragment((rows, cols), "float32")
            w = T.alloc_shared((rows, cols), "float32")
            m = T.alloc_fragment((rows,), "float32")
            ws = T.alloc_fragment((rows,), "float32")
            T.copy(X[bx * rows, 0], s)
            T.reduce_max(s, m, dim=1)
            T.copy(W[by * rows, 0], w)
            T.reduce_sum(w, ws, dim=1)
            for i in T.Parallel(rows):
                Y[by, bx * rows + i] = m[i] + ws[i]

    k = tilewise.compile(main, target="cpu")
    assert "tw_grp" in k.get_kernel_source()
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8 * rows, cols), dtype=np.float32)
    w = rng.standard_normal((2 * rows, cols), dtype=np.float32)
    y = np.empty((2, 8 * rows), np.float32)
    k(x, w, y)
    for by in range(2):
        ref = x.max(-1) + np.tile(w[by * rows:(by + 1) * rows].sum(-1), 8)
        np.testing.assert_allclose(y[by], ref, rtol=1e-5, atol=1e-5)


def test_grouped_gemm_dynamic_shapes():
    """Symbolic M and N: group sizes and counts come from the grid at run time, down to a grid
    of one block."""
    M, N, K = T.symbolic("m"), T.symbolic("n"), 70

    @T.prim_func
    def main(A: T.Tensor((M, K), "float32"), B: T.Tensor((K, N), "float32"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(N, 16), T.ceildiv(M, 32)) as (bx, by):
            As = T.alloc_shared((32, 16), "float32")
            Bs = T.alloc_shared((16, 16), "float32")
            Cl = T.alloc_fragment((32, 16), "float32")
            T.clear(Cl)
            for ko in T.Pipelined(T.ceildiv(K, 16), num_stages=2):
                T.copy(A[by * 32, ko * 16], As)
                T.copy(B[ko * 16, bx * 16], Bs)
                T.gemm(As, Bs, Cl)
            T.copy(Cl, C[by * 32, bx * 16])

    k = tilewise.compile(main, target="cpu", pass_configs={"tw.cpu.disable_gemm_bands": True})
    assert "tw_grp" in k.get_kernel_source()
    rng = np.random.default_rng(6)
    for m, n in [(1, 1), (33, 17), (100, 250), (64, 160)]:
        a = rng.standard_normal((m, K), dtype=np.float32)
        b = rng.standard_normal((K, n), dtype=np.float32)
        c = np.full((m, n), np.nan, np.float32)
        k(a, b, c)
        np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4)
