"""GEMV, c = B @ a for a matrix B (N x K) and a vector a (K), in fp16 or fp32 with fp32
accumulation, written with tile operators only.

Each block owns block_N outputs. It streams K in block_K steps, multiplying the B tile by the
matching slice of a element-wise into a block_N x block_K accumulator (no reduction inside the
loop), and collapses the accumulator's rows with one T.reduce_sum at the end. On a GPU the
compiler spreads the tile over the block's threads and the final reduction becomes warp
shuffles; no thread index appears in the kernel. On a CPU the B tile and the accumulator
should fit the L1 cache together (8 x 256 fp32: 16 KB)."""
import argparse
import sys

import torch

import tilewise
import tilewise.language as T
from tilewise.profiler import do_bench


def gemv(N, K, block_N=8, block_K=256, dtype="float16", accum_dtype="float", num_stages=2):
    @T.prim_func
    def main(A: T.Tensor((K,), dtype), B: T.Tensor((N, K), dtype), C: T.Tensor((N,), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), threads=128) as bx:
            a_local = T.alloc_fragment((block_K,), dtype)
            b_local = T.alloc_fragment((block_N, block_K), dtype)
            acc = T.alloc_fragment((block_N, block_K), accum_dtype)
            c_local = T.alloc_fragment((block_N,), accum_dtype)
            T.clear(acc)
            for ko in T.Pipelined(T.ceildiv(K, block_K), num_stages=num_stages):
                T.copy(A[ko * block_K], a_local)
                T.copy(B[bx * block_N, ko * block_K], b_local)
                for i, j in T.Parallel(block_N, block_K):
                    acc[i, j] += a_local[j].astype(accum_dtype) * b_local[i, j].astype(accum_dtype)
            T.reduce_sum(acc, c_local, dim=1)
            T.copy(c_local, C[bx * block_N])

    return main


def ref_program(a, B):
    return (B.float() @ a.float()).to(a.dtype)


def run(N, K, block, dtype, bench) -> bool:
    kernel = tilewise.compile(gemv(N, K, *block, dtype=dtype), out_idx=[-1])
    torch.manual_seed(0)
    a = torch.randn(K).to(getattr(torch, dtype))
    b = torch.randn(N, K).to(getattr(torch, dtype))
    c = kernel(a, b)
    ref = ref_program(a, b)
    # fp32: the two sums of K products differ in order, by up to ~K * eps in absolute terms
    rtol, atol = (1e-2, 1e-2) if dtype == "float16" else (1e-4, 2e-3)
    ok = torch.allclose(c.float(), ref.float(), rtol=rtol, atol=atol)
    err = (c.float() - ref.float()).abs().max().item()
    print(f"gemv {dtype} {N}x{K}: max err {err:.3g} {'OK' if ok else 'WRONG'}")
    if bench:
        t_kernel = do_bench(lambda: kernel(a, b))
        t_ref = do_bench(lambda: ref_program(a, b))
        gbytes = b.numel() * b.element_size() / 1e6  # per ms
        print(f"  tilewise {t_kernel:.2f} ms ({gbytes / t_kernel:.1f} GB/s), torch (fp32 mv) {t_ref:.2f} ms, "
              f"speed-up {t_ref / t_kernel:.2f}x")
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--k", type=int, default=8192)
    parser.add_argument("--block", type=int, nargs=2, default=(8, 256), metavar=("BN", "BK"))
    parser.add_argument("--dtype", nargs="+", choices=("float16", "float32"), default=["float16", "float32"])
    parser.add_argument("--no-bench", dest="bench", action="store_false", help="check only, do not time")
    args = parser.parse_args(argv)
    results = [run(args.n, args.k, args.block, dtype, args.bench) for dtype in args.dtype]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
