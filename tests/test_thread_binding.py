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
