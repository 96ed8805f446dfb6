"""Decoding kernels on an AMD MI300X ("hip -arch=gfx942"): GQA flash decoding and DeepSeek's MLA
decoding (examples/) run by the thread-IR emulator with 64-lane wavefronts against torch at small
sizes with their tile shapes, and compiled by clang-19 with v_mfma in the ISA and no scratch.

Attention kernels scale the output accumulator by row vectors reduced from the score
accumulator, so the two T.gemm accumulators must spread rows alike: an MFMA T.gemm takes the
32x32 instruction only when every T.gemm linked to it can (tileop/gemm_mfma.py _kernel_shape).
MLA decoding's score tile (64 heads x 64 keys over 4 wavefronts along N) allows 16x16 MFMAs
only, its output tile (64 x dim) 32x32 as well."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError

pytestmark = pytest.mark.usefixtures("clang19")

HIP = "hip -arch=gfx942"


def _example(relpath: str):
    path = Path(__file__).resolve().parents[2] / "examples" / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compile(func, out_idx):
    return tilewise.compile(func, out_idx=out_idx, target=HIP, execution_backend="emulator")


def _mfma_no_scratch(kernel, mnemonic="v_mfma_f32_16x16x16_f16"):
    assert mnemonic in kernel.get_isa()
    usage = kernel.resource_usage()
    assert usage["scratch_bytes"] == 0 and usage["vgpr_spills"] == 0 and usage["sgpr_spills"] == 0, usage
    assert usage["lds_bytes"] <= 65536, usage
    return usage


def _notes(kernel) -> str:
    return "\n".join(kernel.lowering_notes())


def test_row_vector_links_a_16x16_and_a_32x32_accumulator(rng):
    """S = A @ B (64 x 64 over 4 wavefronts along N: 16x16 only), O = A @ C (64 x 128: 32x32 on
    its own), O scaled by S's row maxima: both take 16x16, and the result is numpy's."""
    M, K, N1, N2 = 64, 32, 64, 128

    @T.prim_func
    def k(A: T.Tensor((M, K), "float16"), B: T.Tensor((N1, K), "float16"), C: T.Tensor((K, N2), "float16"),
          O: T.Tensor((M, N2), "float32")):
        with T.Kernel(1, threads=256) as _:
            a = T.alloc_shared((M, K), "float16")
            b = T.alloc_shared((N1, K), "float16")
            c = T.alloc_shared((K, N2), "float16")
            s = T.alloc_fragment((M, N1), "float32")
            o = T.alloc_fragment((M, N2), "float32")
            mx = T.alloc_fragment((M,), "float32")
            T.copy(A, a)
            T.copy(B, b)
            T.copy(C, c)
            T.gemm(a, b, s, transpose_B=True, policy=T.GemmWarpPolicy.FullCol, clear_accum=True)
            T.gemm(a, c, o, policy=T.GemmWarpPolicy.FullCol, clear_accum=True)
            T.reduce_max(s, mx, dim=1)
            for i, j in T.Parallel(M, N2):
                o[i, j] = o[i, j] * mx[i]
            T.copy(o, O)

    kern = _compile(k, [3])
    notes = _notes(kern)
    assert "v_mfma_f32_32x32x8_f16" not in notes and notes.count("v_mfma_f32_16x16x16_f16") == 2, notes
    _mfma_no_scratch(kern)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((N1, K)).astype(np.float16)
    c = rng.standard_normal((K, N2)).astype(np.float16)
    af, bf, cf = (x.astype(np.float64) for x in (a, b, c))
    ref = (af @ cf) * (af @ bf.T).max(axis=1, keepdims=True)
    np.testing.assert_allclose(kern(a, b, c), ref, rtol=1e-4, atol=1e-3)


def test_unlinked_accumulators_keep_32x32(rng):
    """Two T.gemm whose accumulators never meet choose their shapes alone."""
    M, K = 64, 32

    @T.prim_func
    def k(A: T.Tensor((M, K), "float16"), B: T.Tensor((64, K), "float16"), C: T.Tensor((K, 128), "float16"),
          S: T.Tensor((M, 64), "float32"), O: T.Tensor((M, 128), "float32")):
        with T.Kernel(1, threads=256) as _:
            a = T.alloc_shared((M, K), "float16")
            b = T.alloc_shared((64, K), "float16")
            c = T.alloc_shared((K, 128), "float16")
            s = T.alloc_fragment((M, 64), "float32")
            o = T.alloc_fragment((M, 128), "float32")
            T.copy(A, a)
            T.copy(B, b)
            T.copy(C, c)
            T.gemm(a, b, s, transpose_B=True, policy=T.GemmWarpPolicy.FullCol, clear_accum=True)
            T.gemm(a, c, o, policy=T.GemmWarpPolicy.FullCol, clear_accum=True)
            T.copy(s, S)
            T.copy(o, O)

    kern = _compile(k, [3, 4])
    notes = _notes(kern)
    assert "v_mfma_f32_16x16x16_f16" in notes and "v_mfma_f32_32x32x8_f16" in notes, notes
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((64, K)).astype(np.float16)
    c = rng.standard_normal((K, 128)).astype(np.float16)
    s, o = kern(a, b, c)
    np.testing.assert_allclose(s, a.astype(np.float64) @ b.T.astype(np.float64), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(o, a.astype(np.float64) @ c.astype(np.float64), rtol=1e-4, atol=1e-3)


def _mla_inputs(batch, heads, kv_ctx, dim, pe_dim):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(batch, heads, dim, generator=g, dtype=torch.float16),
            torch.randn(batch, heads, pe_dim, generator=g, dtype=torch.float16),
            torch.randn(batch, kv_ctx, 1, dim, generator=g, dtype=torch.float16),
            torch.randn(batch, kv_ctx, 1, pe_dim, generator=g, dtype=torch.float16))


@pytest.mark.parametrize("q_in_registers,block_N,num_split,dim", [(False, 64, 1, 128), (True, 32, 2, 64)])
def test_mla_decode_matches_torch(q_in_registers, block_N, num_split, dim):
    """64 heads per block (DeepSeek's block_H) at a small latent dimension: the query in LDS
    (FullCol: the 64 x 64 score tile allows only 16x16 MFMAs, the 64 x 128 output tile 32x32 as
    well, and they meet through scores_scale: the layout path that was a conflict) and in
    registers (FullRow, TileLang's MI300X form), with a ragged last tile."""
    mla = _example("deepseek_mla/example_mla_decode.py")
    batch, heads, kv_ctx, pe_dim = 1, 64, 100, 32
    func = mla.mla_decode(batch, heads, kv_ctx, dim, pe_dim, block_N=block_N, block_H=64, num_split=num_split,
                          num_stages=1, q_in_registers=q_in_registers)
    kern = _compile(func, [4, 5, 6])
    assert "v_mfma_f32_32x32x8_f16" not in _notes(kern)
    _mfma_no_scratch(kern)
    Q, Q_pe, KV, K_pe = _mla_inputs(batch, heads, kv_ctx, dim, pe_dim)
    _, _, out = kern(Q, Q_pe, KV, K_pe)
    ref = mla.ref_program(Q, Q_pe, KV, K_pe)
    torch.testing.assert_close(out.float(), ref, rtol=1e-2, atol=1e-2)


def test_mla_decode_at_deepseek_dims_compiles_for_gfx942():
    """dim 512 + pe 64, 64 heads per block: the query tile in LDS (the Hopper form) needs 128 KiB
    beside the KV tile, which is a CompileError naming the bytes and the limit; in registers with
    32 keys per step the loop's tiles take 40 KiB of LDS, and clang allocates the registers (128
    accumulators and 72 query registers a lane) without scratch."""
    mla = _example("deepseek_mla/example_mla_decode.py")
    with pytest.raises(CompileError, match=r"needs \d+ bytes of shared memory but gfx942 allows 65536"):
        _compile(mla.mla_decode(1, 64, 128, 512, 64, block_N=64, block_H=64, num_split=2, num_stages=1),
                 [4, 5, 6]).get_isa()
    kern = _compile(mla.mla_decode(1, 64, 128, 512, 64, block_N=32, block_H=64, num_split=2, num_stages=1,
                                   q_in_registers=True), [4, 5, 6])
    usage = _mfma_no_scratch(kern)
    assert usage["lds_bytes"] <= 40 * 1024, usage
    # one split over 2048 keys: a static trip count, no guards on the copies; the 64 KiB output
    # tile takes the loop's bytes afterwards. P @ V reads B (the latent tile) n tile by n tile
    # just before its MFMAs: all 32 tiles' items at once (128 VGPRs) spilled here
    kern = _compile(mla.mla_decode(1, 64, 2048, 512, 64, block_N=32, block_H=64, num_split=1, num_stages=1,
                                   q_in_registers=True), [4, 5, 6])
    _mfma_no_scratch(kern)


def test_gqa_flash_decoding_matches_torch():
    """The GQA flash-decoding example's tiles (16 query heads per block, 64 keys per step, 128
    threads: two wavefronts) at dim 64, a ragged KV length split over 3 blocks."""
    gqa = _example("flash_decoding/example_gqa_decode.py")
    batch, heads, kv_heads, kv_ctx, dim = 1, 32, 2, 150, 64
    kern = _compile(gqa.flashdecoding(batch, heads, kv_heads, kv_ctx, dim, num_split=3, num_stages=1), [3, 4, 5])
    _mfma_no_scratch(kern)
    g = torch.Generator().manual_seed(0)
    Q = torch.randn(batch, heads, dim, generator=g, dtype=torch.float16)
    K = torch.randn(batch, kv_ctx, kv_heads, dim, generator=g, dtype=torch.float16)
    V = torch.randn(batch, kv_ctx, kv_heads, dim, generator=g, dtype=torch.float16)
    _, _, out = kern(Q, K, V)
    torch.testing.assert_close(out.float(), gqa.ref_program(Q, K, V), rtol=1e-2, atol=1e-2)


def test_gqa_flash_decoding_default_tiles_compile_for_gfx942():
    """At the example's default dims (dim 128, 16 heads x 64 keys per step): two stages of the K
    and V tiles (64 KiB) do not fit beside the others, a CompileError naming the bytes; one stage
    compiles without scratch."""
    gqa = _example("flash_decoding/example_gqa_decode.py")
    with pytest.raises(CompileError, match=r"needs \d+ bytes of shared memory but gfx942 allows 65536"):
        _compile(gqa.flashdecoding(1, 32, 4, 300, 128, num_split=2), [3, 4, 5]).get_isa()
    _mfma_no_scratch(_compile(gqa.flashdecoding(1, 32, 4, 300, 128, num_split=2, num_stages=1), [3, 4, 5]))


def test_register_counts_are_of_the_unified_register_file():
    """On gfx942 the metadata's .vgpr_count already counts the AGPRs (clang -S: TotalNumVgprs =
    NumVgprs rounded up to 4 + NumAgprs): resource_usage()["registers"] is it, not VGPRs + AGPRs
    again, and "arch_vgprs" is clang's NumVgprs up to that rounding."""
    import re

    from tilewise.backend.hip.clang import compile_asm

    mla = _example("deepseek_mla/example_mla_decode.py")
    kern = _compile(mla.mla_decode(1, 64, 100, 64, 32, block_N=32, block_H=64, num_split=2, num_stages=1,
                                   q_in_registers=True), [4, 5, 6])
    asm = compile_asm(kern.get_kernel_source(), "gfx942")
    total, arch, acc = (int(re.search(rf"; {key}: (\d+)", asm).group(1))
                        for key in ("TotalNumVgprs", "NumVgprs", "NumAgprs"))
    u = kern.resource_usage()
    assert acc > 0 and u["registers"] == u["vgprs"] == total <= 512 and u["agprs"] == acc
    assert u["arch_vgprs"] == -(-arch // 4) * 4


def test_a_loop_writing_an_mfma_operand_in_the_accumulator_layout_is_an_error_saying_why():
    """dS = P * (dP - delta) written straight into the register A operand of the next gemm (as
    on CUDA, where mma's A and C layouts agree): on MFMA a CompileError explaining the fix."""
    M, N, K = 64, 32, 64

    @T.prim_func
    def k(A: T.Tensor((M, K), "float16"), B: T.Tensor((N, K), "float16"), C: T.Tensor((N, K), "float16"),
          O: T.Tensor((M, K), "float32")):
        with T.Kernel(1, threads=256) as _:
            a = T.alloc_shared((M, K), "float16")
            b = T.alloc_shared((N, K), "float16")
            c = T.alloc_shared((N, K), "float16")
            s = T.alloc_fragment((M, N), "float32")
            p = T.alloc_fragment((M, N), "float16")
            o = T.alloc_fragment((M, K), "float32")
            T.copy(A, a)
            T.copy(B, b)
            T.copy(C, c)
            T.gemm(a, b, s, transpose_B=True, policy=T.GemmWarpPolicy.FullRow, clear_accum=True)
            for i, j in T.Parallel(M, N):
                p[i, j] = s[i, j] * 0.5
            T.gemm(p, c, o, policy=T.GemmWarpPolicy.FullRow, clear_accum=True)
            T.copy(o, O)

    with pytest.raises(CompileError, match="MFMA's register A operand holds a row per lane"):
        _compile(k, [3])
