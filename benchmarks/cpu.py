"""The CPU target against numpy and torch on the same machine, for kernels exactly as a GPU user
writes them: the examples' kernels with their canonical tile sizes (GEMM 128x128x32, flash
attention 128x64, softmax/RMSNorm one row per block, element-wise 8x256). One run, one table.

    .venv/bin/python benchmarks/cpu.py [--threads N] [--quick] [--reps R]

Every row is a ratio against the peer (peer time / tilewise time: above 1 is faster) and the
fraction of the machine's peak: fp32 FMA throughput (116 GFLOP/s per core: two 256-bit FMA pipes
at 3.6 GHz) for GEMM and attention, the memory bandwidth measured at the start of the run (large
copy or add) for the memory-bound kernels. Low-precision GEMM rows (group "lowp", and the bf16
rows of "gemm") use the peak of the instruction they run on (LOWP_PEAK_FACTOR: detected from
/proc/cpuinfo) and add a 'vs fp32' column: tilewise's own fp32 GEMM of the same shape, timed
interleaved in the same row, over the low-precision kernel's time. A peer whose first call takes
more than SLOW_PEER seconds (torch's reference bf16/int8 kernels on a CPU without the matching
instructions) is timed by that one call, and not at all where the rate it showed on a smaller
shape predicts more than SKIP_PEER seconds a call (the row's note says so).
Calls are timed interleaved (tilewise, peers, tilewise, ...) so that load from other processes
hits every contender alike; the table shows the best call. With --threads 1 the clock is the
calling thread's CPU time, which other processes on the machine do not inflate (the kernel, BLAS
and torch all run on the calling thread then); otherwise it is wall time.

Element-wise, softmax and RMSNorm are timed as users call them, each side allocating its output
(TileLang's out_idx; torch's functional ops); the "into out" rows time the kernels alone, writing
into an existing array (torch's out=). The last lines measure the Python cost of one call, and the
canonical GEMM's cold compile and cache hit for the CPU and CUDA targets (benchmarks/compile_times.py).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

PEAK_GFLOPS_PER_CORE = 116.0  # Zen3/Zen4: two 256-bit FMA pipes = 32 fp32 flops per cycle at ~3.6 GHz
SLOW_PEER = 1.0  # seconds: a peer slower than this per call is timed by its first call only
SKIP_PEER = 10.0  # seconds: a peer predicted slower than this per call is not timed
ROOT = Path(__file__).resolve().parent.parent


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="threads for every contender (default: all cores)")
    ap.add_argument("--quick", action="store_true", help="skip the 4096 GEMMs and the S=2048 attention rows")
    ap.add_argument("--reps", type=int, default=7, help="timed calls per contender and row")
    ap.add_argument("--only", default="",
                    help="comma-separated row groups: gemm,lowp,examples,attention,softmax,rmsnorm,add,overhead,compile,"
                         "transpose (fp32 NN/NT/TN/TT at 1024-4096, not in the default set)")
    return ap.parse_args()


ARGS = parse_args()
if ARGS.threads:
    # before numpy, torch or libgomp load: they read these once
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import tilewise  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
import compile_times  # noqa: E402

for sub in ("gemm", "flash_attention", "softmax", "norm", "elementwise", "dequantize_gemm", "convolution",
            "gemm_streamk"):
    sys.path.insert(0, str(ROOT / "examples" / sub))
from example_convolution import convolution  # noqa: E402
from example_convolution import ref_program as conv_ref  # noqa: E402
from example_dequant_gemm_fp16xint4 import dequant_gemm_int4  # noqa: E402
from example_dequant_gemm_fp16xint4 import ref_program as dequant_ref  # noqa: E402
from example_elementwise_add import elementwise_add  # noqa: E402
from example_gemm import matmul  # noqa: E402
from example_gemm_streamk import matmul_streamk  # noqa: E402
from example_gemm_transpose import matmul_nt  # noqa: E402
from example_mha_bwd_bshd import FlashAttentionKernels  # noqa: E402
from example_mha_fwd_bshd import flashattn_fwd  # noqa: E402
from example_rms_norm import rms_norm  # noqa: E402
from example_softmax import softmax  # noqa: E402

THREADS = ARGS.threads or os.cpu_count()
torch.set_num_threads(THREADS)
CLOCK = time.thread_time if THREADS == 1 else time.perf_counter
PEAK = PEAK_GFLOPS_PER_CORE * THREADS


def timed(fns: dict, reps: int) -> dict:
    """Best and median seconds per call of each function, calls interleaved. A function whose
    warm-up call takes more than SLOW_PEER seconds is timed by that call alone."""
    times = {k: [] for k in fns}
    for k, f in fns.items():  # warm up: page faults, thread pools, caches
        t = CLOCK()
        f()
        if CLOCK() - t > SLOW_PEER:
            times[k].append(CLOCK() - t)
    for _ in range(reps):
        for k, f in fns.items():
            if len(times[k]) == 1 and times[k][0] > SLOW_PEER:
                continue
            t = CLOCK()
            f()
            times[k].append(CLOCK() - t)
    return {k: (min(v), statistics.median(v)) for k, v in times.items()}


def _cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


FLAGS = _cpu_flags()
# Products per cycle of the instruction each low-precision GEMM runs on, over fp32 FMA's: bf16 is
# converted to fp32 in the packing (vdpbf16ps is not used yet even where avx512_bf16 exists);
# int8 runs on pmaddwd / vpdpwssd (int16 pairs), one 256-bit instruction per cycle on Zen3 (16
# products, as two 256-bit FMAs), 32 products per 512-bit vpdpwssd on an AVX512-VNNI CPU.
LOWP_PEAK_FACTOR = {"bf16": 1.0, "fp16": 1.0, "int8": 2.0 if "avx512_vnni" in FLAGS else 1.0}


def compile_cpu(func, out_idx=None, pass_configs=None):
    return tilewise.compile(func, out_idx=out_idx, target="cpu", pass_configs=pass_configs)


# GEMM rows also time the kernel with its blocks run as written, not in bands
# (transform/gemm_bands.py): the 'vs written' column; both must give the same bits
AS_WRITTEN = {"tw.cpu.disable_gemm_bands": True}


def written_contender(fns: dict, func, out, args):
    """Adds the as-written kernel of func to fns after checking it gives `out` bit for bit."""
    k = compile_cpu(func, out_idx=[-1], pass_configs=AS_WRITTEN)
    if not torch.equal(k(*args), out):
        raise AssertionError("GEMM bands and the blocks as written disagree")
    fns["tw_written"] = lambda: k(*args)


def stream_bandwidth() -> float:
    """GB/s the memory-bound kernels can hope for: the better of a large copy (2 streams) and a
    large add (3 streams) into existing arrays, best of 10."""
    a = torch.ones(16 << 20)  # 64 MiB each, as the memory-bound rows
    b, c = torch.ones_like(a), torch.empty_like(a)
    t = timed({"copy": lambda: c.copy_(a), "add": lambda: torch.add(a, b, out=c)}, 10)
    return max(2 * a.numel() * 4 / t["copy"][0], 3 * a.numel() * 4 / t["add"][0]) / 1e9


ROWS: list[dict] = []


def row(group, name, shape, t, work, unit, peers, err=None, note="", peak_factor=1.0):
    """t: {contender: (best, median)}; work in GFLOP or GB; peak_factor scales the fp32 peak for
    the 'of peak' column; a 'tw_fp32' contender gives the 'vs fp32' column."""
    tw = t["tilewise"][0]
    r = {"group": group, "name": name, "shape": shape, "tw": tw, "rate": work / tw, "unit": unit,
         "err": err, "note": note, "peak_factor": peak_factor}
    if "tw_fp32" in t:
        r["vs_fp32"] = t["tw_fp32"][0] / tw
    if "tw_written" in t:
        r["vs_written"] = t["tw_written"][0] / tw
    for p in ("numpy", "torch"):
        if p in t:
            r[p] = t[p][0]
            r["vs_" + p] = t[p][0] / tw
            r["vs_" + p + "_median"] = t[p][1] / t["tilewise"][1]
    ROWS.append(r)
    print(f"  {name:28} {shape:22} done", file=sys.stderr)


# ---------------------------------------------------------------------------------- GEMM
def peer_or_skip(fns: dict, name: str, work: float, rates: dict, what: str) -> str:
    """Drops peer `name` from fns when the rate it showed on a smaller shape (rates[what]) predicts
    more than SKIP_PEER seconds a call; returns the row's note then."""
    rate = rates.get(what)
    if rate and work / rate > SKIP_PEER:
        del fns[name]
        return f"{what}: not timed at this size ({work / rate:.0f} s a call at the {rate:.1f} GFLOP/s it ran at)"
    return ""


def bench_gemm():
    sizes = (1024, 2048) if ARGS.quick else (1024, 2048, 4096)
    fp32 = {}
    peer_rates = {}
    for dtype in ("float32", "bfloat16"):
        for n in sizes:
            func = matmul(n, n, n, dtype=dtype)
            k = compile_cpu(func, out_idx=[-1])
            if dtype == "float32":
                fp32[n] = k
            g = torch.Generator().manual_seed(0)
            a32, b32 = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
            if dtype == "float32":
                a, b = a32, b32
            else:
                a, b = a32.to(torch.bfloat16), b32.to(torch.bfloat16)
            an, bn = a.float().numpy(), b.float().numpy()
            cn = np.empty((n, n), np.float32)
            out = k(a, b).float()
            ref = torch.from_numpy(an @ bn)
            err = float((out - ref).abs().max() / ref.abs().max())
            reps = max(3, ARGS.reps // (2 if n >= 4096 else 1))
            fns = {"tilewise": lambda: k(a, b), "numpy": lambda: np.matmul(an, bn, out=cn),
                   "torch": lambda: torch.mm(a, b)}
            note = ""
            if dtype == "float32":
                written_contender(fns, func, k(a, b), (a, b))
            if dtype == "bfloat16":
                a32c, b32c = a.float(), b.float()
                fns["tw_fp32"] = lambda: fp32[n](a32c, b32c)
                note = peer_or_skip(fns, "torch", 2 * n**3 / 1e9, peer_rates, "torch bf16 mm")
            t = timed(fns, reps)
            if dtype == "bfloat16" and "torch" in t:
                peer_rates["torch bf16 mm"] = 2 * n**3 / 1e9 / t["torch"][0]
            row("gemm", f"GEMM {'fp32' if dtype == 'float32' else 'bf16'}", f"{n}x{n}x{n}", t, 2 * n**3 / 1e9,
                "GFLOP/s", ("numpy", "torch"), err, note or ("numpy: fp32 (no bf16 GEMM)" if dtype == "bfloat16" else ""),
                LOWP_PEAK_FACTOR["bf16"] if dtype == "bfloat16" else 1.0)
    return fp32


def int_matmul(M, N, K, a_dtype="int8", b_dtype="int8", block_M=128, block_N=128, block_K=32):
    """C[int32] = A @ B with 8-bit operands, the canonical GEMM's tiles (T.gemm int8 -> int32)."""
    import tilewise.language as T

    @T.prim_func
    def main(A: T.Tensor((M, K), a_dtype), B: T.Tensor((K, N), b_dtype), C: T.Tensor((M, N), "int32")):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            A_shared = T.alloc_shared((block_M, block_K), a_dtype)
            B_shared = T.alloc_shared((block_K, block_N), b_dtype)
            C_local = T.alloc_fragment((block_M, block_N), "int32")
            T.clear(C_local)
            for ko in T.Pipelined(T.ceildiv(K, block_K), num_stages=3):
                T.copy(A[by * block_M, ko * block_K], A_shared)
                T.copy(B[ko * block_K, bx * block_N], B_shared)
                T.gemm(A_shared, B_shared, C_local)
            T.copy(C_local, C[by * block_M, bx * block_N])

    return main


def bench_lowp(fp32: dict):
    """int8 -> int32 and float16 -> float32 GEMMs against torch and against tilewise's fp32 GEMM."""
    sizes = (1024, 2048) if ARGS.quick else (1024, 2048, 4096)
    peer_rates = {}
    for n in sizes:
        if n not in fp32:
            fp32[n] = compile_cpu(matmul(n, n, n, dtype="float32"), out_idx=[-1])
        g = torch.Generator().manual_seed(0)
        a32, b32 = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
        reps = max(3, ARGS.reps // (2 if n >= 4096 else 1))
        work = 2 * n**3 / 1e9
        # int8 x int8 -> int32: exact, checked against numpy's int64 product cast to int32
        k = compile_cpu(int_matmul(n, n, n), out_idx=[-1])
        a = torch.randint(-128, 128, (n, n), dtype=torch.int8, generator=g)
        b = torch.randint(-128, 128, (n, n), dtype=torch.int8, generator=g)
        out = k(a, b).numpy()
        ref = (a.numpy().astype(np.float64) @ b.numpy().astype(np.float64)).astype(np.int64).astype(np.int32)
        err = float(np.abs(out.astype(np.int64) - ref).max())  # exact: the float64 product is exact here
        fns = {"tilewise": lambda: k(a, b), "tw_fp32": lambda: fp32[n](a32, b32)}
        note = "torch: torch._int_mm"
        if hasattr(torch, "_int_mm"):
            fns["torch"] = lambda: torch._int_mm(a, b)
            note = peer_or_skip(fns, "torch", work, peer_rates, "torch._int_mm") or note
        else:
            note = "torch: no torch._int_mm in this torch"
        t = timed(fns, reps)
        if "torch" in t:
            peer_rates["torch._int_mm"] = work / t["torch"][0]
        row("lowp", "GEMM int8 -> int32", f"{n}x{n}x{n}", t, work, "GOP/s", ("torch",), err, note,
            LOWP_PEAK_FACTOR["int8"])
        # float16 -> float32 accumulate -> float16, against torch's fp32 GEMM on fp32 copies (the
        # example's reference: torch's own fp16 GEMM is a reference kernel on this CPU)
        k = compile_cpu(matmul(n, n, n, dtype="float16"), out_idx=[-1])
        a, b = a32.half(), b32.half()
        af, bf = a.float(), b.float()
        out = k(a, b).float()
        ref = af @ bf
        err = float((out - ref).abs().max() / ref.abs().max())
        t = timed({"tilewise": lambda: k(a, b), "torch": lambda: torch.mm(af, bf),
                   "tw_fp32": lambda: fp32[n](af, bf)}, reps)
        row("lowp", "GEMM fp16", f"{n}x{n}x{n}", t, work, "GFLOP/s", ("torch",), err,
            "GEMM fp16: torch = torch.mm on float32 copies of the operands", LOWP_PEAK_FACTOR["fp16"])
        # fp16 x int4 (group 128) as examples/dequantize_gemm has it, against its torch reference
        # (dequantise, then fp32 matmul)
        from int4_utils import quantize_int4

        k = compile_cpu(dequant_gemm_int4(n, n, n, group_size=128), out_idx=[-1])
        bq, sc = quantize_int4(b32.T.contiguous(), 128)
        out = k(a, bq, sc).float()
        ref = dequant_ref(a, bq, sc, 128).float()
        err = float((out - ref).abs().max() / ref.abs().max())
        t = timed({"tilewise": lambda: k(a, bq, sc), "torch": lambda: dequant_ref(a, bq, sc, 128),
                   "tw_fp32": lambda: fp32[n](af, bf)}, reps)
        row("lowp", "GEMM fp16 x int4 (dequant)", f"{n}x{n}x{n}", t, work, "GFLOP/s", ("torch",), err,
            "GEMM fp16 x int4: torch = the example's reference (dequantise, fp32 matmul)", LOWP_PEAK_FACTOR["fp16"])


# ---------------------------------------------------------------------------------- the examples' kernels
def bench_transpose():
    """fp32 GEMM of every transposition (examples/gemm/example_gemm_transpose.py, 128x128x32 tiles)
    at 1024-4096, against numpy and torch computing the same product of the stored operands (BLAS
    takes the transpositions as flags, no copies)."""
    sizes = (1024, 2048) if ARGS.quick else (1024, 2048, 4096)
    g = torch.Generator().manual_seed(0)
    for n in sizes:
        a = torch.randn(n, n, generator=g)
        b = torch.randn(n, n, generator=g)
        an, bn = a.numpy(), b.numpy()
        cn = np.empty((n, n), np.float32)
        for layout in ("NN", "NT", "TN", "TT"):
            ta, tb = layout[0] == "T", layout[1] == "T"
            func = matmul_nt(n, n, n, trans_A=ta, trans_B=tb, dtype="float32")
            k = compile_cpu(func, out_idx=[-1])
            x, y = (a.T if ta else a), (b.T if tb else b)
            xn, yn = (an.T if ta else an), (bn.T if tb else bn)
            ref = torch.from_numpy(xn.astype(np.float64) @ yn.astype(np.float64))
            err = float((k(a, b).double() - ref).abs().max() / ref.abs().max())
            reps = max(3, ARGS.reps // (2 if n >= 4096 else 1))
            fns = {"tilewise": lambda: k(a, b), "numpy": lambda: np.matmul(xn, yn, out=cn),
                   "torch": lambda: torch.mm(x, y)}
            written_contender(fns, func, k(a, b), (a, b))
            t = timed(fns, reps)
            row("transpose", f"GEMM {layout} fp32", f"{n}x{n}x{n}", t, 2 * n**3 / 1e9, "GFLOP/s", ("numpy", "torch"),
                err, "GEMM NN/NT/TN/TT rows: example_gemm_transpose.py, fp32, peers on the same stored operands")


def bench_examples():
    """The examples issue #16 names, at their default sizes and dtypes, each against the torch
    reference the example compares with (an fp32 computation on the same inputs): GEMMs with
    transposed operands (the example's float16 and float32 at 2048), the implicit-GEMM
    convolution, stream-K and the FlashAttention backward pass."""
    g = torch.Generator().manual_seed(0)
    n = 1024 if ARGS.quick else 2048
    for dtype, size in (("float16", 1024), ("float32", n)):
        tdt = getattr(torch, dtype)
        for layout in ("NN", "NT", "TN", "TT"):
            ta, tb = layout[0] == "T", layout[1] == "T"
            k = compile_cpu(matmul_nt(size, size, size, trans_A=ta, trans_B=tb, dtype=dtype), out_idx=[-1])
            a = torch.randn(size, size, generator=g).to(tdt)
            b = torch.randn(size, size, generator=g).to(tdt)

            def ref(a=a, b=b, ta=ta, tb=tb):
                x, y = a.float(), b.float()
                return ((x.T if ta else x) @ (y.T if tb else y)).to(a.dtype)

            out = k(a, b).float()
            r = ref().float()
            err = float((out - r).abs().max() / r.abs().max())
            t = timed({"tilewise": lambda: k(a, b), "torch": ref}, ARGS.reps)
            row("examples", f"GEMM {layout} {'fp16' if dtype == 'float16' else 'fp32'}", f"{size}^3", t,
                2 * size**3 / 1e9, "GFLOP/s", ("torch",), err, "GEMM NN/NT/TN/TT: example_gemm_transpose.py")

    # convolution: N=8 C=128 64x64 F=128 3x3 pad 1, float16 (the example's defaults)
    cn, cc, hh, ww, ff, kk = 8, 128, 64, 64, 128, 3
    k = compile_cpu(convolution(cn, cc, hh, ww, ff, kk, kk, 1, 1, 1), out_idx=[-1])
    data = torch.randn(cn, hh, ww, cc, generator=g).half()
    weight = torch.randn(kk, kk, cc, ff, generator=g).half()
    err = float((k(data, weight).float() - conv_ref(data, weight, 1, 1, 1).float()).abs().max())
    t = timed({"tilewise": lambda: k(data, weight), "torch": lambda: conv_ref(data, weight, 1, 1, 1)}, ARGS.reps)
    row("examples", "conv2d fp16 (implicit GEMM)", f"N{cn} C{cc} {hh}x{ww} F{ff}", t,
        2 * cn * hh * ww * ff * cc * kk * kk / 1e9, "GFLOP/s", ("torch",), err, "conv2d: torch conv2d in fp32")

    # stream-K: 1536^3 float16 on 108 persistent blocks, C zeroed per call (the example's defaults)
    sm = 1536
    k = compile_cpu(matmul_streamk(sm, sm, sm, num_sms=108))
    a = torch.randn(sm, sm, generator=g).half()
    b = torch.randn(sm, sm, generator=g).half()
    c = torch.zeros(sm, sm)

    def streamk():
        c.zero_()
        k(a, b, c)

    streamk()
    err = float((c - a.float() @ b.float()).abs().max())
    t = timed({"tilewise": streamk, "torch": lambda: a.float() @ b.float()}, ARGS.reps)
    row("examples", "stream-K GEMM fp16", f"{sm}^3 108 blocks", t, 2 * sm**3 / 1e9, "GFLOP/s", ("torch",), err)

    # FlashAttention backward: B1 H4 S512 D64 float16 (the example's defaults), against torch
    # autograd through scaled_dot_product_attention in fp32
    shape = (1, 512, 4, 64)
    fa = FlashAttentionKernels(*shape[:1], shape[2], shape[1], shape[3], False, target="cpu")
    q, kt, v, do = (torch.randn(shape, generator=g).half() for _ in range(4))
    o, lse = fa.forward(q, kt, v)
    qf, kf, vf = (x.float().transpose(1, 2).requires_grad_() for x in (q, kt, v))
    of = F.scaled_dot_product_attention(qf, kf, vf)
    dof = do.float().transpose(1, 2)
    dq = fa.backward(q, kt, v, o, lse, do)[0]
    err = float((dq.float() - torch.autograd.grad(of, (qf,), dof, retain_graph=True)[0].transpose(1, 2)).abs().max())
    t = timed({"tilewise": lambda: fa.backward(q, kt, v, o, lse, do),
               "torch": lambda: torch.autograd.grad(of, (qf, kf, vf), dof, retain_graph=True)}, ARGS.reps)
    row("examples", "FlashAttn bwd fp16", "B1 H4 S512 D64", t, 10 * 4 * 512 * 512 * 64 / 1e9, "GFLOP/s",
        ("torch",), err, "FlashAttn bwd: torch autograd of SDPA in fp32")


# ---------------------------------------------------------------------------------- attention
def bench_attention():
    heads, batch = 8, 1
    configs = [(s, d, c) for s in (1024, 2048) for d in (64, 128) for c in (False, True)]
    if ARGS.quick:
        configs = [c for c in configs if c[0] == 1024]
    for s, d, causal in configs:
        k = compile_cpu(flashattn_fwd(batch, heads, s, d, causal, dtype="float32"), out_idx=[3])
        g = torch.Generator().manual_seed(0)
        q, kk, v = (torch.randn(batch, s, heads, d, generator=g) for _ in range(3))  # bshd, as the kernel takes
        qt, kt, vt = (x.transpose(1, 2).contiguous() for x in (q, kk, v))  # bhsd, as SDPA takes
        out = k(q, kk, v)
        ref = F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal).transpose(1, 2)
        err = float((out - ref).abs().max())
        t = timed({"tilewise": lambda: k(q, kk, v),
                   "torch": lambda: F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal)}, ARGS.reps)
        flops = 4 * batch * heads * s * s * d * (0.5 if causal else 1.0)
        row("attention", f"FlashAttn fwd fp32{' causal' if causal else ''}", f"B{batch} H{heads} S{s} D{d}", t,
            flops / 1e9, "GFLOP/s", ("torch",), err, "torch: scaled_dot_product_attention")


# ---------------------------------------------------------------------------------- memory-bound
M_ROWS, N_COLS = 4096, 4096


def _inputs(dtype):
    g = torch.Generator().manual_seed(0)
    tdt = getattr(torch, dtype)
    x = (torch.randn(M_ROWS, N_COLS, generator=g) * 4).to(tdt)
    y = torch.randn(M_ROWS, N_COLS, generator=g).to(tdt)
    w = torch.rand(N_COLS, generator=g).to(tdt)
    return x, y, w


def bench_softmax(bw):
    for dtype in ("float32", "float16"):
        x, _, _ = _inputs(dtype)
        k = compile_cpu(softmax(M_ROWS, N_COLS, dtype=dtype), out_idx=[-1])
        err = float((k(x).float() - torch.softmax(x.float(), -1)).abs().max())
        t = timed({"tilewise": lambda: k(x), "torch": lambda: torch.softmax(x, -1)}, ARGS.reps)
        gb = 2 * x.numel() * x.element_size() / 1e9
        row("softmax", f"softmax {dtype}", f"{M_ROWS}x{N_COLS}", t, gb, "GB/s", ("torch",), err)
        if dtype == "float32":
            k2 = compile_cpu(softmax(M_ROWS, N_COLS, dtype=dtype))
            y1, y2 = torch.empty_like(x), torch.empty_like(x)
            t = timed({"tilewise": lambda: k2(x, y1), "torch": lambda: torch.softmax(x, -1, out=y2)}, ARGS.reps)
            row("softmax", f"softmax {dtype} into out", f"{M_ROWS}x{N_COLS}", t, gb, "GB/s", ("torch",))


def bench_rmsnorm(bw):
    for dtype in ("float32", "float16"):
        x, _, w = _inputs(dtype)
        k = compile_cpu(rms_norm(M_ROWS, N_COLS, dtype=dtype), out_idx=[-1])
        ref = F.rms_norm(x.float(), (N_COLS,), w.float(), 1e-6)
        err = float((k(x, w).float() - ref).abs().max())
        t = timed({"tilewise": lambda: k(x, w), "torch": lambda: F.rms_norm(x, (N_COLS,), w, 1e-6)}, ARGS.reps)
        gb = 2 * x.numel() * x.element_size() / 1e9
        row("rmsnorm", f"RMSNorm {dtype}", f"{M_ROWS}x{N_COLS}", t, gb, "GB/s", ("torch",), err,
            "torch: F.rms_norm")


def bench_add(bw):
    for dtype in ("float32", "float16"):
        a, b, _ = _inputs(dtype)
        k = compile_cpu(elementwise_add(M_ROWS, N_COLS, dtype=dtype), out_idx=[-1])
        err = float((k(a, b).float() - (a + b).float()).abs().max())
        t = timed({"tilewise": lambda: k(a, b), "torch": lambda: torch.add(a, b)}, ARGS.reps)
        gb = 3 * a.numel() * a.element_size() / 1e9
        row("add", f"elementwise add {dtype}", f"{M_ROWS}x{N_COLS}", t, gb, "GB/s", ("torch",), err)
        if dtype == "float32":
            k2 = compile_cpu(elementwise_add(M_ROWS, N_COLS, dtype=dtype))
            c1, c2 = torch.empty_like(a), torch.empty_like(a)
            t = timed({"tilewise": lambda: k2(a, b, c1), "torch": lambda: torch.add(a, b, out=c2)}, ARGS.reps)
            row("add", f"elementwise add {dtype} into out", f"{M_ROWS}x{N_COLS}", t, gb, "GB/s", ("torch",))


# ---------------------------------------------------------------------------------- call overhead
def call_overhead() -> str:
    """Python cost of calling a one-block kernel: the call minus its C entry called directly."""
    import ctypes

    k = compile_cpu(elementwise_add(8, 256), out_idx=[-1])
    a, b = torch.randn(8, 256), torch.randn(8, 256)
    c = torch.empty(8, 256)
    fn = k.runtime.library.lib.tw_entry_direct
    fn.argtypes = [ctypes.c_void_p] * 3
    fn.restype = ctypes.c_int32
    pa, pb, pc = a.data_ptr(), b.data_ptr(), c.data_ptr()
    n = 20000

    def per_call(f):
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(n):
                f()
            best = min(best, (time.perf_counter() - t) / n)
        return best * 1e6

    call = per_call(lambda: k(a, b))
    direct = per_call(lambda: fn(pa, pb, pc))
    alloc = per_call(lambda: torch.empty(8, 256))
    torch_add = per_call(lambda: torch.add(a, b))
    loop = per_call(lambda: None)  # the timing loop itself, counted once in each figure
    overhead = call - direct - alloc + loop
    return (f"one-block kernel (8x256 add), per call: kernel(a, b) {call:.1f} us = C entry {direct:.1f} us + "
            f"output torch.empty {alloc:.1f} us + Python {overhead:.1f} us   (torch.add(a, b): {torch_add:.1f} us)")


# ---------------------------------------------------------------------------------- table
def print_table(bw: float, overhead: str, load0, load1):
    print(f"tilewise CPU benchmark: {THREADS} thread(s), clock: {'thread CPU time' if THREADS == 1 else 'wall'}, "
          f"best of {ARGS.reps} interleaved calls; fp32 peak {PEAK:.0f} GFLOP/s, memory {bw:.1f} GB/s (measured)")
    print(f"load average at start {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, at end {load1[0]:.2f} {load1[1]:.2f} "
          f"{load1[2]:.2f}")
    hdr = (f"{'kernel':30} {'shape':20} {'tilewise':>9} {'numpy':>9} {'torch':>9} {'vs numpy':>9} {'vs torch':>9} "
           f"{'(median)':>9} {'vs fp32':>8} {'vs wrtn':>8} {'rate':>14} {'of peak':>8}  {'max err':>8}")
    print(hdr)
    print("-" * len(hdr))
    for r in ROWS:
        ms = lambda key: f"{r[key] * 1e3:9.2f}" if key in r else " " * 9  # noqa: E731
        ratio = lambda key: f"{r[key]:9.2f}" if key in r else " " * 9  # noqa: E731
        peak = PEAK * r["peak_factor"] if r["unit"] in ("GFLOP/s", "GOP/s") else bw
        vs32 = f"{r['vs_fp32']:8.2f}" if "vs_fp32" in r else " " * 8
        vsw = f"{r['vs_written']:8.2f}" if "vs_written" in r else " " * 8
        med = r.get("vs_torch_median")
        err = f"{r['err']:8.1e}" if r["err"] is not None else " " * 8
        print(f"{r['name']:30} {r['shape']:20} {ms('tw')} {ms('numpy')} {ms('torch')} {ratio('vs_numpy')} "
              f"{ratio('vs_torch')} {f'{med:9.2f}' if med else ' ' * 9} {vs32} {vsw} {r['rate']:8.1f} {r['unit']:>7} "
              f"{r['rate'] / peak:8.2f}  {err}")
    print("(times in ms; 'vs x' = x's time / tilewise's, above 1 is faster; '(median)' = the same against torch "
          "from median times; 'vs fp32' = tilewise's fp32 GEMM time / this kernel's, same shape, same row; "
          "'vs wrtn' = the same kernel with its blocks run as written (no GEMM bands) / this one, bit-identical; "
          "'of peak' = rate / the peak of the instruction the row runs on (fp32 FMA x LOWP_PEAK_FACTOR), or / "
          "measured memory bandwidth for GB/s rows; the peaks assume 3.6 GHz, boost clocks can pass 1.0)")
    print(f"CPU: {'avx512_bf16' if 'avx512_bf16' in FLAGS else 'no avx512_bf16'}, "
          f"{'avx512_vnni' if 'avx512_vnni' in FLAGS else 'no avx512_vnni'}, "
          f"{'avx512f' if 'avx512f' in FLAGS else 'no avx512f'}; low-precision peak factors {LOWP_PEAK_FACTOR}")
    notes = sorted({r["note"] for r in ROWS if r["note"]})
    for n in notes:
        print(f"note: {n}")
    if overhead:
        print(overhead)


def main():
    groups = set(ARGS.only.split(",")) if ARGS.only else {"gemm", "lowp", "examples", "attention", "softmax",
                                                          "rmsnorm", "add", "overhead", "compile"}
    load0 = os.getloadavg()
    bw = stream_bandwidth()
    fp32 = bench_gemm() if "gemm" in groups else {}
    if "lowp" in groups:
        bench_lowp(fp32)
    if "examples" in groups:
        bench_examples()
    if "transpose" in groups:
        bench_transpose()
    if "attention" in groups:
        bench_attention()
    if "softmax" in groups:
        bench_softmax(bw)
    if "rmsnorm" in groups:
        bench_rmsnorm(bw)
    if "add" in groups:
        bench_add(bw)
    overhead = call_overhead() if "overhead" in groups else ""
    # fresh processes, in this run (benchmarks/compile_times.py): CPU and CUDA side by side
    compile_rows = compile_times.measure(reps=3) if "compile" in groups else []
    print_table(bw, overhead, load0, os.getloadavg())
    if compile_rows:
        print("canonical GEMM (1024^3, 128x128x32) compile times, best of 3 fresh processes, from the prim_func "
              "factory to the callable kernel: wall (CPU incl. g++) ms")
        for label, r in compile_rows:
            print(f"  {label:36} {compile_times.ms(r):>18}")


if __name__ == "__main__":
    main()
