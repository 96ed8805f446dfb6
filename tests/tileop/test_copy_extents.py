"""T.copy between regions of different extents (TileLang 0.1.13, issue 1237): the copy covers
the extents of the side nearest the threads, reading zeros outside the source tensor."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError


def _dynamic_into_tile(target):
    length = T.symbolic("len", dtype=T.int32)

    @T.prim_func
    def k(G: T.Tensor[(length,), T.int32], O: T.Tensor[(256,), T.int32]):
        with T.Kernel(1, threads=32):
            S = T.alloc_shared((256,), dtype=T.int32)
            T.copy(G[0:length], S)  # a run-time extent into a (256,) tile
            T.copy(S, O)

    return tilewise.compile(k, target=target)


@pytest.mark.parametrize("n", [100, 256])
def test_dynamic_source_extent_fills_the_tile_with_zeros_past_the_tensor(n):
    g = np.arange(1, n + 1, dtype=np.int32)
    o = np.full(256, -1, np.int32)
    _dynamic_into_tile("cpu")(g, o)
    np.testing.assert_array_equal(o, np.r_[g, np.zeros(256 - n, np.int32)])


def test_static_tile_larger_than_the_region_reads_the_tensor_beyond_it():
    @T.prim_func
    def k(A: T.Tensor((6, 8), "float32"), O: T.Tensor((8, 8), "float32")):
        with T.Kernel(1, threads=32):
            s = T.alloc_shared((8, 8), "float32")
            T.copy(A[0:4, 0:8], s)  # covers s: rows 4, 5 of A, then zeros
            T.copy(s, O)

    a = np.arange(48, dtype=np.float32).reshape(6, 8) + 1
    o = np.full((8, 8), -1, np.float32)
    tilewise.compile(k, target="cpu")(a, o)
    np.testing.assert_array_equal(o, np.r_[a, np.zeros((2, 8), np.float32)])


def test_fragment_into_a_global_region_of_other_extent():
    @T.prim_func
    def k(O: T.Tensor((100,), "int32")):
        with T.Kernel(1, threads=32):
            f = T.alloc_fragment((128,), "int32")
            for i in T.Parallel(128):
                f[i] = i
            T.copy(f, O[0:64])  # the fragment's extent, stopped by the tensor's end

    o = np.full(100, -1, np.int32)
    tilewise.compile(k, target="cpu")(o)
    np.testing.assert_array_equal(o, np.arange(100, dtype=np.int32))


def test_shared_to_shared_mismatch_stays_an_error():
    with pytest.raises(CompileError, match="region has shape"):
        @T.prim_func
        def k(O: T.Tensor((8,), "int32")):
            with T.Kernel(1, threads=32):
                a = T.alloc_shared((16,), "int32")
                b = T.alloc_shared((8,), "int32")
                T.copy(a[0:4], b)
