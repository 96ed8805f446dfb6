"""CPU: a float16 / bfloat16 T.gemm operand computed by a T.Parallel (a dequantisation) stays in
float32 and is rounded by the GEMM's packing (transform/fuse_gemm_producers.py, tw_gemm_via.h).

The micro-kernel must multiply the same values as before, so each fused kernel is compared bit
for bit with the unfused computation of the same thing: one kernel dequantising into a float16
tensor (the same expression, rounded once when stored) and a plain GEMM kernel with the same
tiles reading it. Ragged shapes (every edge tile guarded), A or B produced, every transposition,
float16 and bfloat16, and values that exercise the rounding (ties, subnormals, overflow)."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T

BM, BN, BK = 32, 48, 32


def _shapes(M, N, K, ta, tb):
    return ((K, M) if ta else (M, K)), ((N, K) if tb else (K, N))


def fused(M, N, K, which, ta, tb, dt, out="float32", accum="float32", tiles=(BM, BN, BK)):
    """C = op(A) @ op(B) where operand `which` is (Q - 8) * S, computed per tile in a T.Parallel."""
    BM, BN, BK = tiles
    a_shape, b_shape = _shapes(M, N, K, ta, tb)
    a_tile = (BK, BM) if ta else (BM, BK)
    b_tile = (BN, BK) if tb else (BK, BN)
    q_shape, q_tile = (a_shape, a_tile) if which == "a" else (b_shape, b_tile)
    plain_shape = b_shape if which == "a" else a_shape

    def origin(op, ko, bx, by):
        if op == "a":
            return (ko * BK, by * BM) if ta else (by * BM, ko * BK)
        return (bx * BN, ko * BK) if tb else (ko * BK, bx * BN)

    other = "b" if which == "a" else "a"

    @T.prim_func
    def main(Q: T.Tensor(q_shape, "uint8"), S: T.Tensor(q_shape, dt), P: T.Tensor(plain_shape, dt),
             C: T.Tensor((M, N), out)):
        with T.Kernel(T.ceildiv(N, BN), T.ceildiv(M, BM), threads=128) as (bx, by):
            Q_s = T.alloc_shared(q_tile, "uint8")
            S_s = T.alloc_shared(q_tile, dt)
            X_s = T.alloc_shared(q_tile, dt)
            P_s = T.alloc_shared(b_tile if which == "a" else a_tile, dt)
            C_l = T.alloc_fragment((BM, BN), accum)
            T.clear(C_l)
            for ko in T.Pipelined(T.ceildiv(K, BK), num_stages=2):
                i0, j0 = origin(which, ko, bx, by)
                T.copy(Q[i0, j0], Q_s)
                T.copy(S[i0, j0], S_s)
                p0, p1 = origin(other, ko, bx, by)
                T.copy(P[p0, p1], P_s)
                for i, j in T.Parallel(*q_tile):
                    X_s[i, j] = (Q_s[i, j].astype(dt) - 8) * S_s[i, j]
                if which == "a":
                    T.gemm(X_s, P_s, C_l, transpose_A=ta, transpose_B=tb)
                else:
                    T.gemm(P_s, X_s, C_l, transpose_A=ta, transpose_B=tb)
            T.copy(C_l, C[by * BM, bx * BN])

    return tilewise.compile(main, target="cpu")


def dequant(shape, dt):
    """The producer alone, as a kernel writing a `dt` tensor: every value rounded once, when stored."""
    R, Cn = shape

    @T.prim_func
    def main(Q: T.Tensor(shape, "uint8"), S: T.Tensor(shape, dt), X: T.Tensor(shape, dt)):
        with T.Kernel(T.ceildiv(Cn, 64), T.ceildiv(R, 16), threads=128) as (bx, by):
            for i, j in T.Parallel(16, 64):
                if by * 16 + i < R and bx * 64 + j < Cn:
                    X[by * 16 + i, bx * 64 + j] = (Q[by * 16 + i, bx * 64 + j].astype(dt) - 8) * S[by * 16 + i, bx * 64 + j]

    return tilewise.compile(main, target="cpu")


def plain(M, N, K, ta, tb, dt, out="float32", accum="float32", tiles=(BM, BN, BK)):
    BM, BN, BK = tiles
    a_shape, b_shape = _shapes(M, N, K, ta, tb)

    @T.prim_func
    def main(A: T.Tensor(a_shape, dt), B: T.Tensor(b_shape, dt), C: T.Tensor((M, N), out)):
        with T.Kernel(T.ceildiv(N, BN), T.ceildiv(M, BM), threads=128) as (bx, by):
            A_s = T.alloc_shared((BK, BM) if ta else (BM, BK), dt)
            B_s = T.alloc_shared((BN, BK) if tb else (BK, BN), dt)
            C_l = T.alloc_fragment((BM, BN), accum)
            T.clear(C_l)
            for ko in T.Pipelined(T.ceildiv(K, BK), num_stages=2):
                T.copy(A[ko * BK, by * BM] if ta else A[by * BM, ko * BK], A_s)
                T.copy(B[bx * BN, ko * BK] if tb else B[ko * BK, bx * BN], B_s)
                T.gemm(A_s, B_s, C_l, transpose_A=ta, transpose_B=tb)
            T.copy(C_l, C[by * BM, bx * BN])

    return tilewise.compile(main, target="cpu")


def _np(dt):
    if dt == "float16":
        return np.float16
    import ml_dtypes

    return ml_dtypes.bfloat16


def _inputs(shape, dt, rng, hard=False):
    q = rng.integers(0, 16, shape, dtype=np.uint8)
    s = rng.standard_normal(shape).astype(np.float32) * 0.37
    if hard:
        # products that round: ties at float16's precision, subnormal results, overflow to inf
        s.flat[::7] = 2.0 ** -20
        s.flat[3::11] = 1.0 + 2.0 ** -10  # 7 x (1 + 2^-10) rounds
        s.flat[5::13] = 60000.0  # x 2..8 overflows float16 (bfloat16 keeps it)
    return q, s.astype(_np(dt))


def _check(M, N, K, which, ta, tb, dt, out="float32", accum="float32", hard=False, tiles=(BM, BN, BK)):
    k = fused(M, N, K, which, ta, tb, dt, out, accum, tiles)
    src = k.get_kernel_source()
    assert f"tw::via<tw::{'half' if dt == 'float16' else 'bf16'}>" in src, "the producer was not fused"
    a_shape, b_shape = _shapes(M, N, K, ta, tb)
    q_shape, p_shape = (a_shape, b_shape) if which == "a" else (b_shape, a_shape)
    rng = np.random.default_rng(M * 7 + N * 3 + K + (which == "a") + 2 * ta + 4 * tb)
    q, s = _inputs(q_shape, dt, rng, hard)
    p = (rng.standard_normal(p_shape) * 0.5).astype(_np(dt))
    onp = np.float32 if out == "float32" else _np(out)
    c = np.empty((M, N), onp)
    k(q, s, p, c)
    x = np.empty(q_shape, _np(dt))
    dequant(q_shape, dt)(q, s, x)
    np.testing.assert_array_equal(x.astype(np.float32), ((q.astype(np.float32) - 8) * s.astype(np.float32))
                                  .astype(_np(dt)).astype(np.float32))
    ref = np.empty((M, N), onp)
    a, b = (x, p) if which == "a" else (p, x)
    plain(M, N, K, ta, tb, dt, out, accum, tiles)(a, b, ref)
    np.testing.assert_array_equal(c.view(np.uint32 if out == "float32" else np.uint16),
                                  ref.view(np.uint32 if out == "float32" else np.uint16))
    if not hard:
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        want = (a64.T if ta else a64) @ (b64.T if tb else b64)
        np.testing.assert_allclose(c.astype(np.float64), want, rtol=2e-2 if out != "float32" else 1e-4,
                                   atol=(2e-2 if out != "float32" else 1e-4) * np.sqrt(K))


@pytest.mark.parametrize("which,ta,tb", [("b", False, True), ("b", False, False), ("a", False, False),
                                         ("a", True, True)])
def test_fused_bit_identical_ragged(which, ta, tb):
    _check(100, 130, 200, which, ta, tb, "float16")


def test_fused_rounding_edge_values():
    """Ties, subnormals and overflow to inf: the packing's F16C rounding is tw::half's."""
    _check(40, 50, 70, "b", False, True, "float16", hard=True)


def test_fused_tiles_not_whole_vectors():
    """Tile extents that are not whole vectors: the packing's element-wise tails round too."""
    _check(45, 50, 60, "b", False, False, "float16", tiles=(24, 20, 12), hard=True)
    _check(45, 50, 60, "a", True, False, "float16", tiles=(20, 24, 12))


def test_fused_bfloat16_and_float16_output():
    _check(33, 70, 96, "b", False, True, "bfloat16")
    _check(70, 33, 64, "b", False, True, "float16", out="float16")


def test_tile_read_elsewhere_is_not_fused():
    """A produced tile that something besides T.gemm reads keeps its float16 storage."""
    M = N = K = 64

    @T.prim_func
    def main(Q: T.Tensor((N, K), "uint8"), A: T.Tensor((M, K), "float16"), C: T.Tensor((M, N), "float32"),
             W: T.Tensor((N, K), "float16")):
        with T.Kernel(1, 1, threads=128) as (bx, by):
            Q_s = T.alloc_shared((N, K), "uint8")
            A_s = T.alloc_shared((M, K), "float16")
            B_s = T.alloc_shared((N, K), "float16")
            C_l = T.alloc_fragment((M, N), "float32")
            T.copy(Q, Q_s)
            T.copy(A, A_s)
            for i, j in T.Parallel(N, K):
                B_s[i, j] = (Q_s[i, j].astype("float16") - 8) * 0.25
            T.gemm(A_s, B_s, C_l, transpose_B=True, clear_accum=True)
            T.copy(B_s, W)
            T.copy(C_l, C)

    k = tilewise.compile(main, target="cpu")
    assert "tw::via" not in k.get_kernel_source()
    rng = np.random.default_rng(1)
    q = rng.integers(0, 16, (N, K), dtype=np.uint8)
    a = rng.standard_normal((M, K)).astype(np.float16)
    c = np.empty((M, N), np.float32)
    w = np.empty((N, K), np.float16)
    k(q, a, c, w)
    np.testing.assert_array_equal(w, ((q.astype(np.float32) - 8) * 0.25).astype(np.float16))
    np.testing.assert_allclose(c, a.astype(np.float32) @ w.astype(np.float32).T, rtol=1e-4, atol=1e-3)


def _invariant_kernel(M, N, K, steps, inside: bool):
    """C = A @ (B_0 + ... + B_{steps-1}): the A tile copied once before the loop over the B tiles
    (or, with `inside`, again in every step)."""

    @T.prim_func
    def main(A: T.Tensor((M, K), "float16"), B: T.Tensor((steps * K, N), "float16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(N, 32), T.ceildiv(M, 48), threads=128) as (bx, by):
            A_s = T.alloc_shared((48, K), "float16")
            B_s = T.alloc_shared((K, 32), "float16")
            C_l = T.alloc_fragment((48, 32), "float32")
            T.clear(C_l)
            if not inside:
                T.copy(A[by * 48, 0], A_s)
            for s in T.serial(steps):
                if inside:
                    T.copy(A[by * 48, 0], A_s)
                T.copy(B[s * K, bx * 32], B_s)
                T.gemm(A_s, B_s, C_l)
            T.copy(C_l, C[by * 48, bx * 32])

    return tilewise.compile(main, target="cpu")


def test_loop_invariant_operand_widened_once():
    """FlashAttention's Q: copied once, multiplied at every step. It becomes a float32 tile
    converted in its copy (the GEMM uses it in place, no per-step packing); bit-identical to the
    kernel that copies it at every step (which keeps it float16)."""
    import re

    M, N, K, steps = 100, 70, 40, 5
    once = _invariant_kernel(M, N, K, steps, inside=False)
    every = _invariant_kernel(M, N, K, steps, inside=True)
    # an array, a lock-step group's array, or a GEMM band's pointer into the workspace
    decl = re.compile(r"(float|tw::half)(?:\* __restrict__)? A_s(?:_grp)?(?:\[| = )")
    assert decl.search(once.get_kernel_source()).group(1) == "float"
    assert decl.search(every.get_kernel_source()).group(1) == "tw::half"
    assert "tw::via" not in once.get_kernel_source()
    rng = np.random.default_rng(3)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((steps * K, N)).astype(np.float16)
    c1 = np.empty((M, N), np.float32)
    c2 = np.empty((M, N), np.float32)
    once(a, b, c1)
    every(a, b, c2)
    np.testing.assert_array_equal(c1.view(np.uint32), c2.view(np.uint32))
    bsum = b.astype(np.float64).reshape(steps, K, N)
    want = sum(a.astype(np.float64) @ bsum[s] for s in range(steps))
    np.testing.assert_allclose(c1, want, rtol=1e-4, atol=1e-3)
