"""CPU: a T.gemm operand that is a whole copy of an unchanged tile is not copied; the GEMM reads
the source (transform/elide_gemm_operand_copies.py). FlashAttention's `T.copy(acc_s, acc_s_cast)`
then `T.gemm(acc_s_cast, V, acc_o)` is the case; a copy the GEMM must not skip (the source changes
in between, or the copy is read elsewhere, or covers part of the tile) stays."""
from __future__ import annotations

import re

import numpy as np

import tilewise
import tilewise.language as T


def scores_times_v(M, N, D, variant):
    """O = round16(S * 0.5) @ V per block, S = X @ Y; `variant` picks what happens around the copy."""

    @T.prim_func
    def main(X: T.Tensor((M, D), "float16"), Y: T.Tensor((N, D), "float16"), V: T.Tensor((N, D), "float16"),
             O: T.Tensor((M, D), "float32"), P_out: T.Tensor((M, N), "float16")):
        with T.Kernel(T.ceildiv(M, 32), threads=128) as bx:
            X_s = T.alloc_shared((32, D), "float16")
            Y_s = T.alloc_shared((N, D), "float16")
            V_s = T.alloc_shared((N, D), "float16")
            S = T.alloc_fragment((32, N), "float32")
            P = T.alloc_fragment((32, N), "float16")
            acc = T.alloc_fragment((32, D), "float32")
            T.copy(X[bx * 32, 0], X_s)
            T.copy(Y, Y_s)
            T.copy(V, V_s)
            T.clear(S)
            T.clear(acc)
            T.gemm(X_s, Y_s, S, transpose_B=True)
            for i, j in T.Parallel(32, N):
                S[i, j] = S[i, j] * 0.5
            T.copy(S, P)
            if variant == "changed":
                for i, j in T.Parallel(32, N):
                    S[i, j] = 0.0
            T.gemm(P, V_s, acc)
            if variant == "read":
                T.copy(P, P_out[bx * 32, 0])
            T.copy(acc, O[bx * 32, 0])

    return tilewise.compile(main, target="cpu")


def _run(k, M, N, D, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((M, D)).astype(np.float16)
    y = rng.standard_normal((N, D)).astype(np.float16)
    v = rng.standard_normal((N, D)).astype(np.float16)
    o = np.empty((M, D), np.float32)
    p = np.zeros((M, N), np.float16)
    k(x, y, v, o, p)
    return o, (x, y, v)


def _gemm_a(src: str) -> str:
    return re.findall(r"tw::gemm<[^>]*>\(([^,]*\(&\w+\[0\]\)\)?[^,]*),", src)[-1]


def test_copy_elided_bit_identical():
    M, N, D = 64, 48, 32
    elided = scores_times_v(M, N, D, "plain")
    kept = scores_times_v(M, N, D, "read")
    assert "&S[0]" in _gemm_a(elided.get_kernel_source())
    assert "&P[0]" in _gemm_a(kept.get_kernel_source())
    o1, (x, y, v) = _run(elided, M, N, D)
    o2, _ = _run(kept, M, N, D)
    np.testing.assert_array_equal(o1.view(np.uint32), o2.view(np.uint32))
    s = (x.astype(np.float32) @ y.astype(np.float32).T) * 0.5
    want = s.astype(np.float16).astype(np.float64) @ v.astype(np.float64)
    np.testing.assert_allclose(o1, want, rtol=1e-3, atol=1e-2)


def test_source_changed_after_copy_not_elided():
    M, N, D = 64, 48, 32
    k = scores_times_v(M, N, D, "changed")
    assert "&P[0]" in _gemm_a(k.get_kernel_source())
    o, (x, y, v) = _run(k, M, N, D)
    s = (x.astype(np.float32) @ y.astype(np.float32).T) * 0.5
    want = s.astype(np.float16).astype(np.float64) @ v.astype(np.float64)
    np.testing.assert_allclose(o, want, rtol=1e-3, atol=1e-2)


def test_partial_copy_not_elided():
    """Only half the rows copied: the other half of P is what it was (zero), not S."""
    M, N, D = 32, 32, 16

    @T.prim_func
    def main(X: T.Tensor((M, N), "float32"), V: T.Tensor((N, D), "float32"), O: T.Tensor((M, D), "float32")):
        with T.Kernel(1, threads=128):
            S = T.alloc_fragment((M, N), "float32")
            P = T.alloc_fragment((M, N), "float32")
            V_s = T.alloc_shared((N, D), "float32")
            acc = T.alloc_fragment((M, D), "float32")
            T.copy(X, S)
            T.copy(V, V_s)
            T.clear(P)
            T.clear(acc)
            for i, j in T.Parallel(M // 2, N):
                P[i, j] = S[i, j]
            T.gemm(P, V_s, acc)
            T.copy(acc, O)

    k = tilewise.compile(main, target="cpu")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((M, N)).astype(np.float32)
    v = rng.standard_normal((N, D)).astype(np.float32)
    o = np.empty((M, D), np.float32)
    k(x, v, o)
    p = x.copy()
    p[M // 2:] = 0
    np.testing.assert_allclose(o, p.astype(np.float64) @ v.astype(np.float64), rtol=1e-5, atol=1e-5)
