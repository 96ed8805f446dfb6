"""Behaviours TileLang's own example programs (examples/, run by tools/run_tilelang_examples.py)
rely on, each checked here on its own:

- `T.use_swizzle` in a kernel with a one-dimensional grid (deepseek_mla's persistent decoding
  kernel) keeps the block order, as TileLang's rasterization functions do there; its order is
  "row" or "column" (TileLang's name; "col" too);
- `T.im2col` / `T.c2d_im2col` (examples/convolution): a tile of the im2col matrix of an NHWC
  image, checked against numpy's and as the A operand of a convolution GEMM."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T


@pytest.mark.parametrize("order", ["row", "column"])
def test_use_swizzle_on_a_one_dimensional_grid_keeps_the_block_order(order):
    @T.prim_func
    def blocks(O: T.Tensor((13,), "int32")):
        with T.Kernel(13, threads=32) as bx:
            T.use_swizzle(10, order=order)
            for i in T.Parallel(1):
                O[bx + i] = bx * 2 + 1

    out = np.zeros(13, np.int32)
    tilewise.compile(blocks, target="cpu")(out)
    np.testing.assert_array_equal(out, np.arange(13) * 2 + 1)


def test_use_swizzle_column_is_col():
    @T.prim_func
    def tiles(O: T.Tensor((5, 7), "int32")):
        with T.Kernel(7, 5, threads=32) as (bx, by):
            T.use_swizzle(2, order="column")
            for i in T.Parallel(1):
                O[by + i, bx] = O[by + i, bx] + 1

    out = np.zeros((5, 7), np.int32)
    tilewise.compile(tiles, target="cpu")(out)
    np.testing.assert_array_equal(out, np.ones((5, 7), np.int32))  # every tile once
    with pytest.raises(tilewise.CompileError, match="Apple-GPU rasterization"):
        @T.prim_func
        def mlx(O: T.Tensor((5, 7), "int32")):
            with T.Kernel(7, 5) as (bx, by):
                T.use_swizzle(2, order="mlx")
                O[by, bx] = 1


def _im2col_ref(img, kernel, stride, dilation, pad):
    """The im2col matrix of an NHWC image: rows (n, oh, ow), columns (kh, kw, c)."""
    n, h, w, c = img.shape
    oh = (h + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
    ow = (w + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
    padded = np.zeros((n, h + 2 * pad, w + 2 * pad, c), img.dtype)
    padded[:, pad:pad + h, pad:pad + w] = img
    cols = np.zeros((n, oh, ow, kernel, kernel, c), img.dtype)
    for kh in range(kernel):
        for kw in range(kernel):
            hs, ws = kh * dilation, kw * dilation
            cols[:, :, :, kh, kw] = padded[:, hs:hs + stride * oh:stride, ws:ws + stride * ow:stride]
    return cols.reshape(n * oh * ow, kernel * kernel * c)


@pytest.mark.parametrize("name", ["im2col", "c2d_im2col"])
def test_im2col_tiles_are_the_im2col_matrix(name):
    # stride 2, dilation 2, padding 1: taps in the padding read 0
    N, H, W, C, K, S, D, P = 2, 7, 7, 4, 3, 2, 2, 1
    OH = OW = (H + 2 * P - D * (K - 1) - 1) // S + 1  # 3
    rows, cols = N * OH * OW, K * K * C  # 18 x 36
    bm, bk = 6, 12
    op = getattr(T, name)

    @T.prim_func
    def tiles(img: T.Tensor((N, H, W, C), "float32"), out: T.Tensor((rows, cols), "float32")):
        with T.Kernel(cols // bk, rows // bm, threads=32) as (bx, by):
            tile = T.alloc_shared((bm, bk), "float32")
            op(img, tile, by, bx, K, S, D, P)
            T.copy(tile, out[by * bm, bx * bk])

    img = np.random.default_rng(0).standard_normal((N, H, W, C)).astype(np.float32)
    out = np.zeros((rows, cols), np.float32)
    tilewise.compile(tiles, target="cpu")(img, out)
    np.testing.assert_array_equal(out, _im2col_ref(img, K, S, D, P))


@pytest.mark.parametrize("target", ["cpu", "emulator"])
def test_convolution_as_im2col_gemm(target):
    # TileLang's examples/convolution: a 3x3 same-padding convolution of an NHWC image with a
    # (KH, KW, C, F) filter, as a GEMM of im2col tiles (in shared memory and in a fragment)
    N, H, W, C, F, K, S, D, P = 2, 8, 8, 16, 16, 3, 1, 1, 1
    OH = OW = 8
    bm, bn, bk = 32, 16, 48

    @T.prim_func
    def conv(data: T.Tensor((N, H, W, C), "float16"), kernel: T.Tensor((K * K * C, F), "float16"),
             out: T.Tensor((N * OH * OW, F), "float32")):
        with T.Kernel(T.ceildiv(F, bn), T.ceildiv(N * OH * OW, bm), threads=64) as (bx, by):
            data_shared = T.alloc_shared((bm, bk), "float16")
            kernel_shared = T.alloc_shared((bk, bn), "float16")
            acc = T.alloc_fragment((bm, bn), "float32")
            T.clear(acc)
            for k_iter in T.Pipelined(T.ceildiv(K * K * C, bk), num_stages=2):
                T.im2col(data, data_shared, by, k_iter, K, S, D, P)
                T.copy(kernel[k_iter * bk, bx * bn], kernel_shared)
                T.gemm(data_shared, kernel_shared, acc)
            T.copy(acc, out[by * bm, bx * bn])

    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, H, W, C)).astype(np.float16)
    wgt = rng.standard_normal((K, K, C, F)).astype(np.float16)
    out = np.zeros((N * OH * OW, F), np.float32)
    if target == "cpu":
        tilewise.compile(conv, target="cpu")(x, wgt.reshape(-1, F), out)
    else:
        tilewise.compile(conv, target="cuda", execution_backend="emulator")(x, wgt.reshape(-1, F), out)
    ref = _im2col_ref(x.astype(np.float64), K, S, D, P) @ wgt.reshape(-1, F).astype(np.float64)
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-3)
