"""RMSNorm over the last dimension: y = x / sqrt(mean(x^2) + eps) * weight.

Each block normalises block_M whole rows: it loads them into an fp32 register tile, squares
them in a T.Parallel loop, sums each row with T.reduce_sum, and scales the rows by the
reciprocal root mean square and the weight."""
import argparse
import sys

import torch

import tilewise
import tilewise.language as T
from tilewise.profiler import do_bench


def rms_norm(M, N, block_M=1, eps=1e-6, dtype="float16", accum_dtype="float"):
    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), W: T.Tensor((N,), dtype), Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
            x = T.alloc_fragment((block_M, N), accum_dtype)
            x_sq = T.alloc_fragment((block_M, N), accum_dtype)
            w = T.alloc_fragment((N,), accum_dtype)
            inv_rms = T.alloc_fragment((block_M,), accum_dtype)
            T.copy(X[bx * block_M, 0], x)
            T.copy(W, w)
            for i, j in T.Parallel(block_M, N):
                x_sq[i, j] = x[i, j] * x[i, j]
            T.reduce_sum(x_sq, inv_rms, dim=1)
            for i in T.Parallel(block_M):
                inv_rms[i] = T.rsqrt(inv_rms[i] / N + eps)
            for i, j in T.Parallel(block_M, N):
                x[i, j] = x[i, j] * inv_rms[i] * w[j]
            T.copy(x, Y[bx * block_M, 0])

    return main


def ref_program(x, w, eps=1e-6):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * w.float()).to(x.dtype)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--m", type=int, default=8192)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--block-m", type=int, default=1)
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    parser.add_argument("--no-bench", dest="bench", action="store_false", help="check only, do not time")
    args = parser.parse_args(argv)

    kernel = tilewise.compile(rms_norm(args.m, args.n, args.block_m, dtype=args.dtype), out_idx=[-1])
    torch.manual_seed(0)
    x = torch.randn(args.m, args.n).to(getattr(torch, args.dtype))
    w = torch.rand(args.n).to(getattr(torch, args.dtype))
    y = kernel(x, w)
    ref = ref_program(x, w)
    tol = 1e-2 if args.dtype == "float16" else 1e-5
    ok = torch.allclose(y.float(), ref.float(), rtol=tol, atol=tol)
    err = (y.float() - ref.float()).abs().max().item()
    print(f"rmsnorm {args.dtype} {args.m}x{args.n}: max err {err:.3g} {'OK' if ok else 'WRONG'}")
    if args.bench:
        t_kernel = do_bench(lambda: kernel(x, w))
        t_ref = do_bench(lambda: ref_program(x, w))
        print(f"  tilewise {t_kernel:.2f} ms, torch (fp32) {t_ref:.2f} ms, speed-up {t_ref / t_kernel:.2f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
