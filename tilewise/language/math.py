"""Scalar intrinsics of the T namespace: math functions, casts, limits, integer helpers."""
from __future__ import annotations

import builtins as _builtins
import math as _pymath

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer
from ..ir.dtype import as_dtype
from ..ir.expr import (
    BufferLoad,
    Call,
    Const,
    Expr,
    Select,
    as_expr,
    binary,
    call,
    logical_and,
    logical_not,
    logical_or,
    promote,
)
from ..ir.expr import Cast as CastExpr
from ..ir.expr import (
    cast as _cast,
)
from ..ir.vector import Vector, cast_vector, is_vector, settled
from . import directed_cast as _directed
from . import global_vector as _gv


def _v(x):
    if isinstance(x, Buffer) and x.is_var:
        return x.load_var()
    return x


def _is_py(*xs) -> bool:
    return all(isinstance(_v(x), (int, float, bool)) for x in xs)


def _unary(name, pyfn=None):
    def f(x):
        x = _v(x)
        if pyfn is not None and isinstance(x, (int, float)) and not isinstance(x, bool):
            return pyfn(x)
        if is_vector(x):  # lane by lane
            return Vector([call(name, e) for e in settled(x).values])
        return call(name, x)

    f.__name__ = name
    f.__doc__ = f"T.{name}(x): element-wise {name}."
    return f


exp = _unary("exp", _pymath.exp)
exp2 = _unary("exp2", lambda x: 2.0**x)
exp10 = _unary("exp10", lambda x: 10.0**x)
log = _unary("log", _pymath.log)
log2 = _unary("log2", _pymath.log2)
log10 = _unary("log10", _pymath.log10)
log1p = _unary("log1p", _pymath.log1p)
expm1 = _unary("expm1", _pymath.expm1)
sqrt = _unary("sqrt", _pymath.sqrt)
rsqrt = _unary("rsqrt", lambda x: 1.0 / _pymath.sqrt(x))
tanh = _unary("tanh", _pymath.tanh)
sigmoid = _unary("sigmoid", lambda x: 1.0 / (1.0 + _pymath.exp(-x)))
erf = _unary("erf", _pymath.erf)
floor = _unary("floor", _pymath.floor)
ceil = _unary("ceil", _pymath.ceil)
trunc = _unary("trunc", _pymath.trunc)
_ROUNDING = {"ties-to-even": "nearbyint", "ties-away-from-zero": "round"}


def _round_away(x: float) -> float:
    t = _pymath.trunc(x)
    return t + _pymath.copysign(1.0, x) if abs(x - t) >= 0.5 else float(t)


def round(x, rounding_mode="ties-to-even", span=None):  # noqa: A001
    """T.round(x, rounding_mode="ties-to-even"): x rounded to an integral value of its type.
    TileLang (TVM) rounds halfway cases to even by default (`nearbyint`, as numpy's round);
    "ties-away-from-zero" is C's `round`. A non-string second argument is TileLang's old
    positional `span` (ignored, as spans are)."""
    if rounding_mode is None or not isinstance(rounding_mode, str):
        rounding_mode = "ties-to-even"
    if rounding_mode not in _ROUNDING:
        raise ValueError(f"unsupported T.round rounding_mode {rounding_mode!r}; expected 'ties-to-even' or "
                         "'ties-away-from-zero'")
    x = _v(x)
    if isinstance(x, int) and not isinstance(x, bool):
        return x
    if isinstance(x, float):
        return float(_builtins.round(x)) if rounding_mode == "ties-to-even" else _round_away(x)
    return call(_ROUNDING[rounding_mode], x)
nearbyint = _unary("nearbyint")
sin = _unary("sin", _pymath.sin)
cos = _unary("cos", _pymath.cos)
tan = _unary("tan", _pymath.tan)
asin = _unary("asin", _pymath.asin)
acos = _unary("acos", _pymath.acos)
atan = _unary("atan", _pymath.atan)
sinh = _unary("sinh", _pymath.sinh)
cosh = _unary("cosh", _pymath.cosh)
rcp = _unary("rcp", lambda x: 1.0 / x)


def abs(x):  # noqa: A001
    x = _v(x)
    if _is_py(x):
        return x if x >= 0 else -x
    if is_vector(x):
        return _builtins.abs(x)
    return call("abs", x)


def _minmax(name, args):
    args = [_v(a) for a in args]
    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        args = list(args[0])
    if len(args) < 2:
        raise CompileError(f"T.{name} takes at least two values")
    if _is_py(*args):
        return (_builtins.max if name == "max" else _builtins.min)(args)
    out = args[0]
    for a in args[1:]:
        out = binary(name, out, a)
    return out


def max(*args):  # noqa: A001
    return _minmax("max", args)


def min(*args):  # noqa: A001
    return _minmax("min", args)


def pow(x, y):  # noqa: A001
    x, y = _v(x), _v(y)
    if _is_py(x, y):
        return x**y
    return call("pow", x, y)


def fmod(x, y):
    return call("fmod", _v(x), _v(y))


def if_then_else(cond, a, b):
    cond, a, b = _v(cond), _v(a), _v(b)
    if is_vector(cond) or is_vector(a) or is_vector(b):  # lane by lane (TVM's Select of vectors)
        vecs = [settled(x) for x in (cond, a, b) if is_vector(x)]
        n = vecs[0].lanes
        for x in vecs[1:]:
            if x.lanes != n:
                raise CompileError(f"T.if_then_else: lanes mismatch between {vecs[0].type_name} and {x.type_name}")
        cond, a, b = (settled(x) if is_vector(x) else x for x in (cond, a, b))

        def lane(x, k):
            return x.values[k] if is_vector(x) else x

        return Vector([if_then_else(lane(cond, k), lane(a, k), lane(b, k)) for k in range(n)])
    if isinstance(cond, (bool, int)) and not isinstance(cond, Expr):
        return a if cond else b
    if not isinstance(a, Expr) and not isinstance(b, Expr):
        a = as_expr(a)
        b = as_expr(b, a.dtype)
    elif not isinstance(a, Expr):
        a = as_expr(a, b.dtype)
    elif not isinstance(b, Expr):
        b = as_expr(b, a.dtype)
    if a.dtype != b.dtype:
        dt = promote(a.dtype, b.dtype)
        a, b = _cast(a, dt), _cast(b, dt)
    c = as_expr(cond)
    if not c.dtype.is_bool:
        c = c != 0
    return Select(c, a, b)


Select_ = if_then_else


# TileLang 0.1.13's PTX rounding modifiers of T.cast ("" = the conversion's default)
CAST_ROUNDING_MODES = frozenset({"", "rn", "rz", "rp", "rm", "rs"})


def cast(x, dtype, round: str = "", sat: bool = True, rbits=None):  # noqa: A002
    """T.cast(x, dtype, round="", sat=True, rbits=None). tilewise's conversions round to nearest
    even and, into float8, saturate to the largest finite value (cvt.rn.satfinite): `round=""`
    or `"rn"` with `sat=True` is that. Stochastic rounding (`round="rs"`, `rbits=` a uint32
    of random bits) converts float32 into float16 / bfloat16 as PTX cvt.rs.satfinite does, on
    every target (ir/stochastic_round.py). The directed modes ("rz", "rp", "rm") and `sat=False`
    into float8 (overflow to inf, NaN for e4m3) are built from the nearest-even conversion
    (language/directed_cast.py); "rs" into other types is refused by name; `sat` only concerns
    float8 destinations."""
    if round not in CAST_ROUNDING_MODES:
        raise ValueError(f"Invalid round {round!r}. Must be one of: {sorted(CAST_ROUNDING_MODES)}")
    if not isinstance(sat, bool):
        raise ValueError(f"Invalid sat {sat!r}. Must be a bool (True for satfinite, False for no saturation)")
    if round == "rs" and rbits is None:
        raise ValueError("rbits is required when round='rs' (stochastic rounding)")
    if round != "rs" and rbits is not None:
        raise ValueError("rbits is only valid with round='rs' (stochastic rounding)")
    if round == "rs":
        return _stochastic_cast(x, dtype, sat, rbits)
    if is_vector(x):  # lane by lane, to a vector type of as many lanes or to an element type
        if round not in ("", "rn") or not sat:
            raise CompileError(f"T.cast(..., round={round!r}, sat={sat}) of a vector value: convert its lanes "
                               "one by one (T.extract_lane)")
        return cast_vector(x, dtype)
    x = _v(x)
    dt = as_dtype(dtype)
    if round in _directed.DIRECTED or (not sat and dt.kind == "float8"):
        x = as_expr(x, _dt.float64 if isinstance(x, float) else None)
        if round in _directed.DIRECTED:
            return _directed.directed_cast(x, dt, round, sat)
        return _directed.nonsaturating_float8(as_expr(x), dt) if x.dtype.is_float else _cast(x, dt)
    if isinstance(x, (int, float, bool)):
        return Const(x, dt)
    return _cast(x, dt)


def _stochastic_cast(x, dtype, sat: bool, rbits) -> Expr:
    """T.cast(x, dtype, round="rs", rbits=r): a `cvt_rs` call on the float32 value and the
    random bits as uint32 (TileLang lowers float32 -> float16 / bfloat16 / float8 / float4)."""
    dt = as_dtype(dtype)
    if not sat:  # TileLang's codegen check
        raise CompileError(f"T.cast: sat=false is not supported for stochastic rounding f32 -> {dt}")
    if dt.name not in ("float16", "bfloat16"):
        raise CompileError(
            f"T.cast(..., round='rs') into {dt.tl_name}: tilewise implements stochastic rounding into float16 and bfloat16 "
            "only (PTX cvt.rs into the float8 / float4 x4 forms shares one register of random bits between four "
            "values in a way the PTX ISA does not fully state)")
    x = as_expr(_v(x), _dt.float32)
    if x.dtype != _dt.float32:
        raise CompileError(f"T.cast(..., round='rs'): stochastic rounding converts float32 values (cvt.rs.*.f32), "
                           f"got {x.dtype}; cast to float32 first")
    r = as_expr(_v(rbits), _dt.uint32)
    if not r.dtype.is_int:
        raise CompileError(f"T.cast(..., round='rs'): rbits must be an integer (random bits), got {r.dtype}")
    if r.dtype != _dt.uint32:
        r = _cast(r, _dt.uint32)
    return Call("cvt_rs", [x, r], dt)


def Cast(dtype, x):  # noqa: N802 - TVM's tir.Cast, which TileLang kernels use
    """`T.Cast("float16", x)`: TVM's argument order (type first) of `T.cast(x, "float16")`."""
    if isinstance(x, (str, _dt.DataType)) and not isinstance(dtype, (str, _dt.DataType)):
        x, dtype = dtype, x
    return cast(x, dtype)


def reinterpret(x, dtype=None):
    # TileLang accepts both reinterpret(dtype, x) and reinterpret(x, dtype)
    if isinstance(x, (str, _dt.DataType)) and not isinstance(dtype, (str, _dt.DataType)):
        x, dtype = dtype, x
    if is_vector(x):  # T.ldg64(...) and wider, T.Ramp, A[T.Ramp(...)]: a vector value
        return _gv.reinterpret_vector(x, dtype)
    x = as_expr(_v(x))
    dt = as_dtype(dtype)
    if dt.bits != x.dtype.bits:
        raise CompileError(f"T.reinterpret: {x.dtype} has {x.dtype.bits} bits but {dt} has {dt.bits}")
    return Call("reinterpret", [x], dt)


def infinity(dtype):
    dt = as_dtype(dtype)
    if not dt.is_float or dt.kind in ("float4", "float6", "e8m0"):
        raise CompileError(f"T.infinity: {dt} has no infinity; use T.max_value({dt.name!r})")
    if dt.kind == "float8":
        # a float8 literal is a (saturating) conversion; infinity is the type's own bit pattern
        import numpy as np

        bits = np.array(np.inf, np.float64).astype(dt.numpy)
        if not np.isinf(bits.astype(np.float64)):
            raise CompileError(f"T.infinity: {dt} has no infinity; use T.max_value({dt.name!r})")
        return reinterpret(Const(int(bits.view(np.uint8)), _dt.uint8), dt)
    return Const(float("inf"), dt)


def _finfo_max(dt) -> float:
    import ml_dtypes  # its finfo also knows bfloat16 and the float8 kinds

    return float(ml_dtypes.finfo(dt.numpy).max)


def max_value(dtype):
    """The largest finite value of the type."""
    dt = as_dtype(dtype)
    if dt.is_bool:
        return Const(True, dt)
    if dt.is_int:
        return Const((1 << (dt.bits - 1)) - 1 if dt.is_signed else (1 << dt.bits) - 1, dt)
    return Const(_finfo_max(dt), dt)


def min_value(dtype):
    """The lowest finite value of the type."""
    dt = as_dtype(dtype)
    if dt.is_bool:
        return Const(False, dt)
    if dt.is_int:
        return Const(-(1 << (dt.bits - 1)) if dt.is_signed else 0, dt)
    if dt.kind == "e8m0":  # unsigned: its lowest value is 2^-127
        import ml_dtypes

        return Const(float(ml_dtypes.finfo(dt.numpy).min), dt)
    return Const(-_finfo_max(dt), dt)


def check_divisor(a, b) -> None:
    """An integer division by a constant zero would trap at run time: refuse it here."""
    if isinstance(b, Expr) and isinstance(b, Const):
        zero, dt = b.value == 0, b.dtype
    elif isinstance(b, (int, float)) and not isinstance(b, bool):
        zero, dt = b == 0, (a.dtype if isinstance(a, Expr) else None)
    else:
        return
    if zero and (dt is None or not dt.is_float) and not (isinstance(a, Expr) and a.dtype.is_float):
        raise CompileError(f"integer division by zero: {a} / {b}")


def ceildiv(a, b):
    """ceil(a / b) for any signs (Python semantics)."""
    a, b = _v(a), _v(b)
    check_divisor(a, b)
    if _is_py(a, b):
        return -(-a // b)

    dt = promote(as_expr(a).dtype, as_expr(b).dtype)
    if dt.is_int and (not dt.is_signed or (isinstance(b, int) and b > 0)):
        return (a + b - 1) // b  # the usual tile-count form, which the simplifier knows
    return -((-as_expr(a)) // b)


def floordiv(a, b):
    a, b = _v(a), _v(b)
    check_divisor(a, b)
    if _is_py(a, b):
        return a // b
    return binary("floordiv", a, b)


def floormod(a, b):
    a, b = _v(a), _v(b)
    check_divisor(a, b)
    if _is_py(a, b):
        return a % b
    return binary("floormod", a, b)


def truncdiv(a, b):
    a, b = as_expr(_v(a)), _v(b)
    check_divisor(a, b)
    return binary("div", a, b)


def truncmod(a, b):
    a, b = as_expr(_v(a)), _v(b)
    check_divisor(a, b)
    if a.dtype.is_float or (isinstance(b, Expr) and b.dtype.is_float) or isinstance(b, float):
        # TileLang's truncmod of floats is C's fmod: exact, and fmod(x, ±inf) = x, fmod(-0, y) = -0,
        # where a - trunc(a / b) * b rounds and gives NaN and +0
        return fmod(a, b)
    return a - binary("div", a, b) * b


def clamp(x, lo=None, hi=None, *, min_val=None, max_val=None):
    """x limited to [lo, hi]; TileLang spells the bounds min_val / max_val. A None bound is open.
    As TileLang's tl::clamp, a NaN (x first, then lo, then hi) is the result for floats, and
    lo > hi gives hi."""
    lo = min_val if lo is None else lo
    hi = max_val if hi is None else hi
    out = x
    if lo is not None:
        out = max(out, lo)
    if hi is not None:
        out = min(out, hi)
    if not isinstance(out, Expr) or not out.dtype.is_float:
        return out
    from .tir_math import isnan

    # max/min return the number when one operand is NaN (fmaxf): put the NaN back, innermost
    # the last one tl::clamp checks
    for nan_first in (hi, lo, x):
        if nan_first is not None:
            v = _v(nan_first)
            v = as_expr(v, out.dtype) if not isinstance(v, Expr) else v
            if v.dtype.is_float:
                out = if_then_else(isnan(v), _cast(v, out.dtype) if v.dtype != out.dtype else v, out)
    return out


def dp4a(a, b, c):
    """c + dot of the four int8 lanes packed in a and b (int32 each). As in TileLang, an 8-bit
    element `A_local[i, k]` stands for it and the next three along the last axis; and used as a
    statement with an element `C[i]` as c, `T.dp4a(a, b, C[i])` adds into C[i]. A whole buffer or a
    region stands for its first element: TileLang passes each operand as a pointer to its start
    (`T.dp4a(A, B, C)` is `T.dp4a(A[0], B[0], C[0])`)."""
    a, b, c = _dp4a_start(a), _dp4a_start(b), _dp4a_start(c)
    _dp4a_check(a, b, c)
    a, b, c = _dp4a_word(a), _dp4a_word(b), as_expr(_v(c))
    return Call("dp4a", [a, b, c], _dt.int32)


def _dp4a_check(a, b, c) -> None:
    """TileLang's dtype rule (issue 2600): a and b signed 8-bit (or int32 words holding four of
    them), of one type; c int32. CUDA's __dp4a is the signed form."""
    from ..ir.buffer import Buffer

    def dtype_of(x):
        x = _v(x)
        if isinstance(x, (Buffer, Expr)):
            return x.dtype
        return None  # a Python int: an int32 word

    da, db, dc = dtype_of(a), dtype_of(b), dtype_of(c)
    ok_in = all(d is None or d.name in ("int8", "int32") for d in (da, db))
    same = da is None or db is None or da == db
    if not (ok_in and same and (dc is None or dc.name == "int32")):
        raise CompileError(f"T.dp4a requires int8 operands a and b of one type (or int32 words of four int8) and an "
                           f"int32 accumulator c, got a: {da}, b: {db}, c: {dc}")


def _dp4a_start(x):
    """A buffer (not a T.alloc_var) or a region as its first element, the element its pointer
    addresses; anything else unchanged."""
    from ..ir.buffer import BufferRegion

    if isinstance(x, Buffer) and not x.is_var:
        return BufferLoad(x, [Const(0, _dt.int32)] * x.ndim)
    if isinstance(x, BufferRegion):
        return BufferLoad(x.buffer, [start for start, _ in x.region])
    return x


def _dp4a_word(x) -> Expr:
    x = _v(x)
    if not (isinstance(x, BufferLoad) and x.dtype.bits == 8 and x.dtype.is_int):
        return as_expr(x)
    *lead, last = x.indices
    word = None
    for k in range(4):
        e = BufferLoad(x.buffer, [*lead, last + k] if k else x.indices)
        byte = CastExpr(Call("reinterpret", [e], _dt.uint8) if x.dtype.is_signed else e, _dt.uint32)
        part = byte if k == 0 else binary("shl", byte, Const(8 * k, _dt.uint32))
        word = part if word is None else binary("bitor", word, part)
    return Call("reinterpret", [word], _dt.int32)


def And(*args):
    out = args[0]
    for a in args[1:]:
        out = logical_and(out, a)
    return out


def Or(*args):
    out = args[0]
    for a in args[1:]:
        out = logical_or(out, a)
    return out


def Not(x):
    return logical_not(x)


def bitwise_and(a, b):
    return binary("bitand", _v(a), _v(b))


def bitwise_or(a, b):
    return binary("bitor", _v(a), _v(b))


def bitwise_xor(a, b):
    return binary("bitxor", _v(a), _v(b))


def shift_left(a, b):
    return binary("shl", _v(a), _v(b))


def shift_right(a, b):
    return binary("shr", _v(a), _v(b))


