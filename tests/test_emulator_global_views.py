"""T.reshape / T.view of a global tensor inside a kernel (the implicit-GEMM convolution views
its filter as a matrix) runs on the emulator as on the CPU: the view aliases the tensor."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T

TARGETS = [dict(target="cuda", execution_backend="emulator"), dict(target="cpu")]


@T.prim_func
def _flat_copy(W: T.Tensor((2, 3, 4, 32), "float16"), Y: T.Tensor((24, 32), "float32")):
    with T.Kernel(2, threads=128) as bx:
        W_flat = T.reshape(W, (24, 32))
        Y_half = T.view(Y, (48, 16))
        s = T.alloc_shared((12, 32), "float16")
        t = T.alloc_fragment((12, 32), "float32")
        T.copy(W_flat[bx * 12, 0], s)
        T.copy(s, t)
        for i, j in T.Parallel(12, 32):
            t[i, j] = t[i, j] * 2
        T.copy(t, Y[bx * 12, 0])
        # the second view: the same bytes with another row length
        T.copy(t[0:1, 0:16], Y_half[bx * 24, 0:16])


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t["target"])
def test_views_of_global_tensors_inside_a_kernel(target, rng):
    kernel = tilewise.compile(_flat_copy, out_idx=[-1], **target)
    w = rng.standard_normal((2, 3, 4, 32)).astype(np.float16)
    y = kernel(w)
    expect = w.reshape(24, 32).astype(np.float32) * 2
    expect.reshape(48, 16)[[0, 24]] = expect[[0, 12], :16]
    np.testing.assert_array_equal(y, expect)
