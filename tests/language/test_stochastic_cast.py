"""T.cast(x, "float16" / "bfloat16", round="rs", rbits=r): stochastic rounding as PTX cvt.rs
defines it (rounded away from zero when adding the random bits to the discarded bits carries out,
toward zero otherwise), with TileLang's scalar choice of random bits (the low 13 bits of r for
float16, the low 16 for bfloat16) and .satfinite. cvt.rs exists on sm_100a+ only; tilewise
computes it on every target. Checked bit for bit against an independent reference written with
exact fractions, on the CPU target, the emulator and the PTX interpreter (NVRTC's sm_80 code)."""
from __future__ import annotations

import math
import shutil
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError

TARGETS = [("cpu", None), ("cuda", "emulator"), ("cuda -arch=sm_80", "ptx")]
IDS = ["cpu", "emulator", "ptx"]
# mantissa bits, random bits, smallest normal exponent, largest finite value, numpy type
FMT = {"float16": (10, 13, -14, 65504.0, np.float16),
       "bfloat16": (7, 16, -126, float(ml_dtypes.finfo(ml_dtypes.bfloat16).max), ml_dtypes.bfloat16)}


def reference(x: float, r: int, dtype: str) -> float:
    """The PTX rule with exact arithmetic: the discarded part of |x| in units of the result's
    last place, its top `nb` bits plus the random bits, a carry rounds away from zero."""
    m, nb, emin, top, _ = FMT[dtype]
    if math.isnan(x):
        return x
    a = abs(x)
    if a >= top:
        return math.copysign(top, x)
    exp = math.frexp(a)[1] - 1 if a else emin
    qe = max(exp, emin) - m
    s = Fraction(a) / Fraction(2) ** qe
    k = math.floor(s)
    kept = math.floor((s - k) * 2 ** nb)
    if kept + (r & ((1 << nb) - 1)) >= 2 ** nb:
        k += 1
    v = min(float(Fraction(k) * Fraction(2) ** qe), top)
    return math.copysign(v, x)


def _inputs(dtype: str):
    m, nb, emin, top, _ = FMT[dtype]
    rng = np.random.default_rng(7)
    x = np.concatenate([
        rng.standard_normal(200) * 300,
        np.ldexp(rng.random(40) + 0.5, emin - 4),  # below the normal range of the result
        np.array([0.0, -0.0, np.inf, -np.inf, np.nan, top, -top, top * (1 + 2.0 ** -12), 1e-45, -3e-39,
                  1.0 + 2.0 ** -(m + 1), 1.0, 2.0 ** emin, -(2.0 ** emin) * 0.75]),
    ]).astype(np.float32)
    r = rng.integers(0, 2 ** 32, x.size, dtype=np.uint64).astype(np.uint32)
    r[-4] = (1 << (nb - 1)) - 1  # 1 + half an ulp: just short of the carry
    r[-5] = 1 << (nb - 1)  # ... and exactly at it
    r[:8] = np.array([0, 0xFFFFFFFF, (1 << nb) - 1, 1 << nb, 0xFFFF0000, 0x0000FFFF, 0x1FFF, 0xE000], np.uint32)
    return x, r


def _kernel(n: int, dtype: str):
    @T.prim_func
    def rs(X: T.Tensor((n,), "float32"), R: T.Tensor((n,), "uint32"), Y: T.Tensor((n,), dtype)):
        with T.Kernel(1, threads=128) as _:
            for i in T.Parallel(n):
                Y[i] = T.cast(X[i], dtype, round="rs", rbits=R[i])

    return rs


@pytest.mark.parametrize("target,backend", TARGETS, ids=IDS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_bit_exact(target, backend, dtype):
    x, r = _inputs(dtype)
    extra = {} if backend is None else {"execution_backend": backend}
    y = tilewise.compile(_kernel(x.size, dtype), target=target, out_idx=[2], **extra)(x, r)
    y = np.asarray(y)
    want = np.array([reference(float(a), int(b), dtype) for a, b in zip(x, r)]).astype(FMT[dtype][4])
    nan = np.isnan(want.astype(np.float32))
    assert np.array_equal(np.isnan(y.astype(np.float32)), nan)
    np.testing.assert_array_equal(y.view(np.uint16)[~nan], want.view(np.uint16)[~nan])


def test_the_carry_decides():
    """1 + 2^-11 is half a float16 ulp above 1: 4096 of the 8192 steps of the discarded bits;
    random bits of 4095 (or less) keep 1, of 4096 (or more) give 1 + 2^-10. Bits above the low
    13 do not count."""
    for r, want in [(0, 1.0), (4095, 1.0), (4096, 1.0 + 2.0 ** -10), (8191, 1.0 + 2.0 ** -10),
                    (0xFFFFE000 | 4095, 1.0), (0xFFFFE000 | 4096, 1.0 + 2.0 ** -10)]:
        assert reference(1.0 + 2.0 ** -11, r, "float16") == want
    x = np.array([1.0 + 2.0 ** -11] * 6, np.float32)
    r = np.array([0, 4095, 4096, 8191, 0xFFFFE000 | 4095, 0xFFFFE000 | 4096], np.uint32)
    y = tilewise.compile(_kernel(6, "float16"), target="cpu", out_idx=[2])(x, r)
    np.testing.assert_array_equal(np.asarray(y, np.float64), [1.0, 1.0, 1 + 2.0 ** -10, 1 + 2.0 ** -10, 1.0,
                                                               1 + 2.0 ** -10])


def test_refusals():
    with pytest.raises(CompileError, match="sat=false is not supported for stochastic rounding"):
        T.cast(T.float32(1.0), "float16", round="rs", rbits=T.uint32(1), sat=False)
    with pytest.raises(CompileError, match="into float8_e4m3fn: tilewise implements stochastic rounding"):
        T.cast(T.float32(1.0), "float8_e4m3fn", round="rs", rbits=T.uint32(1))
    with pytest.raises(CompileError, match="converts float32 values"):
        T.cast(T.float64(1.0), "bfloat16", round="rs", rbits=T.uint32(1))


@pytest.mark.skipif(shutil.which("clang-19") is None, reason="the HIP target needs clang-19")
def test_hip():
    """The HIP header computes it too (compiled by clang for gfx942); the emulator runs it."""
    x, r = _inputs("bfloat16")
    k = tilewise.compile(_kernel(x.size, "bfloat16"), target="hip -arch=gfx942", out_idx=[2],
                         execution_backend="emulator")
    assert "cvt_rs" in k.get_kernel_source() and k.get_isa()
    want = np.array([reference(float(a), int(b), "bfloat16") for a, b in zip(x, r)]).astype(ml_dtypes.bfloat16)
    got = np.asarray(k(x, r))
    ok = ~np.isnan(want.astype(np.float32))
    np.testing.assert_array_equal(got.view(np.uint16)[ok], want.view(np.uint16)[ok])
