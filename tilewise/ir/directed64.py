"""float64 multiplication, fused multiply-add, division, reciprocal and square root rounded toward
zero ("rz"), up ("ru") or down ("rd"), exactly: CUDA's `__dmul_rz`, `__fma_ru`, `__ddiv_rd`,
`__drcp_rz`, `__dsqrt_ru` ... (T.ieee_mul / ieee_fmaf / ieee_fdiv / ieee_frcp / ieee_fsqrt on
float64, language/float_ops.py).

The value is computed as an exact rational (fractions.Fraction) and rounded once, so subnormal
results, overflow (to infinity, or to the largest finite value where the mode rounds toward
zero) and signed zeros are those of IEEE 754 without any error-free transformation whose error
term could itself underflow. The square root uses the integer square root of the scaled operand.
This is the reference the emulator and constant folding evaluate (ir/scalar_ops.math_call), the
PTX interpreter executes `mul.rz.f64` ... with, and tests compare the CPU's and CUDA's results to.
NaN results are the default quiet NaN. Python integers make it slow (microseconds per element):
it runs only where a program asked for a directed float64 operation."""
from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import numpy as np

MODES = ("rz", "ru", "rd")
OPS = {"dmul": 2, "dfma": 3, "ddiv": 2, "drcp": 1, "dsqrt": 1}  # IR Call name stem -> operands

_MAX = 1.7976931348623157e308
_EMIN_ULP = -1074  # the exponent of the smallest subnormal's unit
_NAN = float("nan")


def _exponent(x: Fraction) -> int:
    """e with 2**e <= x < 2**(e + 1) (x > 0)."""
    e = x.numerator.bit_length() - x.denominator.bit_length()
    if (x.numerator << max(0, -e)) < (x.denominator << max(0, e)):
        e -= 1
    return e


def _round_up_magnitude(negative: bool, mode: str) -> bool:
    """Whether `mode` rounds an inexact magnitude away from zero for a value of this sign."""
    return (mode == "ru" and not negative) or (mode == "rd" and negative)


def round_rational(x: Fraction, mode: str, zero_sign: bool = False) -> float:
    """The nonzero rational x (or an exact zero, given the sign it takes) rounded to float64 in
    mode ("rn", "rz", "ru", "rd")."""
    if x == 0:
        return -0.0 if zero_sign else 0.0
    negative = x < 0
    ax = -x if negative else x
    q = max(_exponent(ax) - 52, _EMIN_ULP)  # the unit of the last place at |x|'s binade
    scaled = ax / 2**q if q >= 0 else ax * 2**-q
    n = scaled.numerator // scaled.denominator
    rest = scaled - n
    if rest:
        if mode == "rn":
            n += rest > Fraction(1, 2) or (rest == Fraction(1, 2) and n % 2 == 1)
        elif _round_up_magnitude(negative, mode):
            n += 1
    if n.bit_length() + q > 1024:  # past the largest finite value
        to_inf = mode == "rn" or _round_up_magnitude(negative, mode)
        mag = math.inf if to_inf else _MAX
    else:
        mag = math.ldexp(float(n), q)  # n has at most 54 bits and fits (or is 2**53)
    return -mag if negative else mag


def _is_nan(*xs: float) -> bool:
    return any(math.isnan(x) for x in xs)


def _neg(x: float) -> bool:
    return math.copysign(1.0, x) < 0


def dmul(a: float, b: float, mode: str) -> float:
    if _is_nan(a, b):
        return _NAN
    sign = _neg(a) != _neg(b)
    if math.isinf(a) or math.isinf(b):
        if a == 0 or b == 0:
            return _NAN
        return -math.inf if sign else math.inf
    return round_rational(Fraction(a) * Fraction(b), mode, zero_sign=sign)


def dfma(a: float, b: float, c: float, mode: str) -> float:
    if _is_nan(a, b, c):
        return _NAN
    psign = _neg(a) != _neg(b)
    if math.isinf(a) or math.isinf(b):
        if a == 0 or b == 0:
            return _NAN
        if math.isinf(c) and _neg(c) != psign:
            return _NAN
        return -math.inf if psign else math.inf
    if math.isinf(c):
        return c
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    if exact == 0:  # IEEE: zeros of one sign keep it, any other exact zero sum is +0 (-0 rounding down)
        both_zero_same = a * b == 0 and c == 0 and psign == _neg(c)
        return round_rational(exact, mode, zero_sign=psign if both_zero_same else mode == "rd")
    return round_rational(exact, mode)


def ddiv(a: float, b: float, mode: str) -> float:
    if _is_nan(a, b):
        return _NAN
    sign = _neg(a) != _neg(b)
    if math.isinf(a):
        return _NAN if math.isinf(b) else (-math.inf if sign else math.inf)
    if math.isinf(b):
        return -0.0 if sign else 0.0
    if b == 0:
        return _NAN if a == 0 else (-math.inf if sign else math.inf)
    return round_rational(Fraction(a) / Fraction(b), mode, zero_sign=sign)


def drcp(a: float, mode: str) -> float:
    return ddiv(1.0, a, mode)


def dsqrt(a: float, mode: str) -> float:
    if math.isnan(a) or (a < 0):
        return _NAN
    if a == 0 or math.isinf(a):
        return a  # sqrt(-0) = -0, sqrt(+inf) = +inf
    x = Fraction(a)
    # sqrt(a) is normal for every positive float64; its unit of the last place is 2**q
    q = _exponent(x) // 2 - 52
    n2 = x / Fraction(2) ** (2 * q)  # sqrt(a) / 2**q = sqrt(n2)
    whole = n2.numerator // n2.denominator
    n = math.isqrt(whole)  # floor(sqrt(n2)) (= floor(sqrt(floor(n2))))
    exact = n * n == n2
    if not exact:
        if mode == "rn":
            n += 4 * n2 > (2 * n + 1) ** 2  # never a tie: sqrt of a float is not a midpoint
        elif mode == "ru":
            n += 1
    return math.ldexp(float(n), q)


_SCALAR = {"dmul": dmul, "dfma": dfma, "ddiv": ddiv, "drcp": drcp, "dsqrt": dsqrt}


def split_name(name: str) -> tuple[str, str] | None:
    """("dmul", "rz") for the IR Call name "dmul_rz"; None for any other name."""
    stem, _, mode = name.rpartition("_")
    if stem in OPS and mode in MODES:
        return stem, mode
    return None


def elementwise(op: str, mode: str) -> Callable:
    """The operation on float64 arrays (or scalars), element by element."""
    fn = _SCALAR[op]

    def run(*args):
        arrs = np.broadcast_arrays(*[np.asarray(a, np.float64) for a in args])
        out = np.empty(arrs[0].shape, np.float64)
        flat = [a.ravel() for a in arrs]
        res = out.ravel()
        for i in range(res.size):
            res[i] = fn(*[float(f[i]) for f in flat], mode)
        return out if out.ndim else np.float64(out)

    return run
