"""The CUDA build's register fit (tilewise/backend/cuda/register_fit.py): where ptxas allocates
registers well above what is ever live, a second compile capped at the peak live count is kept
when it is no worse in registers, spills, local memory, SASS instructions and steady-state loop
instructions. Read from NVRTC's cubins (no GPU)."""
from __future__ import annotations

import json

import pytest

import tilewise
import tilewise.language as T
from tilewise import env
from tilewise.backend.cuda import inspect as sass_tools
from tilewise.backend.cuda import register_fit


def canonical_gemm(M=1024, N=1024, K=1024, bm=128, bn=128, bk=32):
    """The canonical fp16 GEMM (128x128x32 tiles, 3 stages, 128 threads): ptxas numbers its
    registers up to 224 (TileLang 0.1.15: 224 too) while at most 207 are live at once."""

    @T.prim_func
    def gemm(A: T.Tensor((M, K), "float16"), B: T.Tensor((K, N), "float16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            A_s = T.alloc_shared((bm, bk), "float16")
            B_s = T.alloc_shared((bk, bn), "float16")
            C_f = T.alloc_fragment((bm, bn), "float32")
            T.clear(C_f)
            for k in T.Pipelined(T.ceildiv(K, bk), num_stages=3):
                T.copy(A[by * bm, k * bk], A_s)
                T.copy(B[k * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_f)
            T.copy(C_f, C[by * bm, bx * bn])

    return gemm


def _facts(kernel) -> dict | None:
    path = kernel.build.entry / register_fit.FACTS_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _measures(kernel) -> tuple[dict, int, int]:
    sass = kernel.get_sass()
    loop = sass_tools.steady_state_loop(sass)
    return kernel.resource_usage(), sum(map(len, sass_tools.parse_sass(sass).values())), len(loop)


def test_capped_source_replaces_plain_launch_bounds_only():
    src = ('extern "C" __global__ void __launch_bounds__(128) a(float* x) {}\n'
           'extern "C" __global__ void __launch_bounds__(256) b(float* x) {}\n'
           'extern "C" __global__ void __launch_bounds__(384, 1) c(float* x) {}\n')
    out = register_fit.capped_source(src, {"a": 200, "c": 100})
    assert 'void __maxnreg__(200) a(' in out
    assert 'void __launch_bounds__(256) b(' in out  # not asked
    assert 'void __launch_bounds__(384, 1) c(' in out  # register budgets keep their bounds


def test_canonical_gemm_takes_the_capped_allocation():
    """sm_80: 224 registers allocated, 207 live at most; capped at 207 ptxas allocates 204 with
    the same instruction counts (total and steady-state loop) and no spills, so that cubin is
    kept. With the pass config off, the first one (224)."""
    fitted = tilewise.compile(canonical_gemm(), target="cuda -arch=sm_80", execution_backend="emulator")
    plain = tilewise.compile(canonical_gemm(), target="cuda -arch=sm_80", execution_backend="emulator",
                             pass_configs={"tl.disable_register_fit": True})
    facts = _facts(fitted)
    assert facts["kept"] == "capped", facts
    (k,) = facts["kernels"].values()
    assert k["allocated"] - k["max_live"] >= register_fit.MARGIN, facts
    assert k["cap"] == k["max_live"] and k["capped_registers"] <= k["max_live"], facts
    assert _facts(plain) is None
    (use_f, total_f, loop_f), (use_p, total_p, loop_p) = _measures(fitted), _measures(plain)
    assert use_p["registers"] == k["allocated"]
    assert use_f["registers"] == k["capped_registers"] < 224, use_f  # TileLang 0.1.15: 224
    assert use_f["spill_bytes"] == use_p["spill_bytes"] == 0
    assert total_f <= total_p and loop_f <= loop_p, (total_f, total_p, loop_f, loop_p)
    assert fitted.build.key() != plain.build.key()


def test_small_kernel_is_compiled_once():
    """A kernel of at most MIN_REGISTERS registers is neither analysed nor recompiled."""

    @T.prim_func
    def add(A: T.Tensor((1024,), "float32"), B: T.Tensor((1024,), "float32")):
        with T.Kernel(8, threads=128) as bx:
            for i in T.Parallel(128):
                B[bx * 128 + i] = A[bx * 128 + i] + 1.0

    k = tilewise.compile(add, target="cuda -arch=sm_80", execution_backend="emulator")
    facts = _facts(k)
    assert facts["kept"] == "first" and "skipped" in facts and not facts["kernels"], facts
    assert k.resource_usage()["registers"] <= register_fit.MIN_REGISTERS


def test_live_registers_read_from_the_cubin():
    """nvdisasm's live counts: positive and within the allocation, per function."""
    k = tilewise.compile(canonical_gemm(), target="cuda -arch=sm_80", execution_backend="emulator",
                         pass_configs={"tl.disable_register_fit": True})
    ((name, (allocated, peak)),) = register_fit.live_registers(k.build.binary).items()
    assert name.endswith("_kernel") and 0 < peak <= allocated == k.resource_usage()["registers"]


@pytest.mark.parametrize("flags,configs,value,on", [
    ((), {}, "1", True),
    ((), {"tl.disable_register_fit": True}, "1", False),
    ((), {}, "0", False),
    (("--maxrregcount=128",), {}, "1", False),  # the user's own limit wins
])
def test_switches(flags, configs, value, on):
    with env.override("TILEWISE_REGISTER_FIT", value):
        assert register_fit.enabled(configs, flags) is on
        assert register_fit.fingerprint().endswith("off") is (value == "0")
