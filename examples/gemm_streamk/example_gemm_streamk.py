"""Stream-K GEMM: C = A @ B with a fixed number of persistent blocks (one per SM) that share the
work evenly, even when the number of C tiles is not a multiple of the number of SMs.

The tiles that fill whole waves are computed data-parallel, one tile per block per wave. The
remaining tiles' K iterations are laid end to end in one linear iteration space, which is cut
into equal contiguous ranges, one per block. A block walks its range tile by tile: a tile it
covers completely is stored; a tile shared with other blocks is added into C with atomics (so C
must start at zero), which fixes up the partial sums without a workspace."""
import argparse
import sys

import torch

import tilewise
import tilewise.language as T
from tilewise.profiler import do_bench


def streamk_schedule(M, N, K, block_M, block_N, block_K, num_sms):
    """Split the tiles into stream-K tiles and data-parallel waves (Python, at compile time)."""
    tiles_n = (N + block_N - 1) // block_N
    total_tiles = ((M + block_M - 1) // block_M) * tiles_n
    iters_per_tile = (K + block_K - 1) // block_K
    sk_tiles = total_tiles % num_sms
    if total_tiles - sk_tiles > num_sms:
        # a lone stream-K remainder balances badly; give stream-K one full wave as well
        sk_tiles += num_sms
    dp_waves = (total_tiles - sk_tiles) // num_sms
    sk_iters = sk_tiles * iters_per_tile
    return tiles_n, iters_per_tile, sk_tiles, dp_waves, sk_iters // num_sms, sk_iters % num_sms


def matmul_streamk(M, N, K, block_M=128, block_N=128, block_K=32, num_sms=108, dtype="float16",
                   out_dtype="float", accum_dtype="float", num_stages=3):
    tiles_n, iters_per_tile, sk_tiles, dp_waves, iters_per_sm, extra_iters = streamk_schedule(
        M, N, K, block_M, block_N, block_K, num_sms)

    @T.prim_func
    def main(A: T.Tensor((M, K), dtype), B: T.Tensor((K, N), dtype), C: T.Tensor((M, N), out_dtype)):
        with T.Kernel(num_sms, threads=128) as pid:
            A_shared = T.alloc_shared((block_M, block_K), dtype)
            B_shared = T.alloc_shared((block_K, block_N), dtype)
            C_local = T.alloc_fragment((block_M, block_N), accum_dtype)

            # stream-K part: this block's range [it, it_end) of the linearised (tile, k) space
            it = T.alloc_var("int32")
            it = pid * iters_per_sm + T.min(pid, extra_iters)
            it_end = (pid + 1) * iters_per_sm + T.min(pid + 1, extra_iters)
            while it < it_end:
                tile = it // iters_per_tile
                k_start = it % iters_per_tile
                n_iters = T.min(iters_per_tile - k_start, it_end - it)
                tm = tile // tiles_n
                tn = tile % tiles_n
                T.clear(C_local)
                for ko in T.Pipelined(n_iters, num_stages=num_stages):
                    T.copy(A[tm * block_M, (k_start + ko) * block_K], A_shared)
                    T.copy(B[(k_start + ko) * block_K, tn * block_N], B_shared)
                    T.gemm(A_shared, B_shared, C_local)
                if n_iters == iters_per_tile:
                    T.copy(C_local, C[tm * block_M, tn * block_N])
                else:
                    T.atomic_add(C[tm * block_M, tn * block_N], C_local)
                it = it + n_iters

            # data-parallel part: whole tiles, one per block per wave
            for w in T.serial(dp_waves):
                tile = sk_tiles + w * num_sms + pid
                tm = tile // tiles_n
                tn = tile % tiles_n
                T.clear(C_local)
                for ko in T.Pipelined(iters_per_tile, num_stages=num_stages):
                    T.copy(A[tm * block_M, ko * block_K], A_shared)
                    T.copy(B[ko * block_K, tn * block_N], B_shared)
                    T.gemm(A_shared, B_shared, C_local)
                T.copy(C_local, C[tm * block_M, tn * block_N])

    return main


def ref_program(A, B):
    return A.float() @ B.float()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--m", type=int, default=1536)
    parser.add_argument("--n", type=int, default=1536)
    parser.add_argument("--k", type=int, default=1536)
    parser.add_argument("--block", type=int, nargs=3, default=(128, 128, 32), metavar=("BM", "BN", "BK"))
    parser.add_argument("--num-sms", type=int, default=108, help="persistent blocks (an A100 has 108 SMs)")
    parser.add_argument("--no-bench", dest="bench", action="store_false", help="check only, do not time")
    args = parser.parse_args(argv)

    sched = streamk_schedule(args.m, args.n, args.k, *args.block, args.num_sms)
    kernel = tilewise.compile(matmul_streamk(args.m, args.n, args.k, *args.block, num_sms=args.num_sms))
    torch.manual_seed(0)
    a = torch.randn(args.m, args.k).half()
    b = torch.randn(args.k, args.n).half()
    c = torch.zeros(args.m, args.n)

    def run():
        c.zero_()
        kernel(a, b, c)
        return c

    run()
    ref = ref_program(a, b)
    ok = torch.allclose(c, ref, rtol=1e-3, atol=1e-3)
    err = (c - ref).abs().max().item()
    print(f"stream-K gemm float16 {args.m}x{args.n}x{args.k} on {args.num_sms} blocks "
          f"({sched[2]} stream-K tiles, {sched[3]} data-parallel waves): max err {err:.3g} {'OK' if ok else 'WRONG'}")
    if args.bench:
        t_kernel = do_bench(run)
        t_ref = do_bench(lambda: ref_program(a, b))
        print(f"  tilewise {t_kernel:.2f} ms (zeroing C included), torch (fp32) {t_ref:.2f} ms, "
              f"speed-up {t_ref / t_kernel:.2f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
