"""Shared-memory bank conflicts counted by the emulator (emulator/banks.py): the rule on hand-made
warp requests, the examples' kernels conflict-free on sm_80, and unswizzled tiles with the number
of extra wavefronts worked out by hand."""
import importlib.util
import types
from pathlib import Path

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise import env
from tilewise.emulator.banks import BankCounter
from tilewise.layout import Layout

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _example(rel: str):
    spec = importlib.util.spec_from_file_location("ex_" + rel.replace("/", "_")[:-3], EXAMPLES / rel)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def _emu(func, out_idx=None):
    return tilewise.compile(func, out_idx=out_idx, target="cuda -arch=sm_80", execution_backend="emulator")


def _stats(kernel, *args):
    # counting is the emulator's alone: the PTX interpreter's cross-check (conftest) would only
    # repeat the run
    with env.override("TILEWISE_EMULATOR_STATS", "1"), env.override("TILEWISE_EMULATOR_CROSSCHECK", ""):
        out = kernel(*args)
    return out, kernel.emulate_stats()


def _rows(stats, buffer, kind):
    rows = [r for r in stats.bank_conflicts if r.buffer == buffer and r.kind == kind]
    assert rows, f"no {kind} of {buffer} in {stats.bank_conflicts}"
    return rows


# ------------------------------------------------------------------------------ the rule itself


class _Warp:
    """What BankCounter.record reads of a batch: one block of 32 threads, one warp."""

    def __init__(self, threads=32):
        self.L = threads
        self.lane_warp = np.arange(threads) // 32
        self.lane_in_warp = np.arange(threads) % 32


def _count(offsets, nbytes, threads=32):
    c = BankCounter()
    site = types.SimpleNamespace(sid=0)
    c.record(_Warp(threads), site, "ld", np.asarray(offsets, np.int64), nbytes, np.arange(threads))
    return c.tally[(0, "ld")]  # [requests, wavefronts, minimum]


def test_rule_32_bit_words():
    lanes = np.arange(32)
    assert _count(lanes * 4, 4) == [1, 1, 1]  # one word per bank
    assert _count(lanes * 8, 4) == [1, 2, 1]  # stride 2 words: lanes l and l + 16 share a bank
    assert _count(lanes * 128, 4) == [1, 32, 1]  # a column of a 32-word-wide row-major tile
    assert _count(np.zeros(32, np.int64), 4) == [1, 1, 1]  # one word: a broadcast
    assert _count(lanes // 2 * 4, 4) == [1, 1, 1]  # two lanes per word (16-bit elements)
    assert _count(lanes * 2, 2) == [1, 1, 1]
    assert _count(lanes * 256, 2) == [1, 32, 1]


def test_rule_wide_accesses_go_by_phases():
    lanes = np.arange(32)
    # 16 bytes per lane: four quarter-warp phases of 8 lanes x 4 words, each conflict-free
    assert _count(lanes * 16, 16) == [1, 4, 4]
    # 8 bytes at a 16-byte stride: each half-warp touches words {4k, 4k+1}, k < 16: banks
    # 0,1,4,5,...,28,29 twice -> 2 wavefronts per phase instead of 1
    assert _count(lanes * 16, 8) == [1, 4, 2]
    # 8 bytes, contiguous: a half-warp covers 32 consecutive words
    assert _count(lanes * 8, 8) == [1, 2, 2]
    # 16-byte rows 128 bytes apart (an unswizzled ldmatrix phase): 8 rows in the same 4 banks
    assert _count(lanes * 128, 16) == [1, 32, 4]
    # a partial warp: the phases with no active lane are not requests
    assert _count(np.arange(8) * 16, 16, threads=8) == [1, 1, 1]


# ------------------------------------------------------------------------------ transpose by hand


def _transpose(pad: int):
    @T.prim_func
    def main(A: T.Tensor((32, 32), "float32"), B: T.Tensor((32, 32), "float32")):
        with T.Kernel(1, threads=32):
            S = T.alloc_shared((32, 32 + pad), "float32")
            tx = T.get_thread_binding()
            for i in T.serial(32):
                S[i, tx] = A[i, tx]  # a row: 32 consecutive words
            for i in T.serial(32):
                B[i, tx] = S[tx, i]  # a column: words tx * (32 + pad) + i

    return main


def test_transpose_through_shared_memory_by_hand():
    a = np.arange(32 * 32, dtype=np.float32).reshape(32, 32)
    k = _emu(_transpose(0), out_idx=[1])
    b, s = _stats(k, a)
    np.testing.assert_array_equal(b, a.T)
    (st,) = _rows(s, "S", "st")
    (ld,) = _rows(s, "S", "ld")
    # 32 row stores of one warp: each 32 words in 32 banks
    assert (st.accesses, st.wavefronts, st.extra) == (32, 32, 0)
    # 32 column loads: lane l reads word 32 l + i, all in bank i -> 32 wavefronts, 31 extra each
    assert (ld.accesses, ld.wavefronts, ld.extra) == (32, 32 * 32, 32 * 31)
    assert s.total_extra == 32 * 31
    assert ld.line is not None and st.line == ld.line - 2
    # one padding word per row: lane l reads word 33 l + i, in bank (l + i) % 32
    _, s = _stats(_emu(_transpose(1), out_idx=[1]), a)
    assert s.total_extra == 0


def test_stats_before_and_without_a_counting_run():
    k = _emu(_transpose(0), out_idx=[1])
    assert k.emulate_stats() is None
    with env.override("TILEWISE_EMULATOR_STATS", "0"):
        k(np.zeros((32, 32), np.float32))
    assert k.emulate_stats() is None
    _, s = _stats(k, np.zeros((32, 32), np.float32))
    assert s.total_extra == 32 * 31
    with env.override("TILEWISE_EMULATOR_STATS", "0"):  # the latest run counted nothing
        k(np.zeros((32, 32), np.float32))
    assert k.emulate_stats() is None


# ------------------------------------------------------------------------------ examples


def test_gemm_example_conflict_free_and_unswizzled_gemm_by_hand():
    ex = _example("gemm/example_gemm.py")
    M = N = 128
    K = 64
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    c, s = _stats(_emu(ex.matmul(M, N, K), out_idx=[-1]), a, b)
    np.testing.assert_allclose(c, (a.astype(np.float32) @ b.astype(np.float32)), rtol=1e-2, atol=1e-2)
    kinds = {r.kind for r in s.bank_conflicts}
    assert {"cp.async", "ldmatrix"} <= kinds
    assert s.total_extra == 0, s.bank_conflicts
    swz = {(r.buffer, r.kind): r for r in s.bank_conflicts}

    # The same GEMM with the operand tiles stored plainly row-major.
    bm, bn, bk = 128, 128, 32

    @T.prim_func
    def plain(A: T.Tensor((M, K), "float16"), B: T.Tensor((K, N), "float16"), C: T.Tensor((M, N), "float16")):
        with T.Kernel(1, 1, threads=128):
            A_shared = T.alloc_shared((bm, bk), "float16")
            B_shared = T.alloc_shared((bk, bn), "float16")
            C_local = T.alloc_fragment((bm, bn), "float")
            T.annotate_layout({A_shared: Layout((bm, bk), lambda i, j: (i, j)),
                               B_shared: Layout((bk, bn), lambda i, j: (i, j))})
            T.clear(C_local)
            for ko in T.Pipelined(K // bk, num_stages=2):
                T.copy(A[0, ko * bk], A_shared)
                T.copy(B[ko * bk, 0], B_shared)
                T.gemm(A_shared, B_shared, C_local)
            T.copy(C_local, C[0, 0])

    c2, s2 = _stats(_emu(plain, out_idx=[-1]), a, b)
    np.testing.assert_array_equal(c2, c)
    la, lb = _rows(s2, "A_shared", "ldmatrix")[0], _rows(s2, "B_shared", "ldmatrix")[0]
    # Every ldmatrix phase reads 8 rows of 16 bytes at one column. A's rows are 32 halves = 64
    # bytes = 16 words apart: rows r and r + 2 share banks, so the 8 rows fall on 2 groups of 4
    # banks, 4 distinct words each -> 4 wavefronts per phase instead of 1 (3 extra).
    sa = swz[("A_shared", "ldmatrix")]
    assert la.accesses == sa.accesses
    phases = sa.wavefronts  # conflict-free: one wavefront per phase
    assert (la.wavefronts, la.extra) == (4 * phases, 3 * phases)
    # B (K x N, read with ldmatrix.trans): rows of 128 halves = 256 bytes = 64 words apart, all 8
    # rows in the same 4 banks -> 8 wavefronts per phase (7 extra).
    sb = swz[("B_shared", "ldmatrix")]
    assert lb.accesses == sb.accesses
    assert (lb.wavefronts, lb.extra) == (8 * sb.wavefronts, 7 * sb.wavefronts)
    # The cp.async writes stay conflict-free: 8 lanes write 128 contiguous bytes per phase.
    assert all(r.extra == 0 for r in s2.bank_conflicts if r.kind == "cp.async")
    assert s2.total_extra == 3 * phases + 7 * sb.wavefronts


def test_softmax_example_conflict_free():
    ex = _example("softmax/example_softmax.py")
    for m, n, bm, dtype in ((4, 1024, 4, "float32"), (37, 300, 1, "float16")):
        x = np.random.default_rng(1).standard_normal((m, n)).astype(dtype)
        y, s = _stats(_emu(ex.softmax(m, n, bm, dtype=dtype), out_idx=[-1]), x)
        xf = x.astype(np.float64)
        ref = np.exp(xf - xf.max(axis=1, keepdims=True))
        np.testing.assert_allclose(y.astype(np.float64), ref / ref.sum(axis=1, keepdims=True), rtol=1e-2, atol=1e-4)
        assert s.total_extra == 0, s.bank_conflicts


@pytest.mark.parametrize("causal", [False, True])
def test_flash_attention_example_conflict_free(causal):
    ex = _example("flash_attention/example_mha_fwd_bshd.py")
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((1, 128, 1, 64)).astype(np.float16) for _ in range(3))
    o, s = _stats(_emu(ex.flashattn_fwd(1, 1, 128, 64, causal), out_idx=[3]), q, k, v)
    ref = ex.ref_program(*(__import__("torch").from_numpy(t) for t in (q, k, v)), causal).numpy()
    np.testing.assert_allclose(o.astype(np.float32), ref.astype(np.float32), rtol=2e-2, atol=2e-2)
    assert {"ldmatrix"} <= {r.kind for r in s.bank_conflicts}
    assert s.total_extra == 0, [r for r in s.bank_conflicts if r.extra]
