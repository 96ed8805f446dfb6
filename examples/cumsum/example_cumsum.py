"""Cumulative sum along the rows of an M x N matrix, Y[i, j] = sum of X[i, :j+1] (or of
X[i, j:] with --reverse), for rows longer than one tile.

Each block scans block_M rows one block_N column tile at a time: T.cumsum gives the prefix sums
inside the tile, and a per-row carry (the running total of the tiles before it) is added on.
In reverse the tiles are visited from the right and T.cumsum(reverse=True) gives suffix sums."""
import argparse
import sys

import torch

import tilewise
import tilewise.language as T
from tilewise.profiler import do_bench


def cumsum(M, N, block_M=32, block_N=256, reverse=False, dtype="float32"):
    num_tiles = (N + block_N - 1) // block_N

    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
            x_shared = T.alloc_shared((block_M, block_N), dtype)
            y_shared = T.alloc_shared((block_M, block_N), dtype)
            carry = T.alloc_shared((block_M,), dtype)
            T.clear(carry)
            for k in T.Pipelined(num_tiles, num_stages=2):
                # columns past N load as zero, so they leave the sums unchanged
                col = (num_tiles - 1 - k) * block_N if reverse else k * block_N
                T.copy(X[bx * block_M, col], x_shared)
                T.cumsum(x_shared, y_shared, dim=1, reverse=reverse)
                for i, j in T.Parallel(block_M, block_N):
                    y_shared[i, j] += carry[i]
                for i in T.Parallel(block_M):
                    carry[i] = y_shared[i, 0] if reverse else y_shared[i, block_N - 1]
                T.copy(y_shared, Y[bx * block_M, col])

    return main


def ref_program(x, reverse):
    if reverse:
        return x.flip(1).cumsum(1).flip(1)
    return x.cumsum(1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--m", type=int, default=4096)
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--block", type=int, nargs=2, default=(32, 256), metavar=("BM", "BN"))
    parser.add_argument("--dtype", choices=("float32", "int32"), default="float32")
    parser.add_argument("--reverse", action="store_true", help="suffix sums instead of prefix sums")
    parser.add_argument("--no-bench", dest="bench", action="store_false", help="check only, do not time")
    args = parser.parse_args(argv)

    kernel = tilewise.compile(cumsum(args.m, args.n, *args.block, reverse=args.reverse, dtype=args.dtype),
                              out_idx=[-1])
    torch.manual_seed(0)
    # small integers: every partial sum is exact in float32, so the result must match bit for bit
    x = torch.randint(-8, 8, (args.m, args.n)).to(getattr(torch, args.dtype))
    y = kernel(x)
    ref = ref_program(x, args.reverse)
    ok = torch.equal(y, ref)
    print(f"{'reverse ' if args.reverse else ''}cumsum {args.dtype} {args.m}x{args.n}: {'OK' if ok else 'WRONG'}")
    if args.bench:
        t_kernel = do_bench(lambda: kernel(x))
        t_ref = do_bench(lambda: ref_program(x, args.reverse))
        print(f"  tilewise {t_kernel:.2f} ms, torch {t_ref:.2f} ms, speed-up {t_ref / t_kernel:.2f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
