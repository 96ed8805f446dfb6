"""The benchmark kernels of benchmarks/vs_peers.py, written once in the TileLang language.

This file imports `tilelang`: in the peers' venv that is TileLang itself; the tilewise side
runs the very same file after binding the name `tilelang` to tilewise (compile_cells.py), which
is the point of tilewise: one source, either compiler. Every factory returns a PrimFunc with the
kernel's production shape (shapes only fix grids and strides; the tiles make the code).

The kernels follow the examples in examples/ (the tile configurations of TileLang's own examples
where it has one); MLA decoding is the non-split form, one kernel."""
import math

import tilelang  # noqa: F401 - the name compile_cells.py rebinds to tilewise
import tilelang.language as T

LOG2E = math.log2(math.e)


def gemm(M=4096, N=4096, K=4096, block_M=128, block_N=128, block_K=32, stages=3, threads=128, dtype="float16"):
    @T.prim_func
    def main(A: T.Tensor((M, K), dtype), B: T.Tensor((K, N), dtype), C: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=threads) as (bx, by):
            A_shared = T.alloc_shared((block_M, block_K), dtype)
            B_shared = T.alloc_shared((block_K, block_N), dtype)
            C_local = T.alloc_fragment((block_M, block_N), "float32")
            T.clear(C_local)
            for ko in T.Pipelined(T.ceildiv(K, block_K), num_stages=stages):
                T.copy(A[by * block_M, ko * block_K], A_shared)
                T.copy(B[ko * block_K, bx * block_N], B_shared)
                T.gemm(A_shared, B_shared, C_local)
            T.copy(C_local, C[by * block_M, bx * block_N])

    return main


def gemm_epilogue(M=4096, N=4096, K=4096, block_M=128, block_N=128, block_K=32, stages=3, threads=128,
                  dtype="float16"):
    """D = gelu(A @ B + bias): the epilogue runs on the fp32 accumulator before the one store
    (examples/gemm/example_gemm_epilogue.py, exact erf GELU)."""
    inv_sqrt2 = 1.0 / math.sqrt(2.0)

    @T.prim_func
    def main(A: T.Tensor((M, K), dtype), B: T.Tensor((K, N), dtype), Bias: T.Tensor((N,), dtype),
             D: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=threads) as (bx, by):
            A_shared = T.alloc_shared((block_M, block_K), dtype)
            B_shared = T.alloc_shared((block_K, block_N), dtype)
            bias_local = T.alloc_fragment((block_N,), dtype)
            C_local = T.alloc_fragment((block_M, block_N), "float32")
            T.clear(C_local)
            for ko in T.Pipelined(T.ceildiv(K, block_K), num_stages=stages):
                T.copy(A[by * block_M, ko * block_K], A_shared)
                T.copy(B[ko * block_K, bx * block_N], B_shared)
                T.gemm(A_shared, B_shared, C_local)
            T.copy(Bias[bx * block_N], bias_local)
            for i, j in T.Parallel(block_M, block_N):
                x = C_local[i, j] + bias_local[j]
                C_local[i, j] = 0.5 * x * (1 + T.erf(x * inv_sqrt2))
            T.copy(C_local, D[by * block_M, bx * block_N])

    return main


def softmax(M=8192, N=8192, block_M=1, threads=128, dtype="float16"):
    """Whole rows in registers: max, exp2 of the shifted row, sum, scale."""
    accum = "float32"

    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=threads) as bx:
            x = T.alloc_fragment((block_M, N), accum)
            row_max = T.alloc_fragment((block_M,), accum)
            row_sum = T.alloc_fragment((block_M,), accum)
            T.copy(X[bx * block_M, 0], x)
            T.reduce_max(x, row_max, dim=1)
            for i, j in T.Parallel(block_M, N):
                x[i, j] = T.exp2((x[i, j] - row_max[i]) * LOG2E)
            T.reduce_sum(x, row_sum, dim=1)
            for i, j in T.Parallel(block_M, N):
                x[i, j] = x[i, j] / row_sum[i]
            T.copy(x, Y[bx * block_M, 0])

    return main


def rms_norm(M=8192, N=4096, block_M=1, threads=128, eps=1e-6, dtype="float16"):
    accum = "float32"

    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), W: T.Tensor((N,), dtype), Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=threads) as bx:
            x = T.alloc_fragment((block_M, N), accum)
            x_sq = T.alloc_fragment((block_M, N), accum)
            w = T.alloc_fragment((N,), accum)
            inv_rms = T.alloc_fragment((block_M,), accum)
            T.copy(X[bx * block_M, 0], x)
            T.copy(W, w)
            for i, j in T.Parallel(block_M, N):
                x_sq[i, j] = x[i, j] * x[i, j]
            T.reduce_sum(x_sq, inv_rms, dim=1)
            for i in T.Parallel(block_M):
                inv_rms[i] = T.rsqrt(inv_rms[i] / N + eps)
            for i, j in T.Parallel(block_M, N):
                x[i, j] = x[i, j] * inv_rms[i] * w[j]
            T.copy(x, Y[bx * block_M, 0])

    return main


def flash_fwd(batch=1, heads=32, seq_len=4096, dim=128, block_M=128, block_N=64, stages=2, threads=256,
              is_causal=False, dtype="float16"):
    """FlashAttention forward, bshd, causal or not; the sequence fills whole tiles (a causal block
    stops at the tile of its last query row and masks scores above the diagonal)."""
    accum = "float32"
    shape = [batch, seq_len, heads, dim]
    scale = (1.0 / dim) ** 0.5 * LOG2E

    @T.prim_func
    def main(Q: T.Tensor(shape, dtype), K: T.Tensor(shape, dtype), V: T.Tensor(shape, dtype),
             Output: T.Tensor(shape, dtype)):
        with T.Kernel(T.ceildiv(seq_len, block_M), heads, batch, threads=threads) as (bx, by, bz):
            Q_shared = T.alloc_shared([block_M, dim], dtype)
            K_shared = T.alloc_shared([block_N, dim], dtype)
            V_shared = T.alloc_shared([block_N, dim], dtype)
            O_shared = T.alloc_shared([block_M, dim], dtype)
            acc_s = T.alloc_fragment([block_M, block_N], accum)
            acc_s_cast = T.alloc_fragment([block_M, block_N], dtype)
            acc_o = T.alloc_fragment([block_M, dim], accum)
            scores_max = T.alloc_fragment([block_M], accum)
            scores_max_prev = T.alloc_fragment([block_M], accum)
            scores_scale = T.alloc_fragment([block_M], accum)
            scores_sum = T.alloc_fragment([block_M], accum)
            logsum = T.alloc_fragment([block_M], accum)

            T.copy(Q[bz, bx * block_M:(bx + 1) * block_M, by, :], Q_shared)
            T.fill(acc_o, 0)
            T.fill(logsum, 0)
            T.fill(scores_max, -T.infinity(accum))
            loop_range = (T.min(T.ceildiv(seq_len, block_N), T.ceildiv((bx + 1) * block_M, block_N))
                          if is_causal else T.ceildiv(seq_len, block_N))
            for k in T.Pipelined(loop_range, num_stages=stages):
                T.copy(K[bz, k * block_N:(k + 1) * block_N, by, :], K_shared)
                if is_causal:
                    for i, j in T.Parallel(block_M, block_N):
                        acc_s[i, j] = T.if_then_else(bx * block_M + i >= k * block_N + j, 0, -T.infinity(accum))
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


def elementwise_add(M=4096, N=4096, block_M=8, block_N=256, threads=128, dtype="float32"):
    @T.prim_func
    def main(A: T.Tensor((M, N), dtype), B: T.Tensor((M, N), dtype), C: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=threads) as (bx, by):
            A_local = T.alloc_fragment((block_M, block_N), dtype)
            B_local = T.alloc_fragment((block_M, block_N), dtype)
            C_local = T.alloc_fragment((block_M, block_N), dtype)
            T.copy(A[by * block_M, bx * block_N], A_local)
            T.copy(B[by * block_M, bx * block_N], B_local)
            for i, j in T.Parallel(block_M, block_N):
                C_local[i, j] = A_local[i, j] + B_local[i, j]
            T.copy(C_local, C[by * block_M, bx * block_N])

    return main


def flash_decode(batch=4, heads=32, kv_heads=4, seqlen_kv=8192, dim=128, block_N=64, block_H=16, num_split=8,
                 stages=2, threads=128, dtype="float16"):
    """The split kernel of GQA flash decoding (examples/flash_decoding/example_gqa_decode.py at its
    defaults): block_H query heads sharing one KV head attend one of num_split pieces of the KV
    cache and write a partial output and its log-sum-exp (the small combine kernel is left out)."""
    accum = "float32"
    group = heads // kv_heads
    valid_block_H = min(block_H, group)
    split_len = -(-seqlen_kv // num_split)
    scale = (1.0 / dim) ** 0.5 * LOG2E
    shape_kv = [batch, seqlen_kv, kv_heads, dim]

    @T.prim_func
    def main(Q: T.Tensor([batch, heads, dim], dtype), K: T.Tensor(shape_kv, dtype), V: T.Tensor(shape_kv, dtype),
             glse: T.Tensor([batch, heads, num_split], accum),
             Output_partial: T.Tensor([batch, heads, num_split, dim], accum)):
        with T.Kernel(batch, heads // valid_block_H, num_split, threads=threads) as (bid, hid, sid):
            Q_shared = T.alloc_shared([block_H, dim], dtype)
            K_shared = T.alloc_shared([block_N, dim], dtype)
            V_shared = T.alloc_shared([block_N, dim], dtype)
            acc_s = T.alloc_fragment([block_H, block_N], accum)
            S_shared = T.alloc_shared([block_H, block_N], dtype)
            O_shared = T.alloc_shared([block_H, dim], accum)
            acc_o = T.alloc_fragment([block_H, dim], accum)
            scores_max = T.alloc_fragment([block_H], accum)
            scores_max_prev = T.alloc_fragment([block_H], accum)
            scores_scale = T.alloc_fragment([block_H], accum)
            scores_sum = T.alloc_fragment([block_H], accum)
            logsum = T.alloc_fragment([block_H], accum)

            kv_head = hid // (group // valid_block_H)
            start = sid * split_len
            end = T.min(start + split_len, seqlen_kv)
            T.copy(Q[bid, hid * valid_block_H:hid * valid_block_H + block_H, :], Q_shared)
            T.fill(acc_o, 0)
            T.fill(logsum, 0)
            T.fill(scores_max, -T.infinity(accum))
            for k in T.Pipelined(T.ceildiv(end - start, block_N), num_stages=stages):
                T.copy(K[bid, start + k * block_N:start + (k + 1) * block_N, kv_head, :], K_shared)
                for i, j in T.Parallel(block_H, block_N):
                    acc_s[i, j] = T.if_then_else(start + k * block_N + j < end, 0, -T.infinity(accum))
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
            T.copy(O_shared[:valid_block_H, :], Output_partial[bid, hid * valid_block_H:(hid + 1) * valid_block_H, sid, :])

    return main


def mla_decode(batch=132, heads=128, seqlen_kv=8192, dim=512, pe_dim=64, block_N=64, block_H=64, stages=2,
               threads=256, dtype="float16"):
    """DeepSeek MLA decoding (TileLang's example dims): block_H query heads share one latent KV tile,
    which is both the key (with the rotary part K_pe) and the value."""
    accum = "float32"
    scale = (1.0 / (dim + pe_dim)) ** 0.5 * LOG2E

    @T.prim_func
    def main(Q: T.Tensor([batch, heads, dim], dtype), Q_pe: T.Tensor([batch, heads, pe_dim], dtype),
             KV: T.Tensor([batch, seqlen_kv, 1, dim], dtype), K_pe: T.Tensor([batch, seqlen_kv, 1, pe_dim], dtype),
             Output: T.Tensor([batch, heads, dim], dtype)):
        with T.Kernel(heads // block_H, batch, threads=threads) as (hid, bid):
            Q_shared = T.alloc_shared([block_H, dim], dtype)
            Q_pe_shared = T.alloc_shared([block_H, pe_dim], dtype)
            KV_shared = T.alloc_shared([block_N, dim], dtype)
            K_pe_shared = T.alloc_shared([block_N, pe_dim], dtype)
            S_shared = T.alloc_shared([block_H, block_N], dtype)
            O_shared = T.alloc_shared([block_H, dim], dtype)
            acc_s = T.alloc_fragment([block_H, block_N], accum)
            acc_o = T.alloc_fragment([block_H, dim], accum)
            scores_max = T.alloc_fragment([block_H], accum)
            scores_max_prev = T.alloc_fragment([block_H], accum)
            scores_scale = T.alloc_fragment([block_H], accum)
            scores_sum = T.alloc_fragment([block_H], accum)
            logsum = T.alloc_fragment([block_H], accum)

            T.copy(Q[bid, hid * block_H:(hid + 1) * block_H, :], Q_shared)
            T.copy(Q_pe[bid, hid * block_H:(hid + 1) * block_H, :], Q_pe_shared)
            T.fill(acc_o, 0)
            T.fill(logsum, 0)
            T.fill(scores_max, -T.infinity(accum))
            for k in T.Pipelined(T.ceildiv(seqlen_kv, block_N), num_stages=stages):
                T.copy(KV[bid, k * block_N:(k + 1) * block_N, 0, :], KV_shared)
                T.copy(K_pe[bid, k * block_N:(k + 1) * block_N, 0, :], K_pe_shared)
                T.gemm(Q_shared, KV_shared, acc_s, transpose_B=True, policy=T.GemmWarpPolicy.FullCol,
                       clear_accum=True)
                T.gemm(Q_pe_shared, K_pe_shared, acc_s, transpose_B=True, policy=T.GemmWarpPolicy.FullCol)
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
                T.gemm(S_shared, KV_shared, acc_o, policy=T.GemmWarpPolicy.FullCol)
            for i, j in T.Parallel(block_H, dim):
                acc_o[i, j] /= logsum[i]
            T.copy(acc_o, O_shared)
            T.copy(O_shared, Output[bid, hid * block_H:(hid + 1) * block_H, :])

    return main


def dequant_gemm_int4(M=4096, N=4096, K=4096, block_M=128, block_N=128, block_K=64, group_size=128, stages=3,
                      threads=128, dtype="float16"):
    """C = A @ dequant(B).T: fp16 activations, int4 weights two per byte (zero point 8), one fp16
    scale per group_size weights of a row; expanded to fp16 in shared memory before T.gemm."""
    num_groups = (K + group_size - 1) // group_size

    @T.prim_func
    def main(A: T.Tensor((M, K), dtype), B: T.Tensor((N, K // 2), "uint8"), Scale: T.Tensor((N, num_groups), dtype),
             C: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=threads) as (bx, by):
            A_shared = T.alloc_shared((block_M, block_K), dtype)
            B_packed_shared = T.alloc_shared((block_N, block_K // 2), "uint8")
            B_shared = T.alloc_shared((block_N, block_K), dtype)
            scale_shared = T.alloc_shared((block_N,), dtype)
            C_local = T.alloc_fragment((block_M, block_N), "float32")
            T.clear(C_local)
            for ko in T.Pipelined(T.ceildiv(K, block_K), num_stages=stages):
                T.copy(A[by * block_M, ko * block_K], A_shared)
                T.copy(B[bx * block_N, ko * (block_K // 2)], B_packed_shared)
                T.copy(Scale[bx * block_N:(bx + 1) * block_N, (ko * block_K) // group_size], scale_shared)
                for i, j in T.Parallel(block_N, block_K):
                    nibble = (B_packed_shared[i, j // 2] >> ((j % 2) * 4)) & 0xF
                    B_shared[i, j] = (nibble.astype(dtype) - 8) * scale_shared[i]
                T.gemm(A_shared, B_shared, C_local, transpose_B=True)
            T.copy(C_local, C[by * block_M, bx * block_N])

    return main


# name -> (factory, keyword arguments); vs_peers.py describes each in its table
KERNELS = {
    "gemm": (gemm, {}),
    "gemm_epilogue": (gemm_epilogue, {}),
    "softmax": (softmax, {}),
    "softmax_4x1024": (softmax, {"M": 4096, "N": 1024, "block_M": 4, "dtype": "float32"}),
    "rms_norm": (rms_norm, {}),
    "flash_fwd_d64": (flash_fwd, {"dim": 64}),
    "flash_fwd_d128": (flash_fwd, {"dim": 128}),
    "flash_fwd_d64_causal": (flash_fwd, {"dim": 64, "is_causal": True}),
    "flash_fwd_d128_causal": (flash_fwd, {"dim": 128, "is_causal": True}),
    "flash_decode": (flash_decode, {}),
    "elementwise_add": (elementwise_add, {}),
    "mla_decode": (mla_decode, {}),
    "dequant_gemm_int4": (dequant_gemm_int4, {}),
}


# per-architecture changes of a kernel's arguments: MLA decoding's two stages need 226 KB of
# shared memory, more than an sm_80 block may have (163 KB); its example runs one stage there
ARCH_KWARGS = {
    ("mla_decode", "sm_80"): {"stages": 1},
}


def build(name: str, arch: str | None = None):
    factory, kwargs = KERNELS[name]
    return factory(**kwargs, **ARCH_KWARGS.get((name, arch), {}))
