"""A mutator that knows the value range of every enclosing block, thread and loop index, so
passes can prove guards and divisions away."""
from __future__ import annotations

from ..ir.expr import BinOp, Compare, Const, Var
from ..ir.simplify import bound
from ..ir.stmt import For, IfThenElse, Kernel
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
        saved = self.ranges
        lo, _ = bound(f.start, self.ranges)
        s_hi = bound(f.start, self.ranges)[1]
        _, e_hi = bound(f.extent, self.ranges)
        hi = None if s_hi is None or e_hi is None else s_hi + e_hi - 1
        self.ranges = {**saved, f.var: (lo, hi)}  # a copy: `saved` may be shared (see visit_IfThenElse)
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

    def visit_IfThenElse(self, s: IfThenElse):
        """Inside the branches the condition's bounds on loop indices hold (so guards that
        repeat them can be proven away)."""
        cond = self.visit(s.cond)
        # narrow copies, never the dict itself: it may be shared with the caller (a pass hands
        # its ranges to a helper mutator), and the branch's facts must not outlive the branch
        saved = self.ranges
        self.ranges = dict(saved)
        narrow(self.ranges, s.cond, True)
        then_body = self.visit(s.then_body)
        self.ranges = dict(saved)
        else_body = None
        if s.else_body is not None:
            narrow(self.ranges, s.cond, False)
            else_body = self.visit(s.else_body)
        self.ranges = saved
        if cond is s.cond and then_body is s.then_body and else_body is s.else_body:
            return s
        out = IfThenElse(cond, then_body, else_body, span=s.span)
        return out


_FLIP = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le", "eq": "eq", "ne": "ne"}
_NEG = {"lt": "ge", "le": "gt", "gt": "le", "ge": "lt", "eq": "ne", "ne": "eq"}


def narrow(ranges: dict, cond, truth: bool) -> None:
    """Tighten `ranges` with what `cond == truth` says about a variable compared to a constant."""
    if isinstance(cond, BinOp) and cond.op == "and" and truth:
        narrow(ranges, cond.a, True)
        narrow(ranges, cond.b, True)
        return
    if isinstance(cond, BinOp) and cond.op == "or" and not truth:
        narrow(ranges, cond.a, False)
        narrow(ranges, cond.b, False)
        return
    if not isinstance(cond, Compare):
        return
    op, a, b = cond.op, cond.a, cond.b
    if isinstance(a, Const) and isinstance(b, Var):
        op, a, b = _FLIP[op], b, a
    if not (isinstance(a, Var) and isinstance(b, Const) and a.dtype.is_int):
        return
    if not truth:
        op = _NEG[op]
    c = b.value
    lo, hi = ranges.get(a, (None, None))
    if op == "lt":
        hi = c - 1 if hi is None else min(hi, c - 1)
    elif op == "le":
        hi = c if hi is None else min(hi, c)
    elif op == "gt":
        lo = c + 1 if lo is None else max(lo, c + 1)
    elif op == "ge":
        lo = c if lo is None else max(lo, c)
    elif op == "eq":
        lo = hi = c
    else:
        return
    ranges[a] = (lo, hi)


def const_int(e):
    return e.value if isinstance(e, Const) else (e if isinstance(e, int) else None)
