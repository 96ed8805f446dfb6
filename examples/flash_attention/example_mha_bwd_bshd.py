"""FlashAttention backward (dQ, dK, dV), layout bshd, causal or not.

Four kernels, as in FlashAttention-2:
  1. forward, which also stores the log-sum-exp of each score row (base 2), `lse`;
  2. preprocess: Delta = rowsum(dO * O), one value per query row;
  3. backward: one block per `block_M` key rows walks the query tiles, recomputes
     Pᵀ = exp2(K Qᵀ * scale - lse), and accumulates dV += Pᵀ dO and dK += dSᵀ Q in fragments,
     with dSᵀ = Pᵀ * (V dOᵀ - Delta); each block's share of dQ = dS K is added to a float32 dQ
     with atomics, since every key block contributes to every query row;
  4. postprocess: dQ from float32 to float16.

    python examples/flash_attention/example_mha_bwd_bshd.py [--causal] [--seq_len 512] ...
"""
import argparse
import sys

import torch
import torch.nn.functional as F

import tilewise
import tilewise.language as T
from tilewise.testing import torch_assert_close

LOG2E = 1.44269504


def flashattn_fwd(batch, heads, seq_len, dim, is_causal, block_M=64, block_N=64, threads=128, dtype="float16"):
    """Forward pass that also returns lse[b, h, q] = log2(sum_k 2^(s_qk * scale)) for the backward."""
    accum_dtype = "float"
    shape = [batch, seq_len, heads, dim]
    scale = (1.0 / dim) ** 0.5 * LOG2E
    ragged = seq_len % block_N != 0

    @T.prim_func
    def fwd(
        Q: T.Tensor(shape, dtype),
        K: T.Tensor(shape, dtype),
        V: T.Tensor(shape, dtype),
        Output: T.Tensor(shape, dtype),
        lse: T.Tensor([batch, heads, seq_len], accum_dtype),
    ):
        with T.Kernel(T.ceildiv(seq_len, block_M), heads, batch, threads=threads) as (bx, by, bz):
            Q_shared = T.alloc_shared([block_M, dim], dtype)
            K_shared = T.alloc_shared([block_N, dim], dtype)
            V_shared = T.alloc_shared([block_N, dim], dtype)
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
            for k in T.Pipelined(loop_range, num_stages=1):
                T.copy(K[bz, k * block_N:(k + 1) * block_N, by, :], K_shared)
                if is_causal:
                    for i, j in T.Parallel(block_M, block_N):
                        acc_s[i, j] = T.if_then_else(bx * block_M + i >= k * block_N + j, 0,
                                                     -T.infinity(accum_dtype))
                elif ragged:
                    for i, j in T.Parallel(block_M, block_N):
                        acc_s[i, j] = T.if_then_else(k * block_N + j < seq_len, 0, -T.infinity(accum_dtype))
                else:
                    T.clear(acc_s)
                T.gemm(Q_shared, K_shared, acc_s, transpose_B=True, policy=T.GemmWarpPolicy.FullRow)
                T.copy(V[bz, k * block_N:(k + 1) * block_N, by, :], V_shared)
                T.copy(scores_max, scores_max_prev)
                T.reduce_max(acc_s, scores_max, dim=1, clear=False)
                for i in T.Parallel(block_M):
                    scores_scale[i] = T.exp2(scores_max_prev[i] * scale - scores_max[i] * scale)
                for i, j in T.Parallel(block_M, dim):
                    acc_o[i, j] *= scores_scale[i]
                for i, j in T.Parallel(block_M, block_N):
                    acc_s[i, j] = T.exp2(acc_s[i, j] * scale - scores_max[i] * scale)
                T.copy(acc_s, acc_s_cast)
                T.gemm(acc_s_cast, V_shared, acc_o, policy=T.GemmWarpPolicy.FullRow)
                T.reduce_sum(acc_s, scores_sum, dim=1)
                for i in T.Parallel(block_M):
                    logsum[i] = logsum[i] * scores_scale[i] + scores_sum[i]
            for i, j in T.Parallel(block_M, dim):
                acc_o[i, j] /= logsum[i]
            T.copy(acc_o, Output[bz, bx * block_M:(bx + 1) * block_M, by, :])
            for i in T.Parallel(block_M):
                logsum[i] = T.log2(logsum[i]) + scores_max[i] * scale
            T.copy(logsum, lse[bz, by, bx * block_M:(bx + 1) * block_M])

    return fwd


def flashattn_bwd_preprocess(batch, heads, seq_len, dim, blk=32, dtype="float16"):
    """Delta[b, h, q] = sum_d O[b, q, h, d] * dO[b, q, h, d]."""
    accum_dtype = "float"
    shape = [batch, seq_len, heads, dim]

    @T.prim_func
    def prep(
        O: T.Tensor(shape, dtype),
        dO: T.Tensor(shape, dtype),
        Delta: T.Tensor([batch, heads, seq_len], accum_dtype),
    ):
        with T.Kernel(heads, T.ceildiv(seq_len, blk), batch) as (bx, by, bz):
            o = T.alloc_fragment([blk, dim], dtype)
            do = T.alloc_fragment([blk, dim], dtype)
            prod = T.alloc_fragment([blk, dim], accum_dtype)
            delta = T.alloc_fragment([blk], accum_dtype)
            T.copy(O[bz, by * blk:(by + 1) * blk, bx, :], o)
            T.copy(dO[bz, by * blk:(by + 1) * blk, bx, :], do)
            for i, j in T.Parallel(blk, dim):
                prod[i, j] = T.cast(o[i, j], accum_dtype) * T.cast(do[i, j], accum_dtype)
            T.reduce_sum(prod, delta, dim=1)
            T.copy(delta, Delta[bz, bx, by * blk:(by + 1) * blk])

    return prep


def flashattn_bwd(batch, heads, seq_len, dim, is_causal, block_M=64, block_N=32, num_stages=1, threads=128,
                  dtype="float16"):
    """dK, dV for `block_M` key rows per block; dQ (float32, zeroed by the caller) by atomics."""
    accum_dtype = "float"
    shape = [batch, seq_len, heads, dim]
    sm_scale = (1.0 / dim) ** 0.5
    scale = sm_scale * LOG2E

    @T.prim_func
    def bwd(
        Q: T.Tensor(shape, dtype),
        K: T.Tensor(shape, dtype),
        V: T.Tensor(shape, dtype),
        dO: T.Tensor(shape, dtype),
        lse: T.Tensor([batch, heads, seq_len], accum_dtype),
        Delta: T.Tensor([batch, heads, seq_len], accum_dtype),
        dQ: T.Tensor(shape, accum_dtype),
        dK: T.Tensor(shape, dtype),
        dV: T.Tensor(shape, dtype),
    ):
        with T.Kernel(heads, T.ceildiv(seq_len, block_M), batch, threads=threads) as (bx, by, bz):
            K_shared = T.alloc_shared([block_M, dim], dtype)
            V_shared = T.alloc_shared([block_M, dim], dtype)
            q = T.alloc_shared([block_N, dim], dtype)
            do = T.alloc_shared([block_N, dim], dtype)
            lse_shared = T.alloc_shared([block_N], accum_dtype)
            delta = T.alloc_shared([block_N], accum_dtype)
            dsT_shared = T.alloc_shared([block_M, block_N], dtype)
            qkT = T.alloc_fragment([block_M, block_N], accum_dtype)
            qkT_cast = T.alloc_fragment([block_M, block_N], dtype)
            dsT = T.alloc_fragment([block_M, block_N], accum_dtype)
            dsT_cast = T.alloc_fragment([block_M, block_N], dtype)
            dv = T.alloc_fragment([block_M, dim], accum_dtype)
            dk = T.alloc_fragment([block_M, dim], accum_dtype)
            dq = T.alloc_fragment([block_N, dim], accum_dtype)
            dv_shared = T.alloc_shared([block_M, dim], dtype)
            dk_shared = T.alloc_shared([block_M, dim], dtype)

            T.copy(K[bz, by * block_M:(by + 1) * block_M, bx, :], K_shared)
            T.copy(V[bz, by * block_M:(by + 1) * block_M, bx, :], V_shared)
            T.clear(dv)
            T.clear(dk)
            # Causal: query tiles before this key block see none of it.
            loop_st = T.floordiv(by * block_M, block_N) if is_causal else 0
            loop_ed = T.ceildiv(seq_len, block_N)
            for k in T.Pipelined(loop_st, loop_ed, num_stages=num_stages):
                T.copy(Q[bz, k * block_N:(k + 1) * block_N, bx, :], q)
                T.clear(qkT)
                T.gemm(K_shared, q, qkT, transpose_B=True, policy=T.GemmWarpPolicy.FullRow)
                T.copy(lse[bz, bx, k * block_N:(k + 1) * block_N], lse_shared)
                for i, j in T.Parallel(block_M, block_N):
                    qkT[i, j] = T.exp2(qkT[i, j] * scale - lse_shared[j])
                if is_causal:
                    for i, j in T.Parallel(block_M, block_N):
                        qkT[i, j] = T.if_then_else(by * block_M + i <= k * block_N + j, qkT[i, j], 0)
                T.copy(dO[bz, k * block_N:(k + 1) * block_N, bx, :], do)
                T.clear(dsT)
                T.gemm(V_shared, do, dsT, transpose_B=True, policy=T.GemmWarpPolicy.FullRow)
                T.copy(qkT, qkT_cast)
                T.gemm(qkT_cast, do, dv, policy=T.GemmWarpPolicy.FullRow)

                T.copy(Delta[bz, bx, k * block_N:(k + 1) * block_N], delta)
                # dS in the accumulator layout it is computed in, then cast into the gemm operand
                # (on AMD GPUs an MFMA's A layout is not its C layout: the copy exchanges them)
                for i, j in T.Parallel(block_M, block_N):
                    dsT[i, j] = qkT[i, j] * (dsT[i, j] - delta[j]) * sm_scale
                T.copy(dsT, dsT_cast)
                T.gemm(dsT_cast, q, dk, policy=T.GemmWarpPolicy.FullRow)

                T.copy(dsT_cast, dsT_shared)
                T.clear(dq)
                T.gemm(dsT_shared, K_shared, dq, transpose_A=True)
                T.atomic_add(dQ[bz, k * block_N:(k + 1) * block_N, bx, :], dq)
            T.copy(dv, dv_shared)
            T.copy(dk, dk_shared)
            T.copy(dv_shared, dV[bz, by * block_M:(by + 1) * block_M, bx, :])
            T.copy(dk_shared, dK[bz, by * block_M:(by + 1) * block_M, bx, :])

    return bwd


def flashattn_bwd_postprocess(batch, heads, seq_len, dim, blk=64, dtype="float16"):
    """dQ from the float32 accumulator to `dtype`."""
    accum_dtype = "float"
    shape = [batch, seq_len, heads, dim]

    @T.prim_func
    def post(
        dQ: T.Tensor(shape, accum_dtype),
        dQ_out: T.Tensor(shape, dtype),
    ):
        with T.Kernel(T.ceildiv(seq_len, blk), heads, batch, threads=128) as (bx, by, bz):
            dq = T.alloc_fragment([blk, dim], accum_dtype)
            T.copy(dQ[bz, bx * blk:(bx + 1) * blk, by, :], dq)
            T.copy(dq, dQ_out[bz, bx * blk:(bx + 1) * blk, by, :])

    return post


class FlashAttentionKernels:
    """The four compiled kernels of one problem size, with forward() and backward()."""

    def __init__(self, batch, heads, seq_len, dim, is_causal, block_M=64, block_N=32, target="auto",
                 dtype="float16"):
        self.shape = (batch, seq_len, heads, dim)
        self.fwd = tilewise.compile(flashattn_fwd(batch, heads, seq_len, dim, is_causal, dtype=dtype),
                                    out_idx=[3, 4], target=target)
        self.prep = tilewise.compile(flashattn_bwd_preprocess(batch, heads, seq_len, dim, dtype=dtype), out_idx=[2],
                                     target=target)
        self.bwd = tilewise.compile(flashattn_bwd(batch, heads, seq_len, dim, is_causal, block_M, block_N,
                                                  dtype=dtype), out_idx=[7, 8], target=target)
        self.post = tilewise.compile(flashattn_bwd_postprocess(batch, heads, seq_len, dim, dtype=dtype), out_idx=[1],
                                     target=target)

    def forward(self, q, k, v):
        return self.fwd(q, k, v)

    def backward(self, q, k, v, o, lse, do):
        delta = self.prep(o, do)
        dq = torch.zeros(self.shape, dtype=torch.float32, device=q.device)
        dk, dv = self.bwd(q, k, v, do, lse, delta, dq)
        return self.post(dq), dk, dv

    def attention(self):
        """attention(q, k, v) -> o (bshd) as a differentiable torch function: the forward kernel
        and the three backward kernels registered as torch custom operators and paired by
        tilewise.torch.autograd_function, so it trains inside a model and compiles with
        torch.compile(fullgraph=True)."""
        import tilewise.torch as twt

        fwd, prep, bwd, post = (twt.custom_op(k) for k in (self.fwd, self.prep, self.bwd, self.post))

        def backward(q, k, v, o, lse, do):
            delta = prep(o, do)
            dq = torch.zeros(q.shape, dtype=torch.float32, device=q.device)  # the kernel adds into it
            dk, dv = bwd(q, k, v, do, lse, delta, dq)
            return post(dq), dk, dv

        return twt.autograd_function(fwd, backward, returns=[0], name="flash_attention")


def ref_program(Q, K, V, dO, is_causal):
    """Output and (dQ, dK, dV) in fp32 through torch autograd."""
    q, k, v = (x.float().transpose(1, 2).requires_grad_() for x in (Q, K, V))
    o = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
    o.backward(dO.float().transpose(1, 2))
    return (o.detach().transpose(1, 2),) + tuple(x.grad.transpose(1, 2) for x in (q, k, v))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seq_len", type=int, default=512)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--causal", action="store_true")
    parser.add_argument("--block_M", type=int, default=64)
    parser.add_argument("--block_N", type=int, default=32)
    parser.add_argument("--target", default="auto", help="auto, cpu, or cuda (the emulator when there is no GPU)")
    parser.add_argument("--bench_ms", type=float, default=500, help="time spent timing each side (0: check only)")
    args = parser.parse_args(argv)

    kernels = FlashAttentionKernels(args.batch, args.heads, args.seq_len, args.dim, args.causal,
                                    args.block_M, args.block_N, args.target)
    torch.manual_seed(0)
    shape = (args.batch, args.seq_len, args.heads, args.dim)
    Q, K, V, dO = (torch.randn(shape, dtype=torch.float16) for _ in range(4))

    O, lse = kernels.forward(Q, K, V)
    dQ, dK, dV = kernels.backward(Q, K, V, O, lse, dO)
    refs = ref_program(Q, K, V, dO, args.causal)
    try:
        for name, got, ref in zip(("O", "dQ", "dK", "dV"), (O, dQ, dK, dV), refs):
            torch_assert_close(got, ref, rtol=1e-2, atol=1e-2, base_name=name)
    except AssertionError as e:
        print(f"WRONG: {e}")
        return 1
    print(f"flash attention bwd {shape} causal={args.causal}: O, dQ, dK, dV match torch autograd")

    if args.bench_ms > 0:
        flops = 10.0 * args.batch * args.heads * args.seq_len * args.seq_len * args.dim  # 5 gemms
        if args.causal:
            flops *= 0.5
        t_tw = tilewise.profiler.do_bench(lambda: kernels.backward(Q, K, V, O, lse, dO), warmup=50,
                                          rep=args.bench_ms)
        q, k, v = (x.float().transpose(1, 2).requires_grad_() for x in (Q, K, V))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=args.causal)
        do = dO.float().transpose(1, 2)
        t_ref = tilewise.profiler.do_bench(lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True),
                                           warmup=50, rep=args.bench_ms)
        print(f"backward: tilewise {t_tw:.2f} ms ({flops / t_tw * 1e-6:.1f} GFLOP/s)   "
              f"torch fp32 autograd {t_ref:.2f} ms ({flops / t_ref * 1e-6:.1f} GFLOP/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
