"""The CPU GEMM micro-kernel alone (issue 16): tw::gemm on tiles resident in L1 / L2, against the
core's FMA issue rate and OpenBLAS's sgemm (numpy, one thread) at the same shapes.

    .venv/bin/python benchmarks/cpu_gemm_micro.py

One C++ program built with the CPU target's own flags and headers (backend/cpu/build.py), timed
by thread CPU time (best of 5), so that other processes' load shows as little as it can:

- the clock, from a chain of dependent FMAs (their latency is 4 cycles on Zen2-4 and Skylake);
- the FMA issue rate: 12 independent 256-bit FMA chains in inline assembly, i.e. the core's fp32
  peak at the clock it runs now (2 FMA pipes x 8 lanes x 2 flops);
- the micro-kernel's instruction pattern alone (2 vector loads, 6 broadcasts, 12 FMAs per k);
- tw::gemm<M, N, K> calls in a loop on the same tiles, and on 4 / 16 accumulators in turn (a
  group of blocks / a GEMM band: 256 KiB in L2, 1 MiB in L3), as the kernels call it;
- numpy.matmul(out=) at the same shapes (OpenBLAS packs and runs its own kernel).
x86-64 with AVX2 and FMA only (the assembly is written for it).
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads

import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tilewise.backend.cpu.build import FLAGS, INCLUDE_DIR, compiler  # noqa: E402

SOURCE = r"""
#include <cstdio>
#include <cstring>
#include <ctime>
#include "tw_gemm.h"

static double now() { timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
#define F(a, b, c) "vfmadd231ps %%ymm" #a ", %%ymm" #b ", %%ymm" #c "\n"
#define CLOBBER "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
                "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"

template <class Body> static double best(Body body) {
  double b = 1e30;
  for (int r = 0; r < 5; ++r) { double t = now(); body(); t = now() - t; if (t < b) b = t; }
  return b;
}

static double dependent_fma_per_s() {
  const long n = 100000000;
  return n / best([&] { for (long i = 0; i < n; ++i) asm volatile(F(1, 2, 0) ::: "xmm0"); });
}

static double issue_gflops(bool pattern) {
  static float m[32] __attribute__((aligned(64)));
  const long n = 20000000;
  double t = best([&] {
    for (long i = 0; i < n; ++i) {
      if (pattern)
        asm volatile("vmovups (%0), %%ymm12\n vmovups 32(%0), %%ymm13\n"
                     "vbroadcastss 64(%0), %%ymm14\n" F(12, 14, 0) F(13, 14, 1)
                     "vbroadcastss 68(%0), %%ymm15\n" F(12, 15, 2) F(13, 15, 3)
                     "vbroadcastss 72(%0), %%ymm14\n" F(12, 14, 4) F(13, 14, 5)
                     "vbroadcastss 76(%0), %%ymm15\n" F(12, 15, 6) F(13, 15, 7)
                     "vbroadcastss 80(%0), %%ymm14\n" F(12, 14, 8) F(13, 14, 9)
                     "vbroadcastss 84(%0), %%ymm15\n" F(12, 15, 10) F(13, 15, 11)
                     :: "r"(m) : CLOBBER);
      else
        asm volatile(F(14, 15, 0) F(14, 15, 1) F(14, 15, 2) F(14, 15, 3) F(14, 15, 4) F(14, 15, 5)
                     F(14, 15, 6) F(14, 15, 7) F(14, 15, 8) F(14, 15, 9) F(14, 15, 10) F(14, 15, 11)
                     :: "r"(m) : CLOBBER);
    }
  });
  return 12.0 * 16 * n / t / 1e9;
}

template <int M, int N, int K> static double gemm_gflops(int tiles) {
  static float A[M * K] __attribute__((aligned(64))), B[K * N] __attribute__((aligned(64)));
  float* C = (float*)aligned_alloc(64, sizeof(float) * M * N * tiles);
  for (int i = 0; i < M * K; ++i) A[i] = (i % 7) * 0.01f;
  for (int i = 0; i < K * N; ++i) B[i] = (i % 5) * 0.01f;
  std::memset(C, 0, sizeof(float) * M * N * tiles);
  const long calls = 2000000000L / (2L * M * N * K) / tiles + 1;
  double t = best([&] {
    for (long i = 0; i < calls; ++i)
      for (int c = 0; c < tiles; ++c) tw::gemm<M, N, K, false, false, K, N, N>(A, B, C + (size_t)c * M * N);
  });
  std::free(C);
  return 2.0 * M * N * K * calls * tiles / t / 1e9;
}

int main() {
  std::printf("dependent %.4g\n", dependent_fma_per_s());
  std::printf("issue %.2f\n", issue_gflops(false));
  std::printf("pattern %.2f\n", issue_gflops(true));
  std::printf("gemm 6 16 256 1 %.2f\n", gemm_gflops<6, 16, 256>(1));
  std::printf("gemm 24 32 64 1 %.2f\n", gemm_gflops<24, 32, 64>(1));
  std::printf("gemm 128 128 64 1 %.2f\n", gemm_gflops<128, 128, 64>(1));
  std::printf("gemm 128 128 64 4 %.2f\n", gemm_gflops<128, 128, 64>(4));
  std::printf("gemm 128 128 64 16 %.2f\n", gemm_gflops<128, 128, 64>(16));
  std::printf("gemm 128 128 256 1 %.2f\n", gemm_gflops<128, 128, 256>(1));
  std::printf("gemm 256 256 256 1 %.2f\n", gemm_gflops<256, 256, 256>(1));
}
"""


def numpy_gflops(m: int, n: int, k: int) -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    c = np.empty((m, n), np.float32)
    calls = max(1, int(2e9 / (2 * m * n * k)))
    best = float("inf")
    for _ in range(5):
        t = time.thread_time()
        for _ in range(calls):
            np.matmul(a, b, out=c)
        best = min(best, time.thread_time() - t)
    return 2 * m * n * k * calls / best / 1e9


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "micro.cpp", Path(tmp) / "micro"
        src.write_text(SOURCE)
        flags = [f for f in FLAGS if f not in ("-shared", "-fPIC")]
        subprocess.run([compiler(), *flags, f"-I{INCLUDE_DIR}", str(src), "-o", str(exe)], check=True)
        out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    rows = [line.split() for line in out.splitlines()]
    clock = float(rows[0][1]) * 4 / 1e9
    issue = float(rows[1][1])
    print(f"clock from dependent FMAs (4-cycle latency): {clock:.2f} GHz; fp32 peak there: {clock * 32:.1f} GFLOP/s")
    print(f"FMA issue rate, 12 independent chains:  {issue:6.1f} GFLOP/s (the peak as measured)")
    print(f"micro-kernel pattern (2 loads, 6 broadcasts, 12 FMAs): {float(rows[2][1]):6.1f} GFLOP/s")
    print(f"{'tw::gemm M x N x K':24s} {'accumulators':>12s} {'GFLOP/s':>8s} {'of issue':>8s} {'numpy':>8s}")
    for r in rows[3:]:
        m, n, k, tiles, g = int(r[1]), int(r[2]), int(r[3]), int(r[4]), float(r[5])
        ref = f"{numpy_gflops(m, n, k):8.1f}" if tiles == 1 else f"{'':8s}"
        print(f"{f'{m} x {n} x {k}':24s} {tiles:12d} {g:8.1f} {g / issue:8.2f} {ref}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
