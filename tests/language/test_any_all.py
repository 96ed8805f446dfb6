"""T.any_of / T.all_of over small local and fragment tiles (whole buffers, slices, 2-D, numbers
treated as true when non-zero), used in `if` and in T.if_then_else."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise import CompileError

ROWS = 33


@pytest.fixture(scope="module")
def any_all_kernel():
    @T.prim_func
    def main(
        M: T.Tensor((ROWS, 7), "bool"),
        V: T.Tensor((ROWS, 2, 3), "int32"),
        Out: T.Tensor((ROWS, 6), "int32"),
    ):
        with T.Kernel(ROWS) as bx:
            m = T.alloc_fragment((7,), "bool")
            v = T.alloc_local((2, 3), "int32")
            for j in T.Parallel(7):
                m[j] = M[bx, j]
            for i, j in T.Parallel(2, 3):
                v[i, j] = V[bx, i, j]
            Out[bx, 0] = T.if_then_else(T.any_of(m), 1, 0)
            Out[bx, 1] = T.if_then_else(T.all_of(m), 1, 0)
            if T.all_of(m[2:5]):
                Out[bx, 2] = 1
            else:
                Out[bx, 2] = 0
            Out[bx, 3] = T.if_then_else(T.any_of(v), 1, 0)
            Out[bx, 4] = T.if_then_else(T.all_of(v), 1, 0)
            Out[bx, 5] = T.if_then_else(T.any_of(v[1, :]) and not T.all_of(m[0:1]), 1, 0)

    return tilewise.compile(main, target="cpu", out_idx=[2])


def test_any_all(any_all_kernel, rng):
    m = rng.random((ROWS, 7)) < 0.8
    m[0] = True
    m[1] = False
    v = (rng.random((ROWS, 2, 3)) < 0.7).astype(np.int32) * rng.integers(-5, 5, size=(ROWS, 2, 3)).astype(np.int32)
    v[2] = 0
    v[3] = 7
    out = any_all_kernel(m, v)
    flat = v.reshape(ROWS, 6) != 0
    ref = np.stack(
        [m.any(1), m.all(1), m[:, 2:5].all(1), flat.any(1), flat.all(1), (v[:, 1] != 0).any(1) & ~m[:, 0]],
        axis=1,
    ).astype(np.int32)
    np.testing.assert_array_equal(out, ref)


def test_any_all_errors():
    # (a global tensor or a slice of one is accepted, as in TileLang: tests/test_compat_language.py)
    with pytest.raises(CompileError, match=r"T.all_of: expected a buffer or a slice"):

        @T.prim_func
        def on_scalar(A: T.Tensor((4,), "bool")):
            with T.Kernel(1):
                A[0] = T.all_of(A[1])

    with pytest.raises(CompileError, match=r"at most 4096 are supported"):

        @T.prim_func
        def too_big(A: T.Tensor((4,), "bool")):
            with T.Kernel(1):
                big = T.alloc_fragment((128, 64), "bool")
                A[0] = T.any_of(big)
