"""Split element-wise loops whose indices divide the loop index by a constant (CPU).

`for j in T.Parallel(64): out[j] = (packed[j // 2] >> (j % 2) * 4) & 0xF` does not vectorise:
GCC cannot analyse the access `packed[j / 2]`. With j = jo * 2 + ji and ji an unrolled inner
loop of extent 2, `j // 2` is `jo` and `j % 2` is `ji` (simplify_indices, which runs after this
pass, proves it), and the loop over jo is an ordinary vectorisable loop with two interleaved
stores. Applied to innermost T.Parallel loops with a constant extent that the divisors'
least common multiple divides; each dividend must use the loop index."""
from __future__ import annotations

import math

from ..ir.expr import BinOp, Const, Var
from ..ir.span import at
from ..ir.stmt import For, PrimFunc
from ..ir.visitor import Mutator, Visitor, substitute, uses_var

MAX_SPLIT = 16  # an unrolled inner loop of at most this many copies of the body


class _Divisors(Visitor):
    def __init__(self, var: Var):
        self.var = var
        self.divisors: set[int] = set()
        self.has_loop = False

    def visit_BinOp(self, e: BinOp):
        if e.op in ("floordiv", "floormod") and isinstance(e.b, Const) and e.b.value > 1 and uses_var(e.a, self.var):
            self.divisors.add(int(e.b.value))
        self.generic_visit(e)

    def visit_For(self, f):
        self.has_loop = True

    def visit_While(self, w):
        self.has_loop = True


class _Split(Mutator):
    def visit_For(self, f: For):
        f = self.generic_visit(f)
        if f.kind not in ("parallel", "vectorized") or not isinstance(f.extent, Const):
            return f
        if not (isinstance(f.start, Const) and f.start.value == 0):
            return f
        d = _Divisors(f.var)
        d.visit(f.body)
        if d.has_loop or not d.divisors:
            return f
        c = math.lcm(*d.divisors)
        extent = int(f.extent.value)
        if c > MAX_SPLIT or extent % c != 0 or extent == c:
            return f
        with at(f.span):  # the new nodes come from the user's loop
            outer = Var(f.var.name + "_o", f.var.dtype)
            inner = Var(f.var.name + "_i", f.var.dtype)
            body = substitute(f.body, {f.var: outer * c + inner})
            return For(outer, 0, extent // c, f.kind, For(inner, 0, c, "unroll", body), f.annotations)


def split_div_loops(func: PrimFunc) -> PrimFunc:
    return func.with_body(_Split().visit(func.body))
