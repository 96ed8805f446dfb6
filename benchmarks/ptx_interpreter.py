"""PTX interpreter speed: the canonical fp16 GEMM (128x128x32 tiles, 3-stage cp.async pipeline,
128 threads) compiled for CUDA, executed by the PTX interpreter (tilewise.ptx) on the PTX NVRTC
produced, next to the thread-IR emulator on the same kernel. One-time costs (NVRTC, parsing and
decoding the PTX) are printed separately from a run.

    .venv/bin/python benchmarks/ptx_interpreter.py [M N K]
"""
from __future__ import annotations

import sys
import time

import numpy as np

import tilewise
import tilewise.language as T
from tilewise import ptx


def gemm(M, N, K, bM=128, bN=128, bK=32, stages=3, threads=128):
    @T.prim_func
    def main(A: T.Tensor((M, K), "float16"), B: T.Tensor((K, N), "float16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(N, bN), T.ceildiv(M, bM), threads=threads) as (bx, by):
            A_s = T.alloc_shared((bM, bK), "float16")
            B_s = T.alloc_shared((bK, bN), "float16")
            C_f = T.alloc_fragment((bM, bN), "float32")
            T.clear(C_f)
            for k in T.Pipelined(T.ceildiv(K, bK), num_stages=stages):
                T.copy(A[by * bM, k * bK], A_s)
                T.copy(B[k * bK, bx * bN], B_s)
                T.gemm(A_s, B_s, C_f)
            T.copy(C_f, C[by * bM, bx * bN])

    return main


def best_of(fn, n=3) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    M, N, K = (int(x) for x in sys.argv[1:4]) if len(sys.argv) >= 4 else (256, 256, 256)
    kernel = tilewise.compile(gemm(M, N, K), out_idx=[2], target="cuda", execution_backend="emulator")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    t = time.perf_counter()
    through_ptx = kernel.with_execution_backend("ptx")
    t_nvrtc = time.perf_counter() - t
    name = through_ptx.runtime.module.kernels[0].name
    t = time.perf_counter()
    ptx.program(through_ptx.runtime.ptx, name)
    t_decode = time.perf_counter() - t
    c_emu = kernel(a, b)
    t_emu = best_of(lambda: kernel(a, b))
    c_ptx = through_ptx(a, b)
    t_ptx = best_of(lambda: through_ptx(a, b))
    ref = a.astype(np.float64) @ b.astype(np.float64)
    blocks = -(-M // 128) * -(-N // 128)
    print(f"fp16 GEMM {M}x{N}x{K}, 128x128x32 tiles, 3 stages, 128 threads, {blocks} blocks")
    print(f"  one-time: NVRTC -> PTX {t_nvrtc:.2f} s, parse + decode {len(through_ptx.runtime.ptx.splitlines())} PTX lines {t_decode:.2f} s")
    print(f"  {'executor':<22} {'seconds':>8} {'max |err|':>10}")
    print(f"  {'thread-IR emulator':<22} {t_emu:8.3f} {float(np.abs(c_emu - ref).max()):10.2e}")
    print(f"  {'PTX interpreter':<22} {t_ptx:8.3f} {float(np.abs(c_ptx - ref).max()):10.2e}")
    print(f"  bit-identical outputs: {np.array_equal(c_emu, c_ptx)}")


if __name__ == "__main__":
    main()
