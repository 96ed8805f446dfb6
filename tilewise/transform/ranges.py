"""A mutator that knows the value range of every enclosing block, thread and loop index, so
passes can prove guards and divisions away."""
from __future__ import annotations

from ..ir.expr import Const
from ..ir.simplify import bound
from ..ir.stmt import For, Kernel
from ..ir.visitor import Mutator


class RangeMutator(Mutator):
    def __init__(self):
        self.ranges: dict = {}

    def visit_Kernel(self, k: Kernel):
        saved = dict(self.ranges)
        for v, g in zip(k.block_vars, k.grid):
            _, hi = bound(g, self.ranges)
            self.ranges[v] = (0, hi - 1 if hi is not None else None)
        for v, t in zip(k.thread_vars, k.threads):
            self.ranges[v] = (0, t - 1)
        try:
            return self.enter_kernel(k)
        finally:
            self.ranges = saved

    def enter_kernel(self, k: Kernel):
        return self.generic_visit(k)

    def visit_For(self, f: For):
        saved = dict(self.ranges)
        lo, _ = bound(f.start, self.ranges)
        s_hi = bound(f.start, self.ranges)[1]
        _, e_hi = bound(f.extent, self.ranges)
        hi = None if s_hi is None or e_hi is None else s_hi + e_hi - 1
        self.ranges[f.var] = (lo, hi)
        try:
            return self.enter_for(f)
        finally:
            self.ranges = saved

    def visit_LetStmt(self, s):
        out = self.generic_visit(s)
        if s.var.dtype.is_int:
            r = s.value_range if s.value_range is not None else bound(s.value, self.ranges)
            if r != (None, None):
                self.ranges[s.var] = r
        return out

    def enter_for(self, f: For):
        return self.generic_visit(f)


def const_int(e):
    return e.value if isinstance(e, Const) else (e if isinstance(e, int) else None)
