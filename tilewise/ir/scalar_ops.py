"""What every scalar operator of the IR computes, defined once, as numpy functions per dtype.

The constant folder (ir/simplify.py), the numpy evaluator (ir/evaluate.py) and the emulator
(emulator/arith.py) all take their arithmetic from here, so a folded constant, a layout table and
an emulated thread compute the same value; the C++ headers (tw_cpu.h, tw_cuda.h) implement the same
rules, and tests/test_scalar_ops.py checks all of them against each other. The rules are what a GPU
does where C leaves a choice (the CUDA target is the one whose answers matter):

- Integers wrap around at their type's width (two's complement), in every operation and cast.
- `div` and `truncmod` are C's `/` and `%` (toward zero); `floordiv` and `floormod` round toward
  negative infinity (Python's `//` and `%`). None of them traps: x / 0 is -1 (all ones), x % 0 is
  x, and the most negative value / -1 wraps to itself (remainder 0), as tw_cpu.h and tw_cuda.h
  define them.
- Shifts: the count is read as unsigned, and a count of the type's width or more gives 0 (`shl`,
  and `shr` of unsigned values) or the sign fill (`shr` of signed values): PTX `shl`/`shr` clamp
  the count to the width. (C leaves this undefined; x86 takes the count modulo the width.)
  Narrow types shift at their own width (C promotes them to int, which gives the same results).
- Floating-point `min`/`max` are IEEE maxNum/minNum: a NaN operand is ignored (fmaxf/fminf), and
  -0 orders below +0 (max(+0, -0) is +0, min(+0, -0) is -0, whichever operand comes first), as
  PTX `max.f32`/`min.f32` do (C's fmaxf may return either zero).
- float16, bfloat16 and float8 are computed in float32 and rounded to their type once per
  operation; float64 values round to them once (through float32 rounded to odd, as the CUDA
  header does). float8 saturates to its largest finite value (infinities included) and a NaN
  becomes the code 0x7f, as `cvt.rn.satfinite` does; float16 and bfloat16 overflow to infinity.
  Integers convert to low-precision floats through float32 (`(half)(float)i`, as the headers do).
  The OCP MX types (fp4, fp6, e8m0) round exactly as ml_dtypes does, numpy's astype here (see
  docs/API.md: fp4/fp6 saturate and take a NaN to zero, e8m0 takes out-of-range values to NaN).
- Float to integer conversion truncates toward zero and saturates at the type's range, NaN giving
  0 (`cvt.rzi.sat`, what a C cast compiles to on the GPU; C leaves overflow undefined).

Every function works on numpy arrays and on 0-d values alike. `fold_*` apply the same functions
to Python scalars (the values of Const nodes) for the constant folder.
"""
from __future__ import annotations

import functools
import math as _math
from collections.abc import Callable

import ml_dtypes
import numpy as np

from . import directed64
from .dtype import DataType, bool_, float64

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)
_U32 = np.dtype(np.uint32)


# ---------------------------------------------------------------------------- values


@functools.cache
def numpy_dtype(dt: DataType) -> np.dtype:
    """The numpy type holding values of dt (a pointer is a 64-bit unsigned integer)."""
    if dt.kind == "handle":
        return np.dtype(np.uint64)
    return dt.numpy


@functools.cache
def _int_range(dt: DataType) -> tuple[type, int, int, int]:
    """(numpy scalar type, min, max, bits) of an integer type."""
    bits = 64 if dt.kind == "handle" else dt.bits
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if dt.is_signed else (0, (1 << bits) - 1)
    return numpy_dtype(dt).type, lo, hi, bits


def is_lowp(dt: DataType) -> bool:
    """float16, bfloat16, float8 (and the MX types) and tfloat32: stored narrow (tfloat32 in a
    float32 with the low 13 mantissa bits zero), computed in float32 and rounded back."""
    return dt.is_float and (dt.bits < 32 or dt.kind == "tfloat")


def _is_int(dt: DataType) -> bool:
    return dt.is_int or dt.kind == "handle"


def as_type(v, npdt: np.dtype):
    """v converted to npdt: an array stays an array, anything else becomes a numpy scalar."""
    if isinstance(v, np.ndarray):
        return v.astype(npdt, copy=False)
    return np.asarray(v).astype(npdt)[()]


def value(v, dt: DataType):
    """The numpy value of dt for a Python scalar (a Const's value): integers wrap, floats round
    once to dt."""
    if dt.is_bool:
        return np.bool_(bool(v))
    if _is_int(dt):
        typ, lo, hi, bits = _int_range(dt)
        i = int(v)
        if not lo <= i <= hi:
            i &= (1 << bits) - 1
            if i > hi:
                i -= 1 << bits
        return typ(i)
    if dt.bits == 64:
        return np.float64(v)
    return cast(float64, dt)(np.float64(v))


def to_python(v, dt: DataType):
    """The Python scalar for a 0-d numpy value of dt (exact: every dt value is a Python value)."""
    if dt.is_bool:
        return bool(v)
    if _is_int(dt):
        return int(v)
    return float(as_type(v, F64))


# ---------------------------------------------------------------------------- rounding to a float type


def _f64_to_f32_odd(x):
    """float64 -> float32 rounded to odd: truncated toward zero, with the last bit set when that
    lost anything. Any format at least two bits narrower rounds this as it would round x itself,
    so float64 -> bfloat16 / float8 round once (tw_cuda.h's f64_to_f32_odd)."""
    x = np.asarray(x, F64)
    with np.errstate(all="ignore"):
        f = x.astype(F32)
        away = np.abs(f.astype(F64)) > np.abs(x)  # rounded up in magnitude (to inf included)
        f = np.where(away, np.nextafter(f, np.float32(0)), f).astype(F32)
        inexact = (f.astype(F64) != x) & np.isfinite(f)
    bits = f.view(_U32) | inexact.astype(_U32)
    return bits.view(F32)[()]


@functools.cache
def _fp8_limits(npdt: np.dtype):
    """float8's largest finite value, and the NaN code 0x7f that cvt.rn.satfinite produces (0x80,
    the only NaN, for the fnuz formats)."""
    top = np.float32(ml_dtypes.finfo(npdt).max)
    nan = np.asarray(0x80 if "fnuz" in npdt.name else 0x7F, np.uint8).view(npdt)[()]
    return top, nan


def _to_tf32(x):
    """float32 values rounded to TensorFloat-32 (10 mantissa bits), to nearest with ties away from
    zero, as cvt.rna.tf32.f32 and CUTLASS's tfloat32_t do: add half the dropped unit to the
    magnitude bits and clear them. Infinities and NaNs stay; values past the largest tf32 round to
    infinity."""
    u = np.asarray(x, F32).view(_U32)
    finite = (u & np.uint32(0x7F800000)) != np.uint32(0x7F800000)
    r = np.where(finite, (u + np.uint32(0x1000)) & np.uint32(0xFFFFE000), u).astype(_U32)
    return r.view(F32)[()]


def tf32_read(x):
    """float32 storage read as tfloat32: the low 13 mantissa bits ignored (cleared), as CUTLASS's
    tfloat32_t converts to float and the tensor cores read an operand."""
    u = np.asarray(x, F32).view(_U32) & np.uint32(0xFFFFE000)
    return u.view(F32)[()]


def _round(x, dt: DataType):
    """float32 or float64 values rounded once to the float type dt."""
    npdt = numpy_dtype(dt)
    src = np.asarray(x).dtype
    if dt.kind == "tfloat":  # float64 through float32 rounded to odd: one rounding to tf32
        return _to_tf32(_f64_to_f32_odd(x) if src == F64 else as_type(x, F32))
    if dt.bits >= 32 or dt.name == "float16":  # numpy rounds these directly from either source
        return as_type(x, npdt)
    if src == F64:
        x = _f64_to_f32_odd(x)
    if dt.kind != "float8":  # bfloat16, and the MX types with ml_dtypes' own rounding
        return as_type(x, npdt)
    top, nan = _fp8_limits(npdt)
    with np.errstate(invalid="ignore"):
        r = as_type(np.clip(x, -top, top), npdt)  # satfinite: past the largest finite value, saturate
    if np.ndim(r) == 0:
        return nan if np.isnan(x) else r
    return np.where(np.isnan(x), nan, r)


def _widen(x, dt: DataType):
    """A value of float type dt in the type its arithmetic happens in (float32 for low precision)."""
    return as_type(x, F32) if is_lowp(dt) else x


def _in_float(fn: Callable, dt: DataType) -> Callable:
    """fn computed in dt's arithmetic type and rounded back to dt once."""
    if is_lowp(dt):
        return lambda *xs: _round(fn(*(as_type(x, F32) for x in xs)), dt)
    npdt = numpy_dtype(dt)
    return lambda *xs: as_type(fn(*xs), npdt)


# ---------------------------------------------------------------------------- integer division and shifts


def _trunc_div(a, b):
    return (a - np.fmod(a, b)) // b  # exact: a minus its C remainder is a multiple of b


_PLAIN_DIVISION = {"div": _trunc_div, "truncmod": np.fmod, "floordiv": np.floor_divide, "floormod": np.mod}


def _int_division(op: str, dt: DataType) -> Callable:
    """C and Python division / remainder that never trap (see the module docstring). Operands
    are values of dt, as everywhere in this module."""
    npdt = numpy_dtype(dt)
    signed = dt.is_signed
    ones = np.asarray(-1).astype(npdt)[()]  # x / 0: all bits set
    plain = _PLAIN_DIVISION[op]  # right wherever no divisor is 0 or -1
    quotient = op in ("div", "floordiv")

    def special(a, b):  # b is 0, or -1 (signed), where truncating and flooring agree
        return np.where(b == 0, ones, np.negative(a)) if quotient else np.where(b == 0, a, 0)

    def divide(a, b):
        if isinstance(b, np.generic):  # one divisor for every lane (usually a constant)
            if b == 0 or (signed and b == -1):
                return as_type(special(a, b), npdt)
            return plain(a, b)
        sp = ((b == 0) | (b == -1)) if signed else (b == 0)
        if not sp.any():
            return plain(a, b)
        return as_type(np.where(sp, special(a, b), plain(a, np.where(sp, 1, b).astype(npdt))), npdt)

    return divide


def _shift(op: str, dt: DataType) -> Callable:
    """Shifts with the count clamped to the width, as PTX shl/shr do (see the module docstring)."""
    npdt = numpy_dtype(dt)
    bits = 64 if dt.kind == "handle" else dt.bits
    unsigned = np.dtype(ml_dtypes.uint4) if bits == 4 else np.dtype(f"uint{bits}")

    def shift(a, b):
        count = as_type(b, unsigned)  # a negative count is a huge unsigned one
        big = count >= bits
        safe = as_type(np.where(big, 0, count), npdt)
        if op == "shl":
            out = np.where(big, 0, np.left_shift(a, safe))
        elif dt.is_signed:
            out = np.where(big, np.right_shift(a, bits - 1), np.right_shift(a, safe))
        else:
            out = np.where(big, 0, np.right_shift(a, safe))
        return as_type(out, npdt)

    return shift


# ---------------------------------------------------------------------------- operator tables


def _fmax(a, b):
    """maxNum with -0 < +0 (np.fmax may return either of two equal zeros)."""
    return np.where(a == b, np.where(np.signbit(a), b, a), np.fmax(a, b))


def _fmin(a, b):
    """minNum with -0 < +0 (np.fmin may return either of two equal zeros)."""
    return np.where(a == b, np.where(np.signbit(a), a, b), np.fmin(a, b))


def _float_floormod(a, b):
    r = np.fmod(a, b)
    return np.where((r != 0) & ((r < 0) != (b < 0)), r + b, r)


_INT_BIN = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "bitand": np.bitwise_and,
    "bitor": np.bitwise_or, "bitxor": np.bitwise_xor, "min": np.minimum, "max": np.maximum,
}  # fmt: skip
_FLOAT_BIN = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
    "truncmod": np.fmod, "floormod": _float_floormod,
    "floordiv": lambda a, b: np.floor(np.true_divide(a, b)),
    "min": _fmin, "max": _fmax,  # IEEE minNum/maxNum, -0 < +0: a NaN operand is ignored, as on GPUs
}  # fmt: skip
_BOOL_BIN = {
    "and": np.logical_and, "or": np.logical_or, "bitand": np.logical_and, "bitor": np.logical_or,
    "bitxor": np.logical_xor, "eq": np.equal, "ne": np.not_equal, "min": np.logical_and,
    "max": np.logical_or,
}  # fmt: skip
_COMPARE = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
            "eq": np.equal, "ne": np.not_equal}  # fmt: skip


@functools.cache
def binary(op: str, dt: DataType) -> Callable:
    """f(a, b) = `a op b` for operands of type dt (BinOp's op names). KeyError: not defined on dt."""
    if dt.is_bool:
        return _BOOL_BIN[op]
    if _is_int(dt):
        if op in ("div", "truncmod", "floordiv", "floormod"):
            return _int_division(op, dt)
        if op in ("shl", "shr"):
            return _shift(op, dt)
        return _INT_BIN[op]  # numpy wraps integer arrays and scalars alike
    return _in_float(_FLOAT_BIN[op], dt)


@functools.cache
def compare(op: str, dt: DataType) -> Callable:
    """f(a, b) = `a op b` (a bool) for operands of type dt."""
    fn = _COMPARE[op]
    if is_lowp(dt):  # float8 types have no numpy comparisons; float32 compares them exactly
        return lambda a, b: fn(as_type(a, F32), as_type(b, F32))
    return fn


@functools.cache
def unary(op: str, dt: DataType) -> Callable:
    """f(a) for UnaryOp's ops on an operand of type dt (`not` gives a bool)."""
    if op == "not":
        return np.logical_not
    if op == "neg":
        if dt.is_bool:
            return lambda a: a
        if _is_int(dt):
            npdt = numpy_dtype(dt)
            return lambda a: as_type(np.negative(a), npdt)
        return _in_float(np.negative, dt)
    if op == "bitnot":
        if dt.is_bool:
            return np.logical_not
        if _is_int(dt):
            return np.invert
    raise KeyError(op)


# ---------------------------------------------------------------------------- casts


def _float_to_int(dst: DataType) -> Callable:
    """Truncation toward zero, saturating at dst's range, NaN giving 0 (cvt.rzi.sat)."""
    npdt = numpy_dtype(dst)
    info = ml_dtypes.iinfo(npdt) if dst.bits < 8 else np.iinfo(npdt)  # int4 / uint4: ml_dtypes' types
    lo = float(info.min)  # -2^(w-1) or 0: exact in float64
    hi_excl = 2.0 ** (dst.bits - 1 if dst.is_signed else dst.bits)  # max + 1, exact
    lo_v, hi_v = np.asarray(info.min, npdt)[()], np.asarray(info.max, npdt)[()]

    def f2i(v):
        with np.errstate(invalid="ignore"):
            t = np.trunc(as_type(v, F64))
            below, above = t < lo, t >= hi_excl
            inside = ~(below | above | np.isnan(t))
            r = np.where(inside, t, 0).astype(npdt)
        return as_type(np.where(above, hi_v, np.where(below, lo_v, r)), npdt)

    return f2i


@functools.cache
def cast(src: DataType, dst: DataType) -> Callable:
    """f(v) converting values of type src to type dst (Cast)."""
    to = numpy_dtype(dst)
    if src == dst:
        return lambda v: v
    if dst.is_bool:
        return lambda v: np.not_equal(_widen(v, src), 0)
    if _is_int(dst):
        if src.is_float:
            return _float_to_int(dst)
        return lambda v: as_type(v, to)  # integers wrap; bool is 0 or 1
    # dst is a float type
    if dst.kind == "tfloat":
        return lambda v: _round(_widen(v, src) if src.is_float and src.bits <= 32 else as_type(v, F64), dst)
    if dst.bits >= 32:
        return lambda v: as_type(_widen(v, src), to)  # exact, or one rounding (f64 -> f32, i64 -> f32)
    if src == float64:
        return lambda v: _round(v, dst)
    return lambda v: _round(as_type(v, F32), dst)  # integers through float32, as the headers do


# ---------------------------------------------------------------------------- math calls

_erf = np.frompyfunc(_math.erf, 1, 1)


def _round_half_away(x):
    t = np.trunc(x)
    return np.where(np.abs(x - t) >= 0.5, t + np.sign(x), t)


_MATH1 = {
    "exp": np.exp, "exp2": np.exp2, "exp10": lambda x: np.power(np.asarray(10, np.asarray(x).dtype), x),
    "log": np.log, "log2": np.log2, "log10": np.log10, "log1p": np.log1p, "expm1": np.expm1,
    "sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(x), "rcp": lambda x: 1 / x,
    "tanh": np.tanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "erf": lambda x: as_type(_erf(x), np.asarray(x).dtype),
    "floor": np.floor, "ceil": np.ceil, "round": _round_half_away, "trunc": np.trunc,
    "nearbyint": np.rint, "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin,
    "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "asinh": np.arcsinh,
    "acosh": np.arccosh, "atanh": np.arctanh, "abs": np.abs,
    # TileLang's fast-math intrinsics (T.__exp, ...): the GPU's approximate instructions are
    # modelled by the correctly rounded value, as the PTX interpreter models them
    "fast_exp": np.exp, "fast_exp10": lambda x: np.power(np.asarray(10, np.asarray(x).dtype), x),
    "fast_log": np.log, "fast_log2": np.log2, "fast_log10": np.log10, "fast_sin": np.sin,
    "fast_cos": np.cos, "fast_tan": np.tan, "fast_rcp": lambda x: 1 / x,
}  # fmt: skip
_MATH2 = {
    "pow": np.power, "max": _fmax, "min": _fmin, "fmod": np.fmod, "atan2": np.arctan2,
    "hypot": np.hypot, "copysign": np.copysign,
}  # fmt: skip


# float classification (a bool result; the operand is any float type, widened exactly)
_FLOAT_TESTS = {"isnan": np.isnan, "isinf": np.isinf, "isfinite": np.isfinite}


def _popcount(dt: DataType) -> Callable:
    """Set bits of the value's own width (a negative value counts its two's complement bits)."""
    npdt = numpy_dtype(dt)
    unsigned = np.dtype(f"uint{npdt.itemsize * 8}")
    return lambda a: as_type(np.bitwise_count(as_type(a, unsigned)), npdt)


def _clz(dt: DataType) -> Callable:
    """Leading zero bits within the value's own width (the width for 0), as __clz / __clzll."""
    npdt = numpy_dtype(dt)
    bits = npdt.itemsize * 8
    unsigned = np.dtype(f"uint{bits}")

    def clz(a):
        x = np.asarray(as_type(a, unsigned))
        n = np.zeros(x.shape, np.int64)
        width = bits
        while width > 1:  # binary search for the highest set bit
            half = width // 2
            high = (x >> unsigned.type(bits - half)) == 0  # the top `half` bits are all zero
            n = np.where(high, n + half, n)
            x = np.where(high, x << unsigned.type(half), x)
            width = half
        n = np.where(x >> unsigned.type(bits - 1) == 0, n + 1, n)  # the last bit itself
        return as_type(n, npdt)

    return clz


def _ldexp(dt: DataType) -> Callable:
    """x * 2**e for a float x of type dt and an int32 exponent, rounded to dt once."""
    work = F64 if dt.bits == 64 else F32
    i32 = np.dtype(np.int32)

    def ldexp(x, e):
        r = np.ldexp(as_type(x, work), as_type(e, i32))
        return _round(r, dt) if is_lowp(dt) else as_type(r, work)

    return ldexp


@functools.cache
def math_call(name: str, dt: DataType, nargs: int) -> Callable | None:
    """f(*args) for an element-wise math Call returning dt, or None if the name is not math.
    Floats use numpy's functions (the devices' libraries differ from them by an ulp or two; the
    folder does not fold these); integers have exact versions of abs, min, max, fmod and pow,
    and popcount / clz (of the operand's own width; T.clz casts to int32 afterwards). isnan,
    isinf and isfinite return bool for a float operand of any width."""
    if nargs == 1 and name in _FLOAT_TESTS:
        if not dt.is_bool:
            return None
        test = _FLOAT_TESTS[name]
        return lambda x: test(as_type(x, F64))
    if nargs == 1 and name in ("popcount", "clz"):
        return (_popcount if name == "popcount" else _clz)(dt) if _is_int(dt) else None
    if nargs == 2 and name == "ldexp":
        return _ldexp(dt) if dt.is_float else None
    if nargs == 2 and name == "nextafter":
        return _in_float(np.nextafter, dt) if dt.is_float and dt.bits >= 32 else None
    directed = directed64.split_name(name)
    if directed is not None:  # float64 mul, fma, div, rcp, sqrt rounded rz / ru / rd (exact)
        op, mode = directed
        return directed64.elementwise(op, mode) if dt.name == "float64" and nargs == directed64.OPS[op] else None
    if nargs == 1 and name in _MATH1:
        if _is_int(dt) or dt.is_bool:
            return _int_abs(dt) if name == "abs" else None
        fn = _MATH1[name]
        return _in_float(lambda x: fn(np.asarray(x)), dt)
    if nargs == 2 and name in _MATH2:
        if _is_int(dt):
            if name in ("max", "min"):
                return binary(name, dt)
            if name == "fmod":
                return binary("truncmod", dt)
            if name == "pow":
                to_int = cast(float64, dt)
                return lambda a, b: to_int(np.power(as_type(a, F64), as_type(b, F64)))
            return None
        return _in_float(_MATH2[name], dt)
    return None


def _int_abs(dt: DataType) -> Callable:
    npdt = numpy_dtype(dt)
    return lambda a: as_type(np.abs(a), npdt)  # wraps: abs of the most negative value is itself


# ---------------------------------------------------------------------------- folding Python scalars
# The folder runs on every compile; integer constants repeat (the same tile sizes and strides), so
# integer folds are memoised (int keys are exact; float keys would conflate 0.0 with -0.0).


def fma32(a, b, c):
    """float32 a * b + c rounded once: the product of two float32 values is exact in float64,
    its sum with c the exact float64 pair (s, e); rounding s to odd (toward zero, last bit set
    when e != 0) keeps the inexactness, so the final rounding to float32 is correct (53 >= 24 + 2
    bits). Elementwise on arrays; infinities and NaNs as IEEE's a * b + c."""
    a64 = np.asarray(a, np.float32).astype(np.float64)
    b64 = np.asarray(b, np.float32).astype(np.float64)
    c64 = np.asarray(c, np.float32).astype(np.float64)
    with np.errstate(all="ignore"):
        p = a64 * b64
        s = p + c64
        bb = s - p
        e = (p - (s - bb)) + (c64 - bb)
        toward0 = (e != 0) & (np.signbit(e) != np.signbit(s))
        t = np.where(toward0, np.nextafter(s, 0.0), s)
        even = (np.asarray(t).view(np.int64) & 1) == 0
        t = np.where((e != 0) & even & np.isfinite(t), np.nextafter(t, np.copysign(np.inf, t)), t)
        r = np.where(np.isfinite(t) & np.isfinite(s), t, s).astype(np.float32)
    return r if np.ndim(r) else np.float32(r)


def _two_sum(x, y):
    s = x + y
    bb = s - x
    return s, (x - (s - bb)) + (y - bb)


def _round_to_odd(s, e):
    """The float64 next to s (= RN of s + e exactly) that rounds s + e to odd: truncate toward
    zero, then set the last bit when inexact (what makes the final rounding of fma64 single)."""
    toward0 = (e != 0) & (np.signbit(e) != np.signbit(s))
    t = np.where(toward0, np.nextafter(s, 0.0), s)
    even = (np.asarray(t).view(np.int64) & 1) == 0
    return np.where((e != 0) & even & np.isfinite(t), np.nextafter(t, np.copysign(np.inf, t)), t)


def fma64(a, b, c):
    """float64 a * b + c rounded once, elementwise (Boldo and Melquiond's algorithm: the exact
    product as a pair by Veltkamp/Dekker splitting, error-free sums, one round-to-odd of the low
    parts, one final rounding). Infinities, NaNs and products that overflow the splitting take
    IEEE's plain a * b + c."""
    a, b, c = (np.asarray(x, np.float64) for x in (a, b, c))
    with np.errstate(all="ignore"):
        split = 134217729.0  # 2^27 + 1
        ta, tb = split * a, split * b
        ah, bh = ta - (ta - a), tb - (tb - b)
        al, bl = a - ah, b - bh
        uh = a * b
        ul = ((ah * bh - uh) + ah * bl + al * bh) + al * bl
        th, tl = _two_sum(c, ul)
        vh, vl = _two_sum(uh, th)
        zs, ze = _two_sum(vl, tl)
        r = vh + _round_to_odd(zs, ze)
        plain = a * b + c
        ok = np.isfinite(r) & np.isfinite(plain) & np.isfinite(ta) & np.isfinite(tb)
        # an exact zero takes IEEE's sign of the sum (the pairs above lose it: -0 + -0 is -0),
        # which the plain form computes right, its product then being exact (= -c)
        ok &= r != 0
        r = np.where(ok, r, plain)
    return r if np.ndim(r) else np.float64(r)


def fold_fma(dt: DataType, a, b, c):
    """The constant a * b + c of float32/float64 type dt rounded once (contract_fma's fma)."""
    if dt.name == "float32":
        return float(fma32(a, b, c))
    vals = [float(x) for x in (a, b, c)]
    if not all(np.isfinite(vals)):
        return vals[0] * vals[1] + vals[2]
    from fractions import Fraction

    exact = Fraction(vals[0]) * Fraction(vals[1]) + Fraction(vals[2])
    try:
        return float(exact)  # correctly rounded
    except OverflowError:
        return float("inf") if exact > 0 else float("-inf")


def fold_binary(op: str, dt: DataType, a, b):
    """`a op b` on the Python values of two constants of type dt; None if op is not defined on dt."""
    if type(a) is int and type(b) is int:
        return _fold_binary_ints(op, dt, a, b)
    return _fold_binary(op, dt, a, b)


def _fold_binary(op: str, dt: DataType, a, b):
    try:
        fn = binary(op, dt)
    except KeyError:
        return None
    with np.errstate(all="ignore"):
        return to_python(fn(value(a, dt), value(b, dt)), dt)


_fold_binary_ints = functools.lru_cache(maxsize=4096)(_fold_binary)


def fold_compare(op: str, dt: DataType, a, b) -> bool:
    """`a op b` (a comparison) on the Python values of two constants of type dt."""
    if type(a) is int and type(b) is int:
        return _fold_compare_ints(op, dt, a, b)
    return _fold_compare(op, dt, a, b)


def _fold_compare(op: str, dt: DataType, a, b) -> bool:
    with np.errstate(all="ignore"):
        return bool(compare(op, dt)(value(a, dt), value(b, dt)))


_fold_compare_ints = functools.lru_cache(maxsize=4096)(_fold_compare)


def fold_unary(op: str, dt: DataType, a):
    """UnaryOp on the Python value of a constant of type dt; None if op is not defined on dt."""
    try:
        fn = unary(op, dt)
    except KeyError:
        return None
    out_dt = dt if op != "not" else bool_
    with np.errstate(all="ignore"):
        return to_python(fn(value(a, dt)), out_dt)


def fold_cast(src: DataType, dst: DataType, v):
    """Cast of the Python value of a constant of type src to dst."""
    with np.errstate(all="ignore"):
        return to_python(cast(src, dst)(value(v, src)), dst)


__all__ = [
    "as_type", "binary", "cast", "compare", "fold_binary", "fold_cast", "fold_compare", "fold_unary",
    "is_lowp", "math_call", "numpy_dtype", "to_python", "unary", "value",
]  # fmt: skip
