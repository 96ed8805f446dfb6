"""The range check of a typed literal: `T.int8(300)`, `T.float16(1e6)`, `T.alloc_var("float32",
init=1e300)`, `tvm.tir.const(v, dtype)`.

TileLang builds these through TVM's IntImm / FloatImm, which refuse a Python value the type cannot
hold (a ValueError, `Literal value 300 exceeds maximum of int8`). Converting it instead (an
integer wrapping to 44, a float rounding to inf) would silently compute with another value than
the one written. Infinity and NaN are not checked: they are the float types' own values (or the
conversion's, which T.infinity names). Only literals written with a type are checked here; a
value converted by an expression (`T.cast`, a store into a narrower buffer) keeps its conversion.
"""
from __future__ import annotations

import functools
import math

from ..errors import CompileError
from .dtype import DataType


def _name(dt: DataType) -> str:
    return getattr(dt, "tl_name", dt.name)


@functools.cache
def _float_max(dt: DataType) -> float:
    if dt.bits == 64:
        return float("inf")
    if dt.kind == "tfloat":  # stored in a float32: float32's range
        import numpy as np

        return float(np.finfo(np.float32).max)
    import ml_dtypes  # its finfo also knows bfloat16 and the float8 / float6 / float4 kinds

    return float(ml_dtypes.finfo(dt.numpy).max)


def check_literal(value, dt: DataType, what: str = "") -> None:
    """Refuse a Python bool / int / float that dt cannot represent (a CompileError, which is a
    ValueError as TVM's)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    pre = f"{what}: " if what else ""
    if dt.is_bool:
        if value not in (0, 1):
            raise CompileError(f"{pre}{value} exceeds range of {_name(dt)}")
        return
    if dt.is_int or dt.kind == "handle":
        if dt.kind == "handle" or not float(value).is_integer():
            return  # a float into an integer type is a conversion (truncation), not a literal of it
        v, bits = int(value), (64 if dt.kind == "handle" else dt.bits)
        if dt.is_signed:
            lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        else:
            lo, hi = 0, (1 << bits) - 1
            if v < 0:
                raise CompileError(f"{pre}Literal value {v} is negative for unsigned integer type {_name(dt)}")
        if v < lo:
            raise CompileError(f"{pre}Literal value {v} exceeds minimum of {_name(dt)}")
        if v > hi:
            raise CompileError(f"{pre}Literal value {v} exceeds maximum of {_name(dt)}")
        return
    if not dt.is_float:
        return
    v = float(value)
    if math.isinf(v) or math.isnan(v):
        return
    hi = _float_max(dt)
    if dt.kind == "e8m0" and v < 0:  # unsigned exponent-only scale
        raise CompileError(f"{pre}Literal value {v} below zero for unsigned {_name(dt)}")
    if v < -hi:
        raise CompileError(f"{pre}Literal value {v} exceeds minimum of {_name(dt)}")
    if v > hi:
        raise CompileError(f"{pre}Literal value {v} exceeds maximum of {_name(dt)}")
