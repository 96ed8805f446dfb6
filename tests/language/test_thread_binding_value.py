"""`kr = T.thread_binding(0, n, thread="threadIdx.x")` inside a T.Kernel (TileLang's GEMV
examples): the kernel's own index on that axis; other ranges are a CompileError."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError

TARGETS = [pytest.param({"target": "cpu"}, id="cpu"),
           pytest.param({"target": "cuda", "execution_backend": "emulator"}, id="emulator")]


def gemv(N, K, reduce_thread=8, n_partition=4):
    """y = W x with a (reduce_thread, n_partition) thread block, the examples' layout."""
    block_K = K // reduce_thread

    @T.prim_func
    def main(W: T.Tensor((N, K), "float32"), x: T.Tensor((K,), "float32"), y: T.Tensor((N,), "float32")):
        with T.Kernel(T.ceildiv(N, n_partition), threads=(reduce_thread, n_partition)) as bx:
            kr = T.thread_binding(0, reduce_thread, thread="threadIdx.x")
            ni = T.thread_binding(n_partition, "threadIdx.y")
            b = T.thread_binding(0, T.ceildiv(N, n_partition), thread="blockIdx.x")
            part = T.alloc_shared((n_partition, reduce_thread), "float32")
            acc = T.alloc_local((1,), "float32")
            acc[0] = 0.0
            for k in T.serial(block_K):
                acc[0] += W[b * n_partition + ni, kr * block_K + k] * x[kr * block_K + k]
            part[ni, kr] = acc[0]
            T.sync_threads()
            if kr == 0:
                s = T.alloc_var("float32", init=0.0)
                for r in T.serial(reduce_thread):
                    s += part[ni, r]
                y[bx * n_partition + ni] = s

    return main


@pytest.mark.parametrize("kw", TARGETS)
def test_thread_binding_is_the_kernel_index(kw):
    N, K = 16, 64
    rng = np.random.default_rng(0)
    W, x = rng.random((N, K)).astype(np.float32), rng.random(K).astype(np.float32)
    y = tilewise.compile(gemv(N, K), out_idx=-1, **kw)(W, x)
    np.testing.assert_allclose(y, W @ x, rtol=1e-5)


def test_a_different_range_is_refused():
    with pytest.raises(CompileError, match=r"launches threadIdx.x over \[0, 8\)"):
        @T.prim_func
        def bad(x: T.Tensor((8,), "float32")):
            with T.Kernel(1, threads=8) as _:
                t = T.thread_binding(0, 4, thread="threadIdx.x")
                x[t] = 1.0
