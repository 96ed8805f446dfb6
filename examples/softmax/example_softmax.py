"""Row softmax, y = exp(x - max(x)) / sum(exp(x - max(x))), over the last dimension.

Each block holds block_M whole rows in an fp32 register tile: T.reduce_max finds each row's
maximum, a T.Parallel loop exponentiates the shifted row (exp2 with a log2(e) prescale, which
maps to one hardware instruction on a GPU), T.reduce_sum gives the normaliser."""
import argparse
import math
import sys

import torch

import tilewise
import tilewise.language as T
from tilewise.profiler import do_bench

LOG2E = math.log2(math.e)


def softmax(M, N, block_M=1, dtype="float16", accum_dtype="float"):
    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
            x = T.alloc_fragment((block_M, N), accum_dtype)
            row_max = T.alloc_fragment((block_M,), accum_dtype)
            row_sum = T.alloc_fragment((block_M,), accum_dtype)
            T.copy(X[bx * block_M, 0], x)
            T.reduce_max(x, row_max, dim=1)
            for i, j in T.Parallel(block_M, N):
                x[i, j] = T.exp2((x[i, j] - row_max[i]) * LOG2E)
            T.reduce_sum(x, row_sum, dim=1)
            for i, j in T.Parallel(block_M, N):
                x[i, j] = x[i, j] / row_sum[i]
            T.copy(x, Y[bx * block_M, 0])

    return main


def ref_program(x):
    return torch.softmax(x.float(), dim=-1).to(x.dtype)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--m", type=int, default=8192)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--block-m", type=int, default=1)
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    parser.add_argument("--no-bench", dest="bench", action="store_false", help="check only, do not time")
    args = parser.parse_args(argv)

    kernel = tilewise.compile(softmax(args.m, args.n, args.block_m, dtype=args.dtype), out_idx=[-1])
    torch.manual_seed(0)
    x = (torch.randn(args.m, args.n) * 4).to(getattr(torch, args.dtype))
    y = kernel(x)
    ref = ref_program(x)
    ok = torch.allclose(y.float(), ref.float(), rtol=1e-2 if args.dtype == "float16" else 1e-5, atol=1e-5)
    err = (y.float() - ref.float()).abs().max().item()
    print(f"softmax {args.dtype} {args.m}x{args.n}: max err {err:.3g} {'OK' if ok else 'WRONG'}")
    if args.bench:
        t_kernel = do_bench(lambda: kernel(x))
        t_ref = do_bench(lambda: ref_program(x))
        print(f"  tilewise {t_kernel:.2f} ms, torch (fp32) {t_ref:.2f} ms, speed-up {t_ref / t_kernel:.2f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
