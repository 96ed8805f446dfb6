"""tilewise kernels run twice on the same inputs: by the thread-IR emulator and by the PTX
interpreter on what NVRTC compiled, compared with each other and with numpy.

Bit equality is required where the arithmetic is exact or rounded identically by both (copies,
integer arithmetic, mma products accumulated into f32/s32, shuffle reductions); kernels that call
math functions (`.approx` instructions inside expf/exp2f) or that NVVM contracts into fused
multiply-adds are compared within a stated ulp bound, and the contraction itself is pinned
against an exactly rounded reference."""
from __future__ import annotations

import functools

import ml_dtypes
import numpy as np
import pytest
from ptx_helpers import assert_same

import tilewise
import tilewise.language as T
from tilewise.emulator.ptx import round_tf32_rna

NP = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32, "int8": np.int8,
      "uint8": np.uint8, "int32": np.int32}


def cuda(func, out_idx):
    return tilewise.compile(func, out_idx=out_idx, target="cuda", execution_backend="emulator")


def both(kernel, *args):
    """(emulator outputs, interpreter outputs) of one call on copies of the same inputs."""
    emu = kernel(*[a.copy() for a in args])
    got = kernel.with_execution_backend("ptx")(*[a.copy() for a in args])
    return emu, got


# ---------------------------------------------------------------------------- copies, element-wise

@functools.cache
def copy_kernel(dtype, M=None, N=None):
    M, N = M or T.symbolic("M"), N or T.symbolic("N")

    @T.prim_func
    def tile_copy(A: T.Tensor((M, N), dtype), B: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, 32), T.ceildiv(M, 32), threads=64) as (bx, by):
            s = T.alloc_shared((32, 32), dtype)
            f = T.alloc_fragment((32, 32), dtype)
            T.copy(A[by * 32, bx * 32], s)
            T.copy(s, f)
            T.copy(f, B[by * 32, bx * 32])

    return cuda(tile_copy, [1])


@pytest.mark.parametrize("dtype,static", [("float16", True), ("float32", False), ("int8", True)])
def test_copy_through_shared_and_registers(dtype, static, rng):
    a = (rng.standard_normal((70, 48)) * 50).astype(NP[dtype])  # tiles do not divide the shape
    k = copy_kernel(dtype, *((70, 48) if static else (None, None)))
    emu, got = both(k, a)
    np.testing.assert_array_equal(got, a)
    assert_same(f"tile_copy[{dtype}]", emu, got)


@functools.cache
def elementwise_kernel():
    n = T.symbolic("n")

    @T.prim_func
    def ew(X: T.Tensor((n,), "int32"), Y: T.Tensor((n,), "int32"), F: T.Tensor((n,), "float32"),
           Q: T.Tensor((n,), "int32"), E: T.Tensor((n,), "float32"), H: T.Tensor((n,), "float16")):
        with T.Kernel(T.ceildiv(n, 256), threads=128) as bx:
            for i in T.Parallel(256):
                g = bx * 256 + i
                if g < n:
                    Q[g] = (X[g] * 3 + (Y[g] >> 2)) // 7 % 5 - T.max(X[g], Y[g]) // (Y[g] % 9 + 1)
                    E[g] = T.exp2(F[g]) + T.exp(F[g] * 0.5)
                    H[g] = T.cast(F[g] * 1000.0, "float16")

    return cuda(ew, [3, 4, 5])


def test_elementwise_integer_float_and_math(rng):
    n = 1000
    x = rng.integers(-(2**20), 2**20, n).astype(np.int32)
    y = rng.integers(-(2**20), 2**20, n).astype(np.int32)
    f = rng.uniform(-20, 20, n).astype(np.float32)
    emu, got = both(elementwise_kernel(), x, y, f)
    q, e, h = got
    assert_same("ew", emu[0], q)  # integer arithmetic: exact
    assert_same("ew", emu[2], h)  # a product by a constant and one rounding to float16
    # exp2f / expf call ex2.approx.ftz.f32, whose hardware error the interpreter does not model
    # (it returns the correctly rounded 2^x); both results are within 2 ulp of each other
    assert_same("ew", emu[1], e, ulps=2)
    np.testing.assert_allclose(e, np.exp2(f.astype(np.float64)) + np.exp(f.astype(np.float64) * 0.5), rtol=1e-6)


@functools.cache
def contraction_kernel():
    n = T.symbolic("n")

    @T.prim_func
    def axpy(A: T.Tensor((n,), "float32"), B: T.Tensor((n,), "float32"), C: T.Tensor((n,), "float32"),
             D: T.Tensor((n,), "float32")):
        with T.Kernel(T.ceildiv(n, 128), threads=128) as bx:
            for i in T.Parallel(128):
                if bx * 128 + i < n:
                    D[bx * 128 + i] = A[bx * 128 + i] * B[bx * 128 + i] + C[bx * 128 + i]

    return cuda(axpy, [3])


def test_multiply_add_in_one_expression_rounds_once_everywhere(rng):
    """The IR contracts a*b + c written as one expression into an fma (transform/contract_fma.py)
    and NVRTC compiles with --fmad=false: the PTX has fma.rn.f32, and the interpreter and the
    thread-IR emulator both give the exactly rounded fma, not the two-step value (which differs
    by the product's rounding error, many ulps of the result where a*b and c cancel)."""
    n = 2048
    a, b, c = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
    k = contraction_kernel()
    assert "fma.rn.f32" in k.with_execution_backend("ptx").runtime.ptx
    emu, got = both(k, a, b, c)
    fused = (a.astype(np.float64) * b + c).astype(np.float32)  # exact product: one rounding
    np.testing.assert_array_equal(got, fused)
    np.testing.assert_array_equal(emu, fused)
    assert (fused != (a * b) + c).any()  # the inputs do tell the two behaviours apart


# ---------------------------------------------------------------------------- GEMMs and reductions

@functools.cache
def gemm_kernel(in_dtype, acc, trans_B=False, stages=3, bm=64, bn=64, bk=32, threads=128, out=None, M=80, N=72,
                K=100):
    # static shapes (cp.async needs rows of a known length), none dividing its tile: the last tiles
    # are clamped and zero-filled through cp.async's src-size
    b_shape, b_tile = ((N, K), (bn, bk)) if trans_B else ((K, N), (bk, bn))

    @T.prim_func
    def gemm(A: T.Tensor((M, K), in_dtype), B: T.Tensor(b_shape, in_dtype), C: T.Tensor((M, N), out or acc)):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=threads) as (bx, by):
            A_s = T.alloc_shared((bm, bk), in_dtype)
            B_s = T.alloc_shared(b_tile, in_dtype)
            C_f = T.alloc_fragment((bm, bn), acc)
            T.clear(C_f)
            for k in T.Pipelined(T.ceildiv(K, bk), num_stages=stages):
                T.copy(A[by * bm, k * bk], A_s)
                if trans_B:
                    T.copy(B[bx * bn, k * bk], B_s)
                else:
                    T.copy(B[k * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_f, transpose_B=trans_B)
            T.copy(C_f, C[by * bm, bx * bn])

    return cuda(gemm, [2])


def _rand(rng, shape, dtype):
    if dtype in ("int8", "uint8"):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.standard_normal(shape).astype(np.float32).astype(NP[dtype])


@pytest.mark.parametrize("in_dtype,acc,trans_B,stages,opcode", [
    ("float16", "float32", False, 3, "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32"),
    ("bfloat16", "float32", True, 2, "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"),
    ("int8", "int32", True, 3, "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32"),
    ("float32", "float32", False, 2, "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32"),
    ("float16", "float16", False, 2, "mma.sync.aligned.m16n8k16.row.col.f16.f16.f16.f16"),
])  # fmt: skip
def test_gemm_ldmatrix_mma_cp_async(in_dtype, acc, trans_B, stages, opcode, rng):
    M, N, K = 80, 72, 100  # no dimension divides its tile
    k = gemm_kernel(in_dtype, acc, trans_B, stages)
    text = k.with_execution_backend("ptx").runtime.ptx
    assert opcode in text and ("cp.async.cg.shared.global" in text or "cp.async.ca.shared.global" in text)
    if in_dtype != "float32":
        assert "ldmatrix.sync.aligned" in text
    a = _rand(rng, (M, K), in_dtype)
    b = _rand(rng, (N, K) if trans_B else (K, N), in_dtype)
    emu, got = both(k, a, b)
    assert_same(f"gemm[{in_dtype}->{acc}]", emu, got)
    bm = b.astype(np.float64).T if trans_B else b.astype(np.float64)
    am = a.astype(np.float64)
    if in_dtype == "float32":  # tf32 operands, rounded to nearest (ties away) by cvt.rna.tf32.f32
        assert "cvt.rna.tf32.f32" in text
        am = round_tf32_rna(a).view(np.float32).astype(np.float64)
        bm = round_tf32_rna(b).view(np.float32).astype(np.float64)
        bm = bm.T if trans_B else bm
    ref = am @ bm
    if acc == "int32":
        np.testing.assert_array_equal(got, ref.astype(np.int64).astype(np.int32))
    else:
        tol = 2e-2 if acc == "float16" else 1e-5
        np.testing.assert_allclose(got.astype(np.float64), ref, rtol=tol, atol=tol * np.abs(ref).max())


def test_sm90a_ptx_of_the_same_kernel(rng):
    """The PTX NVRTC emits for sm_90a (the same Ampere instructions) runs to the same result."""
    k = gemm_kernel("float16", "float32", False, 3)
    k90 = tilewise.compile(k.func, out_idx=k.out_idx, target="cuda -arch=sm_90a", execution_backend="ptx")
    assert ".target sm_90a" in k90.runtime.ptx
    a, b = _rand(rng, (80, 100), "float16"), _rand(rng, (100, 72), "float16")
    assert_same("gemm[sm_90a]", k(a, b), k90(a, b))


def test_gemm_u8_s8_variant(rng):
    ku = _u8s8_kernel()
    text = ku.with_execution_backend("ptx").runtime.ptx
    assert "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32" in text
    a = _rand(rng, (48, 64), "uint8")
    b = _rand(rng, (40, 64), "int8")
    emu, got = both(ku, a, b)
    assert_same("gemm[u8 x s8]", emu, got)
    np.testing.assert_array_equal(got, (a.astype(np.int64) @ b.astype(np.int64).T).astype(np.int32))


@functools.cache
def _u8s8_kernel():
    M, N, K = 48, 40, 64

    @T.prim_func
    def gemm_us(A: T.Tensor((M, K), "uint8"), B: T.Tensor((N, K), "int8"), C: T.Tensor((M, N), "int32")):
        with T.Kernel(T.ceildiv(N, 32), T.ceildiv(M, 32), threads=128) as (bx, by):
            A_s = T.alloc_shared((32, 32), "uint8")
            B_s = T.alloc_shared((32, 32), "int8")
            C_f = T.alloc_fragment((32, 32), "int32")
            T.clear(C_f)
            for k in T.Pipelined(T.ceildiv(K, 32), num_stages=2):
                T.copy(A[by * 32, k * 32], A_s)
                T.copy(B[bx * 32, k * 32], B_s)
                T.gemm(A_s, B_s, C_f, transpose_B=True)
            T.copy(C_f, C[by * 32, bx * 32])

    return cuda(gemm_us, [2])


@functools.cache
def reduce_kernel(M, N, K):
    @T.prim_func
    def reduce_rows(A: T.Tensor((M, K), "float16"), B: T.Tensor((N, K), "float16"),
                    Mx: T.Tensor((M,), "float"), Sm: T.Tensor((M,), "float")):
        with T.Kernel(1, threads=128) as _:
            A_s = T.alloc_shared((M, K), "float16")
            B_s = T.alloc_shared((N, K), "float16")
            s = T.alloc_fragment((M, N), "float")
            row_max = T.alloc_fragment((M,), "float")
            row_sum = T.alloc_fragment((M,), "float")
            T.copy(A, A_s)
            T.copy(B, B_s)
            T.gemm(A_s, B_s, s, transpose_B=True, policy=T.GemmWarpPolicy.FullRow, clear_accum=True)
            T.reduce_max(s, row_max, dim=1)
            T.reduce_sum(s, row_sum, dim=1)
            T.copy(row_max, Mx)
            T.copy(row_sum, Sm)

    return cuda(reduce_rows, [2, 3])


def test_row_reductions_with_shuffles(rng):
    M, N, K = 64, 64, 32
    k = reduce_kernel(M, N, K)
    assert "shfl.sync.bfly.b32" in k.with_execution_backend("ptx").runtime.ptx
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((N, K)).astype(np.float16)
    emu, got = both(k, a, b)
    assert_same("reduce_rows", emu, got, names=["row max", "row sum"])
    s = a.astype(np.float64) @ b.astype(np.float64).T
    np.testing.assert_allclose(got[0], s.max(axis=1), rtol=1e-6)
    np.testing.assert_allclose(got[1], s.sum(axis=1), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------- atomics

@functools.cache
def atomic_kernel():
    @T.prim_func
    def hist(V: T.Tensor((1024,), "int32"), W: T.Tensor((1024,), "float32"), H: T.Tensor((16,), "int32"),
             S: T.Tensor((16,), "float32")):
        with T.Kernel(8, threads=128) as bx:
            for i in T.Parallel(128):
                T.atomic_add(H[V[bx * 128 + i] % 16], 1)
                T.atomic_add(S[V[bx * 128 + i] % 16], W[bx * 128 + i])

    return cuda(hist, [])


def test_atomics_from_every_block(rng):
    v = rng.integers(0, 1000, 1024).astype(np.int32)
    w = rng.integers(-8, 8, 1024).astype(np.float32) * np.float32(0.25)  # sums are exact in any order
    k = atomic_kernel()
    text = k.with_execution_backend("ptx").runtime.ptx
    assert "atom.global.add.u32" in text or "red.global.add.u32" in text or "atom.global.add.s32" in text
    h_e, s_e = np.zeros(16, np.int32), np.zeros(16, np.float32)
    k(v, w, h_e, s_e)
    h_p, s_p = np.zeros(16, np.int32), np.zeros(16, np.float32)
    kp = k.with_execution_backend("ptx")
    kp.runtime.atomic_seed = 1  # a shuffled order of conflicting atomics
    kp(v, w, h_p, s_p)
    assert_same("hist", [h_e, s_e], [h_p, s_p], names=["H", "S"])
    np.testing.assert_array_equal(h_p, np.bincount(v % 16, minlength=16))
    np.testing.assert_array_equal(s_p, np.bincount(v % 16, weights=w, minlength=16).astype(np.float32))
