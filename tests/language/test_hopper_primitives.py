"""TileLang's explicit Hopper primitives (language/hopper.py): mbarriers, `with T.ws(i):` warpgroup
blocks, register budgets, proxy fences, named barriers, T.tma_copy and the thread-index helpers.

Without a GPU the evidence is: TileLang's hand-written warp-specialised GEMMs (ws_programs.py,
the programs of TileLang's examples/warp_specialize with only the import changed) compiled by
NVRTC for sm_90a and run by the PTX interpreter against numpy (it suspends threads in mbarrier
waits and named barriers, so producer and consumer warpgroups really run apart), with K loops
longer than the stages and M / N that do not divide the tile; their SASS (SYNCS, HGMMA, no
spills); the rendered source of each primitive; and a CompileError for each bad use."""
from __future__ import annotations

import re

import numpy as np
import pytest
import ws_programs as W

import tilewise
import tilewise.language as T
from tilewise.backend.cuda.inspect import instruction_mix

SM90A = "cuda -arch=sm_90a"


def _inputs(M, N, K, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    return a, b, a.astype(np.float64) @ b.astype(np.float64)


def _check(c, ref):
    # float16 output: one rounding of a float32 sum
    np.testing.assert_allclose(c.astype(np.float64), ref, rtol=2e-3, atol=2e-2)


@pytest.fixture
def on_hopper_ptx(monkeypatch):
    """`target="auto"` compiles for sm_90a and runs in the PTX interpreter, so that the programs
    run exactly as their TileLang `main()` does: `kernel = factory(M, N, K, ...)`, `kernel(a, b)`."""
    monkeypatch.setenv("TILEWISE_TARGET", SM90A)
    monkeypatch.setenv("TILEWISE_EXECUTION_BACKEND", "ptx")


def _compile(func, target=SM90A, backend="ptx", pass_configs=None, out_idx=(2,)):
    return tilewise.compile(func, out_idx=list(out_idx), target=target, execution_backend=backend,
                            pass_configs=pass_configs)


# ---------------------------------------------------------------------------- TileLang's programs

EXAMPLES = {
    "copy_1_gemm_0": W.matmul_warp_specialize_copy_1_gemm_0,
    "copy_0_gemm_1": W.matmul_warp_specialize_copy_0_gemm_1,
    "copy_gemm_0_1": W.matmul_warp_specialize_copy_gemm_0_1,
    "barrierpipe_stage2": W.matmul_barrierpipe,
    "barrierpipe_tma": W.matmul_barrierpipe_tma,
}
# K loops of 1, 5 and 9 tiles (more than the 2 stages; odd, so the parities wrap unevenly) and
# M / N that are not multiples of the 128 x 128 tile (TMA and the copies fill zeros past the edge)
SHAPES = [(128, 128, 64), (256, 256, 320), (200, 136, 576)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", list(EXAMPLES))
def test_tilelang_warp_specialize_examples_in_the_ptx_interpreter(name, shape, on_hopper_ptx):
    M, N, K = shape
    kernel = EXAMPLES[name](M, N, K, 128, 128, 64)
    assert kernel.execution_backend == "ptx" and kernel.target.arch == "sm_90a"
    a, b, ref = _inputs(M, N, K)
    _check(kernel(a, b), ref)


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_tilelang_warp_specialize_examples_in_the_emulator(name, monkeypatch):
    """The emulator schedules the warpgroups (emulator/schedule.py): the same programs against
    numpy, K loops longer than the stages on ragged M / N."""
    monkeypatch.setenv("TILEWISE_TARGET", SM90A)
    monkeypatch.setenv("TILEWISE_EXECUTION_BACKEND", "emulator")
    M, N, K = 136, 200, 320  # a shape the PTX-interpreter test does not cache a kernel for
    kernel = EXAMPLES[name](M, N, K, 128, 128, 64)
    assert kernel.execution_backend == "emulator"
    a, b, ref = _inputs(M, N, K)
    _check(kernel(a, b), ref)


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_tilelang_warp_specialize_examples_sass(name, nvrtc_check):
    """wgmma (HGMMA) in the consumer, mbarriers (SYNCS) between the warpgroups, no spills; the
    gemms are wgmma over one warpgroup each."""
    factory = EXAMPLES[name]
    func = factory.get_tir(1024, 1024, 1024, 128, 128, 64)
    configs = factory.compile_kwargs.get("pass_configs")
    expect = ("HGMMA",) if name == "copy_gemm_0_1" else ("HGMMA", "SYNCS")
    nvrtc_check(func, expect={"sm_90a": expect}, archs=("sm_90a",), pass_configs=configs)
    k = _compile(func, backend="emulator", pass_configs=configs)
    notes = " ".join(k.lowering_notes())
    assert re.search(r"wgmma\.m64n(128|64)k16 on 1 warpgroup", notes), notes
    src = k.get_kernel_source()
    if name == "copy_gemm_0_1":
        # each warpgroup hands its B tile to its own wgmma through a named barrier of its 128 threads
        assert src.count("tw::named_barrier((uint32_t)(1), (uint32_t)(128))") == 1, src
        assert src.count("tw::named_barrier((uint32_t)(2), (uint32_t)(128))") == 1, src
    else:
        # producer and consumer meet only at mbarriers: no block-wide barrier inside the K loop
        loop = src[src.index("for (int32_t ko"):]
        assert "__syncthreads" not in loop, loop


def test_steady_state_of_the_consumer_is_wgmma_on_tma_data():
    k = _compile(W.matmul_barrierpipe_tma.get_tir(1024, 1024, 1024, 128, 128, 64), backend="emulator")
    mix = instruction_mix(k.get_sass(), ["HGMMA", "UTMALDG", "SYNCS", "HMMA", "LDGSTS", "BAR"])
    assert mix["HGMMA"] and mix["UTMALDG"] and mix["SYNCS"], mix
    assert mix["HMMA"] == mix["LDGSTS"] == 0, mix


@pytest.mark.parametrize("disable_tma", [False, True], ids=["tma", "thread-copies"])
def test_register_budgets_and_thread_copies_in_the_ptx_interpreter(disable_tma, nvrtc_check):
    """The producer gives registers back (setmaxnreg.dec 40), the consumer takes them
    (setmaxnreg.inc 232); with thread copies the producer fences its writes for wgmma before it
    arrives (the PTX interpreter reports a missing fence)."""
    configs = {"tl.disable_tma_lower": True} if disable_tma else None
    func = W.ws_gemm_variant(200, 136, 320, producer_regs=40, consumer_regs=232)
    k = _compile(func, pass_configs=configs)
    src = k.get_kernel_source()
    assert "tw::setmaxnreg_dec<40>()" in src and "tw::setmaxnreg_inc<232>()" in src
    assert "__launch_bounds__(256, 1)" in src  # ptxas must know the registers at entry
    if disable_tma:
        arrive = src.index("tw::mbarrier_arrive((&full[0]))")
        assert "tw::fence_proxy_async();" in src[arrive - 200:arrive], src
    a, b, ref = _inputs(200, 136, 320)
    _check(k(a, b), ref)
    nvrtc_check(func, expect={"sm_90a": ("HGMMA", "SYNCS")}, archs=("sm_90a",), pass_configs=configs)


# ---------------------------------------------------------------------------- each primitive's lowering


def _source(func, target=SM90A, pass_configs=None) -> str:
    return tilewise.lower(func, target=target).kernel_source if pass_configs is None else \
        tilewise.compile(func, target=target, execution_backend="emulator", pass_configs=pass_configs).get_kernel_source()


def primitives(kind: str, threads=256):
    """One primitive (or a few) in a small warp-specialised kernel; `kind` picks which, while parsing."""

    @T.prim_func
    def main(A: T.Tensor((128, 64), "float16"), B: T.Tensor((128, 64), "float16")):
        with T.Kernel(1, threads=threads):
            S = T.alloc_shared((128, 64), "float16")
            if kind == "list":
                T.create_list_of_mbarrier(128, 64)
                with T.ws(1):
                    T.mbarrier_arrive(1)
                    T.mbarrier_wait_parity(T.get_mbarrier(0), 0)
                with T.ws(0):
                    T.mbarrier_arrive(0)
                    T.mbarrier_wait_parity(1, 0)
            else:
                if kind != "named":
                    bars = T.alloc_barrier([128, 128, 1])
                tx = T.get_thread_binding()
                if kind == "mbarriers":
                    with T.ws(1):
                        T.mbarrier_expect_tx(bars[2], 0)
                        T.mbarrier_arrive_expect_tx(bars[2], 0)
                        T.copy(A, S)
                        T.barrier_arrive(bars[0])
                        for k in T.serial(3):
                            T.mbarrier_wait_parity(bars[1], k)
                    with T.ws(0):
                        T.barrier_wait(bars[0], 0)
                        T.copy(S, B)
                        T.mbarrier_arrive(bars[1])
                elif kind == "tma_copy":
                    with T.ws(1):
                        T.tma_copy(A, S, barrier=bars[0])
                        T.mbarrier_arrive(bars[0])
                    with T.ws(0):
                        T.mbarrier_wait_parity(bars[0], 0)
                        T.copy(S, B)
                elif kind == "nreg":
                    with T.ws(1):
                        T.set_max_nreg(40, 0)
                        T.copy(A, S)
                        T.mbarrier_arrive(bars[0])
                    with T.ws(0):
                        T.set_max_nreg(232, 1)
                        T.barrier_wait(bars[0], 0)
                        T.copy(S, B)
                elif kind == "fences":
                    if tx < 128:
                        for i, j in T.Parallel(128, 64):
                            S[i, j] = A[i, j]
                        T.fence_proxy_async()
                        T.warpgroup_arrive()
                        T.warpgroup_commit_batch()
                        T.wait_wgmma(0)
                        T.warpgroup_wait(1)
                        T.tma_store_arrive()
                        T.tma_store_wait(0)
                        T.mbarrier_arrive(bars[0])
                    else:
                        T.barrier_wait(bars[0], 0)
                        T.copy(S, B)
                elif kind == "named":
                    with T.ws(1):
                        for i, j in T.Parallel(128, 64):
                            S[i, j] = A[i, j] * 2
                        T.named_barrier_arrive(1, 256)
                    with T.ws(0):
                        T.sync_threads(1, 256)
                        for i, j in T.Parallel(128, 64):
                            B[i, j] = S[127 - i, j]
                        T.sync_threads()
                    T.sync_threads(3)
                elif kind == "ws_ranges":
                    with T.ws(0, 1):
                        T.copy(A, S)
                    with T.ws(2):
                        T.sync_threads()
                    with T.ws(0, 2):
                        T.mbarrier_arrive(bars[0])
                    T.copy(S, B)

    return main


def test_barriers_are_initialised_once_at_the_kernel_start():
    src = _source(primitives("mbarriers"))
    body = src[src.index("__global__"):]
    init = body.rindex("if ((tx == 0)) {", 0, body.index("tw::mbarrier_init((&bars"))
    block = body[init:body.index("__syncthreads();", init)]
    # one thread initialises every barrier with its count, fences the initialisation for the
    # asynchronous proxy, then the block synchronises, before any other statement of the kernel
    assert "tw::mbarrier_init((&bars[0]), (uint32_t)(128));" in block
    assert "tw::mbarrier_init((&bars[1]), (uint32_t)(128));" in block
    assert "tw::mbarrier_init((&bars[2]), (uint32_t)(1));" in block
    assert "tw::fence_barrier_init();" in block
    assert body.index("tw::mbarrier_init") < body.index("if ((tx >= 128))")
    # barriers are 8-byte elements of shared memory that no other tile reuses
    assert re.search(r"uint64_t\* bars = \(uint64_t\*\)\(?smem", body)


def test_mbarrier_primitives_render():
    src = _source(primitives("mbarriers"))
    assert "tw::mbarrier_expect_tx((&bars[2]), (uint32_t)(0));" in src
    assert "tw::mbarrier_arrive_expect_tx((&bars[2]), (uint32_t)(0));" in src
    assert "tw::mbarrier_arrive((&bars[0]));" in src and "tw::mbarrier_arrive((&bars[1]));" in src
    assert "tw::mbarrier_wait((&bars[0]), (uint32_t)(0));" in src
    assert "tw::mbarrier_wait((&bars[1]), (uint32_t)((k & 1)));" in src  # only the parity's low bit counts


def test_barrier_list_and_ids():
    src = _source(primitives("list"))
    assert "tw::mbarrier_init((&mbarrier_list[0]), (uint32_t)(128));" in src
    assert "tw::mbarrier_init((&mbarrier_list[1]), (uint32_t)(64));" in src
    assert "tw::mbarrier_arrive((&mbarrier_list[1]));" in src and "tw::mbarrier_arrive((&mbarrier_list[0]));" in src
    assert "tw::mbarrier_wait((&mbarrier_list[0]), (uint32_t)(0));" in src
    assert "tw::mbarrier_wait((&mbarrier_list[1]), (uint32_t)(0));" in src


def test_ws_blocks_are_thread_ranges():
    src = _source(primitives("ws_ranges", threads=384))
    assert "if ((tx < 256)) {" in src  # warpgroups 0 and 1
    assert "if ((tx >= 256)) {" in src  # warpgroup 2 (the last)
    assert "if (((tx < 128) || (tx >= 256))) {" in src  # two runs of warpgroups
    # the copy inside T.ws(0, 1) is spread over its 256 threads; __syncthreads inside T.ws(2) is a
    # named barrier of its 128 threads
    assert "tw::named_barrier((uint32_t)(1), (uint32_t)(128));" in src


def test_tma_copy_renders_expect_tx_and_the_boxes_on_the_programs_barrier():
    src = _source(primitives("tma_copy"))
    first = src.index("if (((tx - 128) == 0)) {")
    issue = src[first:src.index("}", first)]
    assert "tw::mbarrier_expect_tx((&bars[0]), (uint32_t)(16384));" in issue
    assert "tw::tma_load_2d(" in issue and "(&bars[0])" in issue
    # no wait of its own: the consumer waits for the program's barrier
    producer = src[src.index("if ((tx >= 128)) {"):src.index("if ((tx < 128)) {")]
    assert "mbarrier_wait" not in producer


def test_register_budgets_render_and_drop_where_there_is_no_setmaxnreg():
    src = _source(primitives("nreg"))
    assert "tw::setmaxnreg_dec<40>();" in src and "tw::setmaxnreg_inc<232>();" in src
    assert "__launch_bounds__(256, 1)" in src
    k = _compile(primitives("nreg"), target="cuda -arch=sm_90", backend="emulator", out_idx=())
    assert "setmaxnreg" not in k.get_kernel_source()
    assert any("T.set_max_nreg" in n and "dropped on sm_90" in n for n in k.lowering_notes()), k.lowering_notes()


def test_fences_and_wgmma_groups_render():
    src = _source(primitives("fences"))
    for s in ("tw::fence_proxy_async();", "tw::wgmma_fence();", "tw::wgmma_commit();", "tw::wgmma_wait<0>();",
              "tw::wgmma_wait<1>();", "tw::tma_store_commit();", "tw::tma_store_wait<0>();"):
        assert s in src, s
    k = _compile(primitives("fences"), target="cuda -arch=sm_90", backend="emulator", out_idx=())
    src90 = k.get_kernel_source()
    assert "wgmma" not in src90 and "tw::fence_proxy_async();" in src90  # sm_90 has TMA, not wgmma


def test_named_barriers_render_and_hand_over_between_warpgroups():
    func = primitives("named")
    src = _source(func)
    assert "tw::named_barrier_arrive((uint32_t)(1), (uint32_t)(256));" in src
    assert "tw::named_barrier((uint32_t)(1), (uint32_t)(256));" in src
    assert "tw::named_barrier((uint32_t)(3), (uint32_t)(256));" in src  # T.sync_threads(3): the whole block
    # T.sync_threads() inside T.ws(0) waits for that warpgroup only: a named barrier of its own id
    assert "tw::named_barrier((uint32_t)(2), (uint32_t)(128));" in src
    # the program hands S over itself: no block-wide barrier between the warpgroups
    assert "__syncthreads" not in src
    k = _compile(func, out_idx=[1])
    a = (np.random.default_rng(3).standard_normal((128, 64))).astype(np.float16)
    np.testing.assert_array_equal(k(a), (a * 2)[::-1])


def thread_indices(warp_size=None, per_group=None, elect=64):
    @T.prim_func
    def main(O: T.Tensor((256, 6), "int32")):
        with T.Kernel(1, threads=256):
            tx = T.get_thread_binding()
            O[tx, 0] = T.get_warp_group_idx()
            O[tx, 1] = T.get_warp_idx()
            O[tx, 2] = T.get_lane_idx()
            O[tx, 3] = T.get_warp_idx_sync()
            O[tx, 4] = T.if_then_else(T.shuffle_elect(elect), 1, 0)
            O[tx, 5] = T.get_warp_group_idx(warp_size, per_group) if per_group else T.get_lane_idx(warp_size)

    return main


@pytest.mark.parametrize("target", ["cpu", SM90A])
def test_thread_index_helpers(target):
    t = np.arange(256)
    if target == "cpu":
        with pytest.warns(UserWarning, match="thread-exactly"):
            k = tilewise.compile(thread_indices(16, 2, elect=0), out_idx=[0], target="cpu")
        extra, elect = t // 32, t == 0
    else:
        k = tilewise.compile(thread_indices(64), out_idx=[0], target=target, execution_backend="ptx")
        extra, elect = t % 64, t % 64 == 0
    out = k()
    out = out.numpy() if hasattr(out, "numpy") else out
    np.testing.assert_array_equal(out, np.stack([t // 128, t // 32, t % 32, t // 32, elect, extra], axis=1))


# ---------------------------------------------------------------------------- bad uses


def bad(kind: str, threads=256):
    @T.prim_func
    def main(A: T.Tensor((128, 64), "float16"), B: T.Tensor((128, 64), "float16")):
        with T.Kernel(1, threads=threads):
            S = T.alloc_shared((128, 64), "float16")
            n = T.alloc_var("int32", 1)
            tx = T.get_thread_binding()
            bar = T.alloc_barrier(128)
            if kind == "count_zero":
                T.alloc_barrier(0)
            elif kind == "count_huge":
                T.alloc_barrier(1 << 20)
            elif kind == "count_empty":
                T.alloc_barrier([])
            elif kind == "count_dynamic":
                T.alloc_barrier(n)
            elif kind == "list_twice":
                T.create_list_of_mbarrier(128)
                T.create_list_of_mbarrier(128)
            elif kind == "id_out_of_list":
                T.create_list_of_mbarrier(128, 128)
                T.mbarrier_arrive(2)
            elif kind == "id_without_list":
                T.get_mbarrier(0)
            elif kind == "not_a_barrier":
                T.mbarrier_wait_parity(S, 0)
            elif kind == "not_a_barrier_element":
                T.barrier_arrive(S[0, 0])
            elif kind == "no_parity":
                T.barrier_wait(bar)
            elif kind == "float_parity":
                T.mbarrier_wait_parity(bar, 0.5)
            elif kind == "cluster":
                T.mbarrier_arrive(bar, cta_id=1)
            elif kind == "tx_negative":
                T.mbarrier_expect_tx(bar, -16)
            elif kind == "tx_huge":
                T.mbarrier_arrive_expect_tx(bar, 1 << 20)
            elif kind == "ws_missing":
                with T.ws(2):
                    T.copy(A, S)
            elif kind == "ws_empty":
                with T.ws():
                    T.copy(A, S)
            elif kind == "ws_negative":
                with T.ws(-1):
                    T.copy(A, S)
            elif kind == "ws_dynamic":
                with T.ws(n):
                    T.copy(A, S)
            elif kind == "nreg_step":
                T.set_max_nreg(236, 1)
            elif kind == "nreg_low":
                T.dec_max_nreg(16)
            elif kind == "nreg_high":
                T.inc_max_nreg(264)
            elif kind == "nreg_inc":
                T.set_max_nreg(240, 2)
            elif kind == "nreg_dynamic":
                T.inc_max_nreg(n)
            elif kind == "nreg_partial":
                if tx < 64:
                    T.dec_max_nreg(40)
            elif kind == "wgmma_wait_partial":
                if tx >= 32 and tx < 160:
                    T.wait_wgmma(0)
            elif kind == "wait_negative":
                T.wait_wgmma(-1)
            elif kind == "sync_id":
                T.sync_threads(16)
            elif kind == "sync_count":
                T.sync_threads(1, 100)
            elif kind == "sync_too_many":
                T.sync_threads(1, 512)
            elif kind == "sync_zero_partial":
                T.sync_threads(0, 128)
            elif kind == "sync_count_alone":
                T.sync_threads(arrive_count=128)
            elif kind == "arrive_count":
                T.named_barrier_arrive(2, 48)
            elif kind == "lane_zero":
                S[0, 0] = T.get_lane_idx(0)
            elif kind == "group_without_warp":
                S[0, 0] = T.get_warp_group_idx(warps_per_group=2)
            elif kind == "elect_negative":
                S[0, 0] = T.if_then_else(T.shuffle_elect(-1), 1, 0)
            elif kind == "tma_copy_no_barrier":
                T.tma_copy(A, S)
            elif kind == "tma_copy_store":
                T.tma_copy(S, B, barrier=bar)
            elif kind == "tma_copy_cluster":
                T.tma_copy(A, S, barrier=bar, cluster_mask=3)
            elif kind == "tma_copy_partial":
                T.tma_copy(A[0:64, 0:64], S[0:64, 0:64], barrier=bar)
            elif kind == "tma_store_wait":
                T.tma_store_wait(0, read=False)
            elif kind == "tma_load":
                T.tma_load(0, bar, S, 0, 0)
            elif kind == "descriptor":
                T.create_tma_descriptor(6, 2, A, 64, 128, 2, 128, 64, 300, 1, 1, 0, 3, 2, 0)
            elif kind == "fragment_two_ranges":
                F = T.alloc_fragment((128, 64), "float32")
                with T.ws(0):
                    T.clear(F)
                with T.ws(1):
                    T.copy(F, S)
            elif kind == "fragment_part_warp":
                F = T.alloc_fragment((64, 64), "float32")
                if tx < 48:
                    T.clear(F)
                    T.copy(F, S[0:64, :])
            T.copy(S, B)

    return main


BAD = [
    ("count_zero", r"T.alloc_barrier: an arrival count must be from 1 to 1048575, got 0"),
    ("count_huge", r"must be from 1 to 1048575, got 1048576"),
    ("count_empty", r"T.alloc_barrier: no arrival counts given"),
    ("count_dynamic", r"T.alloc_barrier: an arrival count must be a compile-time constant"),
    ("list_twice", r"T.create_list_of_mbarrier is called twice"),
    ("id_out_of_list", r"T.get_mbarrier: the barrier id must be from 0 to 1, got 2"),
    ("id_without_list", r"the kernel has no T.create_list_of_mbarrier list"),
    ("not_a_barrier", r"T.mbarrier_wait_parity: S is not an mbarrier"),
    ("not_a_barrier_element", r"T.barrier_arrive: S is not an mbarrier"),
    ("no_parity", r"T.barrier_wait: the parity \(0 or 1\) of the phase to wait for is missing"),
    ("float_parity", r"T.barrier_wait|T.mbarrier_wait_parity: the parity must be an integer"),
    ("cluster", r"cta_id=1\): cluster barriers are not supported"),
    ("tx_negative", r"T.mbarrier_expect_tx: the transaction byte count must be from 0 to"),
    ("tx_huge", r"T.mbarrier_arrive_expect_tx: the transaction byte count must be from 0 to 1048575"),
    ("ws_missing", r"T.ws\(2\): the block's 256 threads form 2 warpgroup\(s\) of 128, so warpgroup 2 does not exist"),
    ("ws_empty", r"T.ws\(\) needs at least one warpgroup index"),
    ("ws_negative", r"T.ws: a warpgroup index must be at least 0, got -1"),
    ("ws_dynamic", r"T.ws: a warpgroup index must be a compile-time constant"),
    ("nreg_step", r"the register count must be a multiple of 8, got 236"),
    ("nreg_low", r"T.set_max_nreg: the register count must be from 24 to 256, got 16"),
    ("nreg_high", r"must be from 24 to 256, got 264"),
    ("nreg_inc", r"T.set_max_nreg: is_inc must be from 0 to 1, got 2"),
    ("nreg_dynamic", r"the register count must be a compile-time constant"),
    ("nreg_partial", r"T.set_max_nreg .* is executed by every thread of a warpgroup together, but here only threads "
                     r"0-63 run it"),
    ("wgmma_wait_partial", r"T.wait_wgmma .* but here only threads 32-159 run it"),
    ("wait_negative", r"T.wait_wgmma: the number of groups left in flight must be at least 0, got -1"),
    ("sync_id", r"T.sync_threads: the barrier id must be from 0 to 15, got 16"),
    ("sync_count", r"T.sync_threads: the thread count must be a multiple of 32 \(whole warps\), got 100"),
    ("sync_too_many", r"T.sync_threads: the thread count must be from 32 to 256, got 512"),
    ("sync_count_alone", r"arrive_count=128 without a barrier id"),
    ("sync_zero_partial", r"T.sync_threads: barrier 0 is __syncthreads' \(all 256 threads of the block\); use ids 1-15"),
    ("arrive_count", r"T.named_barrier_arrive: the thread count must be a multiple of 32"),
    ("lane_zero", r"T.get_lane_idx: warp_size must be at least 1, got 0"),
    ("group_without_warp", r"T.get_warp_group_idx expects warp_size when warps_per_group is given"),
    ("elect_negative", r"T.shuffle_elect: thread_extent must be at least 0, got -1"),
    ("tma_copy_no_barrier", r"T.tma_copy: barrier= is required"),
    ("tma_copy_store", r"T.tma_copy copies from global to shared memory \(S is shared.dyn, B is global\)"),
    ("tma_copy_cluster", r"T.tma_copy: cluster_mask= \(multicast in a thread-block cluster\) is not supported"),
    ("tma_copy_partial", r"T.tma_copy A -> S cannot run on the copy engine \(TMA\): the shared side is a part of S"),
    ("tma_store_wait", r"T.tma_store_wait\(read=False\)"),
    # the raw TMA primitives themselves: tests/language/test_tma_descriptors.py
    ("tma_load", r"T.tma_load: the first argument must be a descriptor from T.create_tma_descriptor\(...\), got int 0"),
    ("descriptor", r"T.create_tma_descriptor: box_dim\[1\] must be from 1 to 256, got 300"),
    ("fragment_two_ranges", r"fragment F is used by threads 128-255 here but by threads 0-127 at"),
    ("fragment_part_warp", r"fragment F is used inside an `if` that keeps threads 0-47, which are not whole warps"),
]


@pytest.mark.parametrize("kind, message", BAD, ids=[k for k, _ in BAD])
def test_bad_uses_are_compile_errors_at_their_line(kind, message):
    with pytest.raises(tilewise.CompileError) as e:
        tilewise.lower(bad(kind), target=SM90A)
    assert re.search(message, str(e.value)), str(e.value)
    # the error names the user's line (this file), not the compiler's
    assert "test_hopper_primitives.py:" in str(e.value).splitlines()[0], str(e.value)


@pytest.mark.parametrize("kind, target, message", [
    ("mbarriers", "cuda -arch=sm_80", r"T.mbarrier_expect_tx: the mbarrier tx-count \(expect_tx\) needs sm_90 or "
                                      r"newer; the target is sm_80"),
    ("tma_copy", "cuda -arch=sm_86", r"T.tma_copy needs the copy engine \(TMA\) of sm_90; the target is sm_86"),
])
def test_primitives_the_target_lacks_are_compile_errors(kind, target, message):
    with pytest.raises(tilewise.CompileError, match=message) as e:
        tilewise.lower(primitives(kind), target=target)
    assert "test_hopper_primitives.py:" in str(e.value)


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_tilelang_warp_specialize_examples_on_the_cpu(name):
    """The CPU target runs kernels that program threads in the emulator: as sm_90a when they wait on
    mbarriers or copy with TMA (sm_80 has neither), as sm_80 otherwise (named barriers)."""
    M, N, K = 136, 200, 320
    f = EXAMPLES[name]
    with pytest.warns(UserWarning, match="thread-exactly in the CUDA emulator"):
        k = tilewise.compile(f.get_tir(M, N, K, 128, 128, 64), target="cpu")
    assert k.build.machine.name == ("sm_80" if name == "copy_gemm_0_1" else "sm_90a")
    a, b, ref = _inputs(M, N, K)
    c = np.zeros((M, N), np.float16)
    k(a, b, c)
    _check(c, ref)


def test_mbarriers_without_tx_count_lower_on_sm80():
    """mbarriers (init, arrive, the parity wait) are Ampere's; only their tx-count is Hopper's."""
    src = tilewise.lower(primitives("list"), target="cuda -arch=sm_86").kernel_source
    assert "tw::mbarrier_wait(" in src and "fence_barrier_init" not in src


def test_named_barriers_run_on_the_cpu():
    """bar.arrive / bar.sync between the warpgroups and T.sync_threads() inside T.ws(0): the CPU
    target runs them in the emulator, which schedules the warps apart
    (tests/backend/cpu/test_named_barriers.py has more)."""
    a = np.random.default_rng(0).standard_normal((128, 64)).astype(np.float16)
    b = np.zeros_like(a)
    with pytest.warns(UserWarning, match="thread-exactly"):
        k = tilewise.compile(primitives("named"), target="cpu")
    k(a, b)
    np.testing.assert_array_equal(b, (a * 2)[::-1])


def test_ws_kernels_with_compiler_named_barriers_run_on_the_cpu():
    a, b, ref = _inputs(128, 128, 128)
    with pytest.warns(UserWarning, match="thread-exactly"):
        k = tilewise.compile(W.matmul_warp_specialize_copy_gemm_0_1.get_tir(128, 128, 128, 128, 128, 64), target="cpu")
    c = np.zeros((128, 128), np.float16)
    k(a, b, c)
    _check(c, ref)


# ---------------------------------------------------------------------------- pipelines and warpgroups


def gemm_per_warpgroup(M, N, K, stages, outer_pipeline: bool):
    """Each warpgroup computes half of the columns from its own pipelined K loop (inside T.ws), or
    one T.Pipelined loop at block level copies A for both (the compiler's TMA pipeline) and each
    warpgroup copies its B half inside its T.ws block."""
    bm, bn, bk = 128, 128, 64

    @T.prim_func
    def main(A: T.Tensor((M, K), "float16"), B: T.Tensor((K, N), "float16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=256) as (bx, by):
            A_s = T.alloc_shared((bm, bk), "float16")
            A_s1 = T.alloc_shared((bm, bk), "float16")
            B_s0 = T.alloc_shared((bk, bn // 2), "float16")
            B_s1 = T.alloc_shared((bk, bn // 2), "float16")
            C0 = T.alloc_fragment((bm, bn // 2), "float32")
            C1 = T.alloc_fragment((bm, bn // 2), "float32")
            if outer_pipeline:
                with T.ws(0):
                    T.clear(C0)
                with T.ws(1):
                    T.clear(C1)
                for ko in T.Pipelined(T.ceildiv(K, bk), num_stages=stages):
                    T.copy(A[by * bm, ko * bk], A_s)
                    with T.ws(0):
                        T.copy(B[ko * bk, bx * bn], B_s0)
                        T.gemm(A_s, B_s0, C0)
                    with T.ws(1):
                        T.copy(B[ko * bk, bx * bn + bn // 2], B_s1)
                        T.gemm(A_s, B_s1, C1)
            else:
                with T.ws(0):
                    T.clear(C0)
                    for ko in T.Pipelined(T.ceildiv(K, bk), num_stages=stages):
                        T.copy(A[by * bm, ko * bk], A_s)
                        T.copy(B[ko * bk, bx * bn], B_s0)
                        T.gemm(A_s, B_s0, C0)
                with T.ws(1):
                    T.clear(C1)
                    for ko in T.Pipelined(T.ceildiv(K, bk), num_stages=stages):
                        T.copy(A[by * bm, ko * bk], A_s1)
                        T.copy(B[ko * bk, bx * bn + bn // 2], B_s1)
                        T.gemm(A_s1, B_s1, C1)
            with T.ws(0):
                T.copy(C0, C[by * bm, bx * bn])
            with T.ws(1):
                T.copy(C1, C[by * bm, bx * bn + bn // 2])

    return main


@pytest.mark.parametrize("arch", ["sm_90a", "sm_80"])
@pytest.mark.parametrize("outer", [True, False], ids=["block-pipeline", "pipelines-in-ws"])
def test_pipelines_around_and_inside_warpgroup_blocks(outer, arch):
    """T.ws without mbarriers: on sm_90a wgmma per warpgroup and TMA, on sm_80 mma.sync per
    warpgroup and cp.async pipelines inside the T.ws blocks."""
    M, N, K = 200, 136, 320
    k = _compile(gemm_per_warpgroup(M, N, K, 3, outer), target=f"cuda -arch={arch}")
    notes = " ".join(k.lowering_notes())
    if arch == "sm_80":
        assert notes.count("T.gemm 128x64x64: mma.sync") == 2, notes
    elif outer:
        assert "completing on its pipeline stage's mbarrier" in notes, notes  # A through the compiler's pipeline
    else:
        assert "runs on part of the block's threads" in notes, notes  # each warpgroup's loop runs as written
    if arch == "sm_90a":
        assert notes.count("wgmma.m64n64k16 on 1 warpgroup") == 2, notes
    rng = np.random.default_rng(5)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    np.testing.assert_allclose(k(a, b), a.astype(np.float64) @ b.astype(np.float64), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("producer, consumers", [(2, (0, 1)), (0, (1, 2))], ids=["producer-last", "producer-first"])
def test_two_consumer_warpgroups_split_the_tile(producer, consumers, nvrtc_check):
    """FlashAttention-3's arrangement: one producer warpgroup, two consumer warpgroups sharing one
    accumulator tile (wgmma over 2 warpgroups), register budgets moved to them."""
    func = W.ws_gemm_variant(200, 136, 320, producer=producer, consumers=consumers, producer_regs=40,
                             consumer_regs=232)
    k = _compile(func)
    assert any(re.search(r"wgmma\.m64n\d+k16 on 2 warpgroup\(s\)", n) for n in k.lowering_notes()), k.lowering_notes()
    a, b, ref = _inputs(200, 136, 320)
    _check(k(a, b), ref)
    nvrtc_check(func, expect={"sm_90a": ("HGMMA", "SYNCS")}, archs=("sm_90a",))


# ---------------------------------------------------------------------------- seeded bugs


def _header_edit(old: str, new: str):
    import os

    from tilewise.backend.cuda.toolkit import INCLUDE_DIR

    with open(os.path.join(INCLUDE_DIR, "tw_cuda.h")) as f:
        text = f.read()
    assert text.count(old) == 1, old
    return lambda src: src.replace('#include "tw_cuda.h"', text.replace(old, new))


def _source_edit(pattern: str, repl: str):
    def edit(src):
        out, n = re.subn(pattern, repl, src)
        assert n, pattern
        return out

    return edit


SEEDED = {
    # name: (edit of the generated source, program, pass configs, error the PTX interpreter raises)
    "expect-tx-dropped": (_header_edit('asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\\n"',
                                       'asm volatile("// [%0], %1\\n"'),
                          lambda: W.matmul_barrierpipe_tma.get_tir(128, 128, 192, 128, 128, 64), None, "AsyncCopyError"),
    "handover-fence-dropped": (_source_edit(r"tw::fence_proxy_async\(\);\n(\s*)tw::mbarrier_arrive\(\(&full",
                                            r"\1tw::mbarrier_arrive((&full"),
                               lambda: W.ws_gemm_variant(128, 128, 192), {"tl.disable_tma_lower": True},
                               "AsyncAccessError"),
    "warpgroup-barrier-dropped": (_source_edit(r"tw::named_barrier\(\(uint32_t\)\(1\), \(uint32_t\)\(128\)\);", ""),
                                  lambda: W.matmul_warp_specialize_copy_gemm_0_1.get_tir(128, 128, 192, 128, 128, 64),
                                  {"tl.disable_tma_lower": True}, "RaceError"),
    "producer-arrival-dropped": (_source_edit(r"tw::mbarrier_arrive\(\(&data_is_ready\[0\]\)\);", ""),
                                 lambda: W.matmul_warp_specialize_copy_1_gemm_0.get_tir(128, 128, 192, 128, 128, 64),
                                 None, "DeadlockError"),
}


@pytest.mark.parametrize("name", list(SEEDED))
def test_seeded_bugs_in_warp_specialised_code_are_caught(name):
    """Each seeded bug in what the primitives lower to is reported by the PTX interpreter."""
    from tilewise.engine.callback import register_cuda_postproc_callback, unregister_cuda_postproc_callback
    from tilewise.ptx import EmulatorError

    edit, program, configs, expect = SEEDED[name]
    register_cuda_postproc_callback(lambda code, target: edit(code))
    try:
        k = _compile(program(), pass_configs=configs)
    finally:
        unregister_cuda_postproc_callback()
    a, b, _ = _inputs(128, 128, 192)
    with pytest.raises(EmulatorError) as err:
        k(a, b)
    assert type(err.value).__name__ == expect, err.value


@pytest.mark.parametrize("shape", [(2, 64, 128), (3, 16, 256)])
def test_tma_copy_of_a_tile_with_a_leading_dimension_and_several_column_blocks(shape):
    # each leading index's (rows, cols) tile is stored whole in the swizzled layout: one box per
    # leading index and column block (a box spanning the leading dimension overwrote the next
    # column block, which the emulator reported as a TMA load into memory still in flight)
    @T.prim_func
    def g(B: T.Tensor(shape, "float16"), O: T.Tensor(shape, "float16")):
        with T.Kernel(1, threads=128):
            Bs = T.alloc_shared(shape, "float16")
            T.copy(B, Bs)
            T.copy(Bs, O)

    b = np.random.default_rng(0).standard_normal(shape).astype(np.float16)
    o = np.zeros_like(b)
    k = tilewise.compile(g, target=SM90A, execution_backend="emulator")
    k(b, o)
    np.testing.assert_array_equal(o, b)
    boxes = shape[0] * shape[2] // 64
    assert any(f"TMA, {boxes} box(es) of [1, {shape[1]}, 64]" in n for n in k.lowering_notes())
