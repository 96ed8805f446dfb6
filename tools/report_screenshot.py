"""Regenerate docs/img/kernel_report.png, the README's picture of kernel.report(): the report of a
pipelined fp16 GEMM compiled for sm_80 and run once in the emulator, photographed by a headless
Chromium (Debian's `chromium` package).

    python tools/report_screenshot.py [out.png]
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import tilewise
import tilewise.language as T


def gemm(M=128, N=128, bm=64, bn=64, bk=32):
    K = T.symbolic("K")

    @T.prim_func
    def gemm(A: T.Tensor((M, K), "float16"), B: T.Tensor((K, N), "float16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            A_s = T.alloc_shared((bm, bk), "float16")
            B_s = T.alloc_shared((bk, bn), "float16")
            C_f = T.alloc_fragment((bm, bn), "float32")
            T.clear(C_f)
            for k in T.Pipelined(T.ceildiv(K, bk), num_stages=2):
                T.copy(A[by * bm, k * bk], A_s)
                T.copy(B[k * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_f)
            T.copy(C_f, C[by * bm, bx * bn])

    return gemm


def main(out: str) -> None:
    kernel = tilewise.compile(gemm(), target="cuda -arch=sm_80", execution_backend="emulator")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((128, 64)).astype(np.float16)
    b = rng.standard_normal((64, 128)).astype(np.float16)
    kernel(a, b, np.zeros((128, 128), np.float32))
    browser = shutil.which("chromium") or sys.exit("needs chromium: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as tmp:
        page = kernel.report(Path(tmp) / "gemm.html")
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={tmp}/profile", "--window-size=1100,2300", f"--screenshot={out}",
                        f"file://{page}"], check=True, capture_output=True)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/img/kernel_report.png")
