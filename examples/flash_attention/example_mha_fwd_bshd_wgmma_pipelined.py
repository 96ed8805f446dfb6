"""FlashAttention forward with an FA3-style schedule: the QK gemm of KV tile k overlaps the PV gemm of tile k - 1.

The kernel of example_mha_fwd_bshd.py with TileLang's explicit pipeline schedule
(`T.Pipelined(order=, stage=, group=)`): the loop body is cut into six groups, the K and V copies
(-1: issued by the producer, a warpgroup of its own on Hopper) and four consumer groups. The QK
gemm and the softmax of tile k run in stage 0, the rescale of the output and the PV gemm of tile
k in stage 1, i.e. in the next iteration, issued before that iteration's softmax:

    iteration k:   S_k = Q K_kᵀ  |  O *= scale_{k-1};  O += P_{k-1} V_{k-1}  |  softmax(S_k) -> P_k

so the two gemms and the softmax of consecutive tiles can overlap. P and the rescale factors are
handed from stage 0 to stage 1 in registers: the order (PV of k - 1 before softmax of k) keeps
them alive exactly long enough.

One block owns `block_M` query rows of one head and walks the key/value sequence in `block_N`
tiles, keeping the running row maximum and row sum of the softmax (online softmax) so the whole
score row never has to exist at once. Per KV tile: S = Q Kᵀ (one gemm), rescale, P V (a second
gemm). Scores are handled in base 2 (exp2 with log2(e) folded into the scale).

    python examples/flash_attention/example_mha_fwd_bshd_wgmma_pipelined.py [--causal] [--seq_len 1024] ...
"""
import argparse
import sys

import torch
import torch.nn.functional as F

import tilewise
import tilewise.language as T
from tilewise.testing import torch_assert_close

LOG2E = 1.44269504


def flashattn_fwd(batch, heads, seq_len, dim, is_causal, block_M=128, block_N=128, num_stages=2,
                  threads=256, dtype="float16"):
    accum_dtype = "float"
    shape = [batch, seq_len, heads, dim]
    scale = (1.0 / dim) ** 0.5 * LOG2E
    # Key columns past the end exist only when the sequence does not fill the last tile.
    ragged = seq_len % block_N != 0

    @T.prim_func
    def main(
        Q: T.Tensor(shape, dtype),
        K: T.Tensor(shape, dtype),
        V: T.Tensor(shape, dtype),
        Output: T.Tensor(shape, dtype),
    ):
        with T.Kernel(T.ceildiv(seq_len, block_M), heads, batch, threads=threads) as (bx, by, bz):
            Q_shared = T.alloc_shared([block_M, dim], dtype)
            K_shared = T.alloc_shared([block_N, dim], dtype)
            V_shared = T.alloc_shared([block_N, dim], dtype)
            O_shared = T.alloc_shared([block_M, dim], dtype)
            acc_s = T.alloc_fragment([block_M, block_N], accum_dtype)
            acc_s_cast = T.alloc_fragment([block_M, block_N], dtype)
            acc_o = T.alloc_fragment([block_M, dim], accum_dtype)
            scores_max = T.alloc_fragment([block_M], accum_dtype)
            scores_max_prev = T.alloc_fragment([block_M], accum_dtype)
            scores_scale = T.alloc_fragment([block_M], accum_dtype)
            scores_sum = T.alloc_fragment([block_M], accum_dtype)
            logsum = T.alloc_fragment([block_M], accum_dtype)

            T.copy(Q[bz, bx * block_M:(bx + 1) * block_M, by, :], Q_shared)
            T.fill(acc_o, 0)
            T.fill(logsum, 0)
            T.fill(scores_max, -T.infinity(accum_dtype))

            # A causal block stops at the tile holding its last query row.
            loop_range = (
                T.min(T.ceildiv(seq_len, block_N), T.ceildiv((bx + 1) * block_M, block_N))
                if is_causal else T.ceildiv(seq_len, block_N)
            )
            # statements: 0 copy K | 1-2 mask, QK gemm | 3-9 softmax | 10 rescale | 11 copy V | 12 PV gemm
            for k in T.Pipelined(loop_range, num_stages=num_stages,
                                 order=[-1, 0, 3, 1, -1, 2], stage=[-1, 0, 0, 1, -1, 1],
                                 group=[[0], [1, 2], [3, 4, 5, 6, 7, 8, 9], [10], [11], [12]]):
                T.copy(K[bz, k * block_N:(k + 1) * block_N, by, :], K_shared)
                # Masked scores start at -inf and the gemm accumulates onto them.
                if is_causal:
                    for i, j in T.Parallel(block_M, block_N):
                        acc_s[i, j] = T.if_then_else(bx * block_M + i >= k * block_N + j, 0,
                                                     -T.infinity(accum_dtype))
                elif ragged:
                    for i, j in T.Parallel(block_M, block_N):
                        acc_s[i, j] = T.if_then_else(k * block_N + j < seq_len, 0,
                                                     -T.infinity(accum_dtype))
                else:
                    T.clear(acc_s)
                T.gemm(Q_shared, K_shared, acc_s, transpose_B=True, policy=T.GemmWarpPolicy.FullRow)

                T.copy(scores_max, scores_max_prev)
                T.reduce_max(acc_s, scores_max, dim=1, clear=False)
                for i in T.Parallel(block_M):
                    scores_scale[i] = T.exp2(scores_max_prev[i] * scale - scores_max[i] * scale)
                for i, j in T.Parallel(block_M, block_N):
                    acc_s[i, j] = T.exp2(acc_s[i, j] * scale - scores_max[i] * scale)
                T.reduce_sum(acc_s, scores_sum, dim=1)
                for i in T.Parallel(block_M):
                    logsum[i] = logsum[i] * scores_scale[i] + scores_sum[i]
                T.copy(acc_s, acc_s_cast)

                for i, j in T.Parallel(block_M, dim):
                    acc_o[i, j] *= scores_scale[i]
                T.copy(V[bz, k * block_N:(k + 1) * block_N, by, :], V_shared)
                T.gemm(acc_s_cast, V_shared, acc_o, policy=T.GemmWarpPolicy.FullRow)

            for i, j in T.Parallel(block_M, dim):
                acc_o[i, j] /= logsum[i]
            T.copy(acc_o, O_shared)
            T.copy(O_shared, Output[bz, bx * block_M:(bx + 1) * block_M, by, :])

    return main


def ref_program(Q, K, V, is_causal):
    """Attention in fp32 through torch, bshd in and out."""
    q, k, v = (x.float().transpose(1, 2) for x in (Q, K, V))
    return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal).transpose(1, 2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=1024)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--causal", action="store_true")
    parser.add_argument("--block_M", type=int, default=128)
    parser.add_argument("--block_N", type=int, default=128)
    parser.add_argument("--threads", type=int, default=256)
    parser.add_argument("--target", default="auto", help="auto, cpu, or cuda (the emulator when there is no GPU)")
    parser.add_argument("--bench_ms", type=float, default=500, help="time spent timing each side (0: check only)")
    args = parser.parse_args(argv)

    func = flashattn_fwd(args.batch, args.heads, args.seq_len, args.dim, args.causal,
                         args.block_M, args.block_N, threads=args.threads)
    kernel = tilewise.compile(func, out_idx=[3], target=args.target)

    torch.manual_seed(0)
    shape = (args.batch, args.seq_len, args.heads, args.dim)
    Q, K, V = (torch.randn(shape, dtype=torch.float16) for _ in range(3))
    out = kernel(Q, K, V)
    ref = ref_program(Q, K, V, args.causal)
    try:
        torch_assert_close(out, ref, rtol=1e-2, atol=1e-2)
    except AssertionError as e:
        print(f"WRONG: {e}")
        return 1
    print(f"flash attention fwd (FA3 schedule) {shape} causal={args.causal}: matches torch")

    if args.bench_ms > 0:
        flops = 4.0 * args.batch * args.heads * args.seq_len * args.seq_len * args.dim
        if args.causal:
            flops *= 0.5
        t_tw = tilewise.profiler.do_bench(lambda: kernel(Q, K, V), warmup=50, rep=args.bench_ms)
        t_ref = tilewise.profiler.do_bench(lambda: ref_program(Q, K, V, args.causal), warmup=50, rep=args.bench_ms)
        print(f"tilewise {t_tw:.2f} ms ({flops / t_tw * 1e-6:.1f} GFLOP/s)   "
              f"torch fp32 {t_ref:.2f} ms ({flops / t_ref * 1e-6:.1f} GFLOP/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
