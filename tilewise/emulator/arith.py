"""Scalar semantics, vectorised: C arithmetic per dtype on numpy values (an array over lanes, or
a 0-d value shared by every lane). Integers wrap at their width, `div` truncates, floordiv and
floormod round toward negative infinity; float16 / bfloat16 / float8 operations are done in
float32 and rounded back after every operation, as the CUDA and CPU renderers do."""
from __future__ import annotations

import math

import numpy as np

from ..ir.dtype import DataType

F32 = np.dtype(np.float32)


def is_lowp(dt: DataType) -> bool:
    return dt.is_float and dt.bits < 32


def np_dtype(dt: DataType) -> np.dtype:
    if dt.kind == "handle":
        return np.dtype(np.uint64)
    return dt.numpy


def const(value, dt: DataType):
    """The 0-d numpy value of a constant of type dt."""
    return np.asarray(value, dtype=np_dtype(dt))[()]


def astype(v, npdt: np.dtype):
    if isinstance(v, np.ndarray):
        return v.astype(npdt, copy=False)
    return np.asarray(v).astype(npdt)[()]


# ---------------------------------------------------------------------------- binary operators


def _tdiv(a, b):
    """C division of integers: the quotient truncated toward zero."""
    r = np.fmod(a, b)
    return (a - r) // np.where(b == 0, 1, b)


def _fl_mod_float(a, b):
    r = np.fmod(a, b)
    return np.where((r != 0) & ((r < 0) != (b < 0)), r + b, r)


_INT = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": _tdiv,
    "truncmod": np.fmod, "floordiv": np.floor_divide, "floormod": np.mod,
    "bitand": np.bitwise_and, "bitor": np.bitwise_or, "bitxor": np.bitwise_xor,
    "shl": np.left_shift, "shr": np.right_shift, "min": np.minimum, "max": np.maximum,
}  # fmt: skip
_FLOAT = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
    "truncmod": np.fmod, "floormod": _fl_mod_float,
    "floordiv": lambda a, b: np.floor(np.true_divide(a, b)),
    "min": np.fmin, "max": np.fmax,  # IEEE minNum/maxNum: a NaN operand is ignored, as on GPUs
}  # fmt: skip
_BOOL = {"and": np.logical_and, "or": np.logical_or, "bitand": np.logical_and, "bitor": np.logical_or,
         "bitxor": np.logical_xor, "eq": np.equal, "ne": np.not_equal}  # fmt: skip

COMPARE = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
           "eq": np.equal, "ne": np.not_equal}  # fmt: skip


def binary_fn(op: str, dt: DataType):
    """f(a, b) computing `a op b` in dt (both operands already of dt)."""
    npdt = np_dtype(dt)
    if dt.is_bool:
        fn = _BOOL.get(op)
        if fn is None:
            raise KeyError(op)
        return fn
    if dt.is_int:
        fn = _INT[op]
        if op in ("shl", "shr"):
            return _shift_fn(op, dt)
        if op in ("div", "floordiv", "floormod", "truncmod"):
            return lambda a, b: astype(fn(a, b), npdt)
        return fn
    fn = _FLOAT[op]
    if is_lowp(dt):
        return lambda a, b: astype(fn(astype(a, F32), astype(b, F32)), npdt)
    return lambda a, b: astype(fn(a, b), npdt)


def _shift_fn(op: str, dt: DataType):
    """C shifts compile to PTX shl/shr, which clamp a count beyond the width to the width: the
    result is 0, or the sign fill for an arithmetic right shift (C leaves this undefined)."""
    npdt = np_dtype(dt)
    bits = dt.bits

    def shift(a, b):
        count = astype(b, np.dtype(np.int64))
        big = (count < 0) | (count >= bits)
        safe = astype(np.where(big, 0, count), npdt)
        if op == "shl":
            out = np.where(big, 0, np.left_shift(a, safe))
        elif dt.is_signed:
            out = np.where(big, np.right_shift(a, bits - 1), np.right_shift(a, safe))
        else:
            out = np.where(big, 0, np.right_shift(a, safe))
        return astype(out, npdt)

    return shift


def compare_fn(op: str, dt: DataType):
    fn = COMPARE[op]
    if dt.kind == "float8":
        return lambda a, b: fn(astype(a, F32), astype(b, F32))
    return fn


def unary_fn(op: str, dt: DataType):
    npdt = np_dtype(dt)
    if op == "not":
        return np.logical_not
    if op == "neg":
        if is_lowp(dt):
            return lambda a: astype(np.negative(astype(a, F32)), npdt)
        if dt.is_bool:
            return lambda a: a
        return np.negative
    if op == "bitnot":
        return np.logical_not if dt.is_bool else np.invert
    raise KeyError(op)


# ---------------------------------------------------------------------------- casts


def cast_fn(src: DataType, dst: DataType):
    """C conversion from src to dst. Float to int truncates toward zero and saturates, NaN giving
    0 (what cvt.rzi.sat does on the GPU, where an out-of-range C cast compiles to it)."""
    to = np_dtype(dst)
    if src == dst:
        return lambda v: v
    if dst.is_bool:
        if src.kind == "float8":
            return lambda v: np.not_equal(astype(v, F32), 0)
        return lambda v: np.not_equal(v, 0)
    if dst.is_int and src.is_float:
        info = np.iinfo(to)
        lo, hi = float(info.min), float(info.max)

        def f2i(v):
            x = astype(v, np.float64)
            x = np.where(np.isnan(x), 0.0, np.clip(np.trunc(x), lo, hi))
            return astype(x, to)

        return f2i
    if dst.is_float and (src.kind == "float8" or dst.kind == "float8") and not src.is_int:
        return lambda v: astype(astype(v, F32), to)
    return lambda v: astype(v, to)


# ---------------------------------------------------------------------------- math calls

_erf = np.frompyfunc(math.erf, 1, 1)


def _round_half_away(x):
    t = np.trunc(x)
    return np.where(np.abs(x - t) >= 0.5, t + np.sign(x), t)


_MATH1 = {
    "exp": np.exp, "exp2": np.exp2, "exp10": lambda x: np.power(np.asarray(10, x.dtype), x),
    "log": np.log, "log2": np.log2, "log10": np.log10, "log1p": np.log1p, "expm1": np.expm1,
    "sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(x), "rcp": lambda x: 1 / x,
    "tanh": np.tanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "erf": lambda x: _erf(x).astype(x.dtype),
    "floor": np.floor, "ceil": np.ceil, "round": _round_half_away, "trunc": np.trunc,
    "nearbyint": np.rint, "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin,
    "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "asinh": np.arcsinh,
    "acosh": np.arccosh, "atanh": np.arctanh, "abs": np.abs,
}  # fmt: skip
_MATH2 = {
    "pow": np.power, "max": np.fmax, "min": np.fmin, "fmod": np.fmod, "atan2": np.arctan2,
    "hypot": np.hypot, "copysign": np.copysign,
}  # fmt: skip


def math_fn(name: str, dt: DataType, nargs: int):
    """f(*args) for an element-wise math call returning dt, or None if the name is not math."""
    npdt = np_dtype(dt)
    if nargs == 1 and name in _MATH1:
        if dt.is_int or dt.is_bool:
            if name != "abs":
                return None
            return lambda a: astype(np.abs(a), npdt)
        fn = _MATH1[name]
        if dt.bits < 32:
            return lambda a: astype(fn(np.asarray(astype(a, F32))), npdt)
        return lambda a: astype(fn(np.asarray(a)), npdt)
    if nargs == 2 and name in _MATH2:
        fn = _MATH2[name]
        if dt.is_int:
            if name == "max":
                return np.maximum
            if name == "min":
                return np.minimum
            if name == "fmod":
                return lambda a, b: astype(np.fmod(a, b), npdt)
            if name == "pow":
                return lambda a, b: astype(np.power(astype(a, np.float64), astype(b, np.float64)), npdt)
            return None
        if dt.bits < 32:
            return lambda a, b: astype(fn(astype(a, F32), astype(b, F32)), npdt)
        return lambda a, b: astype(fn(a, b), npdt)
    return None


def dp4a(a, b, c):
    """__dp4a(a, b, c) on int32 values: c plus the dot product of the four signed bytes of a and b."""
    acc = np.asarray(c, dtype=np.int64)
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    for k in range(4):
        ak = ((a >> (8 * k)) & 0xFF).astype(np.int64)
        bk = ((b >> (8 * k)) & 0xFF).astype(np.int64)
        ak = np.where(ak >= 128, ak - 256, ak)
        bk = np.where(bk >= 128, bk - 256, bk)
        acc = acc + ak * bk
    return astype(acc, np.dtype(np.int32))
