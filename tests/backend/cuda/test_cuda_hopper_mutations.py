"""Seeded single-line bugs in the Hopper part of tw_cuda.h, in the generated wgmma functions and in
the renderer's output, each caught by running NVRTC's PTX in the interpreter: by a wrong number
against numpy or by a fault the interpreter reports. The header is inlined into the kernel source
with the bug planted (no scratch copy of the package needed), the rendered source edited as the
renderer would have printed it."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
from hopper_kernels import gemm_reference, wgmma_gemm

from tilewise.backend.cuda.nvrtc import nvrtc_compile
from tilewise.backend.cuda.renderer import render_cuda
from tilewise.backend.cuda.toolkit import INCLUDE_DIR
from tilewise.ir import dtype as dt
from tilewise.jit.runtimes import run_module_ptx
from tilewise.ptx import EmulatorError

with open(os.path.join(INCLUDE_DIR, "tw_cuda.h")) as _f:
    HEADER = _f.read()


def header(old: str, new: str):
    assert HEADER.count(old) == 1, old
    return lambda src: src.replace('#include "tw_cuda.h"', HEADER.replace(old, new))


def source(pattern: str, repl: str):
    def edit(src):
        out, n = re.subn(pattern, repl, src)
        assert n, pattern
        return out

    return edit


def run(edit, M=64, N=64, K=128, **kw):
    """The GEMM's output against numpy after the seeded edit: None if right, else what differs."""
    func = wgmma_gemm(**kw)
    mod = render_cuda(func)
    text = nvrtc_compile(edit(mod.source), "sm_90a", ptx=True).ptx
    rng = np.random.default_rng(7)
    npdt = dt.as_dtype("float16").numpy
    A = rng.integers(-4, 5, (M, K)).astype(npdt)
    B = rng.integers(-4, 5, (K, N) if kw.get("trans_b") else (N, K)).astype(npdt)
    C = np.zeros((M, N), np.float32)
    run_module_ptx(text, mod, [A, B, C], [{"M": M, "N": N, "K": K}[v.name] for v in mod.dynamic_vars])
    ref = gemm_reference(A, B, False, kw.get("trans_b", False), "float32")
    return None if np.array_equal(C, ref) else f"{np.sum(C != ref)} of {C.size} elements differ"


MUTATIONS = {
    # name: (edit, GEMM options, "values" or the error the interpreter raises)
    "tma-coordinates-swapped": (header('"%3, %4", "%2, %3", "r"(c0) TW_C "r"(c1))', '"%4, %3", "%2, %3", "r"(c0) TW_C "r"(c1))'),
                                {}, "values"),
    "desc-swizzle-mode": (header("Swizzle == 128 ? 1 : Swizzle == 64 ? 2", "Swizzle == 128 ? 2 : Swizzle == 64 ? 1"), {},
                          "values"),
    "desc-lbo-sbo-swapped": (header("((uint64_t)(LBO >> 4) << 16) | ((uint64_t)(SBO >> 4) << 32)",
                                    "((uint64_t)(SBO >> 4) << 16) | ((uint64_t)(LBO >> 4) << 32)"), {"swizzle": 0},
                             "OutOfBoundsError"),
    "desc-address-unshifted": (header("(uint64_t)((smem_addr(p) & 0x3ffffu) >> 4)", "(uint64_t)((smem_addr(p) & 0x3fffu))"),
                               {}, "OutOfBoundsError"),
    # sm_90's try_wait (the header's sm_80 branch has the same selp after test_wait)
    "try-wait-inverted": (header('try_wait.parity.shared::cta.b64 tw_done, [%1], %2;\\n"\n               "selp.u32 %0, 1, 0, tw_done;',
                                 'try_wait.parity.shared::cta.b64 tw_done, [%1], %2;\\n"\n               "selp.u32 %0, 0, 1, tw_done;'),
                          {}, "AsyncCopyError"),
    "expect-tx-dropped": (header('asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\\n"',
                                 'asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0]; // %1\\n"'), {},
                          "AsyncCopyError"),
    "init-count-off-by-one": (header('mbarrier.init.shared::cta.b64 [%0], %1;\\n" ::"r"(smem_addr(bar)), "r"(count)',
                                     'mbarrier.init.shared::cta.b64 [%0], %1;\\n" ::"r"(smem_addr(bar)), "r"(count + 1)'),
                              {}, "DeadlockError"),
    "proxy-fence-dropped": (header('asm volatile("fence.proxy.async.shared::cta;\\n" ::: "memory")',
                                   'asm volatile("fence.acq_rel.cta;\\n" ::: "memory")'), {"tma_store": True},
                            "AsyncAccessError"),
    "wgmma-wait-n-plus-1": (source(r"tw::wgmma_wait<0>", "tw::wgmma_wait<1>"), {"K": 64}, "AsyncAccessError"),
    "wgmma-accumulators-swapped": (source(r'"\+f"\(D\[0\]\), "\+f"\(D\[1\]\)', '"+f"(D[1]), "+f"(D[0])'), {}, "values"),
    "wgmma-trans-b-dropped": (source(r"_ss<0, 1>", "_ss<0, 0>"), {"trans_b": True}, "OutOfBoundsError"),
    "wait-result-ignored": (header("return done != 0;", "return true;"), {}, "AsyncCopyError"),
    "tma-map-swapped": (source(r"tw::tma_load_2d\(&A_map", "tw::tma_load_2d(&B_map"), {"N": 64}, "values"),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_hopper_mutation_is_caught(name):
    edit, kw, expect = MUTATIONS[name]
    kw = dict(kw)
    dims = {k: kw.pop(k) for k in ("M", "N", "K") if k in kw}
    if expect == "values":
        assert run(edit, **dims, **kw) is not None
    else:
        with pytest.raises(EmulatorError) as err:
            run(edit, **dims, **kw)
        assert type(err.value).__name__ == expect, err.value


def test_unmutated_baseline():
    assert run(lambda s: s.replace('#include "tw_cuda.h"', HEADER)) is None
    assert run(lambda s: s, trans_b=True, tma_store=True) is None
