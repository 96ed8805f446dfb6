"""T.Pipelined on gfx942, which has no cp.async: the copies of a pipelined loop are staged through
registers (ir/machine.py feature "register_staging", tileop/staged_copy.py,
transform/inject_pipeline.py): the global loads of tile k + 1 go into VGPRs before the MFMAs of
tile k, and their LDS stores follow the MFMAs, then the one barrier of the iteration. The
canonical GEMM, ragged shapes, FlashAttention forward (d64) and the fp16 x int4 dequant GEMM
give numpy's answer in the emulator (which checks the LDS accesses for races); the code object
shows the loads ahead of the MFMAs, vector loads (global_load_dwordx4), no scratch."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.backend.hip.main_loop import instruction_mix, load_to_use_mfmas, main_loop

pytestmark = pytest.mark.usefixtures("clang19")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _hip(func, **kw):
    return tilewise.compile(func, target="hip -arch=gfx942", execution_backend="emulator", **kw)


def gemm(M, N, K, bm=128, bn=128, bk=32, threads=256, stages=2, trans_B=False, dtype="float16"):
    b_shape, b_tile = ((N, K), (bn, bk)) if trans_B else ((K, N), (bk, bn))

    @T.prim_func
    def main(A: T.Tensor((M, K), dtype), B: T.Tensor(b_shape, dtype), C: T.Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=threads) as (bx, by):
            A_s = T.alloc_shared((bm, bk), dtype)
            B_s = T.alloc_shared(b_tile, dtype)
            C_f = T.alloc_fragment((bm, bn), "float32")
            T.clear(C_f)
            for ko in T.Pipelined(T.ceildiv(K, bk), num_stages=stages):
                T.copy(A[by * bm, ko * bk], A_s)
                if trans_B:
                    T.copy(B[bx * bn, ko * bk], B_s)
                else:
                    T.copy(B[ko * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_f, transpose_B=trans_B)
            T.copy(C_f, C[by * bm, bx * bn])

    return main


def _check_gemm(k, rng, M, N, K, trans_B=False):
    A = rng.standard_normal((M, K)).astype(np.float16)
    B = rng.standard_normal((N, K) if trans_B else (K, N)).astype(np.float16)
    C = np.zeros((M, N), np.float32)
    k(A, B, C)
    ref = A.astype(np.float64) @ (B.T if trans_B else B).astype(np.float64)
    np.testing.assert_allclose(C, ref, rtol=1e-5, atol=1e-4 * np.sqrt(K))


@pytest.mark.parametrize("stages", [2, 3])
def test_canonical_gemm_staged_through_registers(rng, stages):
    """8 K tiles: prologue, the unrolled steady state (constant LDS slots) and the epilogue run."""
    k = _hip(gemm(128, 128, 256, stages=stages))
    notes = " ".join(k.lowering_notes())
    assert "staged through registers" in notes and "2 shared buffers" in notes
    src = k.get_kernel_source()
    assert "A_s_stage" in src and "B_s_stage" in src and "cp_async" not in src
    _check_gemm(k, rng, 128, 128, 256)
    assert k.resource_usage()["lds_bytes"] == 2 * (128 * 32 + 32 * 128) * 2  # two buffers, whatever num_stages


def test_ragged_gemm(rng):
    """M, N, K not multiples of the tile: chunks past the tensor's end are zeros in the registers
    (a predicated vector load), an odd number of K tiles leaves the steady state a remainder."""
    M, N, K = 200, 136, 232
    k = _hip(gemm(M, N, K))
    _check_gemm(k, rng, M, N, K)
    isa = k.get_isa()
    assert "global_load_dwordx4" in isa and "ds_write_b128" in isa
    assert k.resource_usage()["scratch_bytes"] == 0


def test_a_dynamic_trip_count_keeps_the_loop_rolled(rng):
    """K dynamic: the steady state stays rolled with the slot in a register (2 barriers per
    iteration there: the slots are not constants)."""
    M, N = 128, 128
    K = T.symbolic("K")

    @T.prim_func
    def main(A: T.Tensor((M, K), "float16"), B: T.Tensor((K, N), "float16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(1, 1, threads=256) as (bx, by):
            A_s = T.alloc_shared((128, 32), "float16")
            B_s = T.alloc_shared((32, 128), "float16")
            C_f = T.alloc_fragment((128, 128), "float32")
            T.clear(C_f)
            for ko in T.Pipelined(T.ceildiv(K, 32), num_stages=2):
                T.copy(A[0, ko * 32], A_s)
                T.copy(B[ko * 32, 0], B_s)
                T.gemm(A_s, B_s, C_f)
            T.copy(C_f, C[0, 0])

    k = _hip(main)
    for K_ in (96, 32):
        _check_gemm(k, rng, M, N, K_)


def test_loads_of_the_next_tile_come_before_the_mfmas(rng):
    """In the main loop of the code object every global_load_dwordx4 is issued MFMAs ahead of the
    ds_write of its registers (the loads of tile k + 1 before the MFMAs of tile k); one s_barrier
    per K tile; no scratch. The synchronous schedule (pass config tir.use_async_copy=False)
    writes each loaded tile to LDS before its MFMAs: the measure tells them apart."""
    staged = _hip(gemm(1024, 1024, 1024))
    isa = staged.get_isa()
    loop = main_loop(isa)
    mix = instruction_mix(loop)
    names = [n for _, n, _ in loop]
    assert mix["mfma"] >= 16 and mix["mfma"] % 16 == 0  # 16 per K tile and wavefront
    tiles = mix["mfma"] // 16
    assert names.count("global_load_dwordx4") == 4 * tiles and mix["lds_write_b128"] == 4 * tiles
    assert mix["barrier"] == tiles
    hidden = load_to_use_mfmas(loop)
    assert len(hidden) == 4 * tiles and min(hidden) >= 4, hidden
    first_load, first_mfma = names.index("global_load_dwordx4"), names.index(next(n for n in names if "mfma" in n))
    assert first_load < first_mfma
    res = staged.resource_usage()
    assert res["scratch_bytes"] == 0 and res["vgpr_spills"] == 0 and 0 < res["vgprs"] <= 512, res

    sync = _hip(gemm(1024, 1024, 1024), pass_configs={"tir.use_async_copy": False})
    assert "staged" not in " ".join(sync.lowering_notes())
    # clang may hoist a few of the synchronous loads above the previous tile's last MFMAs; what
    # tells the schedules apart is that staging puts every load a whole tile's MFMAs ahead.
    sync_hidden = load_to_use_mfmas(main_loop(sync.get_isa()))
    assert sum(sync_hidden) / len(sync_hidden) < sum(hidden) / len(hidden) / 2, (sync_hidden, hidden)


def test_one_barrier_per_iteration_is_race_free(rng):
    """The emulator's race checks (on by default) see the LDS stores of slot s after the MFMA
    reads of the other slot with no barrier between them, and no race: distinct bytes."""
    k = _hip(gemm(64, 64, 128, bm=64, bn=64, bk=32, threads=128))
    _check_gemm(k, rng, 64, 64, 128)
    # the unrolled steady state (4 K tiles: 1 in the prologue, one trip of 2, 1 left over): one
    # barrier per iteration, between the LDS stores and the next iteration's MFMAs
    src = k.get_kernel_source()
    steady = src.split("ko_steady = 0;")[1].split("for (int32_t ko_steady_rest")[0]
    assert steady.count("tw::syncthreads()") == 2, steady


def _example(relpath: str):
    path = EXAMPLES / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flash_attention_forward_d64_pipelined(rng, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES / "flash_attention"))
    ex = _example("flash_attention/example_mha_fwd_bshd.py")
    S, H, D = 256, 1, 64
    k = _hip(ex.flashattn_fwd(1, H, S, D, False, block_M=64, block_N=64, num_stages=2, threads=128))
    assert "staged through registers" in " ".join(k.lowering_notes())
    Q, K, V = (rng.standard_normal((1, S, H, D)).astype(np.float16) for _ in range(3))
    O = np.zeros_like(Q)
    k(Q, K, V, O)
    q, kk, v = (x.astype(np.float64).transpose(0, 2, 1, 3) for x in (Q, K, V))
    s = q @ kk.transpose(0, 1, 3, 2) / np.sqrt(D)
    p = np.exp(s - s.max(-1, keepdims=True))
    ref = ((p / p.sum(-1, keepdims=True)) @ v).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(O.astype(np.float64), ref, atol=3e-3, rtol=3e-3)
    res = k.resource_usage()
    assert res["scratch_bytes"] == 0, res


def test_dequant_gemm(rng, monkeypatch):
    """fp16 x int4 with a per-group scale: three copies staged (one of them a strided column of
    the scales, one element per thread), the T.Parallel dequantisation between them and T.gemm."""
    monkeypatch.syspath_prepend(str(EXAMPLES / "dequantize_gemm"))
    ex = _example("dequantize_gemm/example_dequant_gemm_fp16xint4.py")
    M, N, K, gs = 64, 128, 256, 64
    k = _hip(ex.dequant_gemm_int4(M, N, K, block_M=64, block_N=128, block_K=64, group_size=gs, num_stages=3),
             out_idx=[-1])
    assert "the 3 global -> shared copies are staged" in " ".join(k.lowering_notes())
    A = rng.standard_normal((M, K)).astype(np.float16)
    B = rng.integers(0, 256, (N, K // 2)).astype(np.uint8)
    scale = (rng.random((N, K // gs)) * 0.1).astype(np.float16)
    C = k(A, B, scale)
    lo, hi = (B & 0xF).astype(np.int32), (B >> 4).astype(np.int32)
    w = np.stack([lo, hi], axis=-1).reshape(N, K) - 8
    w = (w.astype(np.float16) * np.repeat(scale, gs, axis=1)).astype(np.float16)
    ref = A.astype(np.float64) @ w.astype(np.float64).T
    np.testing.assert_allclose(C.astype(np.float64), ref, rtol=2e-2, atol=2e-2)
    assert k.resource_usage()["scratch_bytes"] == 0
