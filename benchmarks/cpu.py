"""The CPU target against numpy and torch on the same machine, for kernels exactly as a GPU user
writes them: the examples' kernels with their canonical tile sizes (GEMM 128x128x32, flash
attention 128x64, softmax/RMSNorm one row per block, element-wise 8x256). One run, one table.

    .venv/bin/python benchmarks/cpu.py [--threads N] [--quick] [--reps R]

Every row is a ratio against the peer (peer time / tilewise time: above 1 is faster) and the
fraction of the machine's peak: fp32 FMA throughput (116 GFLOP/s per Zen4 core) for GEMM and
attention, the memory bandwidth measured at the start of the run (large copy or add) for the
memory-bound kernels.
Calls are timed interleaved (tilewise, peers, tilewise, ...) so that load from other processes
hits every contender alike; the table shows the best call. With --threads 1 the clock is the
calling thread's CPU time, which other processes on the machine do not inflate (the kernel, BLAS
and torch all run on the calling thread then); otherwise it is wall time.

Element-wise, softmax and RMSNorm are timed as users call them, each side allocating its output
(TileLang's out_idx; torch's functional ops); the "into out" rows time the kernels alone, writing
into an existing array (torch's out=). The last lines measure the Python cost of one call.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

PEAK_GFLOPS_PER_CORE = 116.0  # Zen4: two 256-bit FMA pipes = 32 fp32 flops per cycle at ~3.6 GHz
ROOT = Path(__file__).resolve().parent.parent


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="threads for every contender (default: all cores)")
    ap.add_argument("--quick", action="store_true", help="skip the 4096 GEMMs and the S=2048 attention rows")
    ap.add_argument("--reps", type=int, default=7, help="timed calls per contender and row")
    ap.add_argument("--only", default="",
                    help="comma-separated row groups: gemm,examples,attention,softmax,rmsnorm,add,overhead")
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

for sub in ("gemm", "flash_attention", "softmax", "norm", "elementwise", "convolution", "gemm_streamk"):
    sys.path.insert(0, str(ROOT / "examples" / sub))
from example_convolution import convolution  # noqa: E402
from example_convolution import ref_program as conv_ref  # noqa: E402
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
    """Best and median seconds per call of each function, calls interleaved."""
    for f in fns.values():  # warm up: page faults, thread pools, caches
        f()
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t = CLOCK()
            f()
            times[k].append(CLOCK() - t)
    return {k: (min(v), statistics.median(v)) for k, v in times.items()}


def compile_cpu(func, out_idx=None):
    return tilewise.compile(func, out_idx=out_idx, target="cpu")


def stream_bandwidth() -> float:
    """GB/s the memory-bound kernels can hope for: the better of a large copy (2 streams) and a
    large add (3 streams) into existing arrays, best of 10."""
    a = torch.ones(16 << 20)  # 64 MiB each, as the memory-bound rows
    b, c = torch.ones_like(a), torch.empty_like(a)
    t = timed({"copy": lambda: c.copy_(a), "add": lambda: torch.add(a, b, out=c)}, 10)
    return max(2 * a.numel() * 4 / t["copy"][0], 3 * a.numel() * 4 / t["add"][0]) / 1e9


ROWS: list[dict] = []


def row(group, name, shape, t, work, unit, peers, err=None, note=""):
    """t: {contender: (best, median)}; work in GFLOP or GB."""
    tw = t["tilewise"][0]
    r = {"group": group, "name": name, "shape": shape, "tw": tw, "rate": work / tw, "unit": unit,
         "err": err, "note": note}
    for p in ("numpy", "torch"):
        if p in t:
            r[p] = t[p][0]
            r["vs_" + p] = t[p][0] / tw
            r["vs_" + p + "_median"] = t[p][1] / t["tilewise"][1]
    ROWS.append(r)
    print(f"  {name:28} {shape:22} done", file=sys.stderr)


# ---------------------------------------------------------------------------------- GEMM
def bench_gemm():
    sizes = (1024, 2048) if ARGS.quick else (1024, 2048, 4096)
    for dtype in ("float32", "bfloat16"):
        for n in sizes:
            k = compile_cpu(matmul(n, n, n, dtype=dtype), out_idx=[-1])
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
            t = timed({"tilewise": lambda: k(a, b), "numpy": lambda: np.matmul(an, bn, out=cn),
                       "torch": lambda: torch.mm(a, b)}, reps)
            note = "numpy: fp32 (no bf16 GEMM)" if dtype == "bfloat16" else ""
            row("gemm", f"GEMM {'fp32' if dtype == 'float32' else 'bf16'}", f"{n}x{n}x{n}", t, 2 * n**3 / 1e9,
                "GFLOP/s", ("numpy", "torch"), err, note)


# ---------------------------------------------------------------------------------- the examples' kernels
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
           f"{'(median)':>9} {'rate':>14} {'of peak':>8}  {'max err':>8}")
    print(hdr)
    print("-" * len(hdr))
    for r in ROWS:
        ms = lambda key: f"{r[key] * 1e3:9.2f}" if key in r else " " * 9  # noqa: E731
        ratio = lambda key: f"{r[key]:9.2f}" if key in r else " " * 9  # noqa: E731
        peak = PEAK if r["unit"] == "GFLOP/s" else bw
        med = r.get("vs_torch_median")
        err = f"{r['err']:8.1e}" if r["err"] is not None else " " * 8
        print(f"{r['name']:30} {r['shape']:20} {ms('tw')} {ms('numpy')} {ms('torch')} {ratio('vs_numpy')} "
              f"{ratio('vs_torch')} {f'{med:9.2f}' if med else ' ' * 9} {r['rate']:8.1f} {r['unit']:>5} "
              f"{r['rate'] / peak:8.2f}  {err}")
    print("(times in ms; 'vs x' = x's time / tilewise's, above 1 is faster; '(median)' = the same against torch "
          "from median times; 'of peak' = rate / fp32 peak, or / measured memory bandwidth for GB/s rows)")
    notes = sorted({r["note"] for r in ROWS if r["note"]})
    for n in notes:
        print(f"note: {n}")
    if overhead:
        print(overhead)


def main():
    groups = set(ARGS.only.split(",")) if ARGS.only else {"gemm", "examples", "attention", "softmax", "rmsnorm", "add",
                                                          "overhead"}
    load0 = os.getloadavg()
    bw = stream_bandwidth()
    if "gemm" in groups:
        bench_gemm()
    if "examples" in groups:
        bench_examples()
    if "attention" in groups:
        bench_attention()
    if "softmax" in groups:
        bench_softmax(bw)
    if "rmsnorm" in groups:
        bench_rmsnorm(bw)
    if "add" in groups:
        bench_add(bw)
    overhead = call_overhead() if "overhead" in groups else ""
    print_table(bw, overhead, load0, os.getloadavg())


if __name__ == "__main__":
    main()
