"""T.transpose between global tensors and between private tiles: N-D (only the final two axes
swap), with regions that run past a tensor's edge (outside the source reads zero, outside the
destination nothing is written), on the CPU and in the CUDA emulator, against numpy."""
from __future__ import annotations

import functools

import numpy as np
import pytest

import tilewise
import tilewise.language as T

TARGETS = ("cpu", "emulator")


def _compile(func, target, out_idx):
    if target == "cpu":
        return tilewise.compile(func, out_idx=out_idx, target="cpu")
    return tilewise.compile(func, out_idx=out_idx, target="cuda", execution_backend="emulator")


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("shape", [(3, 5, 7), (2, 3, 4, 5), (2, 5, 1), (1, 6)])
def test_whole_tensors(target, shape):
    out_shape = (*shape[:-2], shape[-1], shape[-2])

    @T.prim_func
    def main(A: T.Tensor(shape, "float32"), B: T.Tensor(out_shape, "float32")):
        with T.Kernel(1, threads=32):
            T.transpose(A, B)

    a = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    np.testing.assert_array_equal(np.asarray(_compile(main, target, [1])(a)), np.swapaxes(a, -1, -2))


M, N, BT = 37, 23, 16


@functools.cache
def ragged_kernel():
    @T.prim_func
    def main(A: T.Tensor((M, N), "int16"), B: T.Tensor((N, M), "float32")):
        with T.Kernel(T.ceildiv(N, BT), T.ceildiv(M, BT), threads=64) as (bx, by):
            T.transpose(A[by * BT:by * BT + BT, bx * BT:bx * BT + BT], B[bx * BT:bx * BT + BT, by * BT:by * BT + BT])

    return main


@pytest.mark.parametrize("target", TARGETS)
def test_ragged_tiles(target):
    """16 x 16 tiles of a 37 x 23 tensor, through global memory both sides, int16 -> float32."""
    a = np.random.default_rng(0).integers(-1000, 1000, (M, N)).astype(np.int16)
    np.testing.assert_array_equal(np.asarray(_compile(ragged_kernel(), target, [1])(a)), a.T.astype(np.float32))


def test_ragged_tiles_compile_with_nvrtc(nvrtc_check):
    nvrtc_check(ragged_kernel(), archs=("sm_80",))


@pytest.mark.parametrize("target", TARGETS)
def test_edges(target):
    """The destination region starts one column in (its last column falls outside B), and the
    source region of C starts past A's last axis (it reads zeros)."""

    @T.prim_func
    def main(A: T.Tensor((2, 3, 4), "float32"), B: T.Tensor((2, 4, 3), "float32"),
             C: T.Tensor((2, 1, 3), "float32")):
        with T.Kernel(1, threads=32):
            T.fill(B, -1.0)
            T.fill(C, -1.0)
            if target == "emulator":  # the fills' elements belong to other threads than the transposes'
                T.sync_threads()
            T.transpose(A[0:2, 0:3, 0:4], B[0:2, 0:4, 1:4])
            T.transpose(A[0:2, 0:3, 4:5], C[0:2, 0:1, 0:3])

    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    b, c = _compile(main, target, [1, 2])(a)
    want = np.full((2, 4, 3), -1.0, np.float32)
    want[:, :, 1:] = np.swapaxes(a[:, :2, :], -1, -2)
    np.testing.assert_array_equal(np.asarray(b), want)
    np.testing.assert_array_equal(np.asarray(c), np.zeros((2, 1, 3), np.float32))


@pytest.mark.parametrize("target", TARGETS)
def test_local_tiles(target):
    """Two T.alloc_local tiles: on the CPU the block's, on a GPU each thread's own."""

    @T.prim_func
    def main(A: T.Tensor((5, 3), "float32"), B: T.Tensor((3, 5), "float32")):
        with T.Kernel(1, threads=32):
            a = T.alloc_local((5, 3), "float32")
            b = T.alloc_local((3, 5), "float32")
            T.copy(A, a)
            T.transpose(a, b)
            T.copy(b, B)

    a = np.arange(15, dtype=np.float32).reshape(5, 3)
    np.testing.assert_array_equal(np.asarray(_compile(main, target, [1])(a)), a.T)
