"""INT4TensorCoreIntrinEmitter (the expert tier's int4 mma.sync, m16n8k64 .s4 / .u4): operands
are int8 / uint8 buffers with two 4-bit integers per byte (the even K element in the low nibble),
as TileLang's int4 GEMM test packs them. Run in the emulator (sm_80, sm_90a; cross-checked by the
PTX interpreter, whose fragment tables are transcribed separately from the ISA) against numpy, with
K that does not divide the tile, and the IMMA instruction in the SASS."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.emulator import ptx as emu_ptx
from tilewise.errors import CompileError
from tilewise.intrinsics import make_mma_swizzle_layout
from tilewise.intrinsics.mma_macro_generator import INT4TensorCoreIntrinEmitter


def int4_matmul(M, N, K, storage="int8", warp_tiles=32):
    """C (M x N, int32) = A (M x K) @ B (N x K)^T, A and B 4-bit, K // 2 bytes per row."""
    Kb = K // 2
    brw = bcw = 2
    chunk = 64  # bytes: 128 4-bit values
    block_M, block_N = brw * warp_tiles, bcw * warp_tiles
    e = INT4TensorCoreIntrinEmitter(a_dtype=storage, b_dtype=storage, accum_dtype="int32", a_transposed=False,
                                    b_transposed=True, block_row_warps=brw, block_col_warps=bcw,
                                    warp_row_tiles=warp_tiles, warp_col_tiles=warp_tiles, chunk=chunk)

    @T.prim_func
    def main(A: T.Tensor((M, Kb), storage), B: T.Tensor((N, Kb), storage), C: T.Tensor((M, N), "int32")):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            A_s = T.alloc_shared((block_M, chunk), storage)
            B_s = T.alloc_shared((block_N, chunk), storage)
            a = T.alloc_local((e.warp_rows * e.local_size_a,), storage)
            b = T.alloc_local((e.warp_cols * e.local_size_b,), storage)
            c = T.alloc_local((e.warp_rows * e.warp_cols * e.local_size_out,), "int32")
            T.annotate_layout({A_s: make_mma_swizzle_layout(A_s), B_s: make_mma_swizzle_layout(B_s)})
            T.clear(c)
            for ko in T.Pipelined(T.ceildiv(Kb, chunk), num_stages=2):
                for i, k in T.Parallel(block_M, chunk):
                    A_s[i, k] = A[by * block_M + i, ko * chunk + k]
                for j, k in T.Parallel(block_N, chunk):
                    B_s[j, k] = B[bx * block_N + j, ko * chunk + k]
                for ki in T.serial(chunk // e.micro_size_k):
                    e.ldmatrix_a(a, A_s, ki)
                    e.ldmatrix_b(b, B_s, ki)
                    e.mma(a, b, c)
            e.stmatrix(c, C, pid_m=by, pid_n=bx)

    return main, e


def pack(x: np.ndarray, storage: str) -> np.ndarray:
    lo, hi = x[:, ::2] & 0xF, x[:, 1::2] & 0xF
    return (lo | (hi << 4)).astype(np.uint8).view(np.dtype(storage))


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
@pytest.mark.parametrize(("storage", "lo", "hi"), [("int8", -8, 8), ("uint8", 0, 16)])
def test_int4_gemm_in_the_emulator(arch, storage, lo, hi):
    M, N, K = 64, 128, 192  # K: one full 128-value tile and half of another (zero-filled)
    func, e = int4_matmul(M, N, K, storage)
    assert (e.micro_size_k, e.mma_prefix, e.local_size_a) == (32, "m16n8k64", 16)
    rng = np.random.default_rng(1)
    a, b = rng.integers(lo, hi, (M, K)), rng.integers(lo, hi, (N, K))
    k = tilewise.compile(func, out_idx=[2], target=f"cuda -arch={arch}", execution_backend="emulator")
    c = k(pack(a, storage), pack(b, storage))
    np.testing.assert_array_equal(c, a @ b.T)
    src = k.get_kernel_source()
    assert "mma_m16n8k64_s32_" + ("s4_s4" if storage == "int8" else "u4_u4") in src


def test_int4_sass_and_fragments(nvrtc_check):
    func, _ = int4_matmul(64, 128, 256)
    nvrtc_check(func, expect=("IMMA", "LDSM"), archs=("sm_80",))
    # the 4-bit fragments are the 8-bit ones, byte for byte (the emitter's premise)
    r4, c4 = emu_ptx.mma_a_coords("m16n8k64", "int4")
    r8, c8 = emu_ptx.mma_a_coords("m16n8k32", "int8")
    np.testing.assert_array_equal(r4[:, ::2], r8)
    np.testing.assert_array_equal(c4[:, ::2] // 2, c8)


def test_int4_emitter_errors():
    with pytest.raises(CompileError, match="packed int4"):
        INT4TensorCoreIntrinEmitter(a_dtype="float16", b_dtype="float16", accum_dtype="float32", chunk=32,
                                    warp_row_tiles=32, warp_col_tiles=32)
