"""Weight-only quantised GEMM: C = A @ dequant(B).T with fp16 activations A (M x K) and int4
weights B (N x K) stored two per byte, with one fp16 scale per `group_size` weights of a row:
w[n, k] = (nibble - 8) * Scale[n, k // group_size] (the packing is in int4_utils.py).

Each block copies the packed tile (half the bytes of an fp16 tile) into shared memory, expands
it to fp16 in a T.Parallel loop, and feeds it to T.gemm."""
import argparse
import sys

import torch
from int4_utils import dequantize_int4, quantize_int4

import tilewise
import tilewise.language as T
from tilewise.profiler import do_bench


def dequant_gemm_int4(M, N, K, block_M=128, block_N=128, block_K=64, group_size=128, dtype="float16",
                      accum_dtype="float", num_stages=3):
    assert K % 2 == 0, "two int4 weights per byte: K must be even"
    assert block_K % 2 == 0 and group_size % block_K == 0, "a K tile must lie inside one scale group"
    num_groups = (K + group_size - 1) // group_size

    @T.prim_func
    def main(A: T.Tensor((M, K), dtype), B: T.Tensor((N, K // 2), "uint8"),
             Scale: T.Tensor((N, num_groups), dtype), C: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            A_shared = T.alloc_shared((block_M, block_K), dtype)
            B_packed_shared = T.alloc_shared((block_N, block_K // 2), "uint8")
            B_shared = T.alloc_shared((block_N, block_K), dtype)
            scale_shared = T.alloc_shared((block_N,), dtype)
            C_local = T.alloc_fragment((block_M, block_N), accum_dtype)
            T.clear(C_local)
            for ko in T.Pipelined(T.ceildiv(K, block_K), num_stages=num_stages):
                T.copy(A[by * block_M, ko * block_K], A_shared)
                T.copy(B[bx * block_N, ko * (block_K // 2)], B_packed_shared)
                T.copy(Scale[bx * block_N:(bx + 1) * block_N, (ko * block_K) // group_size], scale_shared)
                for i, j in T.Parallel(block_N, block_K):
                    nibble = (B_packed_shared[i, j // 2] >> ((j % 2) * 4)) & 0xF
                    B_shared[i, j] = (nibble.astype(dtype) - 8) * scale_shared[i]
                T.gemm(A_shared, B_shared, C_local, transpose_B=True)
            T.copy(C_local, C[by * block_M, bx * block_N])

    return main


def ref_program(A, B_packed, scale, group_size):
    return (A.float() @ dequantize_int4(B_packed, scale, group_size).float().T).half()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--m", type=int, default=1024)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--k", type=int, default=1024)
    parser.add_argument("--block", type=int, nargs=3, default=(128, 128, 64), metavar=("BM", "BN", "BK"))
    parser.add_argument("--group-size", type=int, default=128)
    parser.add_argument("--no-bench", dest="bench", action="store_false", help="check only, do not time")
    args = parser.parse_args(argv)

    M, N, K, gs = args.m, args.n, args.k, args.group_size
    kernel = tilewise.compile(dequant_gemm_int4(M, N, K, *args.block, group_size=gs), out_idx=[-1])
    torch.manual_seed(0)
    a = torch.randn(M, K).half()
    b_packed, scale = quantize_int4(torch.randn(N, K), gs)
    c = kernel(a, b_packed, scale)
    ref = ref_program(a, b_packed, scale, gs)
    ok = torch.allclose(c.float(), ref.float(), rtol=1e-2, atol=1e-2)
    err = (c.float() - ref.float()).abs().max().item()
    print(f"fp16 x int4 gemm {M}x{N}x{K}, group {gs}: max err {err:.3g} {'OK' if ok else 'WRONG'}")
    if args.bench:
        t_kernel = do_bench(lambda: kernel(a, b_packed, scale))
        t_ref = do_bench(lambda: ref_program(a, b_packed, scale, gs))
        print(f"  tilewise {t_kernel:.2f} ms, torch (dequantise + fp32 matmul) {t_ref:.2f} ms, "
              f"speed-up {t_ref / t_kernel:.2f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
