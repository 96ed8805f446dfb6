"""tw_gemm.h prefetches the C rows of the next register block when the C tile is beyond L1's half
(issue 16, docs/PERFORMANCE.md "C prefetch": the 4096^3 fp32 GEMM's accumulators live in L3 while
a band runs), and not for a tile that stays in L1. Checked on the compiled object, as the results
are the same either way (the other GEMM tests compare them with numpy bit for bit where exact)."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tilewise.backend.cpu.build import FLAGS, INCLUDE_DIR, compiler

pytestmark = pytest.mark.skipif(shutil.which("objdump") is None, reason="needs binutils' objdump")

GEMM = """
#include "tw_gemm.h"
extern "C" void run(const float* a, const float* b, float* c) { tw::gemm<%d, %d, %d, false, false, %d, %d, %d>(a, b, c); }
"""


def _prefetches(tmp_path, m: int, n: int, k: int) -> int:
    """Prefetch instructions in the object of one m x n x k fp32 T.gemm (nothing else in it)."""
    src, obj = tmp_path / f"g{m}.cpp", tmp_path / f"g{m}.o"
    src.write_text(GEMM % (m, n, k, k, n, n))
    flags = [f for f in FLAGS if f not in ("-shared", "-fopenmp")]
    subprocess.run([compiler(), *flags, f"-I{INCLUDE_DIR}", "-c", str(src), "-o", str(obj)], check=True)
    asm = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(obj)], capture_output=True, text=True,
                         check=True).stdout
    return len(re.findall(r"\sprefetch\w*\s", asm))


def test_c_prefetched_only_beyond_l1(tmp_path):
    # 128 x 128 fp32 (64 KiB): the MR rows of the next register block (6 with AVX2, 4 with SSE)
    assert _prefetches(tmp_path, 128, 128, 64) >= 4
    assert _prefetches(tmp_path, 64, 64, 16) == 0  # 64 x 64 fp32 = 16 KiB: stays in L1
