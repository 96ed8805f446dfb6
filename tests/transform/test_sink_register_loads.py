"""A fragment loaded from a tensor the kernel never writes is loaded after the barriers that
precede its first use (transform/sink_register_loads.py): RMSNorm's weight row after the row
sum's shared-memory round. A tensor the kernel also writes keeps its load where it was."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T

M, N = 4, 1024


def _rms_norm(write_w: bool):
    @T.prim_func
    def main(X: T.Tensor((M, N), "float16"), W: T.Tensor((N,), "float16"), Y: T.Tensor((M, N), "float16")):
        with T.Kernel(1 if write_w else M, threads=128) as bx:  # one block: no race on W
            x = T.alloc_fragment((1, N), "float32")
            x_sq = T.alloc_fragment((1, N), "float32")
            w = T.alloc_fragment((N,), "float32")
            r = T.alloc_fragment((1,), "float32")
            T.copy(X[bx, 0], x)
            T.copy(W, w)
            for i, j in T.Parallel(1, N):
                x_sq[i, j] = x[i, j] * x[i, j]
            T.reduce_sum(x_sq, r, dim=1)
            for i in T.Parallel(1):
                r[i] = T.rsqrt(r[i] / N + 1e-6)
            for i, j in T.Parallel(1, N):
                x[i, j] = x[i, j] * r[i] * w[j]
            T.copy(x, Y[bx, 0])
            if write_w:
                T.copy(x[0, :], W)  # W is also written: its load must stay before the reduction

    return main


@pytest.mark.parametrize("write_w", [False, True])
def test_weight_row_is_loaded_after_the_reduction(write_w):
    k = tilewise.compile(_rms_norm(write_w), target="cuda -arch=sm_80", execution_backend="emulator")
    src = k.get_kernel_source()
    w_load = src.index("&W[")
    last_barrier = src.rindex("__syncthreads();")
    assert (w_load > last_barrier) == (not write_w), src
    rng = np.random.default_rng(1)
    x = rng.standard_normal((M, N)).astype(np.float16)
    w = rng.standard_normal(N).astype(np.float16)
    y = np.zeros_like(x)
    w_in = w.copy()
    k(x, w, y)
    xf = x.astype(np.float32)
    want = xf / np.sqrt((xf * xf).mean(axis=1, keepdims=True) + 1e-6) * w_in.astype(np.float32)
    rows = 1 if write_w else M
    np.testing.assert_allclose(y[:rows].astype(np.float32), want[:rows], rtol=2e-2, atol=2e-2)
