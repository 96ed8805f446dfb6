"""transform/split_guarded_loops.py: guarded copies (`cond ? src : 0` per element) become plain
loops split at the bounds the condition puts on the loop index. Checked against numpy / torch on
ragged shapes where the guards cannot be proven away."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tilewise
import tilewise.language as T

ROOT = Path(__file__).resolve().parents[2]


def window(M, N, bm, bn, dtype):
    """Out[b] = the bm x bn window of A at (row0 + b * bm, col0), zero outside A: the offsets are
    arguments, so every guard of the copy stays."""

    @T.prim_func
    def main(A: T.Tensor((M, N), dtype), Out: T.Tensor((4, bm, bn), dtype), row0: T.int32, col0: T.int32):
        with T.Kernel(4) as b:
            tile = T.alloc_shared((bm, bn), dtype)
            T.copy(A[row0 + b * bm, col0], tile)
            T.copy(tile, Out[b, :, :])

    return main


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("row0, col0", [(0, 0), (-5, -3), (30, 17), (-40, 40), (7, -50)])
def test_window_copy(dtype, row0, col0, rng):
    M, N, bm, bn = 50, 45, 16, 24
    kernel = tilewise.compile(window(M, N, bm, bn, dtype), target="cpu")
    src = kernel.get_kernel_source()
    assert " ? A[" not in src  # the copy was split, not guarded per element
    a = rng.standard_normal((M, N)).astype(dtype)
    out = np.full((4, bm, bn), 7, dtype)
    kernel(a, out, row0, col0)
    ref = np.zeros((4, bm, bn), dtype)
    for b in range(4):
        for i in range(bm):
            for j in range(bn):
                r, c = row0 + b * bm + i, col0 + j
                if 0 <= r < M and 0 <= c < N:
                    ref[b, i, j] = a[r, c]
    np.testing.assert_array_equal(out, ref)


def test_streamk_ragged():
    sys.path.insert(0, str(ROOT / "examples" / "gemm_streamk"))
    from example_gemm_streamk import matmul_streamk

    M, N, K = 200, 136, 100
    kernel = tilewise.compile(matmul_streamk(M, N, K, 64, 64, 16, num_sms=5), target="cpu")
    g = torch.Generator().manual_seed(0)
    a = torch.randn(M, K, generator=g).half()
    b = torch.randn(K, N, generator=g).half()
    c = torch.zeros(M, N)
    kernel(a, b, c)
    torch.testing.assert_close(c, a.float() @ b.float(), rtol=1e-3, atol=1e-3)


def test_convolution_padding_ragged():
    sys.path.insert(0, str(ROOT / "examples" / "convolution"))
    from example_convolution import convolution, ref_program

    n, c, h, w, f, k, s, p, d = 2, 32, 13, 11, 64, 3, 1, 1, 1
    kernel = tilewise.compile(convolution(n, c, h, w, f, k, k, s, p, d), out_idx=[-1], target="cpu")
    g = torch.Generator().manual_seed(0)
    data = torch.randn(n, h, w, c, generator=g).half()
    weight = torch.randn(k, k, c, f, generator=g).half()
    torch.testing.assert_close(kernel(data, weight).float(), ref_program(data, weight, s, p, d).float(),
                               rtol=1e-2, atol=1e-2)
