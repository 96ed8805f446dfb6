"""Replace every tile operator with the loops (and calls) its target lowering produces."""
from __future__ import annotations

from ..ir.span import at
from ..ir.stmt import PrimFunc
from ..tileop.base import LowerContext, TileOp
from .ranges import RangeMutator


class _Lower(RangeMutator):
    def __init__(self, target: str):
        super().__init__()
        self.ctx = LowerContext(target, self.ranges)

    def generic_visit(self, node):
        if isinstance(node, TileOp):
            self.ctx.ranges = self.ranges
            with at(node.span):  # expressions the lowering builds carry the operator's line
                lowered = getattr(node, f"lower_{self.ctx.target}")(self.ctx)
            _copy_span(lowered, node.span)
            return self.visit(lowered)
        return super().generic_visit(node)


def _copy_span(stmt, span):
    from ..ir.stmt import Stmt
    from ..ir.visitor import walk

    def f(n):
        if isinstance(n, Stmt) and getattr(n, "span", None) is None:
            n.span = span

    walk(stmt, f)


def lower_tile_ops(func: PrimFunc, target: str = "cpu") -> PrimFunc:
    return func.with_body(_Lower(target).visit(func.body))
