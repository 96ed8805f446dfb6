"""The runtime's row reductions (tw_cpu.h, T.reduce of a tile's last dim) stay in vector registers
on the host's ISA: with vectors wider than its registers g++ split comparisons and selects lane
by lane (a 64-byte max on an AVX2 CPU compiled to ~21,000 instructions with hundreds of lane
extracts, 60 % of FlashAttention forward's time). Results are checked by tests/tileop/test_reduce.py."""
from __future__ import annotations

import re
import subprocess

import pytest

from tilewise.backend.cpu.build import FLAGS, INCLUDE_DIR, compiler

SOURCE = """
#include "tw_cpu.h"
void rmax(float* d, const float* s, int rows, int n, int ld) { tw::rows_max(d, s, rows, n, ld, 0, -INFINITY); }
void rmin(float* d, const float* s, int rows, int n, int ld) { tw::rows_min(d, s, rows, n, ld, 0, INFINITY); }
void rsum(float* d, const float* s, int rows, int n, int ld) { tw::rows_sum(d, s, rows, n, ld, 0, 0.f); }
"""


def _functions(asm: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    name = None
    for line in asm.splitlines():
        m = re.match(r"^(_Z\w+):", line)
        if m:
            name = m.group(1)
            out[name] = []
        elif name and line.startswith("\t") and not line.startswith("\t."):
            out[name].append(line.strip())
    return out


@pytest.fixture(scope="module")
def functions(tmp_path_factory) -> dict[str, list[str]]:
    d = tmp_path_factory.mktemp("rows")
    (d / "t.cpp").write_text(SOURCE)
    flags = [f for f in FLAGS if f not in ("-shared", "-fPIC")]
    subprocess.run([compiler(), *flags, f"-I{INCLUDE_DIR}", "-S", "-o", str(d / "t.s"), str(d / "t.cpp")], check=True)
    return _functions((d / "t.s").read_text())


@pytest.mark.parametrize("fn", ["rmax", "rmin", "rsum"])
def test_row_reductions_do_not_extract_lanes(functions, fn):
    body = next(v for k, v in functions.items() if fn in k)
    extracts = [i for i in body if re.match(r"v?(pextr|extractps|pinsr|insertps)", i)]
    # the final fold of a row leaves a few scalars; a split vector leaves hundreds
    assert len(extracts) <= 32, (len(extracts), len(body))
    assert len(body) < 2000, len(body)
