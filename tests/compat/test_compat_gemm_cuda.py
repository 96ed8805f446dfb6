"""T.gemm operand forms TileLang accepts on the CUDA target: 8-bit operands in either orientation
(ldmatrix cannot transpose bytes, so such registers are packed from shared memory element by
element) and transposed register (fragment) operands, checked in the emulator against numpy and
compiled with NVRTC."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise.language as T

M = N = 64
K = 64


def gemm_kernel(trans_a: bool, trans_b: bool, dtype: str, accum: str, a_in_regs=False, b_in_regs=False):
    a_shape, b_shape = ((K, M) if trans_a else (M, K)), ((N, K) if trans_b else (K, N))
    a_tile, b_tile = ((32, M) if trans_a else (M, 32)), ((N, 32) if trans_b else (32, N))

    @T.prim_func
    def main(A: T.Tensor(a_shape, dtype), B: T.Tensor(b_shape, dtype), C: T.Tensor((M, N), accum)):
        with T.Kernel(1, threads=128):
            a_s = T.alloc_shared(a_tile, dtype)
            b_s = T.alloc_shared(b_tile, dtype)
            a_r = T.alloc_fragment(a_tile, dtype)
            b_r = T.alloc_fragment(b_tile, dtype)
            c = T.alloc_fragment((M, N), accum)
            T.clear(c)
            for k in T.Pipelined(K // 32, num_stages=1):
                if trans_a:
                    T.copy(A[k * 32, 0], a_s)
                else:
                    T.copy(A[0, k * 32], a_s)
                if trans_b:
                    T.copy(B[0, k * 32], b_s)
                else:
                    T.copy(B[k * 32, 0], b_s)
                if a_in_regs and b_in_regs:
                    T.copy(a_s, a_r)
                    T.copy(b_s, b_r)
                    T.gemm(a_r, b_r, c, trans_a, trans_b)
                elif a_in_regs:
                    T.copy(a_s, a_r)
                    T.gemm(a_r, b_s, c, trans_a, trans_b)
                elif b_in_regs:
                    T.copy(b_s, b_r)
                    T.gemm(a_s, b_r, c, trans_a, trans_b)
                else:
                    T.gemm(a_s, b_s, c, trans_a, trans_b)
            T.copy(c, C)

    return main


def operands(rng, trans_a, trans_b, dtype):
    if dtype.endswith("int8"):
        lo = -128 if dtype == "int8" else 0
        a = rng.integers(lo, 128, size=(K, M) if trans_a else (M, K)).astype(dtype)
        b = rng.integers(lo, 128, size=(N, K) if trans_b else (K, N)).astype(dtype)
    else:
        a = rng.uniform(-1, 1, size=(K, M) if trans_a else (M, K)).astype(dtype)
        b = rng.uniform(-1, 1, size=(N, K) if trans_b else (K, N)).astype(dtype)
    ref = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    return a, b, ref


@pytest.mark.parametrize("trans_a,trans_b", [(True, False), (False, False), (True, True)])
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_eight_bit_operands_in_any_orientation(emu, trans_a, trans_b, dtype, rng):
    k = emu(gemm_kernel(trans_a, trans_b, dtype, "int32"), out_idx=[2])
    a, b, ref = operands(rng, trans_a, trans_b, dtype)
    np.testing.assert_array_equal(k(a, b), ref.astype(np.int32))


@pytest.mark.parametrize("a_in_regs,b_in_regs,trans_a,trans_b", [
    (True, False, True, False), (False, True, False, True), (True, True, True, True), (True, True, False, False),
])
def test_transposed_register_operands(emu, a_in_regs, b_in_regs, trans_a, trans_b, rng):
    k = emu(gemm_kernel(trans_a, trans_b, "float16", "float32", a_in_regs, b_in_regs), out_idx=[2])
    a, b, ref = operands(rng, trans_a, trans_b, "float16")
    np.testing.assert_allclose(k(a, b), ref, rtol=1e-3, atol=1e-3)


def test_new_operand_forms_compile_with_nvrtc(nvrtc_check):
    pytest.importorskip("cuda.bindings")
    nvrtc_check(gemm_kernel(True, False, "int8", "int32"), expect=["IMMA"], archs=("sm_80",))
    nvrtc_check(gemm_kernel(True, True, "float16", "float32", True, True), expect=["HMMA"], archs=("sm_80",))


@pytest.mark.parametrize("trans_a,trans_b", [(False, True), (True, False)])
def test_float64_gemm_falls_back_to_fmas(emu, trans_a, trans_b, rng):
    k = emu(gemm_kernel(trans_a, trans_b, "float64", "float64"), out_idx=[2])
    a, b, ref = operands(rng, trans_a, trans_b, "float64")
    np.testing.assert_allclose(k(a, b), ref, rtol=1e-12, atol=1e-12)
    src = k.get_kernel_source()
    assert "mma" not in src.replace("tw_cuda.h", "")


def test_float64_fragment_operands_are_refused(emu):
    from tilewise import CompileError

    with pytest.raises(CompileError, match="float64 operands have no tensor-core form, so A"):
        emu(gemm_kernel(False, False, "float64", "float64", a_in_regs=True), out_idx=[2])


def test_fma_fallback_compiles_with_nvrtc(nvrtc_check):
    nvrtc_check(gemm_kernel(False, True, "float64", "float64"), expect=["DFMA"], archs=("sm_80",))
