"""Online softmax: row softmax over rows too long to hold, streaming over column tiles.

Each block keeps only a block_M x block_N tile of its rows at a time. The first sweep keeps a
running maximum m and a running sum l of exp(x - m); when a tile raises the maximum, the sum so
far is rescaled by exp(m_old - m_new) (the recurrence behind FlashAttention). The second sweep
re-reads the tiles and writes exp(x - m) / l. Columns past N are masked to -inf."""
import argparse
import math
import sys

import torch

import tilewise
import tilewise.language as T
from tilewise.profiler import do_bench

LOG2E = math.log2(math.e)


def online_softmax(M, N, block_M=1, block_N=1024, dtype="float16", accum_dtype="float"):
    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
            x = T.alloc_fragment((block_M, block_N), accum_dtype)
            m = T.alloc_fragment((block_M,), accum_dtype)
            m_prev = T.alloc_fragment((block_M,), accum_dtype)
            l = T.alloc_fragment((block_M,), accum_dtype)
            l_tile = T.alloc_fragment((block_M,), accum_dtype)
            T.fill(m, -T.infinity(accum_dtype))
            T.clear(l)
            for k in T.Pipelined(T.ceildiv(N, block_N), num_stages=2):
                T.copy(X[bx * block_M, k * block_N], x)
                for i, j in T.Parallel(block_M, block_N):
                    x[i, j] = T.if_then_else(k * block_N + j < N, x[i, j], -T.infinity(accum_dtype))
                T.copy(m, m_prev)
                T.reduce_max(x, m, dim=1, clear=False)  # m = max(m, max over the tile)
                for i, j in T.Parallel(block_M, block_N):
                    x[i, j] = T.exp2((x[i, j] - m[i]) * LOG2E)
                T.reduce_sum(x, l_tile, dim=1)
                for i in T.Parallel(block_M):
                    l[i] = l[i] * T.exp2((m_prev[i] - m[i]) * LOG2E) + l_tile[i]
            for k in T.Pipelined(T.ceildiv(N, block_N), num_stages=2):
                T.copy(X[bx * block_M, k * block_N], x)
                for i, j in T.Parallel(block_M, block_N):
                    x[i, j] = T.exp2((x[i, j] - m[i]) * LOG2E) / l[i]
                T.copy(x, Y[bx * block_M, k * block_N])

    return main


def ref_program(x):
    return torch.softmax(x.float(), dim=-1).to(x.dtype)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--m", type=int, default=1024)
    parser.add_argument("--n", type=int, default=32768)
    parser.add_argument("--block", type=int, nargs=2, default=(1, 1024), metavar=("BM", "BN"))
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    parser.add_argument("--no-bench", dest="bench", action="store_false", help="check only, do not time")
    args = parser.parse_args(argv)

    kernel = tilewise.compile(online_softmax(args.m, args.n, *args.block, dtype=args.dtype), out_idx=[-1])
    torch.manual_seed(0)
    x = (torch.randn(args.m, args.n) * 4).to(getattr(torch, args.dtype))
    y = kernel(x)
    ref = ref_program(x)
    ok = torch.allclose(y.float(), ref.float(), rtol=1e-2 if args.dtype == "float16" else 1e-5, atol=1e-5)
    err = (y.float() - ref.float()).abs().max().item()
    print(f"online softmax {args.dtype} {args.m}x{args.n}: max err {err:.3g} {'OK' if ok else 'WRONG'}")
    if args.bench:
        t_kernel = do_bench(lambda: kernel(x))
        t_ref = do_bench(lambda: ref_program(x))
        print(f"  tilewise {t_kernel:.2f} ms, torch (fp32) {t_ref:.2f} ms, speed-up {t_ref / t_kernel:.2f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
