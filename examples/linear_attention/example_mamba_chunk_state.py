"""Mamba-2 (SSD) chunk state: the state each chunk of the sequence hands to the next, and the
chunk cumulative sum it needs.

Two kernels of the chunked SSD algorithm:
  1. chunk cumsum: dt = softplus(dt_raw + dt_bias) and dA_cumsum = the running sum of dt * A
     within each chunk (T.cumsum over a shared tile);
  2. chunk state: for every chunk, head, p < headdim and n < dstate,
         states[p, n] = sum_l x[l, p] * exp(dA_cs[last] - dA_cs[l]) * dt[l] * B[l, n],
     the chunk's inputs decayed to its last step; one gemm per `block_K` steps.

    python examples/linear_attention/example_mamba_chunk_state.py [--seq_len 1024] ...
"""
import argparse
import sys

import torch
import torch.nn.functional as F

import tilewise
import tilewise.language as T
from tilewise.testing import torch_assert_close

LOG2E = 1.44269504


def chunk_cumsum_fwd(batch, seqlen, chunk_size, nheads, block_H=8, threads=128):
    """dt_raw [b, seqlen, h] -> dt, dA_cumsum [b, h, nchunks, chunk_size] (float32)."""
    accum_dtype = "float"
    nchunks = -(-seqlen // chunk_size)

    @T.prim_func
    def main(
        dt_raw: T.Tensor((batch, seqlen, nheads), accum_dtype),
        dt_bias: T.Tensor((nheads,), accum_dtype),
        A: T.Tensor((nheads,), accum_dtype),
        dt_out: T.Tensor((batch, nheads, nchunks, chunk_size), accum_dtype),
        dA_cumsum: T.Tensor((batch, nheads, nchunks, chunk_size), accum_dtype),
    ):
        with T.Kernel(batch, nchunks, T.ceildiv(nheads, block_H), threads=threads) as (b, c, hb):
            dt_local = T.alloc_fragment((chunk_size, block_H), accum_dtype)
            dA_shared = T.alloc_shared((chunk_size, block_H), accum_dtype)  # scanned along the steps
            h0 = hb * block_H
            T.copy(dt_raw[b, c * chunk_size:(c + 1) * chunk_size, h0:h0 + block_H], dt_local)
            for i, j in T.Parallel(chunk_size, block_H):
                v = dt_local[i, j] + dt_bias[T.min(h0 + j, nheads - 1)]
                # softplus, linear for large inputs as in Mamba; no steps past the sequence.
                sp = T.if_then_else(v > 20.0, v, T.log1p(T.exp(v)))
                dt_local[i, j] = T.if_then_else(c * chunk_size + i < seqlen, sp, 0)
            for i, j in T.Parallel(chunk_size, block_H):
                dA_shared[i, j] = dt_local[i, j] * A[T.min(h0 + j, nheads - 1)]
            T.cumsum(dA_shared, dim=0)
            for i, j in T.Parallel(chunk_size, block_H):
                if h0 + j < nheads:
                    dt_out[b, h0 + j, c, i] = dt_local[i, j]
                    dA_cumsum[b, h0 + j, c, i] = dA_shared[i, j]

    return main


def chunk_state_fwd(batch, seqlen, chunk_size, ngroups, nheads, headdim, dstate, block_M=64, block_N=64,
                    block_K=64, num_stages=2, threads=128, dtype="float16"):
    """x, B, dt, dA_cumsum -> states [b, nchunks, h, headdim, dstate]."""
    accum_dtype = "float"
    nchunks = -(-seqlen // chunk_size)
    assert nheads % ngroups == 0, "nheads must be a multiple of ngroups"
    heads_per_group = nheads // ngroups
    n_tiles = -(-dstate // block_N)

    @T.prim_func
    def main(
        B: T.Tensor((batch, seqlen, ngroups, dstate), dtype),
        x: T.Tensor((batch, seqlen, nheads, headdim), dtype),
        dt: T.Tensor((batch, nheads, nchunks, chunk_size), accum_dtype),
        dA_cumsum: T.Tensor((batch, nheads, nchunks, chunk_size), accum_dtype),
        states: T.Tensor((batch, nchunks, nheads, headdim, dstate), dtype),
    ):
        with T.Kernel(nheads, T.ceildiv(headdim, block_M) * n_tiles, batch * nchunks, threads=threads) as (
            head, tile, bc,
        ):
            x_shared = T.alloc_shared((block_K, block_M), dtype)
            B_shared = T.alloc_shared((block_K, block_N), dtype)
            dt_shared = T.alloc_shared((block_K,), accum_dtype)
            dA_shared = T.alloc_shared((block_K,), accum_dtype)
            scale = T.alloc_shared((block_K,), accum_dtype)  # read by every thread of a row below
            acc = T.alloc_fragment((block_M, block_N), accum_dtype)
            acc_shared = T.alloc_shared((block_M, block_N), dtype)

            b = bc % batch
            c = bc // batch
            m0 = (tile // n_tiles) * block_M
            n0 = (tile % n_tiles) * block_N
            seq0 = c * chunk_size
            dA_last = dA_cumsum[b, head, c, chunk_size - 1]

            T.clear(acc)
            for k in T.Pipelined(T.ceildiv(chunk_size, block_K), num_stages=num_stages):
                T.copy(x[b, seq0 + k * block_K:seq0 + (k + 1) * block_K, head, m0:m0 + block_M], x_shared)
                T.copy(dA_cumsum[b, head, c, k * block_K:(k + 1) * block_K], dA_shared)
                T.copy(dt[b, head, c, k * block_K:(k + 1) * block_K], dt_shared)
                # Weight of step l in the state at the chunk's end: its decay times its dt.
                for i in T.Parallel(block_K):
                    scale[i] = T.exp2(dA_last * LOG2E - dA_shared[i] * LOG2E) * dt_shared[i]
                # Scaled in place; the gemm reads the (steps, headdim) tile transposed.
                for i, j in T.Parallel(block_K, block_M):
                    x_shared[i, j] = x_shared[i, j] * scale[i]
                T.copy(B[b, seq0 + k * block_K:seq0 + (k + 1) * block_K, head // heads_per_group, n0:n0 + block_N],
                       B_shared)
                T.gemm(x_shared, B_shared, acc, transpose_A=True)
            T.copy(acc, acc_shared)
            T.copy(acc_shared, states[b, c, head, m0:m0 + block_M, n0:n0 + block_N])

    return main


def ref_chunk_cumsum(dt_raw, dt_bias, A, chunk_size):
    batch, seqlen, nheads = dt_raw.shape
    nchunks = -(-seqlen // chunk_size)
    dt = F.softplus(dt_raw + dt_bias)
    dt = F.pad(dt, (0, 0, 0, nchunks * chunk_size - seqlen))
    dt = dt.view(batch, nchunks, chunk_size, nheads).permute(0, 3, 1, 2)
    return dt, torch.cumsum(dt * A[None, :, None, None], dim=-1)


def ref_chunk_state(B, x, dt, dA_cumsum):
    """The chunk states in fp32 through torch."""
    batch, seqlen, nheads, headdim = x.shape
    _, _, nchunks, chunk_size = dt.shape
    ngroups, dstate = B.shape[2], B.shape[3]
    pad = nchunks * chunk_size - seqlen
    xf = F.pad(x.float(), (0, 0, 0, 0, 0, pad)).view(batch, nchunks, chunk_size, nheads, headdim)
    Bf = F.pad(B.float(), (0, 0, 0, 0, 0, pad)).view(batch, nchunks, chunk_size, ngroups, dstate)
    Bf = Bf.repeat_interleave(nheads // ngroups, dim=3)
    decay = torch.exp(dA_cumsum[..., -1:] - dA_cumsum)
    return torch.einsum("bclhn,bhcl,bclhp->bchpn", Bf, decay * dt, xf)


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
    a = args

    cumsum_kernel = tilewise.compile(chunk_cumsum_fwd(a.batch, a.seq_len, a.chunk_size, a.heads), out_idx=[3, 4],
                                     target=a.target)
    state_kernel = tilewise.compile(
        chunk_state_fwd(a.batch, a.seq_len, a.chunk_size, a.groups, a.heads, a.dim, a.dstate), out_idx=[4],
        target=a.target)

    torch.manual_seed(0)
    dt_raw = torch.randn(a.batch, a.seq_len, a.heads)
    dt_bias = torch.rand(a.heads) - 4.0
    A = -torch.rand(a.heads) - 0.5
    x = torch.randn(a.batch, a.seq_len, a.heads, a.dim, dtype=torch.float16)
    B = torch.randn(a.batch, a.seq_len, a.groups, a.dstate, dtype=torch.float16)

    dt, dA_cumsum = cumsum_kernel(dt_raw, dt_bias, A)
    states = state_kernel(B, x, dt, dA_cumsum)
    ref_dt, ref_dA = ref_chunk_cumsum(dt_raw, dt_bias, A, a.chunk_size)
    try:
        torch_assert_close(dt, ref_dt, rtol=1e-4, atol=1e-5, base_name="dt")
        torch_assert_close(dA_cumsum, ref_dA, rtol=1e-4, atol=1e-4, base_name="dA_cumsum")
        # The states from the kernel's own dt / dA_cumsum, checked against torch on the same inputs.
        torch_assert_close(states, ref_chunk_state(B, x, dt, dA_cumsum), rtol=1e-2, atol=1e-2, base_name="states")
    except AssertionError as e:
        print(f"WRONG: {e}")
        return 1
    print(f"Mamba-2 chunk cumsum + chunk state: batch {a.batch}, seq {a.seq_len}, chunk {a.chunk_size}, "
          f"{a.heads} heads x {a.dim}, dstate {a.dstate}: match torch")

    if a.bench_ms > 0:
        flops = 2.0 * a.batch * a.seq_len * a.heads * a.dim * a.dstate
        t_tw = tilewise.profiler.do_bench(lambda: state_kernel(B, x, dt, dA_cumsum), warmup=50, rep=a.bench_ms)
        t_ref = tilewise.profiler.do_bench(lambda: ref_chunk_state(B, x, dt, dA_cumsum), warmup=50, rep=a.bench_ms)
        print(f"chunk state: tilewise {t_tw:.2f} ms ({flops / t_tw * 1e-6:.1f} GFLOP/s)   "
              f"torch fp32 {t_ref:.2f} ms ({flops / t_ref * 1e-6:.1f} GFLOP/s)")
        t_tw = tilewise.profiler.do_bench(lambda: cumsum_kernel(dt_raw, dt_bias, A), warmup=50, rep=a.bench_ms)
        t_ref = tilewise.profiler.do_bench(lambda: ref_chunk_cumsum(dt_raw, dt_bias, A, a.chunk_size), warmup=50,
                                           rep=a.bench_ms)
        print(f"chunk cumsum: tilewise {t_tw:.3f} ms   torch {t_ref:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
