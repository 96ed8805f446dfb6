"""TileLang's packed fp4 tensors (jit/packed_fp4.py): an `(m, n)` float4_e2m1fn parameter takes an
`(m, n // 2)` torch.int8 / uint8 / float4_e2m1fn_x2 tensor, element 2i in byte i's low nibble;
dynamic dimensions and strides bind from the logical shape (last dimension times two, other
strides times two); what the kernel writes is packed back; fp4 outputs come back as packed
torch.int8 tensors. Checked on the CPU target and in the emulator against numpy."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

import tilewise
import tilewise.language as T

FP4 = np.dtype(ml_dtypes.float4_e2m1fn)
TARGETS = [("cpu", None), ("cuda -arch=sm_80", "emulator")]


def unpack(packed: np.ndarray) -> np.ndarray:
    """(..., k) bytes -> (..., 2k) fp4 codes, low nibble first (TileLang's fp4_e2_2_t x(), y())."""
    out = np.empty((*packed.shape[:-1], packed.shape[-1] * 2), np.uint8)
    out[..., 0::2] = packed & 0xF
    out[..., 1::2] = packed >> 4
    return out


def decode(packed: np.ndarray) -> np.ndarray:
    return unpack(packed).view(FP4).astype(np.float32)


def scale_kernel(m: int, n: int):
    """B = 2 * A in fp4 (saturating at 6), through a float32 fragment."""

    @T.prim_func
    def scale(A: T.Tensor((m, n), "float4_e2m1fn"), B: T.Tensor((m, n), "float4_e2m1fn"),
              F: T.Tensor((m, n), "float32")):  # fmt: skip
        with T.Kernel(1, threads=128):
            for i, j in T.Parallel(m, n):
                F[i, j] = T.Cast("float32", A[i, j])
                B[i, j] = T.Cast("float4_e2m1fn", T.Cast("float32", A[i, j]) * 2)

    return scale


@pytest.mark.parametrize("target,backend", TARGETS)
def test_packed_in_and_out(target, backend):
    m, n = 8, 32
    k = tilewise.compile(scale_kernel(m, n), target=target, execution_backend=backend)
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.integers(0, 256, (m, n // 2), dtype=np.uint8))
    b = torch.zeros((m, n // 2), dtype=torch.int8)
    f = torch.zeros((m, n), dtype=torch.float32)
    k(a, b, f)
    want_f = decode(a.numpy())
    np.testing.assert_array_equal(f.numpy(), want_f)
    want_b = (want_f * 2).astype(FP4).view(np.uint8)
    np.testing.assert_array_equal(unpack(b.numpy().view(np.uint8)), want_b)
    # torch.float4_e2m1fn_x2 is the same bytes
    f2 = torch.zeros_like(f)
    k(a.view(torch.float4_e2m1fn_x2), b, f2)
    assert torch.equal(f, f2)


def test_nibble_order():
    k = tilewise.compile(scale_kernel(1, 4), target="cpu")
    a = torch.tensor([[0x21, 0x43]], dtype=torch.uint8)  # fp4 codes 1, 2, 3, 4 = 0.5, 1, 1.5, 2
    f = torch.zeros((1, 4), dtype=torch.float32)
    k(a, torch.zeros((1, 2), dtype=torch.uint8), f)
    assert f.tolist() == [[0.5, 1.0, 1.5, 2.0]]


def test_numpy_fp4_arrays_stay_one_value_per_element():
    k = tilewise.compile(scale_kernel(2, 4), target="cpu")
    a = np.array([[1, 2, 3, 4], [9, 10, 11, 12]], np.uint8).view(FP4)
    b, f = np.zeros((2, 4), FP4), np.zeros((2, 4), np.float32)
    k(a, b, f)
    np.testing.assert_array_equal(f, a.astype(np.float32))


@pytest.mark.parametrize("target,backend", TARGETS)
def test_packed_output_and_dynamic_dims(target, backend):
    m = T.dynamic("m")
    n = T.dynamic("n")

    @T.prim_func
    def copy(A: T.Tensor((m, n), "float4_e2m1fn"), B: T.Tensor((m, n), "float4_e2m1fn"),
             D: T.Tensor((2,), "int32")):  # fmt: skip
        with T.Kernel(1, threads=64):
            for i, j in T.Parallel(m, n):
                B[i, j] = A[i, j]
            D[0] = m
            D[1] = n

    k = tilewise.compile(copy, out_idx=[1], target=target, execution_backend=backend)
    a = torch.randint(-128, 128, (3, 5), dtype=torch.int8)
    d = torch.zeros(2, dtype=torch.int32)
    b = k(a, d)
    assert b.dtype == torch.int8 and tuple(b.shape) == (3, 5)
    assert torch.equal(b, a)
    assert d.tolist() == [3, 10]


@pytest.mark.parametrize("target,backend", TARGETS)
def test_an_empty_packed_array_with_zero_strides(target, backend):
    """Found by the fuzzer (seed 1028): a packed array with no element may report strides of 0
    (numpy's result of an elementwise operation on an empty array); it has no layout to refuse,
    binds m = 0, and the kernel runs over nothing."""
    m = T.dynamic("m")

    @T.prim_func
    def copy(A: T.Tensor((m, 8), "float4_e2m1fn"), B: T.Tensor((m, 8), "float4_e2m1fn"),
             D: T.Tensor((1,), "int32")):  # fmt: skip
        with T.Kernel(1, threads=32):
            for i, j in T.Parallel(m, 8):
                B[i, j] = A[i, j]
            D[0] = m

    k = tilewise.compile(copy, target=target, execution_backend=backend)
    e = np.zeros((0, 8), np.uint8)
    a = e[..., 0::2] | (e[..., 1::2] << 4)
    assert a.shape == (0, 4) and a.strides[-1] != 1  # the layout numpy gives it
    d = np.full(1, -1, np.int32)
    k(a, a.copy(), d)
    assert d.tolist() == [0]


def test_strides_bind_from_the_packed_view():
    m = T.dynamic("m")
    s = T.dynamic("s")

    @T.prim_func
    def probe(X: T.StridedTensor((m, 16), (s, 1), "float4_e2m1fn"), F: T.Tensor((4, 16), "float32"),
              D: T.Tensor((2,), "int32")):  # fmt: skip
        with T.Kernel(1, threads=32):
            for i, j in T.Parallel(4, 16):
                F[i, j] = T.Cast("float32", X[i, j])
            D[0] = m
            D[1] = s

    k = tilewise.compile(probe, target="cpu")
    big = torch.randint(0, 256, (8, 8), dtype=torch.uint8)
    x = big[::2, :]  # shape (4, 8), strides (16, 1): logical (4, 16), strides (32, 1)
    f, d = torch.zeros((4, 16)), torch.zeros(2, dtype=torch.int32)
    k(x, f, d)
    assert d.tolist() == [4, 32]
    np.testing.assert_array_equal(f.numpy(), decode(x.numpy()))


def test_packed_errors():
    k = tilewise.compile(scale_kernel(2, 8), target="cpu")
    f = torch.zeros((2, 8))
    with pytest.raises(ValueError, match=r"expected shape \(2, 8\), found \(2, 8\)|byte tensors hold two"):
        k(torch.zeros((2, 8), dtype=torch.uint8), torch.zeros((2, 4), dtype=torch.uint8), f)
    with pytest.raises(ValueError, match="last dimension must be contiguous"):
        k(torch.zeros((4, 2), dtype=torch.uint8).t(), torch.zeros((2, 4), dtype=torch.uint8), f)


@tilewise.jit
def _eager_decode(A, F):
    """An eager kernel whose T.const extents come from a packed fp4 argument (TileLang issue 2292)."""
    M, K, S = T.const("M K S")
    A: T.StridedTensor((M, K), (S, 1), T.float4_e2m1fn)
    F: T.Tensor((M, K), T.float32)
    with T.Kernel(1, threads=128):
        for i, j in T.Parallel(M, K):
            F[i, j] = T.Cast("float32", A[i, j])


def test_eager_constants_bind_the_logical_shape_and_strides():
    rng = np.random.default_rng(2)
    full = torch.from_numpy(rng.integers(0, 256, (8, 8), dtype=np.uint8))
    a = full[::2, :]  # 4 rows of 8 bytes = (4, 16) fp4 values; byte stride 16 = 32 fp4 values
    f = torch.zeros((4, 16), dtype=torch.float32)
    _eager_decode(a, f)
    np.testing.assert_array_equal(f.numpy(), decode(a.numpy()))
    a_param = _eager_decode.get_tir(a, f).params[0]
    assert [int(d) for d in a_param.shape] == [4, 16]
    assert [int(d) for d in a_param.explicit_strides] == [32, 1]
