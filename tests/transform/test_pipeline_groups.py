"""T.Pipelined(order=, stage=, group=, sync=) with TileLang's meaning (transform/pipeline_schedule.py):
groups of consecutive statements as schedule units, -1 for the copies the (warp-specialised)
producer issues, consumer stages handing registers over by the order. Every schedule gives the
loop's numbers on the CPU (where it is a reordering with multi-buffered tiles) and in the
emulator for sm_80 (cp.async) and sm_90a (TMA, warp-specialised or not); a schedule that is
malformed or breaks a dependence is a CompileError naming the argument."""
from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError
from tilewise.jit.build import walk_kernels

M = N = 64
K = 128  # four iterations of 32

TARGETS = ["cpu", "cuda -arch=sm_80", "cuda -arch=sm_90a"]


def _compile(func, target, **configs):
    if target == "cpu":
        return tilewise.compile(func, target="cpu")
    return tilewise.compile(func, target=target, execution_backend="emulator", pass_configs=configs or None)


def _warp_specialised(k) -> bool:
    (kern,) = walk_kernels(k.build.lowered)
    return bool(kern.attrs.get("warp_specialized"))


def gemm(**schedule):
    """Two copies and a gemm: the simplest loop with producers and a consumer."""

    @T.prim_func
    def g(A: T.Tensor((M, K), "float16"), B: T.Tensor((K, N), "float16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(1, threads=128):
            a = T.alloc_shared((M, 32), "float16")
            b = T.alloc_shared((32, N), "float16")
            c = T.alloc_fragment((M, N), "float32")
            T.clear(c)
            for k in T.Pipelined(K // 32, **schedule):
                T.copy(A[0, k * 32], a)
                T.copy(B[k * 32, 0], b)
                T.gemm(a, b, c)
            T.copy(c, C)

    return g


GEMM_SCHEDULES = {
    "producers_-1": dict(num_stages=2, order=[-1, -1, 0], stage=[-1, -1, 0], group=[[0], [1], [2]]),
    "copies_one_group": dict(num_stages=2, order=[-1, 0], stage=[-1, 0], group=[[0, 1], [2]]),
    "grouped_stages": dict(num_stages=2, order=[0, 1], stage=[0, 1], group=[[0, 1], [2]]),
    "gemm_issued_first": dict(num_stages=3, order=[1, 2, 0], stage=[0, 0, 2]),
}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", list(GEMM_SCHEDULES))
def test_gemm_schedules_give_the_loops_numbers(name, target):
    rng = np.random.default_rng(1)
    a = rng.uniform(-1, 1, (M, K)).astype(np.float16)
    b = rng.uniform(-1, 1, (K, N)).astype(np.float16)
    c = np.zeros((M, N), np.float32)
    k = _compile(gemm(**GEMM_SCHEDULES[name]), target)
    k(a, b, c)
    np.testing.assert_allclose(c, a.astype(np.float32) @ b.astype(np.float32), rtol=1e-3, atol=1e-3)
    if target.endswith("sm_90a"):
        # TileLang's -1 form keeps the producer warpgroup; a schedule of every statement cannot
        assert _warp_specialised(k) == (-1 in GEMM_SCHEDULES[name]["order"])
        if not _warp_specialised(k):
            assert any("no warp specialisation for this loop" in n for n in k.lowering_notes())


def handover(order, stage):
    """Two consumer stages handing a fragment over in registers (the FA3 pattern without gemms):
    f is computed from the X tile in stage 0 and used with the Y tile of the same iteration in
    stage 1, i.e. one pipelined iteration later."""
    R, C = 16, 64

    @T.prim_func
    def h(X: T.Tensor((64, C), "float32"), Y: T.Tensor((64, C), "float32"), O: T.Tensor((R, C), "float32")):
        with T.Kernel(1, threads=128):
            xs = T.alloc_shared((R, C), "float32")
            ys = T.alloc_shared((R, C), "float32")
            f = T.alloc_fragment((R, C), "float32")
            acc = T.alloc_fragment((R, C), "float32")
            T.clear(acc)
            for k in T.Pipelined(4, num_stages=2, order=order, stage=stage):
                T.copy(X[k * R, 0], xs)
                for i, j in T.Parallel(R, C):
                    f[i, j] = xs[i, j] * 2 + k
                T.copy(Y[k * R, 0], ys)
                for i, j in T.Parallel(R, C):
                    acc[i, j] += f[i, j] * ys[i, j]
            T.copy(acc, O)

    return h


@pytest.mark.parametrize("target", TARGETS)
def test_consumer_stages_hand_registers_over(target):
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (64, 64)).astype(np.float32)
    y = rng.uniform(-1, 1, (64, 64)).astype(np.float32)
    o = np.zeros((16, 64), np.float32)
    # stage 1's use of f (order 0) comes before stage 0 overwrites it with the next tile's (order 1)
    k = _compile(handover(order=[-1, 1, -1, 0], stage=[-1, 0, -1, 1]), target)
    k(x, y, o)
    ref = sum((x[16 * i:16 * i + 16] * 2 + i) * y[16 * i:16 * i + 16] for i in range(4))
    np.testing.assert_allclose(o, ref, rtol=1e-5, atol=1e-5)
    if target.endswith("sm_90a"):
        assert _warp_specialised(k)


def test_warp_specialisation_off_still_runs_the_schedule():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (64, 64)).astype(np.float32)
    y = rng.uniform(-1, 1, (64, 64)).astype(np.float32)
    o = np.zeros((16, 64), np.float32)
    k = _compile(handover(order=[-1, 1, -1, 0], stage=[-1, 0, -1, 1]), "cuda -arch=sm_90a",
                 **{"tl.disable_warp_specialized": True})
    k(x, y, o)
    assert not _warp_specialised(k)
    ref = sum((x[16 * i:16 * i + 16] * 2 + i) * y[16 * i:16 * i + 16] for i in range(4))
    np.testing.assert_allclose(o, ref, rtol=1e-5, atol=1e-5)


def test_a_schedule_that_breaks_a_dependence_is_refused():
    # f of tile k + 1 (stage 0, order 0) would overwrite f of tile k before stage 1 reads it
    with pytest.raises(CompileError, match="dependence of statement 3 on statement 1 through f"):
        tilewise.compile(handover(order=[-1, 0, -1, 1], stage=[-1, 0, -1, 1]), target="cpu")
    # a reader in an earlier stage than its writer
    with pytest.raises(CompileError, match="stage=/order= break the dependence .* read before it is written"):
        tilewise.compile(handover(order=[-1, 1, -1, 0], stage=[-1, 1, -1, 0]), target="cpu")


@pytest.mark.parametrize("schedule, match", [
    (dict(order=[-1, 0], stage=[-1, 0], group=[[0], [1]]), r"group=\[\[0\], \[1\]\]: the loop body has 3 statements"),
    (dict(order=[-1, -1, 0], stage=[-1, -1, 0], group=[[1], [0], [2]]), "consecutive statements .* in body order"),
    (dict(order=[-1, 0], stage=[-1, 0], group=[[0, 1], [1, 2]]), "list each statement once"),
    (dict(order=[0, 1, 2], stage=[0, 0, 1], group=[[0, 1], [2]]), "group= has 2 groups but order= has 3"),
    (dict(order=[0, 1], stage=[0, 1]), "stage= has 2 entries but the loop body has 3 statements"),
    (dict(order=[0, 1, 2], stage=[0, 1]), "order= has 3 entries and stage= 2"),
    (dict(order=[-1, 0], stage=[0, 0], group=[[0, 1], [2]]), "group 0 .* has stage 0 and order -1"),
    (dict(order=[0, -1], stage=[0, -1], group=[[0], [1, 2]]), "stage=-1 marks group 1 .* statement 2"),
    (dict(order=[-1, -1, -1], stage=[-1, -1, -1]), "stage=-1 marks group 2 .* statement 2"),
    (dict(order=[0, 0, 1], stage=[0, 0, 1]), r"order=\[0, 0, 1\]: two units have the same order"),
    (dict(order=[0, 1, 2], stage=[0, 0, -2]), r"stage=\[0, 0, -2\]: entries are >= 0, or -1"),
    (dict(order=[0, 1], stage=[0, 1], group=[0, 1]), "group= takes a list of lists"),
    (dict(group=[[0], [1], [2]]), "group= needs order="),
    (dict(sync=[[0, 2]]), "sync=.*never uses it"),
])
def test_malformed_schedules_name_the_argument(schedule, match):
    with pytest.raises(CompileError, match=match):
        tilewise.compile(gemm(num_stages=2, **schedule), target="cpu")


def test_sync_empty_is_accepted():
    k = tilewise.lower(gemm(num_stages=2, sync=[]), target="cpu")
    assert k.lowered_func is not None


def test_printed_loop_keeps_the_group():
    text = str(gemm(num_stages=2, order=[-1, 0], stage=[-1, 0], group=[[0, 1], [2]]))
    assert "T.Pipelined(4, num_stages=2, order=[-1, 0], stage=[-1, 0], group=[[0, 1], [2]])" in text


# ---------------------------------------------------------------- the FA3-style FlashAttention
FA3 = pathlib.Path(__file__).resolve().parents[2] / "examples" / "flash_attention"


def _fa3():
    sys.path.insert(0, str(FA3))
    try:
        import example_mha_fwd_bshd_wgmma_pipelined as fa3
    finally:
        sys.path.remove(str(FA3))
    return fa3


@pytest.mark.parametrize("dim", [64, 128])
def test_fa3_schedule_on_sm90a_is_warp_specialised_hgmma_without_spills(dim, nvrtc_check):
    func = _fa3().flashattn_fwd(1, 8, 1024, dim, False, block_M=128, block_N=128, num_stages=2, threads=256)
    use = nvrtc_check(func, expect=("HGMMA", "UTMALDG", "SYNCS", "USETMAXREG"), archs=("sm_90a",))
    assert use["sm_90a"]["spill_bytes"] == 0, use
    k = tilewise.compile(func, target="cuda -arch=sm_90a", execution_backend="emulator")
    assert _warp_specialised(k)
    # two slots suffice: the consumers hold a tile from the QK gemm of k to the PV gemm of k
    (kern,) = walk_kernels(k.build.lowered)
    assert kern.attrs["register_budgets"]["producer"] == 40


def test_fa3_schedule_compiles_without_warp_specialisation(nvrtc_check):
    func = _fa3().flashattn_fwd(1, 8, 1024, 64, False, block_M=128, block_N=128, num_stages=2, threads=256)
    nvrtc_check(func, expect={"sm_80": ("HMMA", "LDGSTS"), "sm_90a": ("HGMMA", "UTMALDG")},
                pass_configs={"tl.disable_warp_specialized": True})
