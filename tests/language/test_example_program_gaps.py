"""Behaviours TileLang's own example programs (examples/, run by tools/run_tilelang_examples.py)
rely on, each checked here on its own:

- `T.use_swizzle` in a kernel with a one-dimensional grid (deepseek_mla's persistent decoding
  kernel) keeps the block order, as TileLang's rasterization functions do there; its order is
  "row" or "column" (TileLang's name; "col" too)."""
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
