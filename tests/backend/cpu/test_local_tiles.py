"""T.alloc_local tiles as T.gemm operands on the CPU target (a block is one thread there, so a
private tile holds what a fragment would); GPU targets refuse them with a CompileError."""
import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError


def local_gemm(M, N, K, bM, bN, bK, tA, tB):
    a_shape, b_shape = ((K, M) if tA else (M, K)), ((N, K) if tB else (K, N))
    a_tile, b_tile = ((bK, bM) if tA else (bM, bK)), ((bN, bK) if tB else (bK, bN))

    @T.prim_func
    def main(A: T.Tensor(a_shape, "float32"), B: T.Tensor(b_shape, "float32"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(N, bN), T.ceildiv(M, bM)) as (bx, by):
            a = T.alloc_local(a_tile, "float32")
            b = T.alloc_local(b_tile, "float32")
            c = T.alloc_local((bM, bN), "float32")
            T.clear(c)
            for ko in T.serial(T.ceildiv(K, bK)):
                if tA:
                    T.copy(A[ko * bK, by * bM], a)
                else:
                    T.copy(A[by * bM, ko * bK], a)
                if tB:
                    T.copy(B[bx * bN, ko * bK], b)
                else:
                    T.copy(B[ko * bK, bx * bN], b)
                T.gemm(a, b, c, tA, tB)
            T.copy(c, C[by * bM, bx * bN])

    return main, a_shape, b_shape


@pytest.mark.parametrize("tA,tB", [(False, False), (False, True), (True, False), (True, True)])
def test_gemm_on_local_tiles_cpu(tA, tB):
    func, a_shape, b_shape = local_gemm(50, 36, 70, 16, 16, 32, tA, tB)  # ragged in M, N and K
    kernel = tilewise.compile(func, out_idx=[2], target="c")
    rng = np.random.default_rng(0)
    A = rng.standard_normal(a_shape, dtype=np.float32)
    B = rng.standard_normal(b_shape, dtype=np.float32)
    ref = (A.T if tA else A) @ (B.T if tB else B)
    np.testing.assert_allclose(np.asarray(kernel(A, B)), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("target", ["cuda", "emulator"])
def test_gemm_on_local_tiles_gpu_refused(target):
    func, _, _ = local_gemm(64, 64, 64, 32, 32, 32, False, False)
    kwargs = {"target": "cuda", "execution_backend": "emulator"} if target == "emulator" else {"target": "cuda"}
    with pytest.raises(CompileError, match="T.alloc_local tile"):
        tilewise.compile(func, out_idx=[2], **kwargs)
