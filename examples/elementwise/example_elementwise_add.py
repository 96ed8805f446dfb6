"""Element-wise addition C = A + B of two M x N matrices.

Each block copies a block_M x block_N tile of both inputs into registers, adds them in a
T.Parallel loop (which the compiler vectorises and spreads over threads), and writes the tile
back. T.copy masks the tiles that overhang the matrix edges."""
import argparse
import sys

import torch

import tilewise
import tilewise.language as T
from tilewise.profiler import do_bench


def elementwise_add(M, N, block_M=8, block_N=256, dtype="float32"):
    @T.prim_func
    def main(A: T.Tensor((M, N), dtype), B: T.Tensor((M, N), dtype), C: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            A_local = T.alloc_fragment((block_M, block_N), dtype)
            B_local = T.alloc_fragment((block_M, block_N), dtype)
            C_local = T.alloc_fragment((block_M, block_N), dtype)
            T.copy(A[by * block_M, bx * block_N], A_local)
            T.copy(B[by * block_M, bx * block_N], B_local)
            for i, j in T.Parallel(block_M, block_N):
                C_local[i, j] = A_local[i, j] + B_local[i, j]
            T.copy(C_local, C[by * block_M, bx * block_N])

    return main


def ref_program(A, B):
    return A + B


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--m", type=int, default=4096)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--block", type=int, nargs=2, default=(8, 256), metavar=("BM", "BN"))
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    parser.add_argument("--no-bench", dest="bench", action="store_false", help="check only, do not time")
    args = parser.parse_args(argv)

    kernel = tilewise.compile(elementwise_add(args.m, args.n, *args.block, dtype=args.dtype), out_idx=[-1])
    torch.manual_seed(0)
    a = torch.randn(args.m, args.n).to(getattr(torch, args.dtype))
    b = torch.randn(args.m, args.n).to(getattr(torch, args.dtype))
    c = kernel(a, b)
    ref = ref_program(a, b)
    ok = torch.equal(c, ref)  # one rounding of the same sum: bit-identical
    print(f"elementwise add {args.dtype} {args.m}x{args.n}: {'OK' if ok else 'WRONG'}")
    if args.bench:
        t_kernel = do_bench(lambda: kernel(a, b))
        t_ref = do_bench(lambda: ref_program(a, b))
        gbytes = 3 * a.numel() * a.element_size() / 1e6  # per ms
        print(f"  tilewise {t_kernel:.2f} ms ({gbytes / t_kernel:.1f} GB/s), torch {t_ref:.2f} ms, "
              f"speed-up {t_ref / t_kernel:.2f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
