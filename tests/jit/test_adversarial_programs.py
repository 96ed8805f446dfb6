"""Programs built to stress the compiler: long expression chains compile in time linear in their
length (the simplifier once visited a multiply-add chain twice per level, 2^depth in all: a
Horner polynomial of degree 20 took a minute) and run correctly; a chain deeper than the
compiler can walk is a CompileError saying so, not a RecursionError from deep inside; tiles
over the shared-memory limit are a CompileError on CUDA and work on the CPU."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T

TARGETS = [("cpu", "auto"), ("cuda -arch=sm_80", "emulator")]


def _horner(x, n):
    for _ in range(n):
        x = x * 1.0001 + 0.5
    return x


def _chain(n):
    @T.prim_func
    def chain(A: T.Tensor((64,), "float32"), C: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            for i in T.Parallel(64):
                C[i] = _horner(A[i], n)

    return chain


@pytest.mark.parametrize("target,backend", TARGETS)
def test_long_multiply_add_chain(target, backend):
    a = np.random.default_rng(0).random(64, dtype=np.float32)
    k = tilewise.compile(_chain(400), out_idx=[1], target=target, execution_backend=backend)
    want = a.copy()
    for _ in range(400):
        want = want * np.float32(1.0001) + np.float32(0.5)
    np.testing.assert_allclose(k(a), want, rtol=1e-4)


def test_simplifier_is_linear_in_chain_length():
    from tilewise.ir import simplify as S
    from tilewise.ir.dtype import float32
    from tilewise.ir.expr import Var

    calls = 0
    visit = S._Simplifier.visit

    def counting(self, node):
        nonlocal calls
        calls += 1
        return visit(self, node)

    S._Simplifier.visit = counting
    try:
        S.simplify(_horner(Var("x", float32), 16))  # 2^16 visits before the fix
    finally:
        S._Simplifier.visit = visit
    assert calls < 16 * 10, calls


def test_too_deep_is_a_compile_error():
    with pytest.raises(tilewise.CompileError, match="nests an expression deeper than tilewise can follow"):
        tilewise.compile(_chain(6000), out_idx=[1], target="cpu")


def _big_tile(m, n):
    @T.prim_func
    def big(A: T.Tensor((m, n), "float32"), C: T.Tensor((m, n), "float32")):
        with T.Kernel(1, threads=128):
            S = T.alloc_shared((m, n), "float32")
            T.copy(A, S)
            T.copy(S, C)

    return big


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
def test_shared_memory_over_the_limit(arch):
    with pytest.raises(tilewise.CompileError, match=f"bytes of shared memory but {arch} allows"):
        tilewise.compile(_big_tile(512, 256), target=f"cuda -arch={arch}", execution_backend="emulator")


def test_big_tiles_on_the_cpu():
    a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)  # a 4 MiB tile: the heap workspace
    np.testing.assert_array_equal(tilewise.compile(_big_tile(1024, 1024), out_idx=[1], target="cpu")(a), a)
