"""Weight-only quantised GEMV: c = dequant(B) @ a with an fp16 vector a (K) and int4 weights B
(N x K, two per byte, per-group fp16 scales; the packing is in int4_utils.py).

A GEMV is memory-bound, and int4 weights move a quarter of the bytes of fp16 ones. Each block
owns block_N outputs: it streams K in block_K steps, expands each packed byte's two weights in
registers and multiplies them by the matching elements of a into a block_N x block_K/2 fp32
accumulator, which one row reduction collapses at the end."""
import argparse
import sys

import torch
from int4_utils import dequantize_int4, quantize_int4

import tilewise
import tilewise.language as T
from tilewise.profiler import do_bench


def dequant_gemv_int4(N, K, block_N=32, block_K=256, group_size=128, dtype="float16", accum_dtype="float",
                      num_stages=2):
    assert K % 2 == 0, "two int4 weights per byte: K must be even"
    assert block_K % 2 == 0 and (group_size % block_K == 0 or block_K % group_size == 0), \
        "block_K must be even, and block_K and group_size must divide one another"
    num_groups = (K + group_size - 1) // group_size
    groups_per_tile = max(block_K // group_size, 1)

    @T.prim_func
    def main(A: T.Tensor((K,), dtype), B: T.Tensor((N, K // 2), "uint8"),
             Scale: T.Tensor((N, num_groups), dtype), C: T.Tensor((N,), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), threads=128) as bx:
            # activations and scales are widened to fp32 once per tile, outside the hot loop
            a_shared = T.alloc_shared((block_K,), accum_dtype)
            scale_shared = T.alloc_shared((block_N, groups_per_tile), accum_dtype)
            b_packed = T.alloc_fragment((block_N, block_K // 2), "uint8")
            acc = T.alloc_fragment((block_N, block_K // 2), accum_dtype)
            c_local = T.alloc_fragment((block_N,), accum_dtype)
            T.clear(acc)
            for ko in T.Pipelined(T.ceildiv(K, block_K), num_stages=num_stages):
                T.copy(A[ko * block_K], a_shared)
                T.copy(B[bx * block_N, ko * (block_K // 2)], b_packed)
                T.copy(Scale[bx * block_N, (ko * block_K) // group_size], scale_shared)
                # one byte (two weights) per element; (nibble - 8) * scale is exact in fp32
                for i, j in T.Parallel(block_N, block_K // 2):
                    scale = scale_shared[i, j * 2 * groups_per_tile // block_K]
                    w_lo = ((b_packed[i, j] & 0xF).astype(accum_dtype) - 8) * scale
                    w_hi = ((b_packed[i, j] >> 4).astype(accum_dtype) - 8) * scale
                    acc[i, j] += a_shared[2 * j] * w_lo + a_shared[2 * j + 1] * w_hi
            T.reduce_sum(acc, c_local, dim=1)
            T.copy(c_local, C[bx * block_N])

    return main


def ref_program(a, B_packed, scale, group_size):
    return (dequantize_int4(B_packed, scale, group_size, torch.float32) @ a.float()).half()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--k", type=int, default=8192)
    parser.add_argument("--block", type=int, nargs=2, default=(32, 256), metavar=("BN", "BK"))
    parser.add_argument("--group-size", type=int, default=128)
    parser.add_argument("--no-bench", dest="bench", action="store_false", help="check only, do not time")
    args = parser.parse_args(argv)

    N, K, gs = args.n, args.k, args.group_size
    kernel = tilewise.compile(dequant_gemv_int4(N, K, *args.block, group_size=gs), out_idx=[-1])
    torch.manual_seed(0)
    a = torch.randn(K).half()
    b_packed, scale = quantize_int4(torch.randn(N, K), gs)
    c = kernel(a, b_packed, scale)
    ref = ref_program(a, b_packed, scale, gs)
    ok = torch.allclose(c.float(), ref.float(), rtol=1e-2, atol=2e-2)
    err = (c.float() - ref.float()).abs().max().item()
    print(f"fp16 x int4 gemv {N}x{K}, group {gs}: max err {err:.3g} {'OK' if ok else 'WRONG'}")
    if args.bench:
        t_kernel = do_bench(lambda: kernel(a, b_packed, scale))
        t_ref = do_bench(lambda: ref_program(a, b_packed, scale, gs))
        w_dq = dequantize_int4(b_packed, scale, gs, torch.float32)
        t_mv = do_bench(lambda: w_dq @ a.float())
        print(f"  tilewise {t_kernel:.2f} ms ({b_packed.numel() / t_kernel / 1e6:.1f} GB/s of weights), "
              f"torch (dequantise + fp32 mv) {t_ref:.2f} ms, speed-up {t_ref / t_kernel:.2f}x; "
              f"torch fp32 mv alone on pre-dequantised weights {t_mv:.2f} ms")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
