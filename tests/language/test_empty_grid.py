"""A grid of 0 blocks at call time (`T.Kernel(T.ceildiv(n, 4))` called with n = 0, or a literal
`T.Kernel(0)`): TileLang 0.1.15's runtime refuses the launch (its issue 1993) with "CUDALaunch
Error: grid dimension must be positive, but got grid=(0,1,1) in kernel ...", a RuntimeError; every
tilewise target raises that error before any block runs, and leaves the outputs untouched."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.emulator.errors import EmptyGridError

TARGETS = [("cpu", None), ("cuda", "emulator"), ("cuda -arch=sm_80", "ptx")]
IDS = ["cpu", "emulator", "ptx"]


def _compile(func, target, backend):
    extra = {} if backend is None else {"execution_backend": backend}
    return tilewise.compile(func, target=target, **extra)


def _dynamic():
    n = T.dynamic("n")

    @T.prim_func
    def fill(out: T.Tensor((n,), "float32")):
        with T.Kernel(T.ceildiv(n, 4), threads=4) as bx:
            for i in T.Parallel(4):
                if bx * 4 + i < n:
                    out[bx * 4 + i] = 1.0

    return fill


@pytest.mark.parametrize("target,backend", TARGETS, ids=IDS)
def test_dynamic_zero_grid_raises(target, backend):
    k = _compile(_dynamic(), target, backend)
    out = np.zeros(6, np.float32)
    k(out)
    np.testing.assert_array_equal(out, np.ones(6, np.float32))
    with pytest.raises(RuntimeError, match=r"grid dimension must be positive, but got grid=\(0,1,1\) in kernel "
                                           r"fill_kernel\. A zero grid dimension"):
        k(np.zeros(0, np.float32))


@pytest.mark.parametrize("target,backend", TARGETS, ids=IDS)
def test_static_zero_grid_compiles_and_raises_at_call(target, backend):
    @T.prim_func
    def spurious(out: T.Tensor((4,), "float32")):
        with T.Kernel(3, 0, threads=1) as (bx, by):
            out[bx + by] = 1.0

    k = _compile(spurious, target, backend)
    out = np.zeros(4, np.float32)
    with pytest.raises(EmptyGridError, match=r"^CUDALaunch Error: .* grid=\(3,0,1\) in kernel spurious_kernel\."):
        k(out)
    np.testing.assert_array_equal(out, np.zeros(4, np.float32))  # no block ran


@pytest.mark.parametrize("target,backend", TARGETS, ids=IDS)
def test_second_kernel_named(target, backend):
    """Kernels before the empty one run (as on a GPU, launched one after another); the error
    names the empty kernel as the CUDA source does (func_kernel_1)."""
    n = T.dynamic("n")

    @T.prim_func
    def two(a: T.Tensor((4,), "float32"), out: T.Tensor((n,), "float32")):
        with T.Kernel(1, threads=4) as _:
            for i in T.Parallel(4):
                a[i] = 2.0
        with T.Kernel(n, threads=1) as bx:
            out[bx] = 1.0

    k = _compile(two, target, backend)
    a = np.zeros(4, np.float32)
    with pytest.raises(EmptyGridError, match=r"in kernel two_kernel_1\."):
        k(a, np.zeros(0, np.float32))
    np.testing.assert_array_equal(a, np.full(4, 2.0, np.float32))


def test_negative_literal_grid_is_a_compile_error():
    with pytest.raises(tilewise.CompileError, match="must not be negative"):
        @T.prim_func
        def neg(out: T.Tensor((4,), "float32")):
            with T.Kernel(-1, threads=1) as bx:
                out[bx] = 1.0
