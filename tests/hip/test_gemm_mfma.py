"""T.gemm on AMD MFMA (gfx942): the canonical GEMM in float16, bfloat16, int8 and fnuz fp8, ragged M / N / K,
transposed operands, register (rs) operands, the wave policies and the FlashAttention forward
example run in the emulator against numpy; clang-19 compiles them for gfx942 with v_mfma in the
ISA, no scratch, and K-innermost operands read from LDS as 16-byte vectors."""
from __future__ import annotations

import numpy as np
import pytest
from mfma_harness import gemm_kernel, hip, rand

import tilewise
from tilewise.backend.hip.main_loop import instruction_mix, main_loop
from tilewise.errors import CompileError

pytestmark = pytest.mark.usefixtures("clang19")


def _ref(A, B, trans_A, trans_B, acc):
    a = A.T if trans_A else A
    b = B.T if trans_B else B
    if acc == "int32":
        return (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)
    return a.astype(np.float64) @ b.astype(np.float64)


def _run(rng, M, N, K, in_dtype="float16", acc="float32", trans_A=False, trans_B=False, **kw):
    k = hip(gemm_kernel(M, N, K, in_dtype=in_dtype, acc=acc, trans_A=trans_A, trans_B=trans_B, **kw))
    A = rand(rng, (K, M) if trans_A else (M, K), in_dtype)
    B = rand(rng, (N, K) if trans_B else (K, N), kw.get("b_dtype") or in_dtype)
    C = np.zeros((M, N), np.int32 if acc == "int32" else np.float32)
    k(A, B, C)
    ref = _ref(A, B, trans_A, trans_B, acc)
    if acc == "int32":
        np.testing.assert_array_equal(C, ref)
    else:
        np.testing.assert_allclose(C, ref, rtol=1e-5, atol=1e-4 * np.sqrt(K))
    return k


def _check_isa(k, mnemonic):
    isa = k.get_isa()
    assert mnemonic in isa
    res = k.resource_usage()
    assert res["scratch_bytes"] == 0 and res["vgpr_spills"] == 0 and res["sgpr_spills"] == 0, res
    return isa


@pytest.mark.parametrize("in_dtype,mnemonic", [("float16", "v_mfma_f32_32x32x8_f16"),
                                               ("bfloat16", "v_mfma_f32_32x32x8_bf16")])
def test_canonical_gemm(rng, in_dtype, mnemonic):
    """128 x 128 x 32 tiles over 256 threads (4 wavefronts, 2 x 2, 64 x 64 each: 32x32x8 MFMAs)."""
    k = _run(rng, 256, 128, 64, in_dtype=in_dtype)
    _check_isa(k, mnemonic)
    notes = " ".join(k.lowering_notes())
    assert mnemonic in notes and "4 wavefront(s) (2 x 2)" in notes
    # K long enough that clang keeps the k loop (compiled only)
    isa = _check_isa(hip(gemm_kernel(1024, 1024, 1024, in_dtype=in_dtype)), mnemonic)
    mix = instruction_mix(main_loop(isa))
    # per k tile a wavefront issues (64 / 32)^2 tiles x 32 / 8 k steps = 16 MFMAs; A's items of two
    # k steps arrive as one ds_read_b128 per m tile: 2 x 2 of them
    assert mix["mfma"] == 16
    assert mix["lds_read_b128"] == 4 and mix["lds_write_b128"] == 4 and mix["global_load"] == 4


def test_int8(rng):
    k = _run(rng, 128, 128, 128, in_dtype="int8", acc="int32", bk=64)
    isa = _check_isa(k, "v_mfma_i32_16x16x32_i8")
    assert "ds_read_b128" in isa


def test_ragged_shapes(rng):
    """M, N, K not multiples of the block tile: the copies zero-fill, the MFMAs run on whole tiles."""
    k = _run(rng, 200, 136, 72)
    _check_isa(k, "v_mfma_f32_32x32x8_f16")


@pytest.mark.parametrize("trans_A,trans_B", [(True, False), (False, True), (True, True)])
def test_transposes(rng, trans_A, trans_B):
    _run(rng, 128, 128, 64, trans_A=trans_A, trans_B=trans_B)


def test_transposed_b_reads_16_byte_vectors(rng):
    """B stored N x K (K contiguous) is read like A: no 2-byte LDS reads in the main loop."""
    _run(rng, 128, 128, 64, trans_B=True)
    isa = _check_isa(hip(gemm_kernel(1024, 1024, 1024, trans_B=True)), "v_mfma_f32_32x32x8_f16")
    names = [n for _, n, _ in main_loop(isa)]
    assert not any(n.startswith("ds_read_u16") for n in names)
    assert names.count("ds_read_b128") >= 8


@pytest.mark.parametrize("a_frag,b_frag,trans_A,trans_B", [(True, False, False, False), (True, True, False, False),
                                                     (True, True, True, True), (False, True, False, True)])
def test_register_operands(rng, a_frag, b_frag, trans_A, trans_B):
    """rs / rr / sr: A (and B) copied into MFMA-layout fragments first, stored plain or transposed."""
    _run(rng, 128, 128, 64, bm=64, bn=64, threads=128, a_frag=a_frag, b_frag=b_frag, trans_A=trans_A,
         trans_B=trans_B)


@pytest.mark.parametrize("policy,threads", [("FullRow", 256), ("FullCol", 256), ("Square", 64)])
def test_policies_and_16x16(rng, policy, threads):
    """FullRow puts 4 wavefronts on 32-row slices (16x16 MFMAs where a 32x32 grid does not fit)."""
    k = _run(rng, 64, 128, 32, bm=64, bn=128, threads=threads, policy=policy)
    assert "v_mfma" in k.get_isa()


def test_bf16_16x16(rng):
    k = _run(rng, 64, 64, 32, in_dtype="bfloat16", bm=64, bn=64, threads=256, policy="FullRow")
    _check_isa(k, "v_mfma_f32_16x16x16_bf16")


def test_float32_uses_fma(rng):
    k = _run(rng, 64, 64, 32, in_dtype="float32", bm=64, bn=64, threads=128)
    assert "v_mfma" not in k.get_isa()
    assert any("FMA" in n for n in k.lowering_notes())


E4, E5 = "float8_e4m3fnuz", "float8_e5m2fnuz"


@pytest.mark.parametrize("a,b,mnemonic", [(E4, E4, "v_mfma_f32_32x32x16_fp8_fp8"),
                                          (E5, E4, "v_mfma_f32_32x32x16_bf8_fp8")])
def test_fp8_fnuz_ragged(rng, a, b, mnemonic):
    """fnuz fp8 operands (gfx942's fp8 MFMAs read these encodings), M / N / K ragged: the result is
    the float64 product of the decoded values to float32 rounding; 32x32x16 MFMAs as for f16."""
    k = _run(rng, 200, 136, 80, in_dtype=a, b_dtype=b, bk=32)
    _check_isa(k, mnemonic)
    assert mnemonic in " ".join(k.lowering_notes())


@pytest.mark.parametrize("a,b,mnemonic,kw", [
    (E4, E5, "v_mfma_f32_16x16x32_fp8_bf8", dict(policy="FullRow", trans_B=True)),
    (E5, E5, "v_mfma_f32_16x16x32_bf8_bf8", dict(a_frag=True, policy="FullRow")),
])
def test_fp8_fnuz_16x16(rng, a, b, mnemonic, kw):
    """16x16x32 where a wavefront's tile is 16 rows (FullRow over 4 wavefronts); B stored N x K,
    and A from registers."""
    k = _run(rng, 64, 128, 64, in_dtype=a, b_dtype=b, bm=64, bn=128, bk=64, **kw)
    _check_isa(k, mnemonic)


def test_fp8_k_contiguous_operands_are_16_byte_reads():
    """fp8 with both operands stored K-innermost: a lane's 16 items of two k steps are one
    ds_read_b128 per tile, nothing read byte by byte; no scratch."""
    isa = _check_isa(hip(gemm_kernel(1024, 1024, 1024, in_dtype=E4, bk=64, trans_B=True)),
                     "v_mfma_f32_32x32x16_fp8_fp8")
    names = [n for _, n, _ in main_loop(isa)]
    reads = [n for n in names if n.startswith("ds_read")]
    assert reads and set(reads) == {"ds_read_b128"}
    assert names.count("v_mfma_f32_32x32x16_fp8_fp8") % 16 == 0


def test_fp8_errors():
    """OCP float8 is not what gfx942 reads (the error names the fnuz types); gfx90a has no fp8 MFMA."""
    with pytest.raises(CompileError, match="float8_e4m3fnuz / float8_e5m2fnuz"):
        hip(gemm_kernel(64, 64, 64, in_dtype="float8_e5m2", bm=64, bn=64, threads=128)).get_kernel_source()
    with pytest.raises(CompileError, match="gfx90a does not have"):
        tilewise.compile(gemm_kernel(64, 64, 64, in_dtype=E4, bm=64, bn=64, threads=128),
                         target="hip -arch=gfx90a", execution_backend="emulator").get_kernel_source()


def test_unsupported_types_are_errors():
    with pytest.raises(CompileError, match="FNUZ"):
        hip(gemm_kernel(64, 64, 64, in_dtype="float8_e4m3", bm=64, bn=64, threads=128)).get_kernel_source()
    with pytest.raises(CompileError, match="float32 only"):
        hip(gemm_kernel(64, 64, 32, acc="float16", bm=64, bn=64, threads=128)).get_kernel_source()
    with pytest.raises(CompileError, match="gfx90a does not have"):
        tilewise.compile(gemm_kernel(128, 128, 64, in_dtype="int8", acc="int32", bk=64),
                         target="hip -arch=gfx90a", execution_backend="emulator").get_kernel_source()
    with pytest.raises(CompileError, match="multiple of 64 threads"):
        hip(gemm_kernel(64, 64, 32, bm=64, bn=64, threads=96)).get_kernel_source()


def test_int8_k_contiguous_operands_are_vector_reads(rng):
    """int8 with both operands stored K-innermost: each lane's 8 (one k step) items are one 8-byte
    LDS read, not bytes gathered and shuffled into place."""
    _run(rng, 128, 128, 64, in_dtype="int8", acc="int32", trans_B=True)
    isa = _check_isa(hip(gemm_kernel(1024, 1024, 1024, in_dtype="int8", acc="int32", trans_B=True)),
                     "v_mfma_i32_16x16x32_i8")
    names = [n for _, n, _ in main_loop(isa)]
    mfmas = names.count("v_mfma_i32_16x16x32_i8")
    assert mfmas and mfmas % 16 == 0  # clang may unroll the k loop
    assert not any(n.startswith(("ds_read_u8", "ds_read_i8")) for n in names)
    # no byte packing: at most one other vector instruction per MFMA (addresses, loop)
    assert sum(n.startswith("v_") and not n.startswith("v_mfma") for n in names) <= mfmas


@pytest.mark.parametrize("dim,causal", [(64, False), (128, True)])
def test_flash_attention_forward(rng, monkeypatch, dim, causal):
    """The FlashAttention example on gfx942: Q @ K^T with B stored N x K, the softmax in the MFMA C
    layout, P @ V with P in registers (exchanged through LDS from the C to the A layout)."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parents[2] / "examples" / "flash_attention"))
    import example_mha_fwd_bshd as ex

    S, H = 128, 2
    k = hip(ex.flashattn_fwd(1, H, S, dim, causal, block_M=64, block_N=64, threads=128))
    Q, K, V = (rng.standard_normal((1, S, H, dim)).astype(np.float16) for _ in range(3))
    O = np.zeros_like(Q)
    k(Q, K, V, O)
    q, kk, v = (x.astype(np.float64).transpose(0, 2, 1, 3) for x in (Q, K, V))
    s = q @ kk.transpose(0, 1, 3, 2) / np.sqrt(dim)
    if causal:
        s = s + np.triu(np.full((S, S), -np.inf), 1)
    p = np.exp(s - s.max(-1, keepdims=True))
    ref = ((p / p.sum(-1, keepdims=True)) @ v).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(O.astype(np.float64), ref, atol=3e-3, rtol=3e-3)
    _check_isa(k, "v_mfma_f32_32x32x8_f16")


def test_k_pack(rng):
    """k_pack=4: a lane's items of four consecutive k steps are one run of 16 K elements (and the
    register fragment of A follows the same order); K must hold whole runs."""
    _run(rng, 128, 128, 64, bk=64, k_pack=4, a_frag=True)
    with pytest.raises(CompileError, match="k_pack=4"):
        hip(gemm_kernel(128, 128, 64, bk=16, k_pack=4)).get_kernel_source()


@pytest.mark.parametrize("kw", [
    dict(M=256, N=128, K=64),  # canonical: 32x32 MFMAs, B K x N
    dict(M=128, N=128, K=64, trans_B=True),
    dict(M=64, N=128, K=64, bm=64, policy="FullRow"),  # 16x16 MFMAs, B K x N: rows k and k + 8
    dict(M=64, N=128, K=64, bm=64, policy="FullRow", trans_B=True),
    dict(M=64, N=128, K=64, bm=64, policy="FullRow", trans_A=True),
    dict(M=128, N=128, K=128, bk=64, in_dtype="int8", acc="int32"),
    dict(M=128, N=128, K=128, bk=64, in_dtype="int8", acc="int32", trans_B=True),
    dict(M=128, N=128, K=128, bk=64, in_dtype="float8_e4m3fnuz"),  # 32x32x16 fp8, B K x N
    dict(M=64, N=128, K=128, bm=64, bk=64, policy="FullRow", in_dtype="float8_e4m3fnuz"),  # 16x16x32 fp8
], ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_lds_accesses_have_no_bank_conflicts(rng, kw):
    """The emulator's bank-conflict count (gfx942: 32 banks x 4 bytes, 128 bytes per phase) over
    the copies into the operand tiles and the MFMA operand reads: none beyond the minimum."""
    from tilewise import env

    with env.override("TILEWISE_EMULATOR_STATS", "1"):
        k = _run(rng, **kw)
    stats = k.emulate_stats()
    assert stats is not None and stats.bank_conflicts
    assert stats.total_extra == 0, stats.bank_conflicts


def test_single_k_step_runs_conflict_two_ways(rng):
    """K tiles of one k step pair (k_pack 1, 8-byte runs): the 16 lanes of a phase read 16 rows at
    the same 8-byte half of a chunk, which no layout keeping 16-byte chunks whole spreads over
    more than 8 of the 16 bank pairs: the A reads take twice the minimum, nothing else conflicts."""
    from tilewise import env

    with env.override("TILEWISE_EMULATOR_STATS", "1"):
        k = _run(rng, 64, 128, 48, bm=64, bk=16, policy="FullRow")
    recs = {(r.buffer, r.kind): r for r in k.emulate_stats().bank_conflicts}
    a = recs.pop(("A_s", "ld"))
    assert a.extra * 2 == a.wavefronts
    assert all(r.extra == 0 for r in recs.values())


@pytest.mark.parametrize("in_dtype,mnemonic", [("float16", "v_mfma_f32_32x32x8f16"),
                                               ("bfloat16", "v_mfma_f32_32x32x8bf16_1k")])
def test_gfx90a_compiles_the_same_instructions(in_dtype, mnemonic):
    """MI200 (gfx90a) has the float16 / bfloat16 MFMAs (its assembler spells them without the
    underscore before the type)."""
    k = tilewise.compile(gemm_kernel(256, 256, 256, in_dtype=in_dtype), target="hip -arch=gfx90a",
                         execution_backend="emulator")
    _check_isa(k, mnemonic)
