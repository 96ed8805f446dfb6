"""T.cumsum and T.reduce of a shared tile that a T.Pipelined loop fills with T.copy.

On the CUDA target the pipeline gives such a tile one buffer per stage, a new leading dimension
of the tile's regions; the ops' `dim` counts the region's dimensions, so it must move along (it
used to scan the rows instead of the columns). Run on the emulator and on the CPU."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T

M, N, BN = 8, 128, 64
TARGETS = [dict(target="cuda", execution_backend="emulator"), dict(target="cpu")]


def _scan(op):
    @T.prim_func
    def main(X: T.Tensor((M, N), "float32"), Y: T.Tensor((M, N), "float32"), R: T.Tensor((M, N // BN), "float32")):
        with T.Kernel(1, threads=128):
            xs = T.alloc_shared((M, BN), "float32")
            ys = T.alloc_shared((M, BN), "float32")
            r = T.alloc_fragment((M,), "float32")
            for k in T.Pipelined(N // BN, num_stages=2):
                T.copy(X[0, k * BN], xs)
                if op == "cumsum":
                    T.cumsum(xs, ys, dim=1)
                else:
                    T.cumsum(xs, ys, dim=1, reverse=True)
                T.reduce_max(xs, r, dim=1)
                T.copy(ys, Y[0, k * BN])
                T.copy(r, R[0:M, k])

    return main


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t["target"])
@pytest.mark.parametrize("op", ["cumsum", "cumsum_reverse"])
def test_scan_and_reduce_of_a_pipelined_shared_tile(op, target, rng):
    kernel = tilewise.compile(_scan(op), out_idx=[1, 2], **target)
    x = rng.integers(-8, 8, (M, N)).astype(np.float32)
    y, r = kernel(x)
    tiles = x.reshape(M, N // BN, BN)
    scan = tiles[..., ::-1].cumsum(-1)[..., ::-1] if op == "cumsum_reverse" else tiles.cumsum(-1)
    np.testing.assert_array_equal(y, scan.reshape(M, N))
    np.testing.assert_array_equal(r, tiles.max(-1))
