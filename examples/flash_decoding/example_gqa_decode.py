"""Flash decoding: one query token per sequence against a long KV cache, grouped-query heads,
the KV sequence split across blocks.

A decode step has too little work per (batch, head) to fill a GPU, so the KV sequence is cut
into `num_split` pieces: each block attends its `block_H` query heads (which share one KV head)
to one piece and writes a partial output with its log-sum-exp; a second kernel combines the
pieces, weighting each by 2^(lse_split - lse_total). Both kernels live in one prim_func.

    python examples/flash_decoding/example_gqa_decode.py [--kv_ctx 8192] [--num_split 8] ...
"""
import argparse
import sys

import torch

import tilewise
import tilewise.language as T
from tilewise.testing import torch_assert_close

LOG2E = 1.44269504


def flashdecoding(batch, heads, kv_heads, seqlen_kv, dim, block_N=64, block_H=16, num_split=8, num_stages=2,
                  threads=128, dtype="float16"):
    accum_dtype = "float"
    assert heads % kv_heads == 0, "heads must be a multiple of kv_heads"
    kv_group_num = heads // kv_heads
    # A block's query heads must share their KV head; extra rows of a larger tile are computed
    # and dropped (the tile keeps the height a tensor-core gemm wants).
    valid_block_H = min(block_H, kv_group_num)
    assert kv_group_num % valid_block_H == 0, "block_H must divide the query heads per KV head"
    split_len = -(-seqlen_kv // num_split)
    assert (num_split - 1) * split_len < seqlen_kv, "every split needs at least one key"
    scale = (1.0 / dim) ** 0.5 * LOG2E
    shape_q = [batch, heads, dim]
    shape_kv = [batch, seqlen_kv, kv_heads, dim]

    @T.macro
    def attend_split(
        Q: T.Tensor(shape_q, dtype),
        K: T.Tensor(shape_kv, dtype),
        V: T.Tensor(shape_kv, dtype),
        glse: T.Tensor([batch, heads, num_split], accum_dtype),
        Output_partial: T.Tensor([batch, heads, num_split, dim], accum_dtype),
    ):
        with T.Kernel(batch, heads // valid_block_H, num_split, threads=threads) as (bid, hid, sid):
            Q_shared = T.alloc_shared([block_H, dim], dtype)
            K_shared = T.alloc_shared([block_N, dim], dtype)
            V_shared = T.alloc_shared([block_N, dim], dtype)
            acc_s = T.alloc_fragment([block_H, block_N], accum_dtype)
            # P goes through shared memory: a short tile spreads its warps along N, so no warp
            # holds whole rows of the score fragment for the second gemm's A operand.
            S_shared = T.alloc_shared([block_H, block_N], dtype)
            O_shared = T.alloc_shared([block_H, dim], accum_dtype)
            acc_o = T.alloc_fragment([block_H, dim], accum_dtype)
            scores_max = T.alloc_fragment([block_H], accum_dtype)
            scores_max_prev = T.alloc_fragment([block_H], accum_dtype)
            scores_scale = T.alloc_fragment([block_H], accum_dtype)
            scores_sum = T.alloc_fragment([block_H], accum_dtype)
            logsum = T.alloc_fragment([block_H], accum_dtype)

            kv_head = hid // (kv_group_num // valid_block_H)
            start = sid * split_len
            end = T.min(start + split_len, seqlen_kv)

            T.copy(Q[bid, hid * valid_block_H:hid * valid_block_H + block_H, :], Q_shared)
            T.fill(acc_o, 0)
            T.fill(logsum, 0)
            T.fill(scores_max, -T.infinity(accum_dtype))

            for k in T.Pipelined(T.ceildiv(end - start, block_N), num_stages=num_stages):
                T.copy(K[bid, start + k * block_N:start + (k + 1) * block_N, kv_head, :], K_shared)
                # Keys past this split (or past the cache) get a -inf score.
                for i, j in T.Parallel(block_H, block_N):
                    acc_s[i, j] = T.if_then_else(start + k * block_N + j < end, 0, -T.infinity(accum_dtype))
                T.gemm(Q_shared, K_shared, acc_s, transpose_B=True, policy=T.GemmWarpPolicy.FullRow)
                T.copy(scores_max, scores_max_prev)
                T.reduce_max(acc_s, scores_max, dim=1, clear=False)
                for i in T.Parallel(block_H):
                    scores_scale[i] = T.exp2(scores_max_prev[i] * scale - scores_max[i] * scale)
                for i, j in T.Parallel(block_H, block_N):
                    acc_s[i, j] = T.exp2(acc_s[i, j] * scale - scores_max[i] * scale)
                T.reduce_sum(acc_s, scores_sum, dim=1)
                for i in T.Parallel(block_H):
                    logsum[i] = logsum[i] * scores_scale[i] + scores_sum[i]
                T.copy(acc_s, S_shared)
                for i, j in T.Parallel(block_H, dim):
                    acc_o[i, j] *= scores_scale[i]
                T.copy(V[bid, start + k * block_N:start + (k + 1) * block_N, kv_head, :], V_shared)
                T.gemm(S_shared, V_shared, acc_o, policy=T.GemmWarpPolicy.FullRow)

            for i, j in T.Parallel(block_H, dim):
                acc_o[i, j] /= logsum[i]
            for i in T.Parallel(block_H):
                logsum[i] = T.log2(logsum[i]) + scores_max[i] * scale
            for i in T.Parallel(block_H):
                if i < valid_block_H:
                    glse[bid, hid * valid_block_H + i, sid] = logsum[i]
            T.copy(acc_o, O_shared)
            T.copy(O_shared[:valid_block_H, :],
                   Output_partial[bid, hid * valid_block_H:(hid + 1) * valid_block_H, sid, :])

    @T.macro
    def combine(
        glse: T.Tensor([batch, heads, num_split], accum_dtype),
        Output_partial: T.Tensor([batch, heads, num_split, dim], accum_dtype),
        Output: T.Tensor(shape_q, dtype),
    ):
        with T.Kernel(heads, batch, threads=128) as (hid, bid):
            o_accum = T.alloc_fragment([dim], accum_dtype)
            lse_max = T.alloc_var(accum_dtype)
            lse_sum = T.alloc_var(accum_dtype)
            lse_max = -T.infinity(accum_dtype)
            for k in T.serial(num_split):
                lse_max = T.max(lse_max, glse[bid, hid, k])
            lse_sum = 0
            for k in T.serial(num_split):
                lse_sum += T.exp2(glse[bid, hid, k] - lse_max)
            lse_total = T.log2(lse_sum) + lse_max
            T.clear(o_accum)
            for k in T.serial(num_split):
                weight = T.exp2(glse[bid, hid, k] - lse_total)
                for i in T.Parallel(dim):
                    o_accum[i] += Output_partial[bid, hid, k, i] * weight
            T.copy(o_accum, Output[bid, hid, :])

    @T.prim_func
    def main(
        Q: T.Tensor(shape_q, dtype),
        K: T.Tensor(shape_kv, dtype),
        V: T.Tensor(shape_kv, dtype),
        glse: T.Tensor([batch, heads, num_split], accum_dtype),
        Output_partial: T.Tensor([batch, heads, num_split, dim], accum_dtype),
        Output: T.Tensor(shape_q, dtype),
    ):
        attend_split(Q, K, V, glse, Output_partial)
        combine(glse, Output_partial, Output)

    return main


def ref_program(Q, K, V):
    """Decode attention in fp32 through torch: Q [b, h, d], K/V [b, s, kv_heads, d]; the query
    heads of one KV head form the rows of one matmul."""
    b, h, d = Q.shape
    kv_heads = K.shape[2]
    q = Q.float().view(b, kv_heads, h // kv_heads, d)
    k, v = (x.float().transpose(1, 2) for x in (K, V))
    p = torch.softmax(q @ k.transpose(-1, -2) * d ** -0.5, dim=-1)
    return (p @ v).view(b, h, d)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv_heads", type=int, default=4)
    parser.add_argument("--kv_ctx", type=int, default=8192)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--block_N", type=int, default=64)
    parser.add_argument("--block_H", type=int, default=16)
    parser.add_argument("--num_split", type=int, default=8)
    parser.add_argument("--num_stages", type=int, default=2,
                        help="2 needs 70 KiB of shared memory at dim 128; AMD GPUs (64 KiB of LDS) need 1")
    parser.add_argument("--target", default="auto", help="auto, cpu, or cuda (the emulator when there is no GPU)")
    parser.add_argument("--bench_ms", type=float, default=500, help="time spent timing each side (0: check only)")
    args = parser.parse_args(argv)

    func = flashdecoding(args.batch, args.heads, args.kv_heads, args.kv_ctx, args.dim, args.block_N, args.block_H,
                         args.num_split, args.num_stages)
    kernel = tilewise.compile(func, out_idx=[3, 4, 5], target=args.target)

    torch.manual_seed(0)
    Q = torch.randn(args.batch, args.heads, args.dim, dtype=torch.float16)
    K = torch.randn(args.batch, args.kv_ctx, args.kv_heads, args.dim, dtype=torch.float16)
    V = torch.randn(args.batch, args.kv_ctx, args.kv_heads, args.dim, dtype=torch.float16)

    _, _, out = kernel(Q, K, V)
    try:
        torch_assert_close(out, ref_program(Q, K, V), rtol=1e-2, atol=1e-2)
    except AssertionError as e:
        print(f"WRONG: {e}")
        return 1
    print(f"GQA decode: {args.batch} x {args.heads} heads ({args.kv_heads} KV heads), {args.kv_ctx} keys, "
          f"{args.num_split} splits: matches torch")

    if args.bench_ms > 0:
        nbytes = 2 * K.numel() * K.element_size()
        t_tw = tilewise.profiler.do_bench(lambda: kernel(Q, K, V), warmup=50, rep=args.bench_ms)
        t_ref = tilewise.profiler.do_bench(lambda: ref_program(Q, K, V), warmup=50, rep=args.bench_ms)
        print(f"tilewise {t_tw:.2f} ms ({nbytes / t_tw * 1e-6:.1f} GB/s of KV cache)   torch fp32 {t_ref:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
