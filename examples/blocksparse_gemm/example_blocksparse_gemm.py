"""Block-sparse GEMM: C = A @ B where a mask says which (M tile, N tile, K tile) products are
nonzero, as in block-sparse attention or pruned weights.

BlockMask[bm, bn, bk] is a bool per output tile and K step; a block skips the loads and the
tile GEMM of every K step whose mask is off, so the work scales with the mask's density. The
reference applies the same mask to dense tensors."""
import argparse
import sys

import torch

import tilewise
import tilewise.language as T
from tilewise.profiler import do_bench


def blocksparse_matmul(M, N, K, block_M=128, block_N=128, block_K=32, dtype="float16", accum_dtype="float",
                       num_stages=2):
    mask_shape = (T.ceildiv(M, block_M), T.ceildiv(N, block_N), T.ceildiv(K, block_K))

    @T.prim_func
    def main(A: T.Tensor((M, K), dtype), B: T.Tensor((K, N), dtype), BlockMask: T.Tensor(mask_shape, "bool"),
             C: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            A_shared = T.alloc_shared((block_M, block_K), dtype)
            B_shared = T.alloc_shared((block_K, block_N), dtype)
            C_local = T.alloc_fragment((block_M, block_N), accum_dtype)
            T.clear(C_local)
            for ko in T.Pipelined(T.ceildiv(K, block_K), num_stages=num_stages):
                if BlockMask[by, bx, ko]:
                    T.copy(A[by * block_M, ko * block_K], A_shared)
                    T.copy(B[ko * block_K, bx * block_N], B_shared)
                    T.gemm(A_shared, B_shared, C_local)
            T.copy(C_local, C[by * block_M, bx * block_N])

    return main


def ref_program(A, B, block_mask, block_M, block_N, block_K):
    """The sum over K tiles of the tile products that the mask keeps, in fp32."""
    M, N = A.shape[0], B.shape[1]
    Af, Bf = A.float(), B.float()
    C = torch.zeros(M, N)
    for ko in range(block_mask.shape[2]):
        keep = block_mask[:, :, ko].repeat_interleave(block_M, 0)[:M].repeat_interleave(block_N, 1)[:, :N]
        ks = slice(ko * block_K, (ko + 1) * block_K)
        C += (Af[:, ks] @ Bf[ks]) * keep
    return C.to(A.dtype)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--m", type=int, default=1024)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--k", type=int, default=1024)
    parser.add_argument("--block", type=int, nargs=3, default=(128, 128, 32), metavar=("BM", "BN", "BK"))
    parser.add_argument("--sparsity", type=float, default=0.5, help="fraction of (tile, K step) blocks skipped")
    parser.add_argument("--no-bench", dest="bench", action="store_false", help="check only, do not time")
    args = parser.parse_args(argv)

    M, N, K = args.m, args.n, args.k
    bm, bn, bk = args.block
    kernel = tilewise.compile(blocksparse_matmul(M, N, K, bm, bn, bk), out_idx=[-1])
    torch.manual_seed(0)
    a = torch.randn(M, K).half()
    b = torch.randn(K, N).half()
    mask = torch.rand(-(-M // bm), -(-N // bn), -(-K // bk)) >= args.sparsity
    c = kernel(a, b, mask)
    ref = ref_program(a, b, mask, bm, bn, bk)
    ok = torch.allclose(c.float(), ref.float(), rtol=1e-2, atol=1e-2)
    err = (c.float() - ref.float()).abs().max().item()
    print(f"block-sparse gemm float16 {M}x{N}x{K}, {mask.float().mean().item():.0%} of blocks kept: "
          f"max err {err:.3g} {'OK' if ok else 'WRONG'}")
    if args.bench:
        t_kernel = do_bench(lambda: kernel(a, b, mask))
        # the masked reference above is for checking; the speed to beat is the dense product
        af, bf = a.float(), b.float()
        t_dense = do_bench(lambda: af @ bf)
        print(f"  tilewise {t_kernel:.2f} ms, torch dense fp32 matmul {t_dense:.2f} ms, speed-up {t_dense / t_kernel:.2f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
