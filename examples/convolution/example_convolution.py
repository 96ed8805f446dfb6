"""2-D convolution as an implicit GEMM, NHWC activations and KH x KW x C x F filters.

The convolution is the GEMM out[m, f] = sum_k im2col[m, k] * filter[k, f] with one row m per
output pixel (n, oh, ow) and one column k per filter tap (kh, kw, c). The im2col matrix is never
built: each K step gathers its block_M x block_K tile straight from the input into shared
memory in a T.Parallel loop (zero where the window hangs over the padding), and T.gemm
multiplies it with the filter tile, viewed as a (KH*KW*C) x F matrix."""
import argparse
import sys

import torch

import tilewise
import tilewise.language as T
from tilewise.profiler import do_bench


def convolution(N, C, H, W, F, KH, KW, stride=1, padding=0, dilation=1, block_M=64, block_N=128, block_K=32,
                dtype="float16", accum_dtype="float", num_stages=3):
    OH = (H + 2 * padding - dilation * (KH - 1) - 1) // stride + 1
    OW = (W + 2 * padding - dilation * (KW - 1) - 1) // stride + 1
    GM, GK = N * OH * OW, KH * KW * C  # the implicit GEMM's M and K (its N is F)

    @T.prim_func
    def main(data: T.Tensor((N, H, W, C), dtype), kernel: T.Tensor((KH, KW, C, F), dtype),
             out: T.Tensor((N, OH, OW, F), dtype)):
        with T.Kernel(T.ceildiv(F, block_N), T.ceildiv(GM, block_M), threads=128) as (bx, by):
            data_shared = T.alloc_shared((block_M, block_K), dtype)
            kernel_shared = T.alloc_shared((block_K, block_N), dtype)
            out_local = T.alloc_fragment((block_M, block_N), accum_dtype)
            kernel_flat = T.reshape(kernel, (GK, F))
            out_flat = T.reshape(out, (GM, F))
            T.clear(out_local)
            for ko in T.Pipelined(T.ceildiv(GK, block_K), num_stages=num_stages):
                for i, j in T.Parallel(block_M, block_K):
                    m = by * block_M + i
                    k = ko * block_K + j
                    ih = (m % (OH * OW)) // OW * stride + k // (KW * C) * dilation - padding
                    iw = m % OW * stride + k // C % KW * dilation - padding
                    inside = (m < GM) & (k < GK) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
                    data_shared[i, j] = T.if_then_else(inside, data[m // (OH * OW), ih, iw, k % C], 0)
                T.copy(kernel_flat[ko * block_K, bx * block_N], kernel_shared)
                T.gemm(data_shared, kernel_shared, out_local)
            T.copy(out_local, out_flat[by * block_M, bx * block_N])

    return main


def ref_program(data, kernel, stride, padding, dilation):
    x = data.float().permute(0, 3, 1, 2)  # NCHW
    w = kernel.float().permute(3, 2, 0, 1)  # FCHW
    y = torch.nn.functional.conv2d(x, w, stride=stride, padding=padding, dilation=dilation)
    return y.permute(0, 2, 3, 1).to(data.dtype)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--c", type=int, default=128)
    parser.add_argument("--h", type=int, default=64)
    parser.add_argument("--w", type=int, default=64)
    parser.add_argument("--f", type=int, default=128)
    parser.add_argument("--k", type=int, default=3, help="filter height and width")
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--padding", type=int, default=1)
    parser.add_argument("--dilation", type=int, default=1)
    parser.add_argument("--block", type=int, nargs=3, default=(64, 128, 32), metavar=("BM", "BN", "BK"))
    parser.add_argument("--no-bench", dest="bench", action="store_false", help="check only, do not time")
    args = parser.parse_args(argv)

    conv = (args.stride, args.padding, args.dilation)
    kernel = tilewise.compile(
        convolution(args.n, args.c, args.h, args.w, args.f, args.k, args.k, *conv, *args.block), out_idx=[-1])
    torch.manual_seed(0)
    data = torch.randn(args.n, args.h, args.w, args.c).half()
    weight = torch.randn(args.k, args.k, args.c, args.f).half()
    out = kernel(data, weight)
    ref = ref_program(data, weight, *conv)
    ok = torch.allclose(out.float(), ref.float(), rtol=1e-2, atol=1e-2)
    err = (out.float() - ref.float()).abs().max().item()
    print(f"conv2d float16 N={args.n} C={args.c} H={args.h} W={args.w} F={args.f} K={args.k} "
          f"stride={args.stride} pad={args.padding} dil={args.dilation}: max err {err:.3g} {'OK' if ok else 'WRONG'}")
    if args.bench:
        t_kernel = do_bench(lambda: kernel(data, weight))
        t_ref = do_bench(lambda: ref_program(data, weight, *conv))
        print(f"  tilewise {t_kernel:.2f} ms, torch conv2d (fp32) {t_ref:.2f} ms, speed-up {t_ref / t_kernel:.2f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
