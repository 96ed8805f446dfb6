"""Reductions across threads as the hardware wants them (issue 17): the warp digits of a reduced
thread mode by one shared-memory round (one read per warp of the mode), its intra-warp digits
by butterfly shuffles (in TileLang's order, warps first: tests/tileop/test_reduce_tilelang_order.py).
A softmax over a 4 x 1024 tile on 128 threads: 5 shuffle steps per row and reduction, 4 shared
reads per row."""
from __future__ import annotations

import re

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.backend.cuda.inspect import instruction_mix, parse_sass


def softmax(M=4, N=1024, threads=128):
    @T.prim_func
    def f(A: T.Tensor((M, N), "float32"), B: T.Tensor((M, N), "float32")):
        with T.Kernel(1, threads=threads):
            a = T.alloc_fragment((M, N), "float32")
            m = T.alloc_fragment((M,), "float32")
            s = T.alloc_fragment((M,), "float32")
            T.copy(A, a)
            T.reduce_max(a, m, dim=1)
            for i, j in T.Parallel(M, N):
                a[i, j] = T.exp(a[i, j] - m[i])
            T.reduce_sum(a, s, dim=1)
            for i, j in T.Parallel(M, N):
                a[i, j] = a[i, j] / s[i]
            T.copy(a, B)

    return f


@pytest.mark.parametrize("threads", [64, 128, 256])
def test_softmax_reduces_by_shuffles_then_one_shared_round(threads):
    k = tilewise.compile(softmax(threads=threads), target="cuda -arch=sm_80", execution_backend="emulator")
    a = np.random.default_rng(0).standard_normal((4, 1024)).astype(np.float32)
    b = np.zeros_like(a)
    k(a, b)
    e = np.exp(a - a.max(1, keepdims=True))
    np.testing.assert_allclose(b, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
    src = k.get_kernel_source()
    warps = threads // 32
    for name in ("m_red", "s_red"):
        read = next(ln for ln in src.splitlines() if re.search(rf"{name}\[\w+\] = .*{name}_ws\[", ln))
        assert read.count(f"{name}_ws[") == warps, read  # one read per warp of the row's threads
    mix = instruction_mix(k.get_sass(), ["SHFL", "LDS"])
    assert mix["SHFL"] == 2 * 4 * 5, mix  # 2 reductions x 4 rows x log2(32) butterfly steps


def test_accumulating_reduce_uses_the_same_shuffles():
    """T.reduce_sum(..., clear=False) adds the row sums to what the destination held: the same
    butterfly (5 SHFL per row on 128 threads) and cross-warp round as a clearing reduce."""
    M, N = 4, 1024

    @T.prim_func
    def f(A: T.Tensor((M, N), "float32"), S0: T.Tensor((M,), "float32"), S: T.Tensor((M,), "float32")):
        with T.Kernel(1, threads=128):
            a = T.alloc_fragment((M, N), "float32")
            s = T.alloc_fragment((M,), "float32")
            T.copy(A, a)
            T.copy(S0, s)
            T.reduce_sum(a, s, dim=1, clear=False)
            T.copy(s, S)

    k = tilewise.compile(f, target="cuda -arch=sm_80", execution_backend="emulator")
    rng = np.random.default_rng(1)
    a = rng.standard_normal((M, N)).astype(np.float32)
    s0 = rng.standard_normal(M).astype(np.float32)
    out = np.zeros(M, np.float32)
    k(a, s0, out)
    np.testing.assert_allclose(out, s0 + a.sum(1), rtol=1e-5, atol=1e-4)
    shfl = [i.opcode for instrs in parse_sass(k.get_sass()).values() for i in instrs if i.op == "SHFL"]
    assert len(shfl) == M * 5 and all(o.startswith("SHFL.BFLY") for o in shfl), shfl
