"""Mamba-2 (SSD) chunk scan: the output of each chunk of the sequence.

In the chunked SSD algorithm the sequence is cut into chunks of `chunk_size` steps. Within a
chunk, step l sees step s <= l through the decay exp(dA_cumsum[l] - dA_cumsum[s]), where
dA_cumsum is the running sum of dt * A inside the chunk. The output of a chunk is

    out[l] = sum_{s <= l} (C[l] . B[s]) * exp(dA_cs[l] - dA_cs[s]) * dt[s] * x[s]   (intra-chunk)
           + exp(dA_cs[l]) * C[l] . state_in                                         (earlier chunks)
           + D * x[l]                                                                 (skip)

with cb = C Bᵀ per chunk and the states entering each chunk computed beforehand (chunk state
and state passing kernels). One block computes a `block_M` x `block_N` tile of (steps, headdim)
for one head of one chunk.

    python examples/linear_attention/example_mamba_chunk_scan.py [--seq_len 1024] ...
"""
import argparse
import sys

import torch
import torch.nn.functional as F

import tilewise
import tilewise.language as T
from tilewise.testing import torch_assert_close

LOG2E = 1.44269504


def chunk_scan_fwd(batch, seqlen, chunk_size, ngroups, nheads, headdim, dstate, block_M=64, block_N=64,
                   block_K=64, num_stages=2, threads=128, dtype="float16"):
    accum_dtype = "float"
    nchunks = -(-seqlen // chunk_size)
    assert chunk_size % block_M == 0, "block_M must divide chunk_size (a tile may not cross chunks)"
    assert nheads % ngroups == 0, "nheads must be a multiple of ngroups"
    heads_per_group = nheads // ngroups
    n_tiles = -(-headdim // block_N)

    @T.prim_func
    def main(
        cb: T.Tensor((batch, nchunks, ngroups, chunk_size, chunk_size), dtype),
        x: T.Tensor((batch, seqlen, nheads, headdim), dtype),
        dt: T.Tensor((batch, nheads, nchunks, chunk_size), accum_dtype),
        dA_cumsum: T.Tensor((batch, nheads, nchunks, chunk_size), accum_dtype),
        C: T.Tensor((batch, seqlen, ngroups, dstate), dtype),
        prev_states: T.Tensor((batch, nchunks, nheads, headdim, dstate), dtype),
        D: T.Tensor((nheads,), accum_dtype),
        Output: T.Tensor((batch, seqlen, nheads, headdim), dtype),
    ):
        with T.Kernel(nheads, (chunk_size // block_M) * n_tiles, batch * nchunks, threads=threads) as (
            head, tile, bc,
        ):
            acc_o = T.alloc_fragment((block_M, block_N), accum_dtype)
            out_shared = T.alloc_shared((block_M, block_N), dtype)
            cb_shared = T.alloc_shared((block_M, block_K), dtype)
            cb_local = T.alloc_fragment((block_M, block_K), dtype)
            dA_m_shared = T.alloc_shared((block_M,), accum_dtype)
            dA_m = T.alloc_fragment((block_M,), accum_dtype)
            decay_m = T.alloc_fragment((block_M,), accum_dtype)
            dA_k_shared = T.alloc_shared((block_K,), accum_dtype)
            dA_k = T.alloc_fragment((block_K,), accum_dtype)
            dt_shared = T.alloc_shared((block_K,), accum_dtype)
            dt_k = T.alloc_fragment((block_K,), accum_dtype)
            x_shared = T.alloc_shared((block_K, block_N), dtype)
            C_shared = T.alloc_shared((block_M, dstate), dtype)
            state_shared = T.alloc_shared((block_N, dstate), dtype)
            x_res_shared = T.alloc_shared((block_M, block_N), dtype)
            x_res = T.alloc_fragment((block_M, block_N), accum_dtype)

            b = bc % batch
            c = bc // batch
            m0 = (tile // n_tiles) * block_M
            n0 = (tile % n_tiles) * block_N
            group = head // heads_per_group
            row0 = c * chunk_size + m0  # first sequence position of this tile

            T.copy(dA_cumsum[b, head, c, m0:m0 + block_M], dA_m_shared)
            T.copy(dA_m_shared, dA_m)
            # from the shared copy: dA_m is laid out for the loop below, in the rows of cb_local (the
            # gemm's A operand), which on AMD GPUs are not the rows of acc_o that decay_m scales
            for i in T.Parallel(block_M):
                decay_m[i] = T.exp2(dA_m_shared[i] * LOG2E)

            # What the chunks before contribute: C . state_in, decayed to each step.
            T.copy(C[b, row0:row0 + block_M, group, :], C_shared)
            T.copy(prev_states[b, c, head, n0:n0 + block_N, :], state_shared)
            T.gemm(C_shared, state_shared, acc_o, transpose_B=True, clear_accum=True)
            for i, j in T.Parallel(block_M, block_N):
                acc_o[i, j] *= decay_m[i]

            # Inside the chunk: only source steps up to this tile's last row matter (causal).
            for k in T.Pipelined(T.ceildiv(m0 + block_M, block_K), num_stages=num_stages):
                T.copy(cb[b, c, group, m0:m0 + block_M, k * block_K:(k + 1) * block_K], cb_shared)
                T.copy(cb_shared, cb_local)
                T.copy(dA_cumsum[b, head, c, k * block_K:(k + 1) * block_K], dA_k_shared)
                T.copy(dA_k_shared, dA_k)
                T.copy(dt[b, head, c, k * block_K:(k + 1) * block_K], dt_shared)
                T.copy(dt_shared, dt_k)
                for i, j in T.Parallel(block_M, block_K):
                    cb_local[i, j] = T.if_then_else(
                        m0 + i >= k * block_K + j,
                        cb_local[i, j] * T.exp2(dA_m[i] * LOG2E - dA_k[j] * LOG2E) * dt_k[j],
                        0,
                    )
                T.copy(x[b, c * chunk_size + k * block_K:c * chunk_size + (k + 1) * block_K, head, n0:n0 + block_N],
                       x_shared)
                T.gemm(cb_local, x_shared, acc_o)

            # Skip connection D * x.
            T.copy(x[b, row0:row0 + block_M, head, n0:n0 + block_N], x_res_shared)
            T.copy(x_res_shared, x_res)
            for i, j in T.Parallel(block_M, block_N):
                acc_o[i, j] += x_res[i, j] * D[head]

            T.copy(acc_o, out_shared)
            T.copy(out_shared, Output[b, row0:row0 + block_M, head, n0:n0 + block_N])

    return main


def ref_program(cb, x, dt, dA_cumsum, C, prev_states, D):
    """The chunk scan in fp32 through torch."""
    batch, seqlen, nheads, headdim = x.shape
    _, _, nchunks, chunk_size = dt.shape
    ngroups = C.shape[2]
    rep = nheads // ngroups
    pad = nchunks * chunk_size - seqlen
    xf = F.pad(x.float(), (0, 0, 0, 0, 0, pad)).view(batch, nchunks, chunk_size, nheads, headdim)
    Cf = F.pad(C.float(), (0, 0, 0, 0, 0, pad)).view(batch, nchunks, chunk_size, ngroups, -1)
    Cf = Cf.repeat_interleave(rep, dim=3)                                    # b c l h n
    cbf = cb.float().repeat_interleave(rep, dim=2)                          # b c h l s
    dA = dA_cumsum.float().permute(0, 2, 1, 3)                              # b c h l
    decay = torch.exp(dA[..., :, None] - dA[..., None, :])                   # b c h l s
    causal = torch.tril(torch.ones(chunk_size, chunk_size, dtype=torch.bool))
    scores = (cbf * decay).masked_fill(~causal, 0) * dt.float().permute(0, 2, 1, 3)[..., None, :]
    out = torch.einsum("bchls,bcshp->bclhp", scores, xf)
    out_prev = torch.einsum("bclhn,bchpn->bclhp", Cf, prev_states.float())
    out = out + out_prev * torch.exp(dA).permute(0, 1, 3, 2)[..., None]
    out = out.reshape(batch, nchunks * chunk_size, nheads, headdim)[:, :seqlen]
    return out + x.float() * D.float()[:, None]


def make_inputs(batch, seqlen, chunk_size, ngroups, nheads, headdim, dstate):
    """Inputs as the SSD pipeline produces them: dt > 0 (softplus), A < 0, dA_cumsum the
    running sum of dt * A within each chunk, cb = C Bᵀ within each chunk."""
    nchunks = -(-seqlen // chunk_size)
    pad = nchunks * chunk_size - seqlen
    x = torch.randn(batch, seqlen, nheads, headdim, dtype=torch.float16)
    B = torch.randn(batch, seqlen, ngroups, dstate, dtype=torch.float16) * dstate ** -0.5
    C = torch.randn(batch, seqlen, ngroups, dstate, dtype=torch.float16) * dstate ** -0.5
    dt = F.softplus(torch.randn(batch, nheads, nchunks, chunk_size) - 3.0)
    if pad:  # no steps past the end of the sequence
        dt[:, :, -1, chunk_size - pad:] = 0
    A = -torch.rand(nheads) - 0.5
    dA_cumsum = torch.cumsum(dt * A[None, :, None, None], dim=-1)
    Bc = F.pad(B.float(), (0, 0, 0, 0, 0, pad)).view(batch, nchunks, chunk_size, ngroups, dstate)
    Cc = F.pad(C.float(), (0, 0, 0, 0, 0, pad)).view(batch, nchunks, chunk_size, ngroups, dstate)
    cb = torch.einsum("bclgn,bcsgn->bcgls", Cc, Bc).to(torch.float16)
    prev_states = torch.randn(batch, nchunks, nheads, headdim, dstate, dtype=torch.float16)
    D = torch.randn(nheads)
    return cb, x, dt, dA_cumsum, C, prev_states, D


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--groups", type=int, default=1)
    parser.add_argument("--seq_len", type=int, default=1024)
    parser.add_argument("--chunk_size", type=int, default=256)
    parser.add_argument("--dim", type=int, default=64, help="head dim")
    parser.add_argument("--dstate", type=int, default=128)
    parser.add_argument("--target", default="auto", help="auto, cpu, or cuda (the emulator when there is no GPU)")
    parser.add_argument("--bench_ms", type=float, default=500, help="time spent timing each side (0: check only)")
    args = parser.parse_args(argv)

    func = chunk_scan_fwd(args.batch, args.seq_len, args.chunk_size, args.groups, args.heads, args.dim, args.dstate)
    kernel = tilewise.compile(func, out_idx=[7], target=args.target)

    torch.manual_seed(0)
    inputs = make_inputs(args.batch, args.seq_len, args.chunk_size, args.groups, args.heads, args.dim, args.dstate)
    out = kernel(*inputs)
    try:
        torch_assert_close(out, ref_program(*inputs), rtol=1e-2, atol=1e-2)
    except AssertionError as e:
        print(f"WRONG: {e}")
        return 1
    print(f"Mamba-2 chunk scan: batch {args.batch}, seq {args.seq_len}, chunk {args.chunk_size}, {args.heads} heads "
          f"x {args.dim}, dstate {args.dstate}: matches torch")

    if args.bench_ms > 0:
        flops = (2.0 * args.batch * args.seq_len * args.chunk_size * args.heads * args.dim * 0.5
                 + 2.0 * args.batch * args.seq_len * args.heads * args.dim * args.dstate)
        t_tw = tilewise.profiler.do_bench(lambda: kernel(*inputs), warmup=50, rep=args.bench_ms)
        t_ref = tilewise.profiler.do_bench(lambda: ref_program(*inputs), warmup=50, rep=args.bench_ms)
        print(f"tilewise {t_tw:.2f} ms ({flops / t_tw * 1e-6:.1f} GFLOP/s)   "
              f"torch fp32 {t_ref:.2f} ms ({flops / t_ref * 1e-6:.1f} GFLOP/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
