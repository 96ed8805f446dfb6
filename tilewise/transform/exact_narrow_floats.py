"""Drops float16/bfloat16 round trips that provably cannot change a value (CPU loop passes).

The CPU renders each float16/bfloat16 add, sub and mul as float arithmetic rounded back to the
narrow type (backend/c_style.py), and each such rounding is a dozen integer instructions of
tw::half's conversion. A dequantisation written as TileLang users write it,

    B[i, j] = (nibble.astype("float16") - 8) * scale[i]

rounds three times (the cast, the subtraction, the product) where only the last can be inexact:
a small integer is exact in float16 (|v| <= 2048; bfloat16: 256), and so is a sum, difference or
product of exact small integers. This pass writes the narrow arithmetic in the explicit form the
renderer gives it, Cast(narrow, op(Cast(float32, a), Cast(float32, b))), and computes operands
whose value is such an exact integer in float32 without the round trips. The result is
identical bit for bit (the skipped roundings are of values they return unchanged); only the
work goes. Division, and anything not provably integer-valued, keeps every rounding.
"""
from __future__ import annotations

from ..ir import dtype as _dt
from ..ir.dtype import DataType
from ..ir.expr import BinOp, Cast, Const, Expr
from ..ir.simplify import bound
from ..ir.stmt import PrimFunc
from .ranges import RangeMutator

# the largest magnitude up to which every integer is exact in the type
_EXACT = {"float16": 2048, "bfloat16": 256, "float32": 1 << 24, "float64": 1 << 53}
_NARROW = ("float16", "bfloat16")


def _exact_int(e: Expr, ranges) -> tuple[int, int] | None:
    """(lo, hi) when e's value is an integer in [lo, hi] that every step computes exactly, and
    that float32 holds exactly too; else None."""
    limit = _EXACT.get(e.dtype.name)
    if limit is None:
        return None
    r = None
    if isinstance(e, Const):
        v = e.value
        if isinstance(v, (int, float)) and float(v).is_integer():
            r = (int(v), int(v))
    elif isinstance(e, Cast):
        if e.value.dtype.is_int:
            lo, hi = bound(e.value, ranges)
            if lo is not None and hi is not None:
                r = (lo, hi)
        elif e.value.dtype.is_float:
            r = _exact_int(e.value, ranges)
    elif isinstance(e, BinOp) and e.op in ("add", "sub", "mul"):
        a, b = _exact_int(e.a, ranges), _exact_int(e.b, ranges)
        if a is not None and b is not None:
            if e.op == "add":
                r = (a[0] + b[0], a[1] + b[1])
            elif e.op == "sub":
                r = (a[0] - b[1], a[1] - b[0])
            else:
                ps = [x * y for x in a for y in b]
                r = (min(ps), max(ps))
    if r is None or -limit > r[0] or r[1] > limit or r[1] > _EXACT["float32"] or r[0] < -_EXACT["float32"]:
        return None
    return r


def _in_f32(e: Expr, f32: DataType) -> Expr:
    """e (with _exact_int(e) not None) computed in float32: the same value, no narrow roundings."""
    if isinstance(e, Const):
        return Const(float(e.value), f32)
    if isinstance(e, Cast):
        return Cast(e.value, f32) if e.value.dtype.is_int else _in_f32(e.value, f32)
    return BinOp(e.op, _in_f32(e.a, f32), _in_f32(e.b, f32), f32)


class _Exact(RangeMutator):
    """Knows the ranges of loop indices and integer let bindings (a nibble's `& 15`)."""

    def __init__(self):
        super().__init__()
        self.f32 = _dt.float32

    def operand(self, e: Expr) -> Expr:
        """A narrow operand read as float32, without its round trips where it is exact."""
        if _exact_int(e, self.ranges) is not None:
            return _in_f32(e, self.f32)
        return Cast(e, self.f32)

    def visit_BinOp(self, e: BinOp):
        e = self.generic_visit(e)
        if not (isinstance(e, BinOp) and e.dtype.name in _NARROW and e.dtype.lanes == 1 and e.op in ("add", "sub", "mul")):
            return e
        return Cast(BinOp(e.op, self.operand(e.a), self.operand(e.b), self.f32), e.dtype)

    def visit_Cast(self, e: Cast):
        e = self.generic_visit(e)
        if (isinstance(e, Cast) and e.dtype.is_float and e.dtype.bits >= 32 and e.dtype.lanes == 1
                and e.value.dtype.name in _NARROW):
            if _exact_int(e.value, self.ranges) is not None:
                v = _in_f32(e.value, self.f32)
                return v if e.dtype == self.f32 else Cast(v, e.dtype)
        return e


def exact_narrow_floats(func: PrimFunc) -> PrimFunc:
    return func.with_body(_Exact().visit(func.body))
