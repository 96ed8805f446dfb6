"""Replace every tile operator with the loops (and calls) its target lowering produces."""
from __future__ import annotations

from ..ir.span import at
from ..ir.stmt import PrimFunc
from ..tileop.base import LowerContext, TileOp
from .ranges import RangeMutator


class _Lower(RangeMutator):
    def __init__(self, target: str, func: PrimFunc | None = None, arch: str = "sm_80", pass_configs=None):
        super().__init__()
        self.ctx = LowerContext(target, self.ranges)
        self.func = func
        self.arch = arch
        self.pass_configs = pass_configs

    def enter_kernel(self, k):
        if self.ctx.target != "cuda":
            return self.generic_visit(k)
        from .cuda_context import CudaLowerContext

        saved = self.ctx
        self.ctx = CudaLowerContext(k, k.attrs["layouts"], self.ranges, self.arch, self.pass_configs)
        try:
            return self.generic_visit(k)
        finally:
            self.ctx = saved

    def generic_visit(self, node):
        if isinstance(node, TileOp):
            self.ctx.ranges = self.ranges
            if self.ctx.target == "cuda":
                from .thread_range import narrowed

                self.ctx.thread_span = narrowed(self.ctx.kernel, self.ranges)
                self.ctx.op_span = node.span
            try:
                with at(node.span):  # expressions the lowering builds carry the operator's line
                    lowered = getattr(node, f"lower_{self.ctx.target}")(self.ctx)
            finally:
                if self.ctx.target == "cuda":
                    self.ctx.thread_span = None
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


def lower_tile_ops(func: PrimFunc, target: str = "cpu", arch: str = "sm_80", pass_configs=None) -> PrimFunc:
    return func.with_body(_Lower(target, func, arch, pass_configs).visit(func.body))
