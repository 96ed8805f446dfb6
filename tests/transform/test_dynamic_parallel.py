"""T.Parallel nests with run-time extents on CUDA targets (transform/dynamic_parallel.py): chunks
of one iteration per thread, guarded; run in the emulator against numpy, for extents below, at
and above the block's thread count, in one and two dimensions."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T

EMU = dict(target="cuda -arch=sm_80", execution_backend="emulator")


def test_one_dimension_clipped_by_a_scalar():
    @T.prim_func
    def clip(A: T.Tensor((512,), "float32"), B: T.Tensor((512,), "float32"), valid_len: T.int32):
        with T.Kernel(1, threads=128):
            for i in T.Parallel(512):
                B[i] = 0.0
            span = T.min(valid_len, 512)
            for i in T.Parallel(span):
                B[i] = A[i] - 1.0

    k = tilewise.compile(clip, out_idx=[1], **EMU)
    a = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    for n in (0, 13, 128, 200, 600):
        want = np.zeros(512, np.float32)
        want[:min(n, 512)] = a[:min(n, 512)] - 1
        np.testing.assert_array_equal(k(a, n), want)


@pytest.mark.parametrize("m,n", [(3, 5), (17, 40), (1, 1)])
def test_two_dynamic_dimensions(m, n):
    M, N = T.dynamic("M"), T.dynamic("N")

    @T.prim_func
    def scale(A: T.Tensor((M, N), "float32"), B: T.Tensor((M, N), "float32")):
        with T.Kernel(2, threads=64) as bx:
            for i, j in T.Parallel(M, N):
                B[i, j] = A[i, j] * 2 + bx * 0

    k = tilewise.compile(scale, out_idx=[1], **EMU)
    a = np.arange(m * n, dtype=np.float32).reshape(m, n)
    np.testing.assert_array_equal(k(a), a * 2)


def test_constant_nests_are_untouched():
    from tilewise.ir.stmt import For
    from tilewise.ir.visitor import Visitor
    from tilewise.transform.dynamic_parallel import dynamic_parallel

    @T.prim_func
    def f(A: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=32):
            for i in T.Parallel(64):
                A[i] = 1.0

    assert dynamic_parallel(f) is f

    n = T.dynamic("n")

    @T.prim_func
    def g(A: T.Tensor((n,), "float32")):
        with T.Kernel(1, threads=32):
            for i in T.Parallel(n):
                A[i] = 1.0

    kinds = []

    class Loops(Visitor):
        def visit_For(self, s: For):
            kinds.append((s.kind, getattr(s.extent, "value", None)))
            self.generic_visit(s)

    Loops().visit(dynamic_parallel(g).body)
    assert kinds == [("serial", None), ("parallel", 32)]


def test_through_shared_memory():
    n = T.dynamic("n")

    @T.prim_func
    def rev(A: T.Tensor((n,), "float32"), B: T.Tensor((n,), "float32")):
        with T.Kernel(1, threads=32):
            S = T.alloc_shared((256,), "float32")
            for i in T.Parallel(n):
                S[i] = A[i]
            for i in T.Parallel(n):
                B[i] = S[n - 1 - i] + 1

    k = tilewise.compile(rev, out_idx=[1], **EMU)
    for m in (1, 31, 100, 256):
        a = np.arange(m, dtype=np.float32)
        np.testing.assert_array_equal(k(a), a[::-1] + 1)


def test_fragments_are_refused():
    n = T.dynamic("n")

    @T.prim_func
    def f(A: T.Tensor((n,), "float32")):
        with T.Kernel(1, threads=32):
            F = T.alloc_fragment((64,), "float32")
            T.clear(F)
            for i in T.Parallel(n):
                F[i] = A[i]

    with pytest.raises(tilewise.CompileError, match="run-time extent cannot index the fragment F"):
        tilewise.compile(f, **EMU)
