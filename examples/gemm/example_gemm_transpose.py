"""GEMM with either operand stored transposed: C = op(A) @ op(B) for the four combinations
NN, NT, TN and TT (T: A stored K x M, or B stored N x K).

The shared tiles keep the storage orientation of their operand, and T.gemm's transpose_A /
transpose_B flags tell the tile GEMM how to read them."""
import argparse
import sys

import torch

import tilewise
import tilewise.language as T
from tilewise.profiler import do_bench


def matmul_nt(M, N, K, block_M=128, block_N=128, block_K=32, trans_A=False, trans_B=False, dtype="float16",
              accum_dtype="float", num_stages=3):
    A_shape = (K, M) if trans_A else (M, K)
    B_shape = (N, K) if trans_B else (K, N)
    A_shared_shape = (block_K, block_M) if trans_A else (block_M, block_K)
    B_shared_shape = (block_N, block_K) if trans_B else (block_K, block_N)

    @T.prim_func
    def main(A: T.Tensor(A_shape, dtype), B: T.Tensor(B_shape, dtype), C: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            A_shared = T.alloc_shared(A_shared_shape, dtype)
            B_shared = T.alloc_shared(B_shared_shape, dtype)
            C_local = T.alloc_fragment((block_M, block_N), accum_dtype)
            T.clear(C_local)
            for ko in T.Pipelined(T.ceildiv(K, block_K), num_stages=num_stages):
                if trans_A:
                    T.copy(A[ko * block_K, by * block_M], A_shared)
                else:
                    T.copy(A[by * block_M, ko * block_K], A_shared)
                if trans_B:
                    T.copy(B[bx * block_N, ko * block_K], B_shared)
                else:
                    T.copy(B[ko * block_K, bx * block_N], B_shared)
                T.gemm(A_shared, B_shared, C_local, transpose_A=trans_A, transpose_B=trans_B)
            T.copy(C_local, C[by * block_M, bx * block_N])

    return main


def ref_program(A, B, trans_A, trans_B):
    a = A.float().T if trans_A else A.float()
    b = B.float().T if trans_B else B.float()
    return (a @ b).to(A.dtype)


def run(M, N, K, block, layout, dtype, bench) -> bool:
    trans_A, trans_B = layout[0] == "T", layout[1] == "T"
    kernel = tilewise.compile(matmul_nt(M, N, K, *block, trans_A=trans_A, trans_B=trans_B, dtype=dtype), out_idx=[-1])
    torch.manual_seed(0)
    a = torch.randn((K, M) if trans_A else (M, K)).to(getattr(torch, dtype))
    b = torch.randn((N, K) if trans_B else (K, N)).to(getattr(torch, dtype))
    c = kernel(a, b)
    ref = ref_program(a, b, trans_A, trans_B)
    tol = {"float16": 1e-2, "bfloat16": 2e-2, "float32": 1e-4}[dtype]
    ok = torch.allclose(c.float(), ref.float(), rtol=tol, atol=tol)
    err = (c.float() - ref.float()).abs().max().item()
    print(f"gemm {layout} {dtype} {M}x{N}x{K}: max err {err:.3g} {'OK' if ok else 'WRONG'}")
    if bench:
        t_kernel = do_bench(lambda: kernel(a, b))
        t_ref = do_bench(lambda: ref_program(a, b, trans_A, trans_B))
        print(f"  tilewise {t_kernel:.2f} ms, torch (fp32) {t_ref:.2f} ms, speed-up {t_ref / t_kernel:.2f}x")
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--m", type=int, default=1024)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--k", type=int, default=1024)
    parser.add_argument("--block", type=int, nargs=3, default=(128, 128, 32), metavar=("BM", "BN", "BK"))
    parser.add_argument("--layout", nargs="+", choices=("NN", "NT", "TN", "TT"), default=["NN", "NT", "TN", "TT"])
    parser.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), default="float16")
    parser.add_argument("--no-bench", dest="bench", action="store_false", help="check only, do not time")
    args = parser.parse_args(argv)
    results = [run(args.m, args.n, args.k, args.block, layout, args.dtype, args.bench) for layout in args.layout]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
