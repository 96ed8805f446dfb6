"""CPU: an innermost loop that stores `cond ? x : zero` (a guarded copy: a tile read near a
tensor's edge, a convolution's padding) becomes plain loops over the index ranges where the
condition is constant.

Copies into tiles are guarded wherever the compiler cannot prove the region in bounds: ragged
edges, a stream-K tile chosen in a while loop, the padded rows of an implicit-GEMM convolution.
Per element, `cond ? src[j] : 0` on float16 is a branch or a blend GCC will not vectorise (a
masked load of 16-bit elements does not exist on AVX2), so such a copy ran element by element:
a tenth of the stream-K GEMM's time. The condition's conjuncts that do not use the loop index j
are tested once around the loop; those of the form `j + o < b` (or <=, >, >= with either side
holding j) bound j, and the loop splits into [start, lo) storing zero, [lo, hi) storing x, and
[hi, end) storing zero. Every element gets the value it got before; only the order of the
stores changes, so the pass applies only where that cannot matter: the loop's one statement
stores to distinct elements (an index is j plus a term free of j), and neither the condition
nor x reads the stored buffer. The condition is evaluated once even if the loop does not run,
so it must not read memory unless the loop has a constant, positive trip count.
"""
from __future__ import annotations

from ..ir.expr import BinOp, BufferLoad, Call, Compare, Const, Select, Var
from ..ir.simplify import simplify
from ..ir.stmt import BufferStore, For, IfThenElse, PrimFunc, seq
from ..ir.visitor import Mutator, Visitor, substitute, uses_var

_FLIP = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}


def _conjuncts(e) -> list:
    if isinstance(e, BinOp) and e.op in ("and", "bitand") and e.dtype.is_bool:
        return _conjuncts(e.a) + _conjuncts(e.b)
    if isinstance(e, Const) and e.value is True:
        return []
    return [e]


def _offset(e, var: Var):
    """o when e is `var + o` (o free of var), else None."""
    if e is var:
        return 0
    if isinstance(e, BinOp) and e.op in ("add", "sub"):
        in_a, in_b = uses_var(e.a, var), uses_var(e.b, var)
        if in_a and not in_b:
            o = _offset(e.a, var)
            if o is None:
                return None
            return (o + e.b if e.op == "add" else o - e.b) if not (isinstance(o, int) and o == 0) else \
                (e.b if e.op == "add" else Const(0, e.b.dtype) - e.b)
        if in_b and not in_a and e.op == "add":
            o = _offset(e.b, var)
            if o is None:
                return None
            return e.a if isinstance(o, int) and o == 0 else e.a + o
    return None


def _bound(c, var: Var):
    """('lo', x) for `var >= x`, ('hi', x) for `var < x` (x free of var), else None."""
    if not isinstance(c, Compare) or c.op not in _FLIP:
        return None
    a, b, op = c.a, c.b, c.op
    if uses_var(b, var):
        a, b, op = b, a, _FLIP[op]
    if uses_var(b, var) or not (a.dtype.is_int and b.dtype.is_int):
        return None
    o = _offset(a, var)
    if o is None:
        return None
    x = b if isinstance(o, int) and o == 0 else b - o  # var op x
    one = Const(1, x.dtype)
    if op == "lt":
        return ("hi", x)
    if op == "le":
        return ("hi", x + one)
    if op == "ge":
        return ("lo", x)
    return ("lo", x + one)


def _reads(e, buffer) -> bool:
    found = []

    class _R(Visitor):
        def visit_BufferLoad(self, x):
            if x.buffer is buffer:
                found.append(x)
            self.generic_visit(x)

    _R().visit(e)
    return bool(found)


def _has(e, kinds) -> bool:
    found = []

    class _H(Visitor):
        def generic_visit(self, x):
            if isinstance(x, kinds):
                found.append(x)
            return super().generic_visit(x)

    _H().visit(e)
    return bool(found)


def _flatten(v):
    """(conjuncts, x, zero) for `c1 ? (c2 ? x : z) : z`, or None."""
    if not isinstance(v, Select):
        return None
    zero = v.b
    conds = _conjuncts(v.cond)
    x = v.a
    while isinstance(x, Select) and _same(x.b, zero):
        conds += _conjuncts(x.cond)
        x = x.a
    return conds, x, zero


def _same(a, b) -> bool:
    if isinstance(a, Const) and isinstance(b, Const):
        return a.value == b.value and a.dtype == b.dtype
    if type(a).__name__ == "Cast" and type(b).__name__ == "Cast":
        return a.dtype == b.dtype and _same(a.value, b.value)
    return False


def _all(terms):
    out = terms[0]
    for t in terms[1:]:
        out = BinOp("and", out, t, out.dtype)
    return out


class _Split(Mutator):
    def visit_For(self, f: For):
        s = f.body
        if not isinstance(s, BufferStore) or f.kind not in ("serial", "parallel", "vectorized"):
            return self.generic_visit(f)
        parts = _flatten(s.value)
        if parts is None:
            return f
        conds, x, zero = parts
        var = f.var
        if not conds or uses_var(zero, var) or _has(zero, (BufferLoad, Call)):
            return f
        if _reads(x, s.buffer) or any(_reads(c, s.buffer) or _has(c, Call) for c in conds):
            return f
        if not any(_offset(i, var) is not None for i in s.indices):
            return f  # the stores might not go to distinct elements
        outer = [c for c in conds if not uses_var(c, var)]
        inner = [c for c in conds if uses_var(c, var)]
        bounds = [_bound(c, var) for c in inner]
        if any(b is None for b in bounds):
            return f
        if outer and any(_has(c, BufferLoad) for c in outer) and not (
                isinstance(f.extent, Const) and f.extent.value > 0):
            return f
        start, end = f.start, f.start + f.extent
        lo = hi = None
        for kind, v in bounds:
            if kind == "lo":
                lo = v if lo is None else BinOp("max", lo, v, v.dtype)
            else:
                hi = v if hi is None else BinOp("min", hi, v, v.dtype)

        def loop(a, b, value):
            v2 = Var(var.name, var.dtype)
            body = BufferStore(s.buffer, [substitute(i, {var: v2}) for i in s.indices], substitute(value, {var: v2}),
                               span=s.span)
            return For(v2, simplify(a), simplify(b - a), f.kind, body, f.annotations, span=f.span)

        dt = var.dtype
        lo_c = start if lo is None else BinOp("min", BinOp("max", lo, start, dt), end, dt)
        hi_c = end if hi is None else BinOp("max", BinOp("min", hi, end, dt), lo_c, dt)
        split = []
        if lo is not None:
            split.append(loop(start, lo_c, zero))
        split.append(loop(lo_c, hi_c, x))
        if hi is not None:
            split.append(loop(hi_c, end, zero))
        body = seq(split)
        if outer:
            body = IfThenElse(_all(outer), body, loop(start, end, zero), span=s.span)
        return body


def split_guarded_loops(func: PrimFunc) -> PrimFunc:
    body = _Split().visit(func.body)
    return func if body is func.body else func.with_body(body)

