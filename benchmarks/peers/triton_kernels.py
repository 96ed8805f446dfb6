"""Triton versions of the benchmark kernels of benchmarks/vs_peers.py (those with a natural Triton
form), written for this benchmark in ordinary Triton style: shapes and strides are runtime
arguments, which compile_cells.py specialises the way Triton's launcher does for torch tensors
(pointers and multiples of 16 get the divisibility-16 hint, arguments equal to 1 become
constants). Tile sizes, warps and stages match the TileLang kernels in tl_kernels.py.

Each entry of KERNELS is (jit function, arguments, options): arguments are (name, type, value)
with Triton's signature types ("*fp16", "i32", "fp32") or "constexpr"."""
import math

import triton
import triton.language as tl

LOG2E = math.log2(math.e)


@triton.jit
def gemm_kernel(a_ptr, b_ptr, c_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    # rows and columns past the edge wrap around (their results are never stored), so only the
    # K tail needs a mask inside the loop
    rows = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)) % M
    cols = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % N
    ks = tl.arange(0, BLOCK_K)
    a_tile = a_ptr + rows[:, None] * stride_am + ks[None, :] * stride_ak
    b_tile = b_ptr + ks[:, None] * stride_bk + cols[None, :] * stride_bn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        a = tl.load(a_tile, mask=ks[None, :] + k0 < K, other=0.0)
        b = tl.load(b_tile, mask=ks[:, None] + k0 < K, other=0.0)
        acc = tl.dot(a, b, acc)
        a_tile += BLOCK_K * stride_ak
        b_tile += BLOCK_K * stride_bk
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    c_tile = c_ptr + rows[:, None] * stride_cm + cols[None, :] * stride_cn
    tl.store(c_tile, acc.to(c_ptr.dtype.element_ty), mask=(rows[:, None] < M) & (cols[None, :] < N))


@triton.jit
def gemm_epilogue_kernel(a_ptr, b_ptr, bias_ptr, d_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn,
                         stride_dm, stride_dn, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """gemm_kernel with D = gelu(A @ B + bias) (exact erf GELU) applied to the accumulator."""
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    rows = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)) % M
    cols = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % N
    ks = tl.arange(0, BLOCK_K)
    a_tile = a_ptr + rows[:, None] * stride_am + ks[None, :] * stride_ak
    b_tile = b_ptr + ks[:, None] * stride_bk + cols[None, :] * stride_bn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        a = tl.load(a_tile, mask=ks[None, :] + k0 < K, other=0.0)
        b = tl.load(b_tile, mask=ks[:, None] + k0 < K, other=0.0)
        acc = tl.dot(a, b, acc)
        a_tile += BLOCK_K * stride_ak
        b_tile += BLOCK_K * stride_bk
    x = acc + tl.load(bias_ptr + cols).to(tl.float32)[None, :]
    x = 0.5 * x * (1 + tl.math.erf(x * 0.7071067811865476))
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    d_tile = d_ptr + rows[:, None] * stride_dm + cols[None, :] * stride_dn
    tl.store(d_tile, x.to(d_ptr.dtype.element_ty), mask=(rows[:, None] < M) & (cols[None, :] < N))


@triton.jit
def softmax_kernel(x_ptr, y_ptr, M, N, stride_x, stride_y, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_N)
    inside = (rows[:, None] < M) & (cols[None, :] < N)
    x = tl.load(x_ptr + rows[:, None] * stride_x + cols[None, :], mask=inside, other=-float("inf")).to(tl.float32)
    e = tl.exp2((x - tl.max(x, axis=1)[:, None]) * 1.4426950408889634)
    y = e / tl.sum(e, axis=1)[:, None]
    tl.store(y_ptr + rows[:, None] * stride_y + cols[None, :], y.to(y_ptr.dtype.element_ty), mask=inside)


@triton.jit
def rms_norm_kernel(x_ptr, w_ptr, y_ptr, N, stride_x, stride_y, eps, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    inside = cols < N
    x = tl.load(x_ptr + row * stride_x + cols, mask=inside, other=0.0).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=inside, other=0.0).to(tl.float32)
    inv_rms = tl.rsqrt(tl.sum(x * x, axis=0) / N + eps)
    tl.store(y_ptr + row * stride_y + cols, (x * inv_rms * w).to(y_ptr.dtype.element_ty), mask=inside)


@triton.jit
def flash_fwd_kernel(q_ptr, k_ptr, v_ptr, o_ptr, seq_len, stride_b, stride_s, stride_h, qk_scale,
                     HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr):
    """bshd layout; the sequence is a multiple of the blocks (as in the TileLang kernel). Causal:
    the loop stops at the tile of the block's last query row and masks above the diagonal."""
    base = tl.program_id(2) * stride_b + tl.program_id(1) * stride_h
    q_rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    kv_rows = tl.arange(0, BLOCK_N)
    d = tl.arange(0, HEAD_DIM)
    q = tl.load(q_ptr + base + q_rows[:, None] * stride_s + d[None, :])
    row_max = tl.full((BLOCK_M,), -float("inf"), tl.float32)
    row_sum = tl.zeros((BLOCK_M,), tl.float32)
    acc = tl.zeros((BLOCK_M, HEAD_DIM), tl.float32)
    hi = tl.minimum(seq_len, (tl.program_id(0) + 1) * BLOCK_M) if CAUSAL else seq_len
    for start in range(0, hi, BLOCK_N):
        k_t = tl.load(k_ptr + base + (start + kv_rows)[None, :] * stride_s + d[:, None])
        s = tl.dot(q, k_t) * qk_scale  # log2 domain: qk_scale holds log2(e) / sqrt(dim)
        if CAUSAL:
            s = tl.where(q_rows[:, None] >= (start + kv_rows)[None, :], s, -float("inf"))
        new_max = tl.maximum(row_max, tl.max(s, axis=1))
        p = tl.exp2(s - new_max[:, None])
        alpha = tl.exp2(row_max - new_max)
        row_sum = row_sum * alpha + tl.sum(p, axis=1)
        v = tl.load(v_ptr + base + (start + kv_rows)[:, None] * stride_s + d[None, :])
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
        row_max = new_max
    out = acc / row_sum[:, None]
    tl.store(o_ptr + base + q_rows[:, None] * stride_s + d[None, :], out.to(o_ptr.dtype.element_ty))


@triton.jit
def add_kernel(a_ptr, b_ptr, c_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < n
    a = tl.load(a_ptr + offs, mask=inside)
    b = tl.load(b_ptr + offs, mask=inside)
    tl.store(c_ptr + offs, a + b, mask=inside)


def _gemm(M=4096, N=4096, K=4096):
    args = [("a_ptr", "*fp16", None), ("b_ptr", "*fp16", None), ("c_ptr", "*fp16", None),
            ("M", "i32", M), ("N", "i32", N), ("K", "i32", K),
            ("stride_am", "i32", K), ("stride_ak", "i32", 1), ("stride_bk", "i32", N), ("stride_bn", "i32", 1),
            ("stride_cm", "i32", N), ("stride_cn", "i32", 1),
            ("BLOCK_M", "constexpr", 128), ("BLOCK_N", "constexpr", 128), ("BLOCK_K", "constexpr", 32)]
    return gemm_kernel, args, {"num_warps": 4, "num_stages": 3}


def _gemm_epilogue(M=4096, N=4096, K=4096):
    args = [("a_ptr", "*fp16", None), ("b_ptr", "*fp16", None), ("bias_ptr", "*fp16", None), ("d_ptr", "*fp16", None),
            ("M", "i32", M), ("N", "i32", N), ("K", "i32", K),
            ("stride_am", "i32", K), ("stride_ak", "i32", 1), ("stride_bk", "i32", N), ("stride_bn", "i32", 1),
            ("stride_dm", "i32", N), ("stride_dn", "i32", 1),
            ("BLOCK_M", "constexpr", 128), ("BLOCK_N", "constexpr", 128), ("BLOCK_K", "constexpr", 32)]
    return gemm_epilogue_kernel, args, {"num_warps": 4, "num_stages": 3}


def _softmax(M, N, block_M, dtype):
    args = [("x_ptr", f"*{dtype}", None), ("y_ptr", f"*{dtype}", None), ("M", "i32", M), ("N", "i32", N),
            ("stride_x", "i32", N), ("stride_y", "i32", N),
            ("BLOCK_M", "constexpr", block_M), ("BLOCK_N", "constexpr", triton.next_power_of_2(N))]
    return softmax_kernel, args, {"num_warps": 4}


def _rms_norm(M=8192, N=4096):
    args = [("x_ptr", "*fp16", None), ("w_ptr", "*fp16", None), ("y_ptr", "*fp16", None), ("N", "i32", N),
            ("stride_x", "i32", N), ("stride_y", "i32", N), ("eps", "fp32", 1e-6),
            ("BLOCK_N", "constexpr", triton.next_power_of_2(N))]
    return rms_norm_kernel, args, {"num_warps": 4}


def _flash_fwd(dim, causal=False, batch=1, heads=32, seq_len=4096):
    args = [("q_ptr", "*fp16", None), ("k_ptr", "*fp16", None), ("v_ptr", "*fp16", None), ("o_ptr", "*fp16", None),
            ("seq_len", "i32", seq_len), ("stride_b", "i32", seq_len * heads * dim),
            ("stride_s", "i32", heads * dim), ("stride_h", "i32", dim), ("qk_scale", "fp32", LOG2E / math.sqrt(dim)),
            ("HEAD_DIM", "constexpr", dim), ("BLOCK_M", "constexpr", 128), ("BLOCK_N", "constexpr", 64),
            ("CAUSAL", "constexpr", causal)]
    return flash_fwd_kernel, args, {"num_warps": 8, "num_stages": 2}


def _add(M=4096, N=4096):
    args = [("a_ptr", "*fp32", None), ("b_ptr", "*fp32", None), ("c_ptr", "*fp32", None), ("n", "i32", M * N),
            ("BLOCK", "constexpr", 8 * 256)]
    return add_kernel, args, {"num_warps": 4}


KERNELS = {
    "gemm": _gemm,
    "gemm_epilogue": _gemm_epilogue,
    "softmax": lambda: _softmax(8192, 8192, 1, "fp16"),
    "softmax_4x1024": lambda: _softmax(4096, 1024, 4, "fp32"),
    "rms_norm": _rms_norm,
    "flash_fwd_d64": lambda: _flash_fwd(64),
    "flash_fwd_d128": lambda: _flash_fwd(128),
    "flash_fwd_d64_causal": lambda: _flash_fwd(64, causal=True),
    "flash_fwd_d128_causal": lambda: _flash_fwd(128, causal=True),
    "elementwise_add": _add,
}
