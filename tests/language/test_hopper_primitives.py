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
