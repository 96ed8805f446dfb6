"""tvm.tir names TileLang programs call while a kernel is parsed (the quantisation helpers and
dequantising kernels: `tir.const`, `tir.reinterpret`, `tir.Select`, ...), on tilewise's IR."""
# ruff: noqa: A001, A004, F401
from __future__ import annotations

from ..errors import CompileError
from ..ir.buffer import Buffer
from ..ir.dtype import as_dtype
from ..ir.expr import Call, Const, Var, as_expr  # noqa: F401 - Call: isinstance checks of tir.Call
from ..ir.expr import cast as _cast
from ..ir.literal_range import check_literal
from ..ir.stmt import PrimFunc
from ..language.math import (
    And,
    Not,
    Or,
    ceildiv,
    exp,
    exp2,
    floordiv,
    floormod,
    if_then_else,
    log,
    log2,
    max,
    min,
    rsqrt,
    sigmoid,
    sqrt,
    tanh,
    truncdiv,
    truncmod,
)
from ..language.math import reinterpret as _reinterpret
from ..language.prim_expr import PrimExpr


def const(value, dtype=None):
    """A constant: int32 for ints and float32 for floats by default, as in TVM."""
    if dtype is None:
        return as_expr(value)
    check_literal(value, as_dtype(dtype), "tir.const")
    return as_expr(value, as_dtype(dtype))


def IntImm(dtype, value):
    check_literal(int(value), as_dtype(dtype), "IntImm")
    return Const(int(value), as_dtype(dtype))


def FloatImm(dtype, value):
    check_literal(float(value), as_dtype(dtype), "FloatImm")
    return Const(float(value), as_dtype(dtype))


def Cast(dtype, value):
    return _cast(value, dtype)


def reinterpret(dtype, value):
    """TVM's argument order: the type first."""
    return _reinterpret(value, dtype)


def Select(condition, true_value, false_value):
    return if_then_else(condition, true_value, false_value)


def all(*conditions):
    out = True
    for c in conditions:
        out = c if out is True else And(out, c)
    return out


def any(*conditions):
    out = False
    for c in conditions:
        out = c if out is False else Or(out, c)
    return out


def call_extern(dtype, func_name, *args, span=None):
    """TVM's call_extern: T.call_extern (language/extern.py)."""
    from ..language.extern import call_extern as _call_extern

    return _call_extern(dtype, func_name, *args)


class IndexMap:
    @staticmethod
    def from_func(*args, **kwargs):
        raise CompileError("tir.IndexMap: use T.Layout(shape, lambda i, j: ...) for layouts in tilewise")
