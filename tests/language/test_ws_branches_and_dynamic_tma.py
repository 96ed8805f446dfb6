"""Two things TileLang's deepseek_v32 pipelined sparse MLA (v0.1.13) needs besides
cp.async arrivals: warpgroup roles chosen by `if tx < 128: ... elif tx >= 128 and tx < 256: ...
elif tx >= 256: ...` (the last branch is a whole warpgroup, so T.set_max_nreg may run there), and
T.tma_copy of a tensor whose leading dimensions are dynamic (the tensor map is encoded at launch)."""
import numpy as np
import pytest
from conftest import nvrtc_check

import tilewise
import tilewise.language as T

SM90A = "cuda -arch=sm_90a"


def three_roles():
    @T.prim_func
    def main(A: T.Tensor((96, 64), "float16"), B: T.Tensor((96, 64), "float16")):
        with T.Kernel(1, threads=384):
            tx = T.get_thread_binding()
            if tx < 128:
                T.set_max_nreg(240, 1)
                T.copy(A[0:32, :], B[0:32, :])
            elif tx >= 128 and tx < 256:
                T.set_max_nreg(168, 1)
                T.copy(A[32:64, :], B[32:64, :])
            elif tx >= 256:
                T.set_max_nreg(80, 0)
                for i, j in T.Parallel(32, 64):
                    B[64 + i, j] = A[64 + i, j] * T.float16(2)

    return main


@pytest.mark.parametrize("backend", ["emulator", "ptx"])
def test_elif_chain_of_thread_ranges(rng, backend):
    a = rng.standard_normal((96, 64)).astype(np.float16)
    b = np.zeros_like(a)
    tilewise.compile(three_roles(), target=SM90A, execution_backend=backend)(a, b)
    b = b.numpy() if hasattr(b, "numpy") else b
    np.testing.assert_array_equal(b[:64], a[:64])
    np.testing.assert_array_equal(b[64:], a[64:] * np.float16(2))


def dynamic_rows():
    M = T.dynamic("M")

    @T.prim_func
    def main(A: T.Tensor((M, 2, 64), "float16"), B: T.Tensor((M, 2, 64), "float16")):
        with T.Kernel(T.ceildiv(M, 64), 2, threads=128) as (bx, by):
            S = T.alloc_shared((64, 64), "float16")
            bar = T.alloc_barrier(128)
            T.tma_copy(A[bx * 64:bx * 64 + 64, by, :], S, barrier=bar)
            T.barrier_arrive(bar)
            T.barrier_wait(bar, 0)
            for i, j in T.Parallel(64, 64):
                if bx * 64 + i < M:
                    B[bx * 64 + i, by, j] = S[i, j] + T.float16(1)

    return main


@pytest.mark.parametrize("backend", ["emulator", "ptx"])
def test_tma_copy_of_a_tensor_with_a_dynamic_dimension(rng, backend):
    k = tilewise.compile(dynamic_rows(), target=SM90A, execution_backend=backend)
    for m in (64, 100):  # the second launch's last tile runs past the end: TMA reads zeros there
        a = rng.standard_normal((m, 2, 64)).astype(np.float16)
        b = np.zeros_like(a)
        k(a, b)
        b = b.numpy() if hasattr(b, "numpy") else b
        np.testing.assert_array_equal(b, a + np.float16(1))


def test_dynamic_tma_copy_compiles_to_utmaldg():
    nvrtc_check(dynamic_rows(), expect={"sm_90a": ("UTMALDG", "SYNCS")}, archs=("sm_90a",))
