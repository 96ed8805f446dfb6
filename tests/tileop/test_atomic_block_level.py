"""Atomics at block level (TileLang's CPU atomic tests): `return_prev=True` in a serial loop, two
of them in one statement, and tile-region atomic_max / atomic_min into a T.alloc_local tile. On
the CPU a block is one thread; on CUDA a store of the previous value to memory runs on thread 0
(emulator, NVRTC), and what every thread would run is refused. Against numpy."""
from __future__ import annotations

import functools

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError

N = 13
TARGETS = ("cpu", "emulator")


def _compile(func, target, out_idx):
    if target == "cpu":
        return tilewise.compile(func, out_idx=out_idx, target="cpu")
    return tilewise.compile(func, out_idx=out_idx, target="cuda", execution_backend="emulator")


@functools.cache
def prev_kernel(op: str):
    emit = {"add": T.atomic_add, "max": T.atomic_max, "min": T.atomic_min}[op]

    @T.prim_func
    def main(A: T.Tensor((N,), "float32"), B: T.Tensor((2,), "float32"), P: T.Tensor((N,), "float32")):
        with T.Kernel(1, threads=32):
            B[0] = 0.5
            B[1] = 100.0
            for i in T.serial(N):
                # two previous values in one statement, each from its own update, in order
                P[i] = emit(B[0], A[i], return_prev=True) + emit(B[1], A[i], return_prev=True)

    return main


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("op", ["add", "max", "min"])
def test_return_prev_in_a_serial_loop(target, op):
    a = np.random.default_rng(1).standard_normal(N).astype(np.float32)
    b, p = _compile(prev_kernel(op), target, [1, 2])(a)
    combine = {"add": np.add, "max": np.maximum, "min": np.minimum}[op]
    run = np.array([0.5, 100.0], np.float32)
    want = np.empty(N, np.float32)
    for i in range(N):
        want[i] = run[0] + run[1]
        run = combine(run, a[i])
    np.testing.assert_allclose(np.asarray(p), want, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(b), run, rtol=1e-5)


def test_return_prev_compiles_with_nvrtc(nvrtc_check):
    nvrtc_check(prev_kernel("max"), archs=("sm_80",))


def test_return_prev_into_a_register_refused_on_gpu():
    @T.prim_func
    def main(B: T.Tensor((1,), "int32"), P: T.Tensor((1,), "int32")):
        with T.Kernel(1, threads=32):
            x = T.alloc_var("int32")
            x = T.atomic_add(B[0], 1, return_prev=True)
            P[0] = x

    with pytest.raises(CompileError, match=r"return_prev=True\) at block level on a GPU target"):
        _compile(main, "emulator", [1])
    b = np.array([7], np.int32)
    p = _compile(main, "cpu", [1])(b)
    assert int(np.asarray(p)[0]) == 7 and b[0] == 8


@functools.cache
def local_dst_kernel(op: str, M: int, K: int):
    emit = T.atomic_max if op == "max" else T.atomic_min

    @T.prim_func
    def main(A: T.Tensor((M, K), "float32"), Init: T.Tensor((M, K), "float32"), B: T.Tensor((M, K), "float32")):
        with T.Kernel(1):
            d = T.alloc_local((M, K), "float32")
            T.copy(Init, d)
            emit(d, A)
            T.copy(d, B)

    return main


@pytest.mark.parametrize("op", ["max", "min"])
def test_region_atomic_into_local_tile_cpu(op):
    rng = np.random.default_rng(2)
    a, init = (rng.standard_normal((5, 7)).astype(np.float32) for _ in range(2))
    out = np.asarray(_compile(local_dst_kernel(op, 5, 7), "cpu", [2])(a, init))
    np.testing.assert_array_equal(out, np.maximum(init, a) if op == "max" else np.minimum(init, a))


def test_region_atomic_into_local_tile_refused_on_gpu():
    with pytest.raises(CompileError, match="the destination d is a T.alloc_local tile"):
        _compile(local_dst_kernel("max", 4, 8), "emulator", [2])


def test_use_tma_refused_on_cpu():
    @T.prim_func
    def main(A: T.Tensor((4, 8), "float32"), B: T.Tensor((4, 8), "float32")):
        with T.Kernel(1):
            T.atomic_add(B, A, use_tma=True)

    with pytest.raises(CompileError, match="use_tma=True\\): the CPU target has no TMA"):
        _compile(main, "cpu", [1])
