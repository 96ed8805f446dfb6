"""DeepSeek multi-head latent attention (MLA), decoding.

Every query head attends to one shared compressed KV cache: a latent vector of `dim` (512)
values per token that serves as both key and value, plus a `pe_dim` (64) rotary part of the key.
A query head therefore has a `dim` part (scored against the latent) and a `pe_dim` part (scored
against the rotary keys): two gemms accumulate into one score tile. Since all heads share the
cache, one block takes `block_H` heads at once and reads each KV tile once for all of them.
With `num_split > 1` the KV sequence is also split across blocks and a second kernel combines
the partial outputs by their log-sum-exp (flash decoding).

On AMD GPUs (`--target hip`) 64 KiB of LDS cannot hold the 64-head query tile (64 KiB at dim 512)
beside the KV tile: `--q_in_registers` keeps the query in register fragments instead (wavefronts
split the heads, GemmWarpPolicy.FullRow, so that each holds only its rows), and with
`--block_N 32` the tiles of the loop take 40 KiB of LDS (TileLang's MI300X form); the output
tile staged for whole-row stores reuses their bytes.

    python examples/deepseek_mla/example_mla_decode.py [--heads 128] [--kv_ctx 2048] [--num_split 2]
"""
import argparse
import sys

import torch

import tilewise
import tilewise.language as T
from tilewise.testing import torch_assert_close

LOG2E = 1.44269504


def mla_decode(batch, heads, seqlen_kv, dim, pe_dim, block_N=64, block_H=64, num_split=1, num_stages=2,
               threads=256, dtype="float16", q_in_registers=False):
    accum_dtype = "float"
    # with the query in registers each wavefront holds only the heads it computes (FullRow);
    # FullCol would give every wavefront all block_H x dim of it
    policy = T.GemmWarpPolicy.FullRow if q_in_registers else T.GemmWarpPolicy.FullCol
    alloc_q = T.alloc_fragment if q_in_registers else T.alloc_shared
    assert heads % block_H == 0, "block_H must divide heads"
    split_len = -(-seqlen_kv // num_split)
    assert (num_split - 1) * split_len < seqlen_kv, "every split needs at least one key"
    scale = (1.0 / (dim + pe_dim)) ** 0.5 * LOG2E
    partial_shape = [batch, heads, num_split, dim]

    @T.macro
    def attend(
        Q: T.Tensor([batch, heads, dim], dtype),
        Q_pe: T.Tensor([batch, heads, pe_dim], dtype),
        KV: T.Tensor([batch, seqlen_kv, 1, dim], dtype),
        K_pe: T.Tensor([batch, seqlen_kv, 1, pe_dim], dtype),
        glse: T.Tensor([batch, heads, num_split], accum_dtype),
        Output_partial: T.Tensor(partial_shape, accum_dtype),
        Output: T.Tensor([batch, heads, dim], dtype),
    ):
        with T.Kernel(batch, heads // block_H, num_split, threads=threads) as (bid, hid, sid):
            Q_shared = alloc_q([block_H, dim], dtype)
            Q_pe_shared = alloc_q([block_H, pe_dim], dtype)
            KV_shared = T.alloc_shared([block_N, dim], dtype)
            K_pe_shared = T.alloc_shared([block_N, pe_dim], dtype)
            S_shared = T.alloc_shared([block_H, block_N], dtype)
            O_shared = T.alloc_shared([block_H, dim], dtype)
            acc_s = T.alloc_fragment([block_H, block_N], accum_dtype)
            acc_o = T.alloc_fragment([block_H, dim], accum_dtype)
            scores_max = T.alloc_fragment([block_H], accum_dtype)
            scores_max_prev = T.alloc_fragment([block_H], accum_dtype)
            scores_scale = T.alloc_fragment([block_H], accum_dtype)
            scores_sum = T.alloc_fragment([block_H], accum_dtype)
            logsum = T.alloc_fragment([block_H], accum_dtype)

            start = sid * split_len
            end = T.min(start + split_len, seqlen_kv)

            T.copy(Q[bid, hid * block_H:(hid + 1) * block_H, :], Q_shared)
            T.copy(Q_pe[bid, hid * block_H:(hid + 1) * block_H, :], Q_pe_shared)
            T.fill(acc_o, 0)
            T.fill(logsum, 0)
            T.fill(scores_max, -T.infinity(accum_dtype))

            for k in T.Pipelined(T.ceildiv(end - start, block_N), num_stages=num_stages):
                kv_start = start + k * block_N
                T.copy(KV[bid, kv_start:kv_start + block_N, 0, :], KV_shared)
                T.copy(K_pe[bid, kv_start:kv_start + block_N, 0, :], K_pe_shared)
                # Scores of the latent part and the rotary part add up in one tile.
                T.gemm(Q_shared, KV_shared, acc_s, transpose_B=True, policy=policy, clear_accum=True)
                T.gemm(Q_pe_shared, K_pe_shared, acc_s, transpose_B=True, policy=policy)
                for i, j in T.Parallel(block_H, block_N):
                    acc_s[i, j] = T.if_then_else(kv_start + j < end, acc_s[i, j], -T.infinity(accum_dtype))
                T.copy(scores_max, scores_max_prev)
                T.reduce_max(acc_s, scores_max, dim=1, clear=False)
                for i in T.Parallel(block_H):
                    scores_scale[i] = T.exp2(scores_max_prev[i] * scale - scores_max[i] * scale)
                for i, j in T.Parallel(block_H, block_N):
                    acc_s[i, j] = T.exp2(acc_s[i, j] * scale - scores_max[i] * scale)
                T.reduce_sum(acc_s, scores_sum, dim=1)
                T.copy(acc_s, S_shared)
                for i in T.Parallel(block_H):
                    logsum[i] = logsum[i] * scores_scale[i] + scores_sum[i]
                for i, j in T.Parallel(block_H, dim):
                    acc_o[i, j] *= scores_scale[i]
                # The latent tile is the value tile too.
                T.gemm(S_shared, KV_shared, acc_o, policy=policy)

            for i, j in T.Parallel(block_H, dim):
                acc_o[i, j] /= logsum[i]
            if num_split == 1:
                T.copy(acc_o, O_shared)
                T.copy(O_shared, Output[bid, hid * block_H:(hid + 1) * block_H, :])
            else:
                for i in T.Parallel(block_H):
                    logsum[i] = T.log2(logsum[i]) + scores_max[i] * scale
                T.copy(logsum, glse[bid, hid * block_H:(hid + 1) * block_H, sid])
                T.copy(acc_o, Output_partial[bid, hid * block_H:(hid + 1) * block_H, sid, :])

    @T.macro
    def combine(
        glse: T.Tensor([batch, heads, num_split], accum_dtype),
        Output_partial: T.Tensor(partial_shape, accum_dtype),
        Output: T.Tensor([batch, heads, dim], dtype),
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
        Q: T.Tensor([batch, heads, dim], dtype),
        Q_pe: T.Tensor([batch, heads, pe_dim], dtype),
        KV: T.Tensor([batch, seqlen_kv, 1, dim], dtype),
        K_pe: T.Tensor([batch, seqlen_kv, 1, pe_dim], dtype),
        glse: T.Tensor([batch, heads, num_split], accum_dtype),
        Output_partial: T.Tensor(partial_shape, accum_dtype),
        Output: T.Tensor([batch, heads, dim], dtype),
    ):
        attend(Q, Q_pe, KV, K_pe, glse, Output_partial, Output)
        if num_split > 1:
            combine(glse, Output_partial, Output)

    return main


def ref_program(Q, Q_pe, KV, K_pe):
    """MLA decode in fp32 through torch: softmax([q, q_pe] . [kv, k_pe]ᵀ / sqrt(dim + pe_dim)) kv."""
    dim, pe_dim = Q.shape[-1], Q_pe.shape[-1]
    query = torch.cat([Q, Q_pe], dim=-1).float()                  # [b, h, dim + pe_dim]
    key = torch.cat([KV, K_pe], dim=-1).float().squeeze(2)       # [b, s, dim + pe_dim]
    p = torch.softmax(query @ key.transpose(1, 2) * (dim + pe_dim) ** -0.5, dim=-1)
    return p @ KV.float().squeeze(2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--heads", type=int, default=128)
    parser.add_argument("--kv_ctx", type=int, default=2048)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--pe_dim", type=int, default=64)
    parser.add_argument("--block_N", type=int, default=64)
    parser.add_argument("--block_H", type=int, default=64)
    parser.add_argument("--num_split", type=int, default=2)
    parser.add_argument("--num_stages", type=int, default=2,
                        help="2 fits Hopper's shared memory at the default tiles; Ampere (sm_80) needs 1")
    parser.add_argument("--q_in_registers", action="store_true",
                        help="the query tile in registers (AMD GPUs: their 64 KiB of LDS cannot hold it at dim 512)")
    parser.add_argument("--target", default="auto", help="auto, cpu, or cuda (the emulator when there is no GPU)")
    parser.add_argument("--bench_ms", type=float, default=500, help="time spent timing each side (0: check only)")
    args = parser.parse_args(argv)

    func = mla_decode(args.batch, args.heads, args.kv_ctx, args.dim, args.pe_dim, args.block_N, args.block_H,
                      args.num_split, args.num_stages, q_in_registers=args.q_in_registers)
    kernel = tilewise.compile(func, out_idx=[4, 5, 6], target=args.target)

    torch.manual_seed(0)
    Q = torch.randn(args.batch, args.heads, args.dim, dtype=torch.float16)
    Q_pe = torch.randn(args.batch, args.heads, args.pe_dim, dtype=torch.float16)
    KV = torch.randn(args.batch, args.kv_ctx, 1, args.dim, dtype=torch.float16)
    K_pe = torch.randn(args.batch, args.kv_ctx, 1, args.pe_dim, dtype=torch.float16)

    _, _, out = kernel(Q, Q_pe, KV, K_pe)
    try:
        torch_assert_close(out, ref_program(Q, Q_pe, KV, K_pe), rtol=1e-2, atol=1e-2)
    except AssertionError as e:
        print(f"WRONG: {e}")
        return 1
    print(f"MLA decode: {args.batch} x {args.heads} heads, {args.kv_ctx} keys, dim {args.dim} + {args.pe_dim}, "
          f"{args.num_split} splits: matches torch")

    if args.bench_ms > 0:
        flops = 2.0 * args.batch * args.heads * args.kv_ctx * (2 * args.dim + args.pe_dim)
        t_tw = tilewise.profiler.do_bench(lambda: kernel(Q, Q_pe, KV, K_pe), warmup=50, rep=args.bench_ms)
        t_ref = tilewise.profiler.do_bench(lambda: ref_program(Q, Q_pe, KV, K_pe), warmup=50, rep=args.bench_ms)
        print(f"tilewise {t_tw:.2f} ms ({flops / t_tw * 1e-6:.1f} GFLOP/s)   "
              f"torch fp32 {t_ref:.2f} ms ({flops / t_ref * 1e-6:.1f} GFLOP/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
