"""Split element-wise loops whose indices divide the loop index by a constant (CPU).

`for j in T.Parallel(64): out[j] = (packed[j // 2] >> (j % 2) * 4) & 0xF` does not vectorise:
GCC cannot analyse the access `packed[j / 2]`. With j = jo * 2 + ji and ji an unrolled inner
loop of extent 2, `j // 2` is `jo` and `j % 2` is `ji` (simplify_indices, which runs after this
pass, proves it), and the loop over jo is an ordinary vectorisable loop with two interleaved
stores. A large divisor (`scale[j // 64]`, one scale per group of 64) splits the other way: jo
an outer serial loop and ji a whole vectorisable group, over which `j // 64` is constant.

Applied to innermost T.Parallel loops with a constant extent that the divisors' least common
multiple divides. A dividend k * j (+ terms without j) by d counts as j by d / gcd(k, d)."""
from __future__ import annotations

import math

from ..ir.expr import BinOp, Const, Var
from ..ir.span import at
from ..ir.stmt import For, PrimFunc
from ..ir.visitor import Mutator, Visitor, substitute, uses_var

MAX_UNROLL = 16  # small divisors: an unrolled inner loop of at most this many copies of the body
MIN_GROUP = 16  # large divisors: inner loops of at least one vector of 4-byte values


def _coefficient(a, var: Var) -> int | None:
    """k when `a` is k * var plus terms without var, else None."""
    if a is var:
        return 1
    if isinstance(a, BinOp):
        if a.op == "mul":
            for x, y in ((a.a, a.b), (a.b, a.a)):
                if isinstance(y, Const) and y.value > 0 and not uses_var(y, var):
                    k = _coefficient(x, var)
                    return None if k is None else k * int(y.value)
        if a.op in ("add", "sub"):
            ua, ub = uses_var(a.a, var), uses_var(a.b, var)
            if ua and not ub:
                return _coefficient(a.a, var)
            if ub and not ua and a.op == "add":
                return _coefficient(a.b, var)
    return None


class _Divisors(Visitor):
    def __init__(self, var: Var):
        self.var = var
        self.divisors: set[int] = set()
        self.has_loop = False

    def visit_BinOp(self, e: BinOp):
        if e.op in ("floordiv", "floormod") and isinstance(e.b, Const) and e.b.value > 1 and uses_var(e.a, self.var):
            k = _coefficient(e.a, self.var)
            d = int(e.b.value)
            self.divisors.add(d // math.gcd(k, d) if k is not None else d)
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
        divisors = {c for c in d.divisors if c > 1}
        if d.has_loop or not divisors:
            return f
        c = math.lcm(*divisors)
        extent = int(f.extent.value)
        if extent % c != 0 or extent == c:
            return f
        small = c <= MAX_UNROLL  # else c > MIN_GROUP: whole vectors in the inner loop
        with at(f.span):  # the new nodes come from the user's loop
            outer = Var(f.var.name + "_o", f.var.dtype)
            inner = Var(f.var.name + "_i", f.var.dtype)
            body = substitute(f.body, {f.var: outer * c + inner})
            if small:
                return For(outer, 0, extent // c, f.kind, For(inner, 0, c, "unroll", body), f.annotations)
            return For(outer, 0, extent // c, "serial", For(inner, 0, c, f.kind, body, f.annotations))


def split_div_loops(func: PrimFunc) -> PrimFunc:
    return func.with_body(_Split().visit(func.body))
