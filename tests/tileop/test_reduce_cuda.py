"""T.reduce of an mma accumulator on the CUDA target, run in the emulator against numpy.

A 128-row accumulator over 4 warps (FullRow) gives each thread two row digits separated by a
column digit; the row-vector result merges them into one, and the reduction must still send
each register to the right result register (FlashAttention's row max / row sum)."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T


def _gemm_then_reduce(M, N, K):
    @T.prim_func
    def main(A: T.Tensor((M, K), "float16"), B: T.Tensor((N, K), "float16"),
             Mx: T.Tensor((M,), "float"), Sm: T.Tensor((M,), "float")):
        with T.Kernel(1, threads=128) as _:
            A_s = T.alloc_shared((M, K), "float16")
            B_s = T.alloc_shared((N, K), "float16")
            s = T.alloc_fragment((M, N), "float")
            row_max = T.alloc_fragment((M,), "float")
            row_sum = T.alloc_fragment((M,), "float")
            T.copy(A, A_s)
            T.copy(B, B_s)
            T.gemm(A_s, B_s, s, transpose_B=True, policy=T.GemmWarpPolicy.FullRow, clear_accum=True)
            T.reduce_max(s, row_max, dim=1)
            T.reduce_sum(s, row_sum, dim=1)
            T.copy(row_max, Mx)
            T.copy(row_sum, Sm)

    return main


@pytest.mark.parametrize("M", [64, 128])
def test_row_reductions_of_an_mma_accumulator(M, rng):
    N, K = 64, 32
    kernel = tilewise.compile(_gemm_then_reduce(M, N, K), out_idx=[2, 3], target="cuda",
                              execution_backend="emulator")
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((N, K)).astype(np.float16)
    mx, sm = kernel(a, b)
    s = a.astype(np.float32) @ b.astype(np.float32).T
    np.testing.assert_allclose(mx, s.max(axis=1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(sm, s.sum(axis=1), rtol=1e-4, atol=1e-3)
