"""Grouped-query attention forward (FlashAttention), layout bshd, causal or not.

`heads` query heads share `heads // groups` key/value heads: query head h reads KV head
h // groups. The kernel is FlashAttention's online softmax, written with T.macro helpers for its
three stages (scores, softmax update, output update).

    python examples/flash_attention/example_gqa_fwd_bshd.py [--causal] [--groups 4] ...
"""
import argparse
import sys

import torch
import torch.nn.functional as F

import tilewise
import tilewise.language as T
from tilewise.testing import torch_assert_close

LOG2E = 1.44269504


def gqa_fwd(batch, heads, seq_len, dim, is_causal, groups=4, block_M=128, block_N=64, num_stages=1,
            threads=None, dtype="float16"):
    if threads is None:
        threads = block_M // 16 * 32  # one warp per 16 query rows: the score tile feeds P @ V from registers
    accum_dtype = "float"
    assert heads % groups == 0, "heads must be a multiple of groups"
    kv_heads = heads // groups
    q_shape = [batch, seq_len, heads, dim]
    kv_shape = [batch, seq_len, kv_heads, dim]
    scale = (1.0 / dim) ** 0.5 * LOG2E
    ragged = seq_len % block_N != 0

    @T.macro
    def scores(
        K: T.Tensor(kv_shape, dtype),
        Q_shared: T.SharedBuffer([block_M, dim], dtype),
        K_shared: T.SharedBuffer([block_N, dim], dtype),
        acc_s: T.FragmentBuffer([block_M, block_N], accum_dtype),
        k: T.int32,
        bx: T.int32,
        by: T.int32,
        bz: T.int32,
    ):
        T.copy(K[bz, k * block_N:(k + 1) * block_N, by // groups, :], K_shared)
        if is_causal:
            for i, j in T.Parallel(block_M, block_N):
                acc_s[i, j] = T.if_then_else(bx * block_M + i >= k * block_N + j, 0, -T.infinity(accum_dtype))
        elif ragged:
            for i, j in T.Parallel(block_M, block_N):
                acc_s[i, j] = T.if_then_else(k * block_N + j < seq_len, 0, -T.infinity(accum_dtype))
        else:
            T.clear(acc_s)
        T.gemm(Q_shared, K_shared, acc_s, transpose_B=True, policy=T.GemmWarpPolicy.FullRow)

    @T.macro
    def softmax(
        acc_s: T.FragmentBuffer([block_M, block_N], accum_dtype),
        acc_s_cast: T.FragmentBuffer([block_M, block_N], dtype),
        scores_max: T.FragmentBuffer([block_M], accum_dtype),
        scores_max_prev: T.FragmentBuffer([block_M], accum_dtype),
        scores_scale: T.FragmentBuffer([block_M], accum_dtype),
        scores_sum: T.FragmentBuffer([block_M], accum_dtype),
        logsum: T.FragmentBuffer([block_M], accum_dtype),
    ):
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

    @T.macro
    def update_output(
        V: T.Tensor(kv_shape, dtype),
        V_shared: T.SharedBuffer([block_N, dim], dtype),
        acc_s_cast: T.FragmentBuffer([block_M, block_N], dtype),
        acc_o: T.FragmentBuffer([block_M, dim], accum_dtype),
        scores_scale: T.FragmentBuffer([block_M], accum_dtype),
        k: T.int32,
        by: T.int32,
        bz: T.int32,
    ):
        for i, j in T.Parallel(block_M, dim):
            acc_o[i, j] *= scores_scale[i]
        T.copy(V[bz, k * block_N:(k + 1) * block_N, by // groups, :], V_shared)
        T.gemm(acc_s_cast, V_shared, acc_o, policy=T.GemmWarpPolicy.FullRow)

    @T.prim_func
    def main(
        Q: T.Tensor(q_shape, dtype),
        K: T.Tensor(kv_shape, dtype),
        V: T.Tensor(kv_shape, dtype),
        Output: T.Tensor(q_shape, dtype),
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

            loop_range = (
                T.min(T.ceildiv(seq_len, block_N), T.ceildiv((bx + 1) * block_M, block_N))
                if is_causal else T.ceildiv(seq_len, block_N)
            )
            for k in T.Pipelined(loop_range, num_stages=num_stages):
                scores(K, Q_shared, K_shared, acc_s, k, bx, by, bz)
                softmax(acc_s, acc_s_cast, scores_max, scores_max_prev, scores_scale, scores_sum, logsum)
                update_output(V, V_shared, acc_s_cast, acc_o, scores_scale, k, by, bz)

            for i, j in T.Parallel(block_M, dim):
                acc_o[i, j] /= logsum[i]
            T.copy(acc_o, O_shared)
            T.copy(O_shared, Output[bz, bx * block_M:(bx + 1) * block_M, by, :])

    return main


def ref_program(Q, K, V, is_causal, groups):
    """GQA in fp32 through torch: each KV head repeated for its `groups` query heads."""
    q = Q.float().transpose(1, 2)
    k, v = (x.float().transpose(1, 2).repeat_interleave(groups, dim=1) for x in (K, V))
    return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal).transpose(1, 2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--groups", type=int, default=4, help="query heads per KV head")
    parser.add_argument("--seq_len", type=int, default=1024)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--causal", action="store_true")
    parser.add_argument("--block_M", type=int, default=128)
    parser.add_argument("--block_N", type=int, default=64)
    parser.add_argument("--target", default="auto", help="auto, cpu, or cuda (the emulator when there is no GPU)")
    parser.add_argument("--bench_ms", type=float, default=500, help="time spent timing each side (0: check only)")
    args = parser.parse_args(argv)

    func = gqa_fwd(args.batch, args.heads, args.seq_len, args.dim, args.causal, args.groups,
                   args.block_M, args.block_N)
    kernel = tilewise.compile(func, out_idx=[3], target=args.target)

    torch.manual_seed(0)
    kv_heads = args.heads // args.groups
    Q = torch.randn(args.batch, args.seq_len, args.heads, args.dim, dtype=torch.float16)
    K = torch.randn(args.batch, args.seq_len, kv_heads, args.dim, dtype=torch.float16)
    V = torch.randn(args.batch, args.seq_len, kv_heads, args.dim, dtype=torch.float16)

    def ref():
        return ref_program(Q, K, V, args.causal, args.groups)

    out = kernel(Q, K, V)
    try:
        torch_assert_close(out, ref(), rtol=1e-2, atol=1e-2)
    except AssertionError as e:
        print(f"WRONG: {e}")
        return 1
    print(f"GQA fwd {tuple(Q.shape)}, {kv_heads} KV heads, causal={args.causal}: matches torch")

    if args.bench_ms > 0:
        flops = 4.0 * args.batch * args.heads * args.seq_len * args.seq_len * args.dim
        if args.causal:
            flops *= 0.5
        t_tw = tilewise.profiler.do_bench(lambda: kernel(Q, K, V), warmup=50, rep=args.bench_ms)
        t_ref = tilewise.profiler.do_bench(ref, warmup=50, rep=args.bench_ms)
        print(f"tilewise {t_tw:.2f} ms ({flops / t_tw * 1e-6:.1f} GFLOP/s)   "
              f"torch fp32 {t_ref:.2f} ms ({flops / t_ref * 1e-6:.1f} GFLOP/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
