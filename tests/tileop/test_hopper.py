"""Hopper (sm_90a): T.gemm on wgmma, pipelined T.copy on TMA with mbarriers, proven without a GPU
by the emulator (numbers against numpy), NVRTC + SASS (HGMMA, UTMALDG, SYNCS, no spills) and the
lowering notes; sm_90 (no wgmma) and kernels wgmma cannot take fall back to mma.sync and say why."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.backend.cuda.inspect import instruction_mix, steady_state_loop

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def gemm(M, N, K, bm=128, bn=128, bk=64, stages=3, threads=128, dtype="float16", acc="float32", trans_b=False,
         rs=False):
    b_shape = (N, K) if trans_b else (K, N)
    b_tile = (bn, bk) if trans_b else (bk, bn)

    @T.prim_func
    def main(A: T.Tensor((M, K), dtype), B: T.Tensor(b_shape, dtype), C: T.Tensor((M, N), acc)):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=threads) as (bx, by):
            A_s = T.alloc_shared((bm, bk), dtype)
            B_s = T.alloc_shared(b_tile, dtype)
            C_l = T.alloc_fragment((bm, bn), acc)
            T.clear(C_l)
            for k in T.Pipelined(T.ceildiv(K, bk), num_stages=stages):
                T.copy(A[by * bm, k * bk], A_s)
                if trans_b:
                    T.copy(B[bx * bn, k * bk], B_s)
                else:
                    T.copy(B[k * bk, bx * bn], B_s)
                if rs:
                    A_r = T.alloc_fragment((bm, bk), dtype)
                    T.copy(A_s, A_r)
                    T.gemm(A_r, B_s, C_l, transpose_B=trans_b)
                else:
                    T.gemm(A_s, B_s, C_l, transpose_B=trans_b)
            T.copy(C_l, C[by * bm, bx * bn])

    return main


def _compile(func, arch="sm_90a"):
    return tilewise.compile(func, out_idx=[-1], target=f"cuda -arch={arch}", execution_backend="emulator")


def _inputs(M, N, K, dtype="float16", trans_b=False, seed=0):
    rng = np.random.default_rng(seed)
    npdt = tilewise.ir.dtype.as_dtype(dtype).numpy
    a = rng.standard_normal((M, K)).astype(np.float32).astype(npdt)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32).astype(npdt)
    ref = a.astype(np.float64) @ (b.astype(np.float64).T if trans_b else b.astype(np.float64))
    return a, b, ref


@pytest.mark.parametrize("M,N,K", [(256, 256, 192), (200, 136, 200), (128, 128, 64), (128, 128, 128), (64, 72, 8)])
def test_gemm_on_wgmma_and_tma_in_the_emulator(M, N, K):
    """Ragged tiles (TMA zero-fills past the edges) and K loops of 3, 4, 1, 2 (fewer than the
    stages) and a partial one."""
    k = _compile(gemm(M, N, K))
    notes = " ".join(k.lowering_notes())
    assert "wgmma.m64n128k16" in notes and ": TMA" in notes, notes
    a, b, ref = _inputs(M, N, K)
    np.testing.assert_allclose(k(a, b), ref, rtol=1e-3, atol=1e-2)


def test_empty_k_loop_leaves_the_accumulator_cleared():
    k = _compile(gemm(128, 128, 0))
    out = k(np.zeros((128, 0), np.float16), np.zeros((0, 128), np.float16))
    np.testing.assert_array_equal(out, 0)


@pytest.mark.parametrize("case", ["bf16", "tf32-nt", "f16-nt", "f16-acc16", "rs", "256thr", "i8-nt", "e4m3-nt"])
def test_gemm_variants_on_wgmma(case):
    kw = {"bf16": dict(dtype="bfloat16"), "tf32-nt": dict(dtype="float32", trans_b=True, bk=32),
          "f16-nt": dict(trans_b=True), "f16-acc16": dict(acc="float16"), "rs": dict(rs=True),
          "256thr": dict(threads=256, bn=256), "i8-nt": dict(dtype="int8", acc="int32", trans_b=True),
          "e4m3-nt": dict(dtype="float8_e4m3", trans_b=True)}[case]
    M, N, K = 192, 256, 256
    k = _compile(gemm(M, N, K, **kw))
    assert "wgmma" in " ".join(k.lowering_notes()), k.lowering_notes()
    dtype = kw.get("dtype", "float16")
    if dtype == "int8":
        rng = np.random.default_rng(1)
        a = rng.integers(-8, 8, (M, K)).astype(np.int8)
        b = rng.integers(-8, 8, (N, K)).astype(np.int8)
        np.testing.assert_array_equal(k(a, b), a.astype(np.int64) @ b.astype(np.int64).T)
        return
    a, b, ref = _inputs(M, N, K, dtype, kw.get("trans_b", False))
    tol = {"float16": 2e-2 if kw.get("acc") == "float16" else 1e-3, "bfloat16": 1e-2, "float32": 1e-2,
           "float8_e4m3": 1e-3}[dtype]
    np.testing.assert_allclose(k(a, b).astype(np.float64), ref, rtol=tol, atol=tol * np.abs(ref).max())


def test_sm90a_gemm_sass(nvrtc_check):
    """The canonical Hopper GEMM: HGMMA, TMA and mbarriers, nothing of Ampere's in the loop."""
    func = gemm(4096, 4096, 4096, bm=128, bn=256, bk=64, stages=3, threads=256)
    nvrtc_check(func, expect=("HGMMA", "UTMALDG", "SYNCS"), archs=("sm_90a",))
    k = _compile(func)
    loop = steady_state_loop(k.get_sass())
    mix = loop.mix(["HGMMA", "HMMA", "LDGSTS", "LDSM"])
    assert mix["HGMMA"] > 0 and mix["HMMA"] == mix["LDGSTS"] == mix["LDSM"] == 0, mix
    print(f"sm_90a GEMM steady loop: {len(loop.instrs)} instructions, {len(loop.instrs) / mix['HGMMA']:.2f} per HGMMA")


def test_fallbacks_say_why():
    k = _compile(gemm(128, 128, 64, threads=64))
    assert any("mma.sync; not wgmma" in n and "whole warpgroups" in n for n in k.lowering_notes()), k.lowering_notes()
    k90 = _compile(gemm(128, 128, 64), arch="sm_90")
    notes = " ".join(k90.lowering_notes())
    assert "sm_90 has no wgmma" in notes and ": TMA" in notes, notes
    k80 = _compile(gemm(128, 128, 64), arch="sm_80")
    assert all("TMA" not in n and "wgmma" not in n for n in k80.lowering_notes())
    off = tilewise.compile(gemm(128, 128, 64), out_idx=[-1], target="cuda -arch=sm_90a", execution_backend="emulator",
                           pass_configs={"tl.disable_tma_lower": True})
    assert ": TMA" not in " ".join(off.lowering_notes())
    a, b, ref = _inputs(128, 128, 64)
    for kern in (k, k90, off):
        np.testing.assert_allclose(kern(a, b), ref, rtol=1e-3, atol=1e-2)


def _load(relpath: str):
    path = EXAMPLES / relpath
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("hopper_" + path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seq", [50, 130])
def test_flash_attention_short_key_loops(seq):
    """Key loops of 1 and 3 tiles around a 2-stage pipeline, ragged last tile."""
    fa = _load("flash_attention/example_mha_fwd_bshd.py")
    func = fa.flashattn_fwd(1, 1, seq, 64, False, block_M=64, block_N=64, num_stages=2, threads=128)
    k = tilewise.compile(func, out_idx=[3], target="cuda -arch=sm_90a", execution_backend="emulator")
    rng = np.random.default_rng(seq)
    q, kk, v = (rng.standard_normal((1, seq, 1, 64)).astype(np.float16) for _ in range(3))
    qf, kf, vf = (x.astype(np.float64).transpose(0, 2, 1, 3) for x in (q, kk, v))
    s = qf @ kf.transpose(0, 1, 3, 2) / 8.0
    p = np.exp(s - s.max(-1, keepdims=True))
    ref = ((p / p.sum(-1, keepdims=True)) @ vf).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(k(q, kk, v).astype(np.float64), ref, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("dim", [64, 128])
def test_flash_attention_on_wgmma(dim, nvrtc_check):
    fa = _load("flash_attention/example_mha_fwd_bshd.py")
    # one warpgroup per 64 query rows at head dim 128 (a 128 x 128 fp32 accumulator is 128 registers
    # a thread on one warpgroup), as TileLang's Hopper example does
    func = fa.flashattn_fwd(1, 2, 200, dim, False, block_M=128, block_N=64, num_stages=2,
                            threads=128 if dim == 64 else 256)
    k = tilewise.compile(func, out_idx=[3], target="cuda -arch=sm_90a", execution_backend="emulator")
    notes = k.lowering_notes()
    assert sum("wgmma" in n for n in notes) == 2, notes  # both gemms
    rng = np.random.default_rng(0)
    q, kk, v = (rng.standard_normal((1, 200, 2, dim)).astype(np.float16) for _ in range(3))
    qf, kf, vf = (x.astype(np.float64).transpose(0, 2, 1, 3) for x in (q, kk, v))
    s = qf @ kf.transpose(0, 1, 3, 2) / np.sqrt(dim)
    p = np.exp(s - s.max(-1, keepdims=True))
    ref = ((p / p.sum(-1, keepdims=True)) @ vf).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(k(q, kk, v).astype(np.float64), ref, rtol=2e-2, atol=2e-2)
    use = nvrtc_check(func, expect=("HGMMA",), archs=("sm_90a",))
    assert use["sm_90a"]["spill_bytes"] == 0


def test_mla_decode_at_deepseek_dims_on_wgmma(nvrtc_check):
    mla = _load("deepseek_mla/example_mla_decode.py")
    func = mla.mla_decode(1, 64, 256, 512, 64, num_stages=2)
    k = tilewise.compile(func, target="cuda -arch=sm_90a", execution_backend="emulator")
    notes = " ".join(k.lowering_notes())
    assert notes.count("wgmma") >= 2, notes
    use = nvrtc_check(func, expect=("HGMMA",), archs=("sm_90a",))
    assert use["sm_90a"]["spill_bytes"] == 0, use
    mix = instruction_mix(k.get_sass(), ["HGMMA", "HMMA"])
    assert mix["HMMA"] == 0, mix
