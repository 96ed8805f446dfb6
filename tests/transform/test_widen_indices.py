"""Global indices of tensors that can pass 2^31 elements along a dimension are computed in 64
bits from their leaves up (transform/widen_indices.py): `(int64_t)bx * 1024 + i`, not
`(int64_t)(bx * 1024 + i)`, on both targets; and a kernel touching the end of a 2^31 + 8192
element tensor (allocated lazily by calloc, so it costs no memory) finds the right bytes."""
from __future__ import annotations

import re

import numpy as np
import pytest

import tilewise
import tilewise.language as T

N = (1 << 31) + 8192


def tail_kernel(n=N):
    first_block = n // 1024 - 8

    @T.prim_func
    def f(A: T.Tensor((n,), "int8")):
        with T.Kernel(8, threads=128) as bx:
            for i in T.Parallel(1024):
                A[(first_block + bx) * 1024 + i] = A[(first_block + bx) * 1024 + i] + 3

    return f


@pytest.mark.parametrize("target", ["cpu", "cuda -arch=sm_80"])
def test_wide_indices_are_widened_before_the_arithmetic(target):
    src = tilewise.lower(tail_kernel(), target=target).get_kernel_source()
    line = next(ln for ln in src.splitlines() if "A[" in ln)
    assert re.search(r"\(\(int64_t\)\(bx\)\)", line), line  # bx is 64-bit before it is multiplied
    assert not re.search(r"\(int64_t\)\(\(\(?\d+ \+ bx\)", line), line


def test_narrow_tensors_keep_32_bit_indices():
    src = tilewise.lower(tail_kernel(1 << 20), target="cpu").get_kernel_source()
    line = next(ln for ln in src.splitlines() if "A[" in ln)
    assert "(int64_t)(bx)" not in line, line


@pytest.mark.parametrize("target,backend", [
    ("cpu", "auto"),
    # the emulator (and its PTX cross-check) copy the 2 GiB tensor: a slow test
    pytest.param("cuda -arch=sm_80", "emulator", marks=pytest.mark.slow),
])
def test_the_end_of_a_tensor_past_2_31_elements(target, backend):
    a = np.zeros(N, dtype=np.int8)  # calloc: untouched pages cost nothing
    tilewise.compile(tail_kernel(), target=target, execution_backend=backend)(a)
    assert (a[-8192:] == 3).all()
    assert not a[-8192 - 4096:-8192].any() and not a[:4096].any()
