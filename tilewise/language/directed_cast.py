"""`T.cast(x, dtype, round="rz" | "rp" | "rm")` and `sat=False` into float8: conversions in PTX's
directed rounding modes, built from the round-to-nearest conversion every target already has, so
that the CPU, the emulator, CUDA, HIP and the PTX interpreter compute the same bits.

A float destination narrower than the source: r = the nearest-even conversion of x clamped to
[-MAX, MAX]; r converted back to float64 is exact (every narrow format is a subset of float64),
so comparing it with x says on which side of x it lies; when it is on the wrong side for the
mode, the result is r's neighbour towards the right side: its bit pattern plus or minus one
(sign-magnitude formats: adding one to the magnitude moves away from zero). The clamp keeps the
step inside the finite range; overflow is then decided on x: rz never overflows a finite value,
rp overflows above MAX, rm below -MAX, an infinity always, and an overflowing result is +-MAX
with saturation (float8's satfinite, TileLang's default), else +-inf (NaN for float8_e4m3fn,
which has no infinity). float16 / bfloat16 results are IEEE's (no saturation, as CUDA's
__float2half_rz ...). NaN stays NaN. Integer destinations: rz truncates (C's conversion), rp and
rm take the ceiling and the floor first. A widening conversion is exact in every mode.

TileLang 0.1.15 accepts these modes in T.cast but its CUDA code generator refuses them ("Only 'rs'
is supported"); tilewise implements them."""
from __future__ import annotations

import numpy as np

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.expr import Call, Const, Expr, Select, call, logical_and, logical_or
from ..ir.expr import cast as _cast

DIRECTED = ("rz", "rp", "rm")


def _max_finite(dt: _dt.DataType) -> float:
    return float(np.finfo(dt.numpy).max)


def _contains(big: _dt.DataType, small: _dt.DataType) -> bool:
    """Every value of `small` is one of `big` (the conversion is exact in every mode)."""
    b, s = np.finfo(big.numpy), np.finfo(small.numpy)
    return b.nmant >= s.nmant and b.maxexp >= s.maxexp and b.minexp - b.nmant <= s.minexp - s.nmant


def _uint(bits: int) -> _dt.DataType:
    return _dt.as_dtype(f"uint{bits}")


def _rn_overflows(x64: Expr, dt: _dt.DataType) -> Expr:
    """|x| beyond what round-to-nearest keeps finite (the midpoint above MAX rounds to the even
    side: past MAX when MAX's last mantissa bit is odd, as for IEEE-like formats)."""
    top = _max_finite(dt)
    below = np.array([top], np.float64).astype(dt.numpy).view({8: np.uint8, 16: np.uint16, 32: np.uint32}[dt.bits]) - 1
    ulp = top - float(below.view(dt.numpy).astype(np.float64)[0])
    mid = top + ulp / 2
    mant_odd = int(np.array(top, dt.numpy).view({8: np.uint8, 16: np.uint16, 32: np.uint32}[dt.bits])) & 1
    a = Select(x64 < Const(0.0, _dt.float64), -x64, x64)
    return (a >= Const(mid, _dt.float64)) if mant_odd else (a > Const(mid, _dt.float64))


def _overflow_value(x64: Expr, dt: _dt.DataType, sat: bool) -> Expr:
    """What an overflowing conversion gives, with x's sign."""
    v = _max_finite(dt) if sat else float("inf") if dt.name != "float8_e4m3" else float("nan")

    def pattern(value: float) -> Expr:
        # by bit pattern: a float8 literal is a saturating conversion, which would turn inf into MAX
        u = np.array(value, np.float64).astype(dt.numpy).view({8: np.uint8, 16: np.uint16, 32: np.uint32}[dt.bits])
        return Call("reinterpret", [Const(int(u), _uint(dt.bits))], dt)

    return Select(x64 < Const(0.0, _dt.float64), pattern(-v), pattern(v))


def _is_inf(x64: Expr) -> Expr:
    return logical_or(x64 == Const(float("inf"), _dt.float64), x64 == Const(float("-inf"), _dt.float64))


def nonsaturating_float8(x: Expr, dt: _dt.DataType) -> Expr:
    """The nearest-even conversion into float8 without satfinite (`sat=False`)."""
    x64 = _cast(x, _dt.float64)
    return Select(logical_or(_is_inf(x64), _rn_overflows(x64, dt)), _overflow_value(x64, dt, False), _cast(x, dt))


def directed_cast(x: Expr, dt: _dt.DataType, mode: str, sat: bool) -> Expr:
    """x converted to dt rounding toward zero ("rz"), up ("rp") or down ("rm")."""
    src = x.dtype
    if dt.is_int or dt.is_bool:
        if not src.is_float:
            return _cast(x, dt)
        rounded = {"rz": x, "rp": call("ceil", x), "rm": call("floor", x)}[mode]
        return _cast(rounded, dt)
    if not dt.is_float or dt.kind in ("float4", "float6", "e8m0"):
        raise CompileError(f"T.cast(..., round={mode!r}) into {dt.tl_name}: directed rounding converts into "
                           "float16, bfloat16, float32, float64 and float8 types (and integers)")
    if not src.is_float:
        raise CompileError(f"T.cast(..., round={mode!r}) from {src}: directed rounding converts float values; "
                           "convert the integer to float64 first")
    if _contains(dt, src):
        return _cast(x, dt)  # widening: exact
    x64 = _cast(x, _dt.float64)
    top = Const(_max_finite(dt), _dt.float64)
    clamped = Select(x64 > top, top, Select(x64 < -top, -top, x64))
    r = _cast(clamped, dt)
    back = _cast(r, _dt.float64)
    u = Call("reinterpret", [r], _uint(dt.bits))
    zero = Const(0.0, _dt.float64)
    negative = back < zero
    one = Const(1, u.dtype)
    if mode == "rz":  # a zero result is never beyond x in magnitude (and -0's pattern minus one is NaN's)
        step_away, step_toward = None, logical_and(back != zero, Select(negative, back < x64, back > x64))
    elif mode == "rp":
        step_away, step_toward = logical_and(back < x64, back >= zero), logical_and(back < x64, negative)
    else:
        step_away, step_toward = logical_and(back > x64, back <= zero), logical_and(back > x64, back > zero)
    # -0 and +0 stepped away from zero go to the smallest subnormal of their sign: for rp that is
    # +0 (x > 0 rounds to +0, never -0), for rm -0 (x < 0 rounds to -0)
    stepped = Select(step_toward, u - one, u)
    if step_away is not None:
        stepped = Select(step_away, u + one, stepped)
    result = Call("reinterpret", [stepped], dt)
    if mode == "rz":
        overflow = _is_inf(x64)
    elif mode == "rp":
        overflow = logical_or(_is_inf(x64), x64 > top)
    else:
        overflow = logical_or(_is_inf(x64), x64 < -top)
    saturate = sat and dt.kind == "float8"
    return Select(overflow, _overflow_value(x64, dt, saturate), result)
