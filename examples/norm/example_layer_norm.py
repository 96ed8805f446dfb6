"""LayerNorm over the last dimension: y = (x - mean) / sqrt(var + eps) * weight + bias.

Each block normalises block_M whole rows held in an fp32 register tile: one T.reduce_sum gives
the means, a second one the sums of squared deviations (the two-pass form, which does not
lose precision when the mean is large), and a T.Parallel loop applies the affine transform."""
import argparse
import sys

import torch

import tilewise
import tilewise.language as T
from tilewise.profiler import do_bench


def layer_norm(M, N, block_M=1, eps=1e-5, dtype="float16", accum_dtype="float"):
    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), W: T.Tensor((N,), dtype), B: T.Tensor((N,), dtype),
             Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
            x = T.alloc_fragment((block_M, N), accum_dtype)
            dev_sq = T.alloc_fragment((block_M, N), accum_dtype)
            w = T.alloc_fragment((N,), accum_dtype)
            b = T.alloc_fragment((N,), accum_dtype)
            mean = T.alloc_fragment((block_M,), accum_dtype)
            rstd = T.alloc_fragment((block_M,), accum_dtype)
            T.copy(X[bx * block_M, 0], x)
            T.copy(W, w)
            T.copy(B, b)
            T.reduce_sum(x, mean, dim=1)
            for i in T.Parallel(block_M):
                mean[i] = mean[i] / N
            for i, j in T.Parallel(block_M, N):
                x[i, j] = x[i, j] - mean[i]
                dev_sq[i, j] = x[i, j] * x[i, j]
            T.reduce_sum(dev_sq, rstd, dim=1)
            for i in T.Parallel(block_M):
                rstd[i] = T.rsqrt(rstd[i] / N + eps)
            for i, j in T.Parallel(block_M, N):
                x[i, j] = x[i, j] * rstd[i] * w[j] + b[j]
            T.copy(x, Y[bx * block_M, 0])

    return main


def ref_program(x, w, b, eps=1e-5):
    return torch.nn.functional.layer_norm(x.float(), (x.shape[-1],), w.float(), b.float(), eps).to(x.dtype)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--m", type=int, default=8192)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--block-m", type=int, default=1)
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    parser.add_argument("--no-bench", dest="bench", action="store_false", help="check only, do not time")
    args = parser.parse_args(argv)

    kernel = tilewise.compile(layer_norm(args.m, args.n, args.block_m, dtype=args.dtype), out_idx=[-1])
    torch.manual_seed(0)
    x = (torch.randn(args.m, args.n) + 3).to(getattr(torch, args.dtype))
    w = torch.rand(args.n).to(getattr(torch, args.dtype))
    b = torch.randn(args.n).to(getattr(torch, args.dtype))
    y = kernel(x, w, b)
    ref = ref_program(x, w, b)
    tol = 1e-2 if args.dtype == "float16" else 1e-5
    ok = torch.allclose(y.float(), ref.float(), rtol=tol, atol=tol)
    err = (y.float() - ref.float()).abs().max().item()
    print(f"layernorm {args.dtype} {args.m}x{args.n}: max err {err:.3g} {'OK' if ok else 'WRONG'}")
    if args.bench:
        t_kernel = do_bench(lambda: kernel(x, w, b))
        t_ref = do_bench(lambda: ref_program(x, w, b))
        print(f"  tilewise {t_kernel:.2f} ms, torch (fp32) {t_ref:.2f} ms, speed-up {t_ref / t_kernel:.2f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
