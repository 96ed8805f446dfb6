"""Plain tiled GEMM, C = A @ B, with fp16 or bf16 inputs accumulated in fp32.

Each block owns a block_M x block_N tile of C: it walks K in block_K steps, staging the A and B
tiles in shared memory and accumulating them into a register fragment with T.gemm; the
pipeline overlaps the next tiles' loads with the current tile's math on a GPU."""
import argparse
import sys

import torch

import tilewise
import tilewise.language as T
from tilewise.profiler import do_bench


def matmul(M, N, K, block_M=128, block_N=128, block_K=32, dtype="float16", accum_dtype="float", num_stages=3):
    @T.prim_func
    def main(A: T.Tensor((M, K), dtype), B: T.Tensor((K, N), dtype), C: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            A_shared = T.alloc_shared((block_M, block_K), dtype)
            B_shared = T.alloc_shared((block_K, block_N), dtype)
            C_local = T.alloc_fragment((block_M, block_N), accum_dtype)
            T.clear(C_local)
            for ko in T.Pipelined(T.ceildiv(K, block_K), num_stages=num_stages):
                T.copy(A[by * block_M, ko * block_K], A_shared)
                T.copy(B[ko * block_K, bx * block_N], B_shared)
                T.gemm(A_shared, B_shared, C_local)
            T.copy(C_local, C[by * block_M, bx * block_N])

    return main


TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def ref_program(A, B):
    # fp16/bf16 matmul in torch on the CPU is very slow; accumulate in fp32 like the kernel does
    return (A.float() @ B.float()).to(A.dtype)


def run(M, N, K, block, dtype, bench) -> bool:
    kernel = tilewise.compile(matmul(M, N, K, *block, dtype=dtype), out_idx=[-1])
    torch.manual_seed(0)
    a = torch.randn(M, K).to(TORCH_DTYPES[dtype])
    b = torch.randn(K, N).to(TORCH_DTYPES[dtype])
    c = kernel(a, b)
    ref = ref_program(a, b)
    # the kernel and the reference round fp32 sums of the same products; allow an output ulp or so
    tol = {"float16": 1e-2, "bfloat16": 2e-2, "float32": 1e-4}[dtype]
    ok = torch.allclose(c.float(), ref.float(), rtol=tol, atol=tol)
    err = (c.float() - ref.float()).abs().max().item()
    print(f"gemm {dtype} {M}x{N}x{K}: max err {err:.3g} {'OK' if ok else 'WRONG'}")
    if bench:
        t_kernel = do_bench(lambda: kernel(a, b))
        t_ref = do_bench(lambda: ref_program(a, b))
        gflop = 2 * M * N * K / 1e6  # per ms
        print(f"  tilewise {t_kernel:.2f} ms ({gflop / t_kernel:.0f} GFLOP/s), "
              f"torch (fp32) {t_ref:.2f} ms, speed-up {t_ref / t_kernel:.2f}x")
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--m", type=int, default=1024)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--k", type=int, default=1024)
    parser.add_argument("--block", type=int, nargs=3, default=(128, 128, 32), metavar=("BM", "BN", "BK"))
    parser.add_argument("--dtype", nargs="+", choices=list(TORCH_DTYPES), default=["float16", "bfloat16"])
    parser.add_argument("--no-bench", dest="bench", action="store_false", help="check only, do not time")
    args = parser.parse_args(argv)
    results = [run(args.m, args.n, args.k, args.block, dtype, args.bench) for dtype in args.dtype]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
