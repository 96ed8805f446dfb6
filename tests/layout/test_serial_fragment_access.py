"""A serial loop inside a T.Parallel loop indexing a fragment by its own variable (`s[i] +=
acc[i, j]` for j in T.serial(N)): each element it reaches must be held by the thread running the
iteration. Before, such indices were not checked at all and the thread silently read its own
register of another element (TileLang's issue 2393: now a CompileError in both)."""
import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError

M = N = K = 64


def _serial_sum_of_gemm():
    @T.prim_func
    def k(Q: T.Tensor((M, K), "float16"), Kk: T.Tensor((N, K), "float16"), out: T.Tensor((M,), "float32")):
        with T.Kernel(1, threads=128):
            Qs = T.alloc_shared((M, K), "float16")
            Ks = T.alloc_shared((N, K), "float16")
            acc = T.alloc_fragment((M, N), "float32")
            s = T.alloc_fragment((M,), "float32")
            T.copy(Q, Qs)
            T.copy(Kk, Ks)
            T.clear(acc)
            T.gemm(Qs, Ks, acc, transpose_B=True)
            T.fill(s, 0.0)
            for i in T.Parallel(M):
                for j in T.serial(N):
                    s[i] += acc[i, j]
            T.copy(s, out)

    return k


def test_serial_read_of_mma_fragment_is_refused_on_cuda():
    with pytest.raises(CompileError, match="thread-distributed fragment") as e:
        tilewise.compile(_serial_sum_of_gemm(), target="cuda -arch=sm_80", execution_backend="emulator")
    assert "T.reduce_sum" in str(e.value) and "acc" in str(e.value)


def test_serial_read_of_mma_fragment_runs_on_cpu():
    # a CPU fragment is one array: every "thread" holds all of it, so the loop is a plain row sum
    kern = tilewise.compile(_serial_sum_of_gemm(), target="cpu")
    rng = np.random.default_rng(0)
    q = rng.standard_normal((M, K)).astype(np.float16)
    kk = rng.standard_normal((N, K)).astype(np.float16)
    out = np.zeros(M, np.float32)
    kern(q, kk, out)
    np.testing.assert_allclose(out, (q.astype(np.float32) @ kk.astype(np.float32).T).sum(1), rtol=1e-4, atol=1e-3)


def test_serial_read_of_a_fragment_the_thread_holds_runs():
    # T.copy lays F out so a thread holds what T.Parallel(M) gives it; the serial loop stays inside
    @T.prim_func
    def k(A: T.Tensor((64, 4), "float32"), O: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            F = T.alloc_fragment((64, 4), "float32")
            s = T.alloc_fragment((64,), "float32")
            T.copy(A, F)
            for i in T.Parallel(64):
                s[i] = 0
                for j in T.serial(4):
                    s[i] += F[i, j]
            T.copy(s, O)

    kern = tilewise.compile(k, target="cuda -arch=sm_80", execution_backend="emulator")
    a = np.random.default_rng(1).random((64, 4)).astype(np.float32)
    o = np.zeros(64, np.float32)
    kern(a, o)
    np.testing.assert_allclose(o, a.sum(1), rtol=1e-6)
