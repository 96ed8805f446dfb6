"""TileLang forms of tile operators on both targets: T.copy of single elements (inside T.Parallel
or not), T.dp4a over four consecutive int8 elements used as an accumulating statement, and
float8 GEMMs on the CUDA target (which fall back to FMAs)."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T

TARGETS = ["cpu", "cuda"]


def build(func, target, out_idx):
    if target == "cpu":
        return tilewise.compile(func, out_idx=out_idx, target="cpu")
    return tilewise.compile(func, out_idx=out_idx, target="cuda", execution_backend="emulator")


@pytest.mark.parametrize("target", TARGETS)
def test_single_element_copies(target):
    @T.prim_func
    def main(Idx: T.Tensor((8,), "int32"), A: T.Tensor((4, 16), "float32"), B: T.Tensor((4, 16), "float32"),
             Out: T.Tensor((8,), "int32")):
        with T.Kernel(4, threads=32) as bx:
            for j in T.Parallel(16):
                T.copy(A[bx, j], B[bx, j])
            k = T.alloc_local((1,), "int32")
            T.copy(Idx[bx * 2], k[0])
            Out[bx * 2] = k[0] * 10
            T.copy(Idx[bx * 2 + 1], Out[bx * 2 + 1])

    k = build(main, target, out_idx=[2, 3])
    idx = np.arange(8, dtype=np.int32) + 3
    a = np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32)
    b, out = k(idx, a)
    np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(out[0::2], idx[0::2] * 10)
    np.testing.assert_array_equal(out[1::2], idx[1::2])


@pytest.mark.parametrize("target", TARGETS)
def test_dp4a_statement_accumulates_four_int8_elements(target):
    @T.prim_func
    def main(A: T.Tensor((4, 16), "int8"), B: T.Tensor((4, 16), "int8"), C: T.Tensor((4,), "int32")):
        with T.Kernel(4, threads=32) as bx:
            a = T.alloc_local((16,), "int8")
            b = T.alloc_local((16,), "int8")
            acc = T.alloc_local((1,), "int32")
            for k in T.serial(16):
                a[k] = A[bx, k]
                b[k] = B[bx, k]
            acc[0] = 5
            for g in T.serial(4):
                T.dp4a(a[g * 4], b[g * 4], acc[0])
            C[bx] = acc[0]

    k = build(main, target, out_idx=[2])
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, size=(4, 16)).astype(np.int8)
    b = rng.integers(-128, 128, size=(4, 16)).astype(np.int8)
    ref = (a.astype(np.int64) * b.astype(np.int64)).sum(1) + 5
    np.testing.assert_array_equal(k(a, b), ref.astype(np.int32))


def test_dp4a_expression_keeps_packed_words():
    # int32 operands are already packed words: nothing is gathered
    @T.prim_func
    def main(A: T.Tensor((2,), "int32"), C: T.Tensor((1,), "int32")):
        with T.Kernel(1):
            C[0] = T.dp4a(A[0], A[1], 7)

    k = tilewise.compile(main, out_idx=[1], target="cpu")
    a = np.array([0x01020304, 0x01010101], dtype=np.int32)
    assert int(k(a)[0]) == 7 + 1 + 2 + 3 + 4


def test_float8_gemm_on_cuda_uses_fmas(emu):
    pytest.importorskip("ml_dtypes")
    import ml_dtypes

    @T.prim_func
    def main(A: T.Tensor((64, 32), "float8_e4m3"), B: T.Tensor((32, 32), "float8_e4m3"),
             C: T.Tensor((64, 32), "float32")):
        with T.Kernel(1, threads=128):
            a = T.alloc_shared((64, 32), "float8_e4m3")
            b = T.alloc_shared((32, 32), "float8_e4m3")
            c = T.alloc_fragment((64, 32), "float32")
            T.clear(c)
            T.copy(A, a)
            T.copy(B, b)
            T.gemm(a, b, c, transpose_B=True)
            T.copy(c, C)

    k = emu(main, out_idx=[2])
    rng = np.random.default_rng(2)
    a = rng.standard_normal((64, 32)).astype(ml_dtypes.float8_e4m3fn)
    b = rng.standard_normal((32, 32)).astype(ml_dtypes.float8_e4m3fn)
    ref = a.astype(np.float64) @ b.astype(np.float64).T
    np.testing.assert_allclose(k(a, b), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("target", TARGETS)
def test_fill_a_slice_of_a_fragment(target):
    @T.prim_func
    def main(A: T.Tensor((32, 32), "float32"), B: T.Tensor((32, 32), "float32")):
        with T.Kernel(1, threads=64):
            frag = T.alloc_fragment((32, 32), "float32")
            T.copy(A, frag)
            T.fill(frag[8:24, 4:12], -1.0)
            T.clear(frag[0:4, :])
            T.copy(frag, B)

    k = build(main, target, out_idx=[1])
    a = np.arange(1024, dtype=np.float32).reshape(32, 32)
    ref = a.copy()
    ref[8:24, 4:12] = -1
    ref[0:4] = 0
    np.testing.assert_array_equal(k(a), ref)
