"""T.reduce_* from a fragment straight into shared memory on CUDA targets (TileLang's
reduce::test_reduce_sum_clear_B_shared): the registers reduce as for a fragment result, then one
replica of each result element stores it. Run in the emulator against numpy."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T

EMU = dict(target="cuda -arch=sm_80", execution_backend="emulator")


@pytest.mark.parametrize("kind", ["sum", "max"])
@pytest.mark.parametrize("dim", [0, 1])
@pytest.mark.parametrize("clear", [True, False])
def test_fragment_into_shared(kind, dim, clear):
    M, N = 32, 64
    R = N if dim == 0 else M
    red = getattr(T, f"reduce_{kind}")

    @T.prim_func
    def k(A: T.Tensor((M, N), "float32"), B: T.Tensor((R,), "float32")):
        with T.Kernel(1, threads=64):
            F = T.alloc_fragment((M, N), "float32")
            S = T.alloc_shared((R,), "float32")
            T.copy(A, F)
            T.fill(S, 1)
            red(F, S, dim=dim, clear=clear)
            T.copy(S, B)

    kern = tilewise.compile(k, out_idx=[1], **EMU)
    a = np.random.default_rng(1).standard_normal((M, N)).astype(np.float32)
    r = a.sum(axis=dim) if kind == "sum" else a.max(axis=dim)
    want = r if clear else (r + 1 if kind == "sum" else np.maximum(r, 1))
    np.testing.assert_allclose(kern(a), want, rtol=1e-5, atol=1e-5)


def test_fragment_into_a_shared_slice_keeping_the_dimension():
    @T.prim_func
    def k(A: T.Tensor((16, 32), "float32"), B: T.Tensor((16, 1), "float32")):
        with T.Kernel(1, threads=32):
            F = T.alloc_fragment((16, 32), "float32")
            S = T.alloc_shared((2, 16, 1), "float32")
            T.copy(A, F)
            T.reduce_sum(F, S[1, 0:16, 0:1], dim=1)
            T.copy(S[1, 0:16, 0:1], B)

    kern = tilewise.compile(k, out_idx=[1], **EMU)
    a = np.arange(16 * 32, dtype=np.float32).reshape(16, 32) / 64
    np.testing.assert_allclose(kern(a), a.sum(1, keepdims=True), rtol=1e-6)
