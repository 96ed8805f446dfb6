"""Hopper warp specialisation (transform/inject_pipeline.py plans it, transform/warp_specialize.py
splits the roles): a TMA producer warpgroup and the consumer warpgroups handing stages over
through full/empty mbarriers, with setmaxnreg. Checked on what NVRTC compiled (the PTX
interpreter against numpy, SASS) and on the thread IR."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.backend.cuda.inspect import instruction_mix
from tilewise.backend.cuda.nvrtc import nvrtc_compile
from tilewise.ir.stmt import Evaluate, IfThenElse
from tilewise.ir.visitor import walk
from tilewise.jit.build import walk_kernels
from tilewise.transform.warp_specialize import MAX_CONSUMER_REGS, REGISTER_FILE, register_budgets

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tileop"))
from test_hopper import _inputs, gemm  # noqa: E402


def _load(rel: str):
    spec = importlib.util.spec_from_file_location("ws_" + rel.replace("/", "_")[:-3], ROOT / "examples" / rel)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _compile(func, backend="ptx", **configs):
    return tilewise.compile(func, out_idx=[-1], target="cuda -arch=sm_90a", execution_backend=backend,
                            pass_configs=configs or None)


def _kernel(k):
    (kern,) = walk_kernels(k.build.lowered)
    return kern


def _calls(node) -> list:
    out = []
    walk(node, lambda n: out.append(n.value) if isinstance(n, Evaluate) else None)
    return out


@pytest.mark.parametrize("consumers", [128, 256, 384])
def test_register_budgets_fit_the_register_file(consumers):
    dec, inc = register_budgets(consumers)
    total = consumers + 128
    assert dec == 40 and 24 <= inc <= 240 and inc % 8 == 0
    at_launch = min(256, REGISTER_FILE // total // 8 * 8)
    assert dec * 128 + inc * consumers <= at_launch * total <= REGISTER_FILE
    assert inc > at_launch or inc == MAX_CONSUMER_REGS  # the consumers gain what the producer gives up


def test_gemm_thread_ir_has_the_two_roles():
    k = _compile(gemm(256, 256, 192), backend="emulator")
    kern = _kernel(k)
    assert kern.attrs["warp_specialized"] and kern.threads[0] == 256
    assert kern.attrs["register_budgets"] == {"producer": 40, "consumer": 240}
    splits = []
    walk(kern.body, lambda n: splits.append(n) if isinstance(n, IfThenElse) and n.else_body is not None
         and "128" in repr(n.cond) else None)
    assert splits, kern.body
    prod, cons = splits[0].then_body, splits[0].else_body
    pc, cc = [c.name for c in _calls(prod)], [c.name for c in _calls(cons)]
    assert pc[0] == "setmaxnreg" and "tma_load" in pc and "mbarrier_arrive_expect_tx" in pc and "wgmma" not in pc
    assert cc[0] == "setmaxnreg" and "wgmma" in cc and "mbarrier_arrive" in cc and "tma_load" not in cc
    assert "syncthreads" not in cc  # the consumers' barriers are named barriers over their threads


def test_pass_configs_turn_it_off():
    off = _kernel(_compile(gemm(256, 256, 192), backend="emulator", **{"tl.disable_warp_specialized": True}))
    assert not off.attrs.get("warp_specialized") and off.threads[0] == 128
    noreg = _kernel(_compile(gemm(256, 256, 192), backend="emulator", **{"tl.disable_warp_group_reg_alloc": True}))
    assert noreg.attrs["warp_specialized"] and "register_budgets" not in noreg.attrs
    assert "setmaxnreg" not in [c.name for c in _calls(noreg.body)]


def test_in_kernel_switch_keeps_the_registers():
    M = N = K = 128

    @T.prim_func
    def main(A: T.Tensor((M, K), "float16"), B: T.Tensor((K, N), "float16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(1, 1, threads=128):
            T.disable_warp_group_reg_alloc()
            A_s = T.alloc_shared((128, 64), "float16")
            B_s = T.alloc_shared((64, 128), "float16")
            C_l = T.alloc_fragment((128, 128), "float32")
            T.clear(C_l)
            for k in T.Pipelined(2, num_stages=2):
                T.copy(A[0, k * 64], A_s)
                T.copy(B[k * 64, 0], B_s)
                T.gemm(A_s, B_s, C_l)
            T.copy(C_l, C[0, 0])

    k = _compile(main)
    assert _kernel(k).attrs["warp_specialized"] and "register_budgets" not in _kernel(k).attrs
    a, b, ref = _inputs(M, N, K)
    np.testing.assert_allclose(k(a, b), ref, rtol=1e-3, atol=1e-2)


@pytest.mark.parametrize("backend", ["ptx", "emulator"])
@pytest.mark.parametrize("M,N,K", [(128, 128, 64), (256, 256, 192), (200, 136, 456), (64, 72, 8)])
def test_gemm_against_numpy(M, N, K, backend):
    """K loops of 1, 3 (= stages), 8 (slots reused: the producer waits on "empty") and a ragged
    one, on tiles that do not divide the matrices; in the PTX interpreter (what NVRTC compiled)
    and in the emulator (which schedules the producer and consumer warpgroups)."""
    k = _compile(gemm(M, N, K), backend=backend)
    a, b, ref = _inputs(M, N, K)
    np.testing.assert_allclose(k(a, b), ref, rtol=1e-3, atol=1e-2)


def test_gemm_sass_uses_setmaxnreg():
    k = _compile(gemm(4096, 4096, 4096), backend="emulator")
    out = nvrtc_compile(k.get_kernel_source(), "sm_90a")
    assert "setmaxnreg" not in out.log and "serialized" not in out.log, out.log
    mix = instruction_mix(k.get_sass(), ["HGMMA", "UTMALDG", "SYNCS", "USETMAXREG", "HMMA"])
    assert mix["HGMMA"] and mix["UTMALDG"] and mix["SYNCS"] and mix["USETMAXREG"] == 2 and not mix["HMMA"], mix


@pytest.mark.parametrize("dim", [64, 128])
def test_flash_attention_warp_specialised(dim, nvrtc_check):
    fa = _load("flash_attention/example_mha_fwd_bshd.py")
    big = fa.flashattn_fwd(1, 8, 1024, dim, False)
    assert _kernel(_compile(big, backend="emulator")).attrs.get("warp_specialized")
    use = nvrtc_check(big, expect=("HGMMA", "UTMALDG", "SYNCS", "USETMAXREG"), archs=("sm_90a",))
    assert use["sm_90a"]["spill_bytes"] == 0, use
    small = fa.flashattn_fwd(1, 1, 200, dim, True)
    k = tilewise.compile(small, out_idx=[3], target="cuda -arch=sm_90a", execution_backend="emulator")
    assert _kernel(k).attrs.get("warp_specialized")
    rng = np.random.default_rng(0)
    q, kk, v = (rng.standard_normal((1, 200, 1, dim)).astype(np.float16) for _ in range(3))
    import torch

    ref = fa.ref_program(*(torch.from_numpy(x) for x in (q, kk, v)), True).float().numpy()
    np.testing.assert_allclose(k(q, kk, v).astype(np.float32), ref, rtol=2e-2, atol=2e-2)


def test_mla_decode_at_deepseek_dims_warp_specialised(nvrtc_check):
    mla = _load("deepseek_mla/example_mla_decode.py")
    func = mla.mla_decode(1, 64, 256, 512, 64, num_stages=2)
    assert _kernel(_compile(func, backend="emulator")).attrs.get("warp_specialized")
    use = nvrtc_check(func, expect=("HGMMA", "UTMALDG", "USETMAXREG"), archs=("sm_90a",))
    assert use["sm_90a"]["spill_bytes"] == 0, use
