"""CUDA compile time and SASS quality of the canonical fp16 GEMM (128x128x32 tiles, 3 stages, 128
threads) and a FlashAttention forward (bshd, block_M=128, block_N=64, head dim 128, 256 threads),
from the Python function to a cubin with NVRTC. No GPU needed. One run, one table.

    .venv/bin/python benchmarks/cuda_compile.py [--arch sm_80] [--reps 3]

Cold compile runs in a fresh interpreter with an empty TILEWISE_CACHE_DIR (imports and loading
libnvrtc are not timed; the load is shown on its own line): parse = running @T.prim_func, lower =
the CUDA passes and the renderer, NVRTC = CUDA C++ to cubin plus the cache write. Times are wall
clock with the CPU time of the process in parentheses: NVRTC compiles in the calling thread, so
on a loaded machine the CPU time is the better estimate of what the compile costs. NVRTC's own
split (its --time option, wall clock, from a second compile of the same source) shows the front
end (parsing tw_cuda.h and the kernel), the NVVM optimizer and PTX -> SASS (ptxas). Each cold
compile is repeated --reps times (a new process and cache each time) and the fastest is shown.
Cache hit is tilewise.compile in another fresh process against the filled cache (parse, key, disk
read of the cubin and its launch facts; nothing is lowered, and libnvrtc is not needed). The SASS numbers come from the cold compile's cubin.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

MIX = ("HMMA", "HGMMA", "LDSM", "LDGSTS", "UTMALDG", "SYNCS", "BAR")

# docs/DESIGN.md section 5: the steady-state loop of the canonical GEMM on sm_80 (quoted, not measured)
QUOTED = {
    "TileLang 0.1.15": {"loop": 143, "hmma": 64, "registers": 224},
    "Triton 3.9": {"loop": 188, "hmma": 64, "registers": 252},
}


def gemm(M=4096, N=4096, K=4096, block_M=128, block_N=128, block_K=32, dtype="float16", stages=3):
    import tilewise.language as T

    @T.prim_func
    def gemm_fp16(A: T.Tensor((M, K), dtype), B: T.Tensor((K, N), dtype), C: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            A_shared = T.alloc_shared((block_M, block_K), dtype)
            B_shared = T.alloc_shared((block_K, block_N), dtype)
            C_local = T.alloc_fragment((block_M, block_N), "float32")
            T.clear(C_local)
            for k in T.Pipelined(T.ceildiv(K, block_K), num_stages=stages):
                T.copy(A[by * block_M, k * block_K], A_shared)
                T.copy(B[k * block_K, bx * block_N], B_shared)
                T.gemm(A_shared, B_shared, C_local)
            T.copy(C_local, C[by * block_M, bx * block_N])

    return gemm_fp16


def flash_attention(batch=1, heads=32, seq=4096, dim=128, block_M=128, block_N=64, threads=256, stages=2):
    import tilewise.language as T

    shape = (batch, seq, heads, dim)
    scale = (1.0 / dim) ** 0.5 * 1.44269504  # log2(e): softmax through exp2

    @T.prim_func
    def flash_fwd(
        Q: T.Tensor(shape, "float16"),
        K: T.Tensor(shape, "float16"),
        V: T.Tensor(shape, "float16"),
        Output: T.Tensor(shape, "float16"),
    ):
        with T.Kernel(T.ceildiv(seq, block_M), heads, batch, threads=threads) as (bx, by, bz):
            Q_shared = T.alloc_shared((block_M, dim), "float16")
            K_shared = T.alloc_shared((block_N, dim), "float16")
            V_shared = T.alloc_shared((block_N, dim), "float16")
            acc_s = T.alloc_fragment((block_M, block_N), "float")
            acc_s_cast = T.alloc_fragment((block_M, block_N), "float16")
            acc_o = T.alloc_fragment((block_M, dim), "float")
            scores_max = T.alloc_fragment((block_M,), "float")
            scores_max_prev = T.alloc_fragment((block_M,), "float")
            scores_scale = T.alloc_fragment((block_M,), "float")
            logsum = T.alloc_fragment((block_M,), "float")
            scores_sum = T.alloc_fragment((block_M,), "float")

            T.copy(Q[bz, bx * block_M : (bx + 1) * block_M, by, :], Q_shared)
            T.fill(acc_o, 0)
            T.fill(logsum, 0)
            T.fill(scores_max, -T.infinity("float"))
            for k in T.Pipelined(T.ceildiv(seq, block_N), num_stages=stages):
                T.copy(K[bz, k * block_N : (k + 1) * block_N, by, :], K_shared)
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
                for i, j in T.Parallel(block_M, dim):
                    acc_o[i, j] *= scores_scale[i]
                T.copy(acc_s, acc_s_cast)
                T.copy(V[bz, k * block_N : (k + 1) * block_N, by, :], V_shared)
                T.gemm(acc_s_cast, V_shared, acc_o, policy=T.GemmWarpPolicy.FullRow)
            for i, j in T.Parallel(block_M, dim):
                acc_o[i, j] /= logsum[i]
            T.copy(acc_o, Output[bz, bx * block_M : (bx + 1) * block_M, by, :])

    return flash_fwd


KERNELS = {"gemm": gemm, "flash_attention": flash_attention}


# ---------------------------------------------------------------------------- child processes


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t: tuple[float, float]) -> list[float]:
    """[wall, cpu] seconds since t; NVRTC runs in this thread, so cpu is what the compile itself
    costs, which load from other processes inflates less than the wall time."""
    w, c = _clock()
    return [w - t[0], c - t[1]]


def child_cold(name: str, arch: str) -> dict:
    """Parse, lower and compile through the disk cache (empty): the path tilewise.compile takes.
    Then NVRTC's own phase times (--time) from a second compile of the same source."""
    from tilewise.backend.cuda.nvrtc import nvrtc_compile, nvrtc_version
    from tilewise.jit.build import build
    from tilewise.jit.target import Target, record_for

    t = _clock()
    nvrtc_version()  # loads libnvrtc
    load = _since(t)
    t = _clock()
    func = KERNELS[name]()
    parse = _since(t)
    t = _clock()
    record = record_for(Target("cuda", arch))
    b = build(func, record, record.machine(arch), {})
    module = b.module
    lower = _since(t)
    t = _clock()
    cubin = b.binary
    nvrtc = _since(t)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "phases.csv")
        nvrtc_compile(module.source, arch, name="phases.cu", options=(f"--time={path}",))
        with open(path) as f:
            rows = [line.split(", ") for line in f.read().splitlines()[1:]]
    phases = {r[1]: float(r[2]) / 1e3 for r in rows if len(r) == 4 and r[3] == "ms"}
    return {
        "load": load,
        "parse": parse,
        "lower": lower,
        "nvrtc": nvrtc,
        "phases": phases,
        "cubin": cubin.hex(),
        "shared": module.kernels[0].shared_bytes,
    }


def child_hit(name: str, arch: str) -> dict:
    import tilewise

    t = _clock()  # a hit does not load libnvrtc
    tilewise.compile(KERNELS[name](), target=f"cuda -arch={arch}", execution_backend="nvrtc")
    return {"hit": _since(t)}


def run_child(mode: str, name: str, arch: str, cache_dir: str) -> dict:
    env = dict(os.environ, TILEWISE_CACHE_DIR=cache_dir)
    env.pop("TILEWISE_DISABLE_CACHE", None)
    r = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", mode, name, "--arch", arch],
        env=env,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise RuntimeError(f"{mode} compile of {name} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- report


def measure(name: str, arch: str, reps: int) -> dict:
    from tilewise.backend.cuda import inspect as sass_tools

    colds = []
    for _ in range(reps):
        cache_dir = tempfile.mkdtemp(prefix="tilewise-cuda-bench-")
        colds.append((run_child("cold", name, arch, cache_dir), cache_dir))
    cold, cache_dir = min(colds, key=lambda c: c[0]["parse"][0] + c[0]["lower"][0] + c[0]["nvrtc"][0])
    cold["total"] = [sum(cold[k][i] for k in ("parse", "lower", "nvrtc")) for i in (0, 1)]
    hit = min((run_child("hit", name, arch, cache_dir)["hit"] for _ in range(reps)), key=lambda h: h[0])
    cubin = bytes.fromhex(cold["cubin"])
    sass = sass_tools.get_sass(cubin)
    use = sass_tools.resource_usage(cubin)
    loop = sass_tools.steady_state_loop(sass)
    return {
        "cold": cold,
        "hit": hit,
        "use": use,
        "mix": sass_tools.instruction_mix(sass, MIX),
        "instrs": sum(len(f) for f in sass_tools.parse_sass(sass).values()),
        "loop": loop,
        "loop_mix": loop.mix(MIX) if loop else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="sm_80")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--child", nargs=2, metavar=("MODE", "KERNEL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, name = args.child
        print(json.dumps((child_cold if mode == "cold" else child_hit)(name, args.arch)))
        return

    results = {name: measure(name, args.arch, args.reps) for name in KERNELS}
    names = list(results)
    w = 18
    print(
        f"tilewise CUDA compile, {args.arch}, NVRTC, best of {args.reps} fresh processes "
        f"(gemm: 4096^3 fp16, 128x128x32, 3 stages, 128 threads; "
        f"flash_attention: bshd 1x4096x32x128 fp16, 128x64 blocks, 2 stages, 256 threads)"
    )
    print(f"{'':34}" + "".join(f"{n:>{w}}" for n in names))

    def row(label, fmt):
        print(f"{label:34}" + "".join(f"{fmt(results[n]):>{w}}" for n in names))

    ms = lambda t: f"{t[0] * 1e3:.0f} ({t[1] * 1e3:.0f}) ms"  # noqa: E731
    print("times: wall (cpu of this process) in ms")
    row("libnvrtc load (once per process)", lambda r: ms(r["cold"]["load"]))
    row("cold: parse", lambda r: ms(r["cold"]["parse"]))
    row("cold: lower", lambda r: ms(r["cold"]["lower"]))
    row("cold: NVRTC (+ cache write)", lambda r: ms(r["cold"]["nvrtc"]))
    row("cold: total", lambda r: ms(r["cold"]["total"]))
    for phase in ("CUDA C++ Frontend", "NVVM Optimizer", "PTX Translation"):
        row(
            f"  NVRTC --time: {phase.replace('CUDA C++ ', '').lower()}",
            lambda r, p=phase: f"{r['cold']['phases'].get(p, float('nan')) * 1e3:.0f} ms",
        )
    row("cache hit (parse + key + read)", lambda r: ms(r["hit"]))
    row("registers / thread", lambda r: str(r["use"]["registers"]))
    row("spill bytes / thread", lambda r: str(r["use"]["spill_bytes"]))
    row("shared memory / block", lambda r: f"{r['cold']['shared'] + r['use']['shared_bytes']} B")
    row("SASS instructions, whole kernel", lambda r: str(r["instrs"]))
    for op in MIX:
        row(f"  {op}", lambda r, op=op: str(r["mix"][op]))
    row("steady-state loop instructions", lambda r: str(len(r["loop"])) if r["loop"] else "-")
    for op in MIX:
        row(f"  {op}", lambda r, op=op: str(r["loop_mix"][op]) if r["loop"] else "-")
    def per_tc(r):
        """Loop instructions per tensor-core instruction (HGMMA on Hopper, HMMA before)."""
        tc = r["loop_mix"]["HGMMA"] or r["loop_mix"]["HMMA"] if r["loop"] else 0
        return f"{len(r['loop']) / tc:.2f}" if tc else "-"

    row("instructions per HMMA / HGMMA (loop)", per_tc)
    print()
    g = results["gemm"]
    print("canonical GEMM steady-state loop, sm_80 (others quoted from docs/DESIGN.md section 5, not measured here):")
    print(f"  {'':24}{'instructions':>13}{'HMMA':>6}{'per HMMA':>10}{'registers':>11}")
    if g["loop"] and g["loop_mix"]["HMMA"]:
        n, h = len(g["loop"]), g["loop_mix"]["HMMA"]
        print(f"  {'tilewise (measured, ' + args.arch + ')':24}{n:>13}{h:>6}{n / h:>10.2f}{g['use']['registers']:>11}")
    for who, q in QUOTED.items():
        print(
            f"  {who + ' (quoted)':24}{q['loop']:>13}{q['hmma']:>6}{q['loop'] / q['hmma']:>10.2f}{q['registers']:>11}"
        )


if __name__ == "__main__":
    main()
