"""Loops of degenerate extent and pipelines deeper than their loop: as Python's range, a loop of
zero or negative constant extent runs no iteration, on every target (CUDA's layout inference
once failed on a T.Parallel of no elements with a message about layout modes); more stages than
iterations still computes every iteration once; tiles that do not divide the tensor are exact."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T

TARGETS = [("cpu", "auto"), ("cuda -arch=sm_80", "emulator"), ("cuda -arch=sm_90a", "emulator")]


def _loops(n: int, kind: str):
    @T.prim_func
    def loops(A: T.Tensor((64,), "float32"), C: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            for i in T.Parallel(64):
                C[i] = A[i]
            if kind == "parallel":
                for i in T.Parallel(n):
                    C[i] = 7.0
            elif kind == "parallel2d":
                for i, j in T.Parallel(4, n):
                    C[i * 4 + j] = 7.0
            elif kind == "serial":
                for _k in T.serial(n):
                    for i in T.Parallel(64):
                        C[i] = C[i] + 1.0
            elif kind == "range":
                for _k in range(n):
                    for i in T.Parallel(64):
                        C[i] = C[i] + 1.0

    return loops


@pytest.mark.parametrize("target,backend", TARGETS)
@pytest.mark.parametrize("kind", ["parallel", "parallel2d", "serial", "range"])
@pytest.mark.parametrize("n", [0, -4])
def test_empty_loops_run_no_iteration(target, backend, kind, n):
    k = tilewise.compile(_loops(n, kind), out_idx=[1], target=target, execution_backend=backend)
    a = np.arange(64, dtype=np.float32)
    np.testing.assert_array_equal(k(a), a)


def _pipelined(n: int, stages: int):
    @T.prim_func
    def pipe(A: T.Tensor((8, 64), "float32"), C: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            S = T.alloc_shared((64,), "float32")
            acc = T.alloc_fragment((64,), "float32")
            T.clear(acc)
            for k in T.Pipelined(n, num_stages=stages):
                T.copy(A[k, 0:64], S)
                for i in T.Parallel(64):
                    acc[i] = acc[i] + S[i]
            T.copy(acc, C)

    return pipe


@pytest.mark.parametrize("target,backend", TARGETS)
@pytest.mark.parametrize("n,stages", [(0, 2), (-3, 2), (1, 4), (2, 8), (3, 3)])
def test_pipelines_of_few_iterations(target, backend, n, stages):
    k = tilewise.compile(_pipelined(n, stages), out_idx=[1], target=target, execution_backend=backend)
    a = np.random.default_rng(0).random((8, 64), dtype=np.float32)
    np.testing.assert_allclose(k(a), a[:max(n, 0)].sum(axis=0), rtol=1e-6)


def _gemm(M, N, K, stages):
    bm, bn, bk = 64, 64, 32

    @T.prim_func
    def gemm(A: T.Tensor((M, K), "float16"), B: T.Tensor((K, N), "float16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            As = T.alloc_shared((bm, bk), "float16")
            Bs = T.alloc_shared((bk, bn), "float16")
            Cf = T.alloc_fragment((bm, bn), "float32")
            T.clear(Cf)
            for k in T.Pipelined(T.ceildiv(K, bk), num_stages=stages):
                T.copy(A[by * bm, k * bk], As)
                T.copy(B[k * bk, bx * bn], Bs)
                T.gemm(As, Bs, Cf)
            T.copy(Cf, C[by * bm, bx * bn])

    return gemm


@pytest.mark.parametrize("target,backend", TARGETS)
@pytest.mark.parametrize("M,N,K,stages", [(72, 40, 50, 2), (64, 64, 16, 3), (1, 3, 5, 2)])
def test_tiles_that_do_not_divide(target, backend, M, N, K, stages):
    rng = np.random.default_rng(0)
    a = rng.random((M, K)).astype(np.float16)
    b = rng.random((K, N)).astype(np.float16)
    k = tilewise.compile(_gemm(M, N, K, stages), out_idx=[2], target=target, execution_backend=backend)
    np.testing.assert_allclose(k(a, b), a.astype(np.float32) @ b.astype(np.float32), rtol=2e-3, atol=2e-3)
