"""A float sum across threads on CUDA adds in tl::AllReduce's order (TileLang 0.1.15's
tl_templates/cuda/reduce.h): each thread sums its own registers in order from the identity, then
partners tx ^ off are combined for every offset bit, the largest first (the offsets of a warp or
more through shared memory). tools/tl_differential.py found tilewise's results a few ulps apart:
its shuffles went smallest offset first and its warps were summed one after another after them.
The reference below replays that order in numpy float32."""
import numpy as np
import pytest

import tilewise
import tilewise.language as T

CUDA = [("cuda -arch=sm_80", "emulator"), ("cuda -arch=sm_80", "ptx")]


def butterfly(x: np.ndarray) -> np.ndarray:
    """x[k, ...] float32, k a power of two: tl::AllReduce over axis 0 (partner k ^ off, largest
    offset first); every k ends with the same sum, returned once."""
    k = x.shape[0]
    off = k // 2
    while off:
        x = x + x[np.arange(k) ^ off]
        off //= 2
    return x[0]


def _sum_kernel(dim, rows, threads):
    n_out = 32 if dim == 0 else rows

    @T.prim_func
    def main(A: T.Tensor((rows, 32), "float32"), B: T.Tensor((n_out,), "float32")):
        with T.Kernel(1, threads=threads):
            a = T.alloc_fragment((rows, 32), "float32")
            b = T.alloc_fragment((n_out,), "float32")
            T.copy(A, a)
            T.reduce_sum(a, b, dim=dim)
            T.copy(b, B)

    return main


def _inputs(rows):
    rng = np.random.default_rng(3)
    return (rng.standard_normal((rows, 32)) * np.exp(rng.uniform(-8, 8, (rows, 32)))).astype("float32")


@pytest.mark.parametrize("target,backend", CUDA)
def test_row_sum_within_a_warp(target, backend):
    # 16x32 over 128 threads: thread t holds row t // 8, columns 4 (t % 8) .. + 3; a row's 8
    # threads are lanes apart by 1, 2, 4: tl::AllReduce<SumOp, 8, 1> shuffles 4, 2, 1
    a = _inputs(16)
    part = np.zeros((16, 8), np.float32)
    for i in range(4):
        part = part + a.reshape(16, 8, 4)[:, :, i]
    want = butterfly(part.T.copy())
    got = tilewise.compile(_sum_kernel(1, 16, 128), out_idx=[1], target=target, execution_backend=backend)(a)
    np.testing.assert_array_equal(np.asarray(got), want)


@pytest.mark.parametrize("target,backend", CUDA)
def test_column_sum_across_warps(target, backend):
    # dim 0: a column's 16 values sit in threads 8 apart (4 warps): tl::AllReduce<SumOp, 128, 8>
    # combines tx ^ 64 and tx ^ 32 through shared memory, then shuffles 16 and 8
    a = _inputs(16)
    want = butterfly(a.copy())
    got = tilewise.compile(_sum_kernel(0, 16, 128), out_idx=[1], target=target, execution_backend=backend)(a)
    np.testing.assert_array_equal(np.asarray(got), want)


@pytest.mark.parametrize("target,backend", CUDA)
def test_column_sum_eight_warps(target, backend):
    # 32x32 over 256 threads: a column's 32 values in threads 8 apart, offsets 128 .. 8
    a = _inputs(32)
    want = butterfly(a.copy())
    got = tilewise.compile(_sum_kernel(0, 32, 256), out_idx=[1], target=target, execution_backend=backend)(a)
    np.testing.assert_array_equal(np.asarray(got), want)


def _shared_sum_kernel():
    @T.prim_func
    def main(A: T.Tensor((16, 32), "float32"), B0: T.Tensor((16,), "float32"), B: T.Tensor((16,), "float32")):
        with T.Kernel(1, threads=128):
            S = T.alloc_shared((16, 32), "float32")
            R = T.alloc_shared((16,), "float32")
            T.copy(A, S)
            T.copy(B0, R)
            T.reduce_sum(S, R, dim=1, clear=False)
            T.copy(R, B)

    return main


@pytest.mark.parametrize("target,backend", CUDA)
def test_shared_tile_sum_goes_through_registers_like_tilelang(target, backend):
    # TileLang 0.1.15 copies a shared source into a default fragment (4 consecutive floats a
    # thread), reduces it as a fragment and adds the old value last; tilewise summed each row
    # serially in one thread
    a = _inputs(16)
    b0 = np.random.default_rng(4).standard_normal(16).astype("float32")
    part = np.zeros((16, 8), np.float32)
    for i in range(4):
        part = part + a.reshape(16, 8, 4)[:, :, i]
    want = b0 + butterfly(part.T.copy())
    got = tilewise.compile(_shared_sum_kernel(), out_idx=[2], target=target, execution_backend=backend)(a, b0)
    np.testing.assert_array_equal(np.asarray(got), want)
