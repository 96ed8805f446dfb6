"""Kernels that program threads themselves (T.get_thread_binding) run on the CPU target through
the thread-exact emulator, with a warning; on CUDA they are ordinary thread code."""
import numpy as np
import pytest

import tilewise
import tilewise.language as T

N = 256


@T.prim_func
def reverse_in_shared(A: T.Tensor((N,), "float32"), B: T.Tensor((N,), "float32")):
    with T.Kernel(N // 128, threads=128) as bx:
        tx = T.get_thread_binding()
        s = T.alloc_shared((128,), "float32")
        s[tx] = A[bx * 128 + tx] * 2
        B[bx * 128 + tx] = s[127 - tx]  # another thread's element: needs the barrier tilewise inserts


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_explicit_thread_code(target):
    a = np.arange(N, dtype=np.float32)
    b = np.zeros(N, np.float32)
    if target == "cpu":
        with pytest.warns(UserWarning, match="get_thread_binding"):
            kernel = tilewise.compile(reverse_in_shared, target="cpu")
    else:
        kernel = tilewise.compile(reverse_in_shared, target="cuda", execution_backend="emulator")
    kernel(a, b)
    np.testing.assert_array_equal(b, (a.reshape(2, 128)[:, ::-1] * 2).ravel())
    assert kernel.execution_backend == "emulator"


def masked(kind: str, M=64, K=48, dtype="float16"):
    """TileLang's mask_op pattern: a tile operator inside `if` on the thread index runs on, and is
    spread over, the threads the condition keeps."""

    @T.prim_func
    def mask(A: T.Tensor((M, K), dtype), B: T.Tensor((M, K), dtype)):
        with T.Kernel(1, threads=128):
            S = T.alloc_shared((M, K), dtype)
            S2 = T.alloc_shared((M, K), dtype)
            tx = T.get_thread_binding(0)
            if kind == "parallel_lt":
                if tx < 32:
                    for i, k in T.Parallel(M, K):
                        S[i, k] = A[i, k] + 1
            elif kind == "copy_range":
                if tx >= 64 and tx < 96:
                    T.copy(A, S)
            elif kind == "else":
                if tx < 100:
                    T.fill(S2, 0)
                else:
                    T.copy(A, S)
            elif kind == "racy_else":  # both branches write S at once: a race on a GPU
                if tx < 100:
                    T.fill(S, 0)
                else:
                    T.copy(A, S)
            if kind == "else":
                for i, k in T.Parallel(M, K):
                    B[i, k] = S[i, k] + S2[i, k]
            else:
                T.copy(S, B)

    return mask


@pytest.mark.parametrize("kind", ["parallel_lt", "copy_range", "else"])
def test_operator_inside_a_thread_condition_covers_its_tile(nvrtc_check, kind):
    a = (np.random.rand(64, 48) * 4).astype(np.float16)
    b = np.zeros_like(a)
    k = tilewise.compile(masked(kind), target="cuda", execution_backend="emulator")
    k(a, b)  # the emulator also checks the shared-memory handover for races
    want = a + 1 if kind == "parallel_lt" else a
    np.testing.assert_array_equal(b, want)
    nvrtc_check(masked(kind), archs=("sm_80",))


def test_branches_on_the_thread_index_writing_one_tile_race():
    from tilewise.emulator.errors import RaceError

    k = tilewise.compile(masked("racy_else"), target="cuda", execution_backend="emulator")
    a = np.ones((64, 48), np.float16)
    with pytest.raises(RaceError, match=r"shared-memory race on S\["):
        k(a, np.zeros_like(a))


def test_operator_inside_a_condition_that_is_not_a_thread_range_is_refused():
    @T.prim_func
    def odd(A: T.Tensor((64,), "float32"), B: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            S = T.alloc_shared((64,), "float32")
            tx = T.get_thread_binding(0)
            if tx % 2 == 0:
                T.copy(A, S)
            T.copy(S, B)

    with pytest.raises(tilewise.CompileError, match="contiguous range") as e:
        tilewise.compile(odd, target="cuda", execution_backend="emulator")
    assert "T.copy(A, S)" in str(e.value)


def test_fragment_inside_a_thread_condition_is_refused():
    @T.prim_func
    def frag(A: T.Tensor((64,), "float32"), B: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            F = T.alloc_fragment((64,), "float32")
            T.copy(A, F)
            tx = T.get_thread_binding(0)
            if tx < 32:
                for i in T.Parallel(64):
                    F[i] = F[i] * 2
            T.copy(F, B)

    with pytest.raises(tilewise.CompileError, match="fragment F"):
        tilewise.compile(frag, target="cuda", execution_backend="emulator")
