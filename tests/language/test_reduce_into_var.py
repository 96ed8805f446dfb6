"""T.reduce_* into a T.alloc_var scalar, as TileLang 0.1.15 allows it: from a T.alloc_local tile
(each thread reduces its own registers) whose reduced shape is one element; a shared or fragment
source is refused ("Invalid buffer scopes", as TileLang's reduce raises). Checked against numpy
on the CPU target, the emulator and the PTX interpreter, with clear=True and clear=False."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T

TARGETS = [("cpu", None), ("cuda", "emulator"), ("cuda -arch=sm_80", "ptx")]
IDS = ["cpu", "emulator", "ptx"]
REF = {"sum": np.sum, "max": np.max, "min": np.min, "abssum": lambda a: np.abs(a).sum(),
       "absmax": lambda a: np.abs(a).max()}


def _compile(func, target, backend, out_idx=None):
    extra = {} if backend is None else {"execution_backend": backend}
    return tilewise.compile(func, target=target, out_idx=out_idx, **extra)


@pytest.mark.parametrize("target,backend", TARGETS, ids=IDS)
@pytest.mark.parametrize("op", ["sum", "max", "min", "abssum", "absmax"])
def test_local_into_var(target, backend, op):
    @T.prim_func
    def red(A: T.Tensor((8,), "float32"), B: T.Tensor((1,), "float32")):
        with T.Kernel(1, threads=1):
            src = T.alloc_local((8,), "float32")
            dst = T.alloc_var("float32")
            for i in T.serial(8):
                src[i] = A[i]
            getattr(T, f"reduce_{op}")(src, dst, dim=0)
            B[0] = dst

    a = np.array([3.5, -7.25, 1.0, 0.5, -2.0, 6.0, -0.125, 4.0], np.float32)
    b = _compile(red, target, backend, [1])(a)
    np.testing.assert_allclose(b, [REF[op](a)], rtol=1e-6)


@pytest.mark.parametrize("target,backend", TARGETS, ids=IDS)
def test_clear_false_keeps_the_var(target, backend):
    """clear=False combines with the scalar's value: its initialiser, then the first reduction."""

    @T.prim_func
    def red(A: T.Tensor((2, 8), "int32"), B: T.Tensor((2,), "int32")):
        with T.Kernel(1, threads=1):
            src = T.alloc_local((1, 8), "int32")
            s = T.alloc_var("int32", 100)
            m = T.alloc_var("int32", -5)
            for r in T.serial(2):
                for i in T.serial(8):
                    src[0, i] = A[r, i]
                T.reduce_sum(src, s, dim=1, clear=False)
                T.reduce_max(src, m, dim=1, clear=False)
            B[0] = s
            B[1] = m

    a = np.arange(-8, 8, dtype=np.int32).reshape(2, 8)
    b = _compile(red, target, backend, [1])(a)
    np.testing.assert_array_equal(b, [100 + a.sum(), max(-5, a.max())])


def test_fragment_source_refused():
    with pytest.raises(tilewise.CompileError, match="Invalid buffer scopes: local.fragment and local.var"):
        @T.prim_func
        def red(A: T.Tensor((8,), "float32"), B: T.Tensor((1,), "float32")):
            with T.Kernel(1, threads=32):
                src = T.alloc_fragment((8,), "float32")
                dst = T.alloc_var("float32")
                T.copy(A, src)
                T.reduce_sum(src, dst, dim=0)
                B[0] = dst


def test_more_than_one_result_refused():
    with pytest.raises(tilewise.CompileError, match="gives shape"):
        @T.prim_func
        def red(A: T.Tensor((4, 8), "float32"), B: T.Tensor((1,), "float32")):
            with T.Kernel(1, threads=1):
                src = T.alloc_local((4, 8), "float32")
                dst = T.alloc_var("float32")
                for i, j in T.grid(4, 8):
                    src[i, j] = A[i, j]
                T.reduce_sum(src, dst, dim=0)
                B[0] = dst
