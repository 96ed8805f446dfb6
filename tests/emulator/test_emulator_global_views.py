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
        Y_rows16 = T.view(Y, (48, 16))  # the same bytes with half-length rows
        s = T.alloc_shared((12, 32), "float16")
        t = T.alloc_fragment((12, 32), "float32")
        T.copy(W_flat[bx * 12, 0], s)
        T.copy(s, t)
        for i, j in T.Parallel(12, 32):
            Y_rows16[bx * 24 + i * 2 + j // 16, j % 16] = t[i, j] * 2


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t["target"])
def test_views_of_global_tensors_inside_a_kernel(target, rng):
    kernel = tilewise.compile(_flat_copy, out_idx=[-1], **target)
    w = rng.standard_normal((2, 3, 4, 32)).astype(np.float16)
    y = kernel(w)
    np.testing.assert_array_equal(y, w.reshape(24, 32).astype(np.float32) * 2)
