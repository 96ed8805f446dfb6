"""Compile times of the canonical GEMM (examples/gemm/example_gemm.py, 1024^3, 128x128x32 tiles,
3 stages): cold compile and cache hit, CPU target (fp32, g++) and CUDA target (fp16, NVRTC,
sm_80), each in fresh interpreters, in one run. benchmarks/cpu.py prints these rows (group
"compile"); run alone:

    .venv/bin/python benchmarks/compile_times.py [--reps 3]

Every figure is the best of --reps fresh processes, timed from running the @T.prim_func factory
(parse) to the callable kernel; imports are not timed, nor loading libnvrtc for the CUDA cold
compile (cuda_compile.py shows it; a hit does not load it). Times are wall clock with the CPU
time in parentheses: this process's plus its children's (g++), which load from other processes
on the machine inflates far less than the wall time.

- cold: a kernel not in the cache. For the CPU, with the precompiled header of tilewise's
  headers already built (it is built once per compiler, flags and headers: backend/cpu/pch.py);
  "first compile ever" is the compile that builds it.
- cache hit: tilewise.compile of the same program in another process: parse, key, disk read
  and loading the library (CPU) or the cubin's launch facts (CUDA); nothing is lowered.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"cpu": ("cpu", "float32", "auto"), "cuda": ("cuda -arch=sm_80", "float16", "nvrtc")}


def _clock() -> tuple[float, float]:
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter(), time.process_time() + ch.ru_utime + ch.ru_stime


def child(mode: str, kind: str, n: int) -> dict:
    sys.path.insert(0, str(ROOT / "examples" / "gemm"))
    from example_gemm import matmul

    import tilewise

    target, dtype, backend = TARGETS[kind]
    if kind == "cuda" and mode == "cold":
        from tilewise.backend.cuda.nvrtc import nvrtc_version

        nvrtc_version()  # loads libnvrtc: not timed (the NVRTC load is cuda_compile.py's own row)
    t0 = _clock()
    kernel = tilewise.compile(matmul(n, n, n, dtype=dtype), out_idx=[-1], target=target, execution_backend=backend)
    t1 = _clock()
    assert kernel.build.entry.is_dir()
    return {"wall": t1[0] - t0[0], "cpu": t1[1] - t0[1]}


def run_child(mode: str, kind: str, cache_dir: str, n: int = 1024) -> dict:
    env = dict(os.environ, TILEWISE_CACHE_DIR=cache_dir)
    env.pop("TILEWISE_DISABLE_CACHE", None)
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", mode, kind, str(n)], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{mode} compile ({kind}) failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["wall"])


def measure(reps: int = 3) -> list[tuple[str, dict]]:
    """[(row label, {"wall", "cpu"} in seconds)], best of `reps` fresh processes each."""
    rows = []
    for kind in TARGETS:
        first, colds, hits = [], [], []
        for _ in range(reps):
            with tempfile.TemporaryDirectory(prefix="tilewise-compile-bench-") as d:
                if kind == "cpu":
                    first.append(run_child("cold", kind, d, n=512))  # builds the precompiled header
                colds.append(run_child("cold", kind, d))
                hits += [run_child("hit", kind, d) for _ in range(2)]
        if kind == "cpu":
            rows.append(("CPU first compile ever (+ header)", _best(first)))
        rows.append((f"{kind.upper()} cold compile", _best(colds)))
        rows.append((f"{kind.upper()} cache hit", _best(hits)))
    return rows


def ms(r: dict) -> str:
    return f"{r['wall'] * 1e3:.0f} ({r['cpu'] * 1e3:.0f}) ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--child", nargs=3, metavar=("MODE", "KIND", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, kind, n = args.child
        print(json.dumps(child(mode, kind, int(n))))
        return
    print(f"canonical GEMM compile times, best of {args.reps} fresh processes: wall (CPU incl. compiler) in ms")
    for label, r in measure(args.reps):
        print(f"  {label:36} {ms(r):>18}")


if __name__ == "__main__":
    main()
