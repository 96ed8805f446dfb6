"""Replace every tile operator with what its lowering for the target produces (tileop/base.py:
the first of the machine's lowering keys that the operator has)."""
from __future__ import annotations

from collections.abc import Callable

from ..ir.span import at
from ..ir.stmt import Kernel, PrimFunc, Stmt, seq
from ..ir.visitor import walk
from ..tileop.base import LowerContext, TileOp
from .ranges import RangeMutator

# (kernel, ranges of the indices around it) -> the context its operators are lowered with
ContextFactory = Callable[[Kernel, dict], LowerContext]


class _Lower(RangeMutator):
    def __init__(self, make_context: ContextFactory):
        super().__init__()
        self.make_context = make_context
        self.ctx: LowerContext | None = None

    def enter_kernel(self, k: Kernel):
        saved = self.ctx
        self.ctx = self.make_context(k, self.ranges)
        try:
            out = self.generic_visit(k)
            if self.ctx.kernel_prologue:
                out = out.with_fields(body=seq(self.ctx.kernel_prologue + [out.body]))
            made = self.ctx.kernel_attrs()
            if "lowering_notes" in made and out.attrs.get("lowering_notes"):
                made["lowering_notes"] = list(out.attrs["lowering_notes"]) + made["lowering_notes"]  # earlier passes'
            return out.with_fields(attrs={**out.attrs, **made}) if made else out
        finally:
            self.ctx = saved

    def generic_visit(self, node):
        if isinstance(node, TileOp):
            self.ctx.enter(node, self.ranges)
            try:
                with at(node.span):  # expressions the lowering builds carry the operator's line
                    lowered = node.lower(self.ctx)
            finally:
                self.ctx.leave()
            _copy_span(lowered, node.span)
            return self.visit(lowered)
        return super().generic_visit(node)


def _copy_span(stmt, span):
    def f(n):
        if isinstance(n, Stmt) and getattr(n, "span", None) is None:
            n.span = span

    walk(stmt, f)


def lower_tile_ops(func: PrimFunc, make_context: ContextFactory) -> PrimFunc:
    return func.with_body(_Lower(make_context).visit(func.body))
