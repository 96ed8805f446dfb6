"""Exact floating-point rounding for the PTX interpreter, on numpy arrays.

PTX names a rounding mode on every inexact float operation (`.rn` nearest-even, `.rna` nearest
away from zero, `.rz`, `.rm`, `.rp`) and narrow formats numpy has no arithmetic for (bf16, tf32,
e4m3, e5m2). numpy only rounds to nearest, so everything here works from an exact value: a
float64 `x` plus an optional float64 `residual` such that the true result is `x + residual`
exactly (error-free transformations give both for sums, products and fused multiply-adds of
floats up to 32 bits). `round_to` then places the value on the target format's grid with integer
precision: the significand is scaled to an integer by a power of two (exact), split into integer
and fraction, and the residual's sign breaks ties and decides directed roundings when the
fraction is zero. Overflow, gradual underflow, `.satfinite` and `.ftz` follow the PTX ISA.

float64 results themselves (`.f64` arithmetic) use numpy for `.rn` and a one-ulp correction from
the residual for the directed modes; `fma.rn.f64` rounds once through Boldo and Melquiond's
round-to-odd emulation of the fused multiply-add."""
from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np


@dataclass(frozen=True)
class Format:
    name: str
    precision: int  # significand bits including the implicit one
    emin: int  # exponent of the smallest normal number
    max_finite: float
    has_inf: bool
    bits: int


F32 = Format("f32", 24, -126, float(np.finfo(np.float32).max), True, 32)
F16 = Format("f16", 11, -14, 65504.0, True, 16)
BF16 = Format("bf16", 8, -126, float(ml_dtypes.finfo(ml_dtypes.bfloat16).max), True, 16)
TF32 = Format("tf32", 11, -126, (2 - 2.0**-10) * 2.0**127, True, 32)
E4M3 = Format("e4m3", 4, -6, 448.0, False, 8)
E5M2 = Format("e5m2", 3, -14, 57344.0, True, 8)
FORMATS = {f.name: f for f in (F32, F16, BF16, TF32, E4M3, E5M2)}

MODES = ("rn", "rna", "rz", "rm", "rp")


def two_sum(a, b):
    """s = fl(a + b) and the exact error e = a + b - s (Knuth's TwoSum, float64)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


_SPLIT = 134217729.0  # 2**27 + 1 (Veltkamp)


def _split(a):
    c = _SPLIT * a
    hi = c - (c - a)
    return hi, a - hi


def two_prod(a, b):
    """p = fl(a * b) and the exact error (Dekker's product; float64 without overflow)."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def round_to(x, fmt: Format, mode: str = "rn", residual=None, satfinite: bool = False, ftz: bool = False):
    """The value of `x + residual` rounded to `fmt` with `mode`, as float64 (±inf / nan kept).
    `ftz` flushes subnormal results to a zero of the same sign (PTX `.ftz`)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        sign = np.signbit(x)
        ax = np.abs(x)
        if residual is None:
            rr = np.zeros_like(ax)
        else:
            r = np.asarray(residual, dtype=np.float64)
            rr = np.where(sign, -r, r)  # > 0: the exact magnitude is above |x|
        _, e = np.frexp(ax)
        ulp_exp = np.maximum(e - fmt.precision, fmt.emin - fmt.precision + 1)
        scaled = np.ldexp(ax, -ulp_exp)
        fl = np.floor(scaled)
        frac = scaled - fl
        below = (frac == 0) & (rr < 0)  # exactly on a grid point but the true value is just under it
        if mode in ("rz", "rm", "rp"):
            # magnitude rounded away from zero: rm for negative values, rp for positive ones
            away = np.zeros_like(sign) if mode == "rz" else (sign if mode == "rm" else ~sign)
            up_away = (frac > 0) | ((frac == 0) & (rr > 0))
            # just under a power of two the grid is the binade below's, twice as fine (not so at
            # the smallest normal: the subnormals below it have its spacing)
            step = np.where((fl == 2.0 ** (fmt.precision - 1)) & (e > fmt.emin + 1), 0.5, 1.0)
            q = np.where(away, fl + up_away, fl - below * step)
        elif mode == "rn":
            odd = np.fmod(fl, 2) == 1
            up = (frac > 0.5) | ((frac == 0.5) & ((rr > 0) | ((rr == 0) & odd)))
            q = fl + up
        elif mode == "rna":
            up = (frac > 0.5) | ((frac == 0.5) & (rr >= 0))
            q = fl + up
        else:
            raise ValueError(f"unknown rounding mode {mode}")
        mag = np.ldexp(q, ulp_exp)
        # overflow: past the largest finite value the result is inf, or the largest finite value
        # when rounding toward zero (directed modes on the side of zero) or saturating
        over = mag > fmt.max_finite
        if over.any():
            if satfinite or not fmt.has_inf:
                sat = np.full_like(mag, fmt.max_finite)
            else:
                # directed modes stop at the largest finite value on the side of zero they round to
                toward_zero = {"rn": np.zeros_like(sign), "rna": np.zeros_like(sign), "rz": np.ones_like(sign),
                               "rm": ~sign, "rp": sign}[mode]
                sat = np.where(toward_zero, fmt.max_finite, np.inf)
            mag = np.where(over, sat, mag)
        inf_in = np.isinf(ax)
        if inf_in.any():
            mag = np.where(inf_in, fmt.max_finite if (satfinite or not fmt.has_inf) else np.inf, mag)
        if ftz:
            mag = np.where(mag < 2.0**fmt.emin, 0.0, mag)
        out = np.where(sign, -mag, mag)
        nan = np.isnan(x)
        if nan.any():
            out = np.where(nan, np.nan, out)
    return out


def is_subnormal(x, fmt: Format):
    ax = np.abs(np.asarray(x, dtype=np.float64))
    return (ax > 0) & (ax < 2.0**fmt.emin)


def flush(x, fmt: Format):
    """`.ftz` on inputs: subnormal values of `fmt` become a zero of the same sign."""
    x = np.asarray(x)
    return np.where(is_subnormal(x, fmt), np.copysign(np.zeros_like(x), x), x)


# ---------------------------------------------------------------------------- encodings

_CANONICAL_NAN = {"f32": 0x7FFFFFFF, "f16": 0x7FFF, "bf16": 0x7FFF, "tf32": 0x7FFFFFFF, "e4m3": 0x7F, "e5m2": 0x7F}
_UINT = {8: np.uint8, 16: np.uint16, 32: np.uint32}


def to_bits(values, fmt: Format):
    """Bit patterns of values already representable in `fmt` (NaN becomes the canonical NaN)."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(all="ignore"):
        if fmt.name in ("f32", "tf32"):
            bits = v.astype(np.float32).view(np.uint32)
        elif fmt.name == "f16":
            bits = v.astype(np.float16).view(np.uint16)
        elif fmt.name == "bf16":
            bits = (v.astype(np.float32).view(np.uint32) >> np.uint32(16)).astype(np.uint16)
        elif fmt.name == "e4m3":
            bits = v.astype(ml_dtypes.float8_e4m3fn).view(np.uint8)
        elif fmt.name == "e5m2":
            bits = v.astype(ml_dtypes.float8_e5m2).view(np.uint8)
        else:
            raise ValueError(fmt.name)
    nan = np.isnan(v)
    if nan.any():
        bits = np.where(nan, _UINT[fmt.bits](_CANONICAL_NAN[fmt.name]), bits).astype(_UINT[fmt.bits])
    return bits


def from_bits(bits, fmt: Format):
    """float64 values of bit patterns of `fmt`."""
    b = np.asarray(bits)
    if fmt.name in ("f32", "tf32"):
        return b.astype(np.uint32).view(np.float32).astype(np.float64)
    if fmt.name == "f16":
        return b.astype(np.uint16).view(np.float16).astype(np.float64)
    if fmt.name == "bf16":
        return (b.astype(np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64)
    if fmt.name == "e4m3":
        return b.astype(np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float64)
    if fmt.name == "e5m2":
        return b.astype(np.uint8).view(ml_dtypes.float8_e5m2).astype(np.float64)
    raise ValueError(fmt.name)


# ---------------------------------------------------------------------------- float64 results


def f64_directed(s, e, mode: str):
    """Round s + e (s = fl(exact), e the exact error) to float64 with `mode`."""
    s = np.asarray(s, dtype=np.float64)
    e = np.asarray(e, dtype=np.float64)
    if mode == "rn":
        return s
    with np.errstate(all="ignore"):
        if mode == "rm":
            return np.where(e < 0, np.nextafter(s, -np.inf), s)
        if mode == "rp":
            return np.where(e > 0, np.nextafter(s, np.inf), s)
        if mode == "rz":
            return np.where((e != 0) & (np.signbit(e) != np.signbit(s)), np.nextafter(s, 0.0), s)
    raise ValueError(f"rounding mode {mode} for float64")


def _round_odd_sum(a, b):
    """fl_odd(a + b): the truncated sum with its last bit set when inexact."""
    s, e = two_sum(a, b)
    with np.errstate(all="ignore"):
        t = np.where((e != 0) & (np.signbit(e) != np.signbit(s)), np.nextafter(s, 0.0), s)
        bits = t.view(np.int64) if isinstance(t, np.ndarray) else np.float64(t).view(np.int64)
        even = (bits & 1) == 0
        fix = (e != 0) & even & np.isfinite(t)
        return np.where(fix, np.nextafter(t, np.copysign(np.inf, t)), t)


def fma_f64(a, b, c, mode: str = "rn"):
    """a * b + c rounded once to float64 (Boldo-Melquiond: exact product, round-to-odd of the
    low parts, one final rounding)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    with np.errstate(all="ignore"):
        uh, ul = two_prod(a, b)
        th, tl = two_sum(c, ul)
        vh, vl = two_sum(uh, th)
        z = _round_odd_sum(vl, tl)
        if mode == "rn":
            r = vh + z
        else:
            s, e = two_sum(vh, z)
            r = f64_directed(s, e, mode)
        # infinities and NaNs: the plain formula gives IEEE's answer there; so does it for an
        # exact zero (the pairs above lose its sign; the product is then exact, = -c)
        plain = a * b + c
        return np.where(np.isfinite(r) & np.isfinite(plain) & (r != 0), r, plain)
