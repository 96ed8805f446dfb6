"""Split-K GEMM: C = A @ B with the K loop cut into `split_k` slices computed by different blocks.

A third grid dimension picks the K slice; each block accumulates its slice's partial product
for one C tile in a register fragment and adds it into C with T.atomic_add, so C must start at
zero. Useful when M x N has too few tiles to fill the machine but K is long."""
import argparse
import sys

import torch

import tilewise
import tilewise.language as T
from tilewise.profiler import do_bench


def matmul_splitk(M, N, K, block_M=128, block_N=128, block_K=32, split_k=4, dtype="float16", out_dtype="float",
                  accum_dtype="float", num_stages=3):
    k_tiles = (K + block_K - 1) // block_K
    tiles_per_split = (k_tiles + split_k - 1) // split_k

    @T.prim_func
    def main(A: T.Tensor((M, K), dtype), B: T.Tensor((K, N), dtype), C: T.Tensor((M, N), out_dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), split_k, threads=128) as (bx, by, bz):
            A_shared = T.alloc_shared((block_M, block_K), dtype)
            B_shared = T.alloc_shared((block_K, block_N), dtype)
            C_local = T.alloc_fragment((block_M, block_N), accum_dtype)
            T.clear(C_local)
            # this slice's K tiles; the last slice may be shorter (or empty when split_k is large)
            k_first = bz * tiles_per_split
            for ko in T.Pipelined(T.max(T.min(tiles_per_split, k_tiles - k_first), 0), num_stages=num_stages):
                T.copy(A[by * block_M, (k_first + ko) * block_K], A_shared)
                T.copy(B[(k_first + ko) * block_K, bx * block_N], B_shared)
                T.gemm(A_shared, B_shared, C_local)
            T.atomic_add(C[by * block_M, bx * block_N], C_local)

    return main


def ref_program(A, B):
    return A.float() @ B.float()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--m", type=int, default=256)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--k", type=int, default=8192)
    parser.add_argument("--block", type=int, nargs=3, default=(128, 128, 32), metavar=("BM", "BN", "BK"))
    parser.add_argument("--split-k", type=int, default=4)
    parser.add_argument("--no-bench", dest="bench", action="store_false", help="check only, do not time")
    args = parser.parse_args(argv)

    kernel = tilewise.compile(matmul_splitk(args.m, args.n, args.k, *args.block, split_k=args.split_k))
    torch.manual_seed(0)
    a = torch.randn(args.m, args.k).half()
    b = torch.randn(args.k, args.n).half()
    c = torch.zeros(args.m, args.n)

    def run():
        c.zero_()
        kernel(a, b, c)
        return c

    run()
    ref = ref_program(a, b)
    ok = torch.allclose(c, ref, rtol=1e-3, atol=1e-3)
    err = (c - ref).abs().max().item()
    print(f"split-K gemm float16 {args.m}x{args.n}x{args.k}, split_k={args.split_k}: max err {err:.3g} "
          f"{'OK' if ok else 'WRONG'}")
    if args.bench:
        t_kernel = do_bench(run)
        t_ref = do_bench(lambda: ref_program(a, b))
        print(f"  tilewise {t_kernel:.2f} ms (zeroing C included), torch (fp32) {t_ref:.2f} ms, "
              f"speed-up {t_ref / t_kernel:.2f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
