"""T.async_copy + T.ptx_wait_group(0) inside T.Pipelined are the pipeline's producers, as in
TileLang (its test_tilelang_language_async_copy_gemm_sm80 checks the CUDA source equals the
T.copy form's): the same kernel as with T.copy, matching numpy in the emulator; a body that
manages its cp.async groups itself runs as written, with a lowering note saying so."""
import numpy as np
import pytest

import tilewise
import tilewise.language as T

M = N = 128
K = 128
BM = BN = 64
BK = 32


def gemm(form: str):
    @T.prim_func
    def main(A: T.Tensor((M, K), "float16"), B: T.Tensor((K, N), "float16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(N // BN, M // BM, threads=128) as (bx, by):
            A_s = T.alloc_shared((BM, BK), "float16")
            B_s = T.alloc_shared((BK, BN), "float16")
            C_l = T.alloc_fragment((BM, BN), "float32")
            T.clear(C_l)
            for ko in T.Pipelined(K // BK, num_stages=2):
                if form == "copy":
                    T.copy(A[by * BM, ko * BK], A_s)
                    T.copy(B[ko * BK, bx * BN], B_s)
                elif form == "async":
                    T.async_copy(A[by * BM, ko * BK], A_s)
                    T.ptx_wait_group(0)
                    T.async_copy(B[ko * BK, bx * BN], B_s)
                    T.ptx_wait_group(0)
                else:  # the program counts its groups itself
                    T.async_copy(A[by * BM, ko * BK], A_s)
                    T.async_copy(B[ko * BK, bx * BN], B_s)
                    T.ptx_wait_group(1)
                    T.ptx_wait_group(0)
                T.gemm(A_s, B_s, C_l)
            T.copy(C_l, C[by * BM, bx * BN])

    return main


def _run(k, rng):
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    c = np.zeros((M, N), np.float32)
    k(a, b, c)
    np.testing.assert_allclose(c, a.astype(np.float32) @ b.astype(np.float32), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
def test_async_copies_are_pipelined_like_t_copy(rng, arch):
    target = f"cuda -arch={arch}"
    k = tilewise.compile(gemm("async"), target=target, execution_backend="emulator")
    if arch == "sm_80":  # (on sm_90a T.copy may take the copy engine; T.async_copy stays cp.async)
        ref = tilewise.compile(gemm("copy"), target=target, execution_backend="emulator")
        assert k.get_kernel_source() == ref.get_kernel_source()
    assert "tw::cp_async_wait<1>()" in k.get_kernel_source()  # the next stage is in flight during the gemm
    _run(k, rng)


def test_self_managed_groups_run_as_written(rng):
    k = tilewise.compile(gemm("manual"), target="cuda -arch=sm_80", execution_backend="emulator")
    assert any("T.async_copy statements run where they are written" in n and "n > 0" in n
               for n in k.lowering_notes()), k.lowering_notes()
    _run(k, rng)
