"""Quickstart: the GEMM + ReLU kernel of the README, compiled for the default target (the CPU
when no GPU is present), checked against numpy, timed against numpy, its source shown."""
import sys
import time

import numpy as np

import tilewise
import tilewise.language as T


def matmul_relu(M, N, K, block_M, block_N, block_K, dtype="float32", accum_dtype="float"):
    @T.prim_func
    def main(A: T.Tensor((M, K), dtype), B: T.Tensor((K, N), dtype), C: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            A_shared = T.alloc_shared((block_M, block_K), dtype)
            B_shared = T.alloc_shared((block_K, block_N), dtype)
            C_local = T.alloc_fragment((block_M, block_N), accum_dtype)
            T.clear(C_local)
            for k in T.Pipelined(T.ceildiv(K, block_K), num_stages=3):
                T.copy(A[by * block_M, k * block_K], A_shared)
                T.copy(B[k * block_K, bx * block_N], B_shared)
                T.gemm(A_shared, B_shared, C_local)
            for i, j in T.Parallel(block_M, block_N):
                C_local[i, j] = T.max(C_local[i, j], 0)
            T.copy(C_local, C[by * block_M, bx * block_N])

    return main


def main() -> int:
    M = N = K = 1024
    t0 = time.perf_counter()
    kernel = tilewise.compile(matmul_relu(M, N, K, 128, 128, 32), out_idx=[-1])
    t_compile = time.perf_counter() - t0
    print(f"compiled for {kernel.target} in {t_compile * 1e3:.0f} ms")

    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K), dtype=np.float32)
    b = rng.standard_normal((K, N), dtype=np.float32)
    c = kernel(a, b)
    ref = np.maximum(a @ b, 0)
    err = float(np.abs(c - ref).max())
    ok = np.allclose(c, ref, rtol=1e-4, atol=1e-3)
    print(f"max |tilewise - numpy| = {err:.3g}: {'OK' if ok else 'WRONG'}")

    t_tw = tilewise.profiler.do_bench(lambda: kernel(a, b), warmup=50, rep=300)
    t_np = tilewise.profiler.do_bench(lambda: np.maximum(a @ b, 0), warmup=50, rep=300)
    flops = 2 * M * N * K
    print(f"tilewise {t_tw:.2f} ms ({flops / t_tw / 1e6:.0f} GFLOP/s)   numpy {t_np:.2f} ms "
          f"({flops / t_np / 1e6:.0f} GFLOP/s)   ratio {t_np / t_tw:.2f}x numpy")

    print("\n--- generated source ---")
    print(kernel.get_kernel_source())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
