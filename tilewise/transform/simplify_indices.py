"""Simplify every expression knowing the enclosing index ranges, and turn floor division and
modulo of provably non-negative values into the cheaper truncating forms C has."""
from __future__ import annotations

from ..ir.expr import BinOp, Const, Expr
from ..ir.simplify import bound, simplify
from ..ir.stmt import IfThenElse, PrimFunc, seq
from .ranges import RangeMutator


class _Simplify(RangeMutator):
    def generic_visit(self, node):
        if isinstance(node, Expr):
            return _TruncDiv(self.ranges).visit(simplify(node, self.ranges))
        return super().generic_visit(node)

    def visit_IfThenElse(self, s: IfThenElse):
        cond = self.visit(s.cond)
        if isinstance(cond, Const):
            if cond.value:
                return self.visit(s.then_body)
            return self.visit(s.else_body) if s.else_body is not None else seq([])
        return super().visit_IfThenElse(s)


class _TruncDiv(RangeMutator):
    def __init__(self, ranges):
        super().__init__()
        self.ranges = ranges

    def visit_BinOp(self, e: BinOp):
        e = self.generic_visit(e)
        if isinstance(e, BinOp) and e.op in ("floordiv", "floormod") and e.dtype.is_int:
            if isinstance(e.b, Const) and e.b.value > 0:
                lo, _ = bound(e.a, self.ranges)
                if lo is not None and lo >= 0:
                    return BinOp("div" if e.op == "floordiv" else "truncmod", e.a, e.b, e.dtype)
        return e


def simplify_indices(func: PrimFunc) -> PrimFunc:
    return func.with_body(_Simplify().visit(func.body))
