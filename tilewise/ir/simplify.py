"""Index simplification: constant folding, a canonical linear form for integer arithmetic,
floordiv/floormod rules, and interval bounds used to prove guards away.

`ranges` maps Var -> (lo, hi) inclusive, for loop and block indices."""
from __future__ import annotations

import math

from . import dtype as _dt
from . import scalar_ops
from .expr import BinOp, BufferLoad, Call, Cast, Compare, Const, Expr, Select, UnaryOp, Var
from .span import at, current_span
from .visitor import Mutator

Ranges = dict  # Var -> (lo, hi) inclusive integer bounds


def structural_key(e):
    """A hashable key equal for structurally equal expressions."""
    if isinstance(e, Const):
        return ("c", e.dtype.name, e.value)
    if isinstance(e, Var):
        return ("v", e.uid)
    if isinstance(e, BinOp):
        return ("b", e.op, e.dtype.name, structural_key(e.a), structural_key(e.b))
    if isinstance(e, Compare):
        return ("cmp", e.op, structural_key(e.a), structural_key(e.b))
    if isinstance(e, UnaryOp):
        return ("u", e.op, structural_key(e.a))
    if isinstance(e, Cast):
        return ("cast", e.dtype.name, structural_key(e.value))
    if isinstance(e, Select):
        return ("sel",) + tuple(structural_key(x) for x in (e.cond, e.a, e.b))
    if isinstance(e, Call):
        return ("call", e.name, e.dtype.name) + tuple(structural_key(a) for a in e.args)
    if isinstance(e, BufferLoad):
        return ("ld", e.buffer.uid) + tuple(structural_key(i) for i in e.indices)
    return ("?", id(e))


def structural_equal(a, b) -> bool:
    return structural_key(a) == structural_key(b)


def _c(value, dtype) -> Const:
    return Const(value, dtype)


def _const_product(e, visit):
    """(x, y) of a float product of two expressions that fold to constants, else None."""
    if isinstance(e, BinOp) and e.op == "mul":
        x, y = visit(e.a), visit(e.b)
        if isinstance(x, Const) and isinstance(y, Const):
            return x, y
    return None


def _fold(e, a: Const, b: Const):
    """`a op b` for two constants as the device computes it (ir/scalar_ops.py), or None."""
    if isinstance(e, Compare):
        return _c(scalar_ops.fold_compare(e.op, a.dtype, a.value, b.value), _dt.bool_)
    r = scalar_ops.fold_binary(e.op, e.dtype, a.value, b.value)
    return None if r is None else _c(r, e.dtype)


# ----------------------------------------------------------------------------- linear form


class Linear:
    """sum(coeff * atom) + const over integers; atoms are non-linear sub-expressions."""

    __slots__ = ("terms", "const", "dtype")

    def __init__(self, dtype, terms=None, const=0):
        self.dtype = dtype
        self.terms: dict = terms or {}  # key -> [atom, coeff]
        self.const = const

    def copy(self):
        return Linear(self.dtype, {k: [a, c] for k, (a, c) in self.terms.items()}, self.const)

    def add(self, other: Linear, sign: int = 1) -> Linear:
        out = self.copy()
        for k, (a, c) in other.terms.items():
            if k in out.terms:
                out.terms[k][1] += sign * c
                if out.terms[k][1] == 0:
                    del out.terms[k]
            else:
                out.terms[k] = [a, sign * c]
        out.const += sign * other.const
        return out

    def scale(self, s: int) -> Linear:
        if s == 0:
            return Linear(self.dtype)
        return Linear(self.dtype, {k: [a, c * s] for k, (a, c) in self.terms.items()}, self.const * s)

    def to_expr(self) -> Expr:
        dt = self.dtype
        pos = None
        neg = []
        for a, c in self.terms.values():
            if c > 0:
                t = a if c == 1 else BinOp("mul", a, _c(c, dt), dt)
                pos = t if pos is None else BinOp("add", pos, t, dt)
            else:
                neg.append(a if c == -1 else BinOp("mul", a, _c(-c, dt), dt))
        out = pos
        for t in neg:
            out = BinOp("sub", out, t, dt) if out is not None else BinOp("mul", t, _c(-1, dt), dt)
        if out is None:
            return _c(self.const, dt)
        if self.const > 0:
            out = BinOp("add", out, _c(self.const, dt), dt)
        elif self.const < 0:
            out = BinOp("sub", out, _c(-self.const, dt), dt)
        return out

    def gcd(self) -> int:
        g = 0
        for _, c in self.terms.values():
            g = math.gcd(g, c)
        return g


def _linear(e: Expr) -> Linear:
    dt = e.dtype
    if isinstance(e, Const):
        return Linear(dt, const=e.value)
    if isinstance(e, BinOp) and e.op in ("add", "sub"):
        return _linear(e.a).add(_linear(e.b), 1 if e.op == "add" else -1)
    if isinstance(e, BinOp) and e.op == "mul":
        if isinstance(e.b, Const):
            return _linear(e.a).scale(e.b.value)
        if isinstance(e.a, Const):
            return _linear(e.b).scale(e.a.value)
    if isinstance(e, UnaryOp) and e.op == "neg":
        return _linear(e.a).scale(-1)
    return Linear(dt, {structural_key(e): [e, 1]})


# ----------------------------------------------------------------------------- bounds


def bound(e: Expr, ranges: Ranges | None = None):
    """Inclusive (lo, hi) of an integer expression, with None for unknown sides."""
    ranges = ranges or {}
    if isinstance(e, Const):
        return (e.value, e.value)
    if isinstance(e, Var):
        r = ranges.get(e)
        if r is not None:
            return r
        return (None, None)
    if isinstance(e, Cast) and e.dtype.is_int and (e.value.dtype.is_int or e.value.dtype.is_bool):
        # a cast keeps the value only when it fits the target type; otherwise it wraps
        tlo, thi = _type_range(e.dtype)
        lo, hi = bound(e.value, ranges)
        if lo is not None and hi is not None and tlo <= lo and hi <= thi:
            return (lo, hi)
        return (tlo, thi)
    if isinstance(e, BinOp):
        alo, ahi = bound(e.a, ranges)
        blo, bhi = bound(e.b, ranges)
        if e.op == "add":
            return (_opt(alo, blo, int.__add__), _opt(ahi, bhi, int.__add__))
        if e.op == "sub":
            return (_opt(alo, bhi, int.__sub__), _opt(ahi, blo, int.__sub__))
        if e.op == "mul":
            if None in (alo, ahi, blo, bhi):
                if blo is not None and blo == bhi and blo >= 0:
                    return (_opt(alo, blo, int.__mul__), _opt(ahi, blo, int.__mul__))
                return (None, None)
            ps = [alo * blo, alo * bhi, ahi * blo, ahi * bhi]
            return (min(ps), max(ps))
        if e.op in ("floordiv", "div") and blo is not None and blo == bhi and blo > 0:
            if e.op == "div" and (alo is None or alo < 0):
                return (None, None)
            return (None if alo is None else alo // blo, None if ahi is None else ahi // blo)
        if e.op == "truncmod" and blo is not None and blo == bhi and blo > 0:
            if alo is not None and alo >= 0:  # C's % of a non-negative value: as floormod
                return (alo, ahi) if ahi is not None and ahi < blo else (0, blo - 1)
            return (1 - blo, blo - 1)
        if e.op == "floormod" and blo is not None and blo == bhi and blo > 0:
            if alo is not None and ahi is not None and alo >= 0 and ahi < blo:
                return (alo, ahi)
            if alo is not None and ahi is not None and alo // blo == ahi // blo:
                return (alo % blo, ahi % blo)
            return (0, blo - 1)
        if e.op == "min":
            return (_opt(alo, blo, min), _opt(ahi, bhi, min) if None not in (ahi, bhi) else (ahi if bhi is None else bhi))
        if e.op == "max":
            return (_opt(alo, blo, max) if None not in (alo, blo) else (alo if blo is None else blo), _opt(ahi, bhi, max))
        if e.op == "bitand" and blo is not None and blo == bhi and blo >= 0:
            return (0, blo)
        if e.op == "shr" and blo is not None and blo == bhi and blo >= 0 and alo is not None and alo >= 0:
            return (alo >> blo, None if ahi is None else ahi >> blo)
    if isinstance(e, Select):
        alo, ahi = bound(e.a, ranges)
        blo, bhi = bound(e.b, ranges)
        lo = None if None in (alo, blo) else min(alo, blo)
        hi = None if None in (ahi, bhi) else max(ahi, bhi)
        return (lo, hi)
    if isinstance(e, Compare) or (isinstance(e, UnaryOp) and e.op == "not"):
        return (0, 1)
    if e.dtype.is_int and not e.dtype.is_signed:
        return (0, None)
    return (None, None)


def _type_range(dtype) -> tuple[int, int]:
    if dtype.is_signed:
        return (-(1 << (dtype.bits - 1)), (1 << (dtype.bits - 1)) - 1)
    return (0, (1 << dtype.bits) - 1)


def _opt(a, b, f):
    if a is None or b is None:
        return None
    return f(a, b)


def prove(cond: Expr, ranges: Ranges | None = None):
    """True or False when the condition is decided for every value in the ranges, else None."""
    s = simplify(cond, ranges)
    if isinstance(s, Const):
        return bool(s.value)
    return None


# ----------------------------------------------------------------------------- simplifier


class _Simplifier(Mutator):
    def __init__(self, ranges: Ranges | None):
        self.ranges = ranges or {}
        # id(node) -> (node, result): a node is simplified once per call. _fold_fma looks at a
        # product's operands before the product itself is visited, so without this a chain
        # `((x * a + b) * a + b) ...` was visited twice per level, 2^depth times in all.
        self._done: dict[int, tuple] = {}

    def visit(self, node):
        hit = self._done.get(id(node))
        if hit is not None and hit[0] is node:
            return hit[1]
        # nodes built while simplifying keep the source line of the node they replace
        span = getattr(node, "span", None)
        if span is None or span is current_span():
            out = super().visit(node)
        else:
            with at(span):
                out = super().visit(node)
        self._done[id(node)] = (node, out)
        return out

    def visit_Var(self, v):
        r = self.ranges.get(v)
        if r is not None and r[0] is not None and r[0] == r[1]:
            return _c(r[0], v.dtype)
        return v

    def visit_Cast(self, e: Cast):
        v = self.visit(e.value)
        if isinstance(v, Const) and e.dtype.kind != "handle":
            return _c(scalar_ops.fold_cast(v.dtype, e.dtype, v.value), e.dtype)
        if v.dtype == e.dtype:
            return v
        return e if v is e.value else Cast(v, e.dtype)

    def visit_UnaryOp(self, e: UnaryOp):
        a = self.visit(e.a)
        if isinstance(a, Const):
            r = scalar_ops.fold_unary(e.op, a.dtype, a.value)
            if r is not None:
                return _c(r, e.dtype)
        if e.op == "not" and isinstance(a, UnaryOp) and a.op == "not":
            return a.a
        if e.op == "neg" and a.dtype.is_int:
            return self._lin(_linear(a).scale(-1))
        return e if a is e.a else UnaryOp(e.op, a)

    def _lin(self, lin: Linear) -> Expr:
        return lin.to_expr()

    def visit_BinOp(self, e: BinOp):
        if e.op in ("add", "sub") and e.dtype.name in ("float32", "float64"):
            r = self._fold_fma(e)
            if r is not None:
                return r
        a = self.visit(e.a)
        b = self.visit(e.b)
        dt = e.dtype
        op = e.op
        if isinstance(a, Const) and isinstance(b, Const):
            r = _fold(e, a, b)
            if r is not None:
                return r
        if op == "and":
            if isinstance(a, Const):
                return b if a.value else _c(False, dt)
            if isinstance(b, Const):
                return a if b.value else _c(False, dt)
        elif op == "or":
            if isinstance(a, Const):
                return _c(True, dt) if a.value else b
            if isinstance(b, Const):
                return _c(True, dt) if b.value else a
        if dt.is_int and op in ("add", "sub", "mul"):
            if op == "mul" and not (isinstance(a, Const) or isinstance(b, Const)):
                return self._rebuild(e, a, b)
            node = BinOp(op, a, b, dt)
            return self._lin(_linear(node))
        if dt.is_int and op in ("floordiv", "floormod", "div") and isinstance(b, Const) and b.value > 0:
            r = self._divmod(op, a, b.value, dt)
            if r is not None:
                return r
        if op in ("min", "max") and dt.is_int:
            alo, ahi = bound(a, self.ranges)
            blo, bhi = bound(b, self.ranges)
            if op == "min":
                if ahi is not None and blo is not None and ahi <= blo:
                    return a
                if bhi is not None and alo is not None and bhi <= alo:
                    return b
            else:
                if alo is not None and bhi is not None and alo >= bhi:
                    return a
                if blo is not None and ahi is not None and blo >= ahi:
                    return b
        if dt.is_float:
            if op == "add" and isinstance(b, Const) and b.value == 0:
                return a
            if op == "add" and isinstance(a, Const) and a.value == 0:
                return b
            if op == "mul" and isinstance(b, Const) and b.value == 1:
                return a
            if op == "mul" and isinstance(a, Const) and a.value == 1:
                return b
        if dt.is_int and op in ("shl",) and isinstance(b, Const) and 0 <= b.value < 31:
            # a multiplication only where it cannot overflow: a signed product that does is
            # undefined in C (NVVM folds (x << 28) >> 28 back to x), a shift wraps
            lo, hi = bound(a, self.ranges)
            top = 1 << (dt.bits - 1)
            if lo is not None and hi is not None and -top <= lo << b.value and hi << b.value < top:
                return self.visit(BinOp("mul", a, _c(1 << b.value, dt), dt))
        return self._rebuild(e, a, b)

    def _fold_fma(self, e: BinOp):
        """A constant float32/float64 `a * b + c` (and the other forms transform/contract_fma.py
        fuses) folds rounded once, as every target computes it at run time."""
        dt = e.dtype
        p = _const_product(e.a, self.visit) if isinstance(e.a, BinOp) and e.a.dtype == dt else None
        if p is not None:
            c = self.visit(e.b)
            if isinstance(c, Const):
                x, y = p
                cv = c.value if e.op == "add" else -c.value
                return _c(scalar_ops.fold_fma(dt, x.value, y.value, cv), dt)
            return None
        p = _const_product(e.b, self.visit) if isinstance(e.b, BinOp) and e.b.dtype == dt else None
        if p is not None:
            c = self.visit(e.a)
            if isinstance(c, Const):
                x, y = p
                xv = x.value if e.op == "add" else -x.value
                return _c(scalar_ops.fold_fma(dt, xv, y.value, c.value), dt)
        return None

    @staticmethod
    def _rebuild(e, a, b):
        return e if (a is e.a and b is e.b) else BinOp(e.op, a, b, e.dtype)

    def _divmod(self, op, a, c: int, dt):
        if c == 1:
            return a if op != "floormod" else _c(0, dt)
        lin = _linear(a)
        lo, hi = bound(a, self.ranges)
        if op == "div" and (lo is None or lo < 0):
            return None  # truncating division of possibly negative values: leave it
        # split into the part divisible by c and the rest
        divisible = Linear(dt)
        rest = Linear(dt)
        for k, (atom, coeff) in lin.terms.items():
            if coeff % c == 0:
                divisible.terms[k] = [atom, coeff]
            else:
                rest.terms[k] = [atom, coeff]
        divisible.const = (lin.const // c) * c
        rest.const = lin.const - divisible.const
        if op == "div":
            rlo, _ = bound(rest.to_expr(), self.ranges)
            if rlo is None or rlo < 0:
                return None
        rest_e = rest.to_expr()
        rlo, rhi = bound(rest_e, self.ranges)
        if op in ("floordiv", "div"):
            q = divisible.scale(1)
            q = Linear(dt, {k: [a_, cf // c] for k, (a_, cf) in divisible.terms.items()}, divisible.const // c)
            if rlo is not None and rhi is not None and rlo >= 0 and rhi < c:
                return q.to_expr()
            if rlo is not None and rhi is not None and rlo // c == rhi // c:
                q.const += rlo // c
                return q.to_expr()
            split = self._common_factor(rest, c, dt)
            if split is not None:
                high, _low, g = split  # (g*high + low) // c == high // (c/g) when 0 <= low < g
                inner = self.visit(BinOp("floordiv", high.to_expr(), _c(c // g, dt), dt))
                return q.add(_linear(inner)).to_expr()
            if not divisible.terms and divisible.const == 0:
                # nested floordiv(floordiv(x, a), b) -> floordiv(x, a*b)
                if isinstance(a, BinOp) and a.op == "floordiv" and isinstance(a.b, Const) and a.b.value > 0:
                    return BinOp("floordiv", a.a, _c(a.b.value * c, dt), dt)
                return None
            inner = BinOp("floordiv", rest_e, _c(c, dt), dt)
            return q.add(Linear(dt, {structural_key(inner): [inner, 1]})).to_expr()
        # floormod
        if rlo is not None and rhi is not None and rlo >= 0 and rhi < c:
            return rest_e
        if rlo is not None and rhi is not None and rlo // c == rhi // c:
            return rest.add(Linear(dt, const=-(rlo // c) * c)).to_expr()
        split = self._common_factor(rest, c, dt)
        if split is not None:
            high, low, g = split  # (g*high + low) % c == (high % (c/g)) * g + low when 0 <= low < g
            m = self.visit(BinOp("floormod", high.to_expr(), _c(c // g, dt), dt))
            return _linear(m).scale(g).add(low).to_expr()
        if not divisible.terms and divisible.const == 0:
            if isinstance(a, BinOp) and a.op == "floormod" and isinstance(a.b, Const) and a.b.value % c == 0:
                return BinOp("floormod", a.a, _c(c, dt), dt)
            return None
        return BinOp("floormod", rest_e, _c(c, dt), dt)

    def _common_factor(self, rest, c: int, dt):
        """rest = g * high + low with g a proper divisor of c shared by the larger coefficients
        and 0 <= low < g (`32 * ko + j` for j < 32, divided by 128), or None."""
        big = [abs(cf) for _, cf in rest.terms.values() if abs(cf) > 1]
        if not big:
            return None
        g = math.gcd(c, *big)
        if g <= 1 or g == c:
            return None
        high = Linear(dt, {k: [a, cf // g] for k, (a, cf) in rest.terms.items() if cf % g == 0}, rest.const // g)
        low = Linear(dt, {k: [a, cf] for k, (a, cf) in rest.terms.items() if cf % g != 0}, rest.const % g)
        if not high.terms:
            return None
        lo, hi = bound(low.to_expr(), self.ranges)
        if lo is None or hi is None or lo < 0 or hi >= g:
            return None
        return high, low, g

    def visit_Compare(self, e: Compare):
        a = self.visit(e.a)
        b = self.visit(e.b)
        if isinstance(a, Const) and isinstance(b, Const):
            return _fold(e, a, b)
        if a.dtype.is_int:
            diff = simplify_linear(BinOp("sub", a, b, a.dtype))
            lo, hi = bound(diff, self.ranges)
            decided = _decide(e.op, lo, hi)
            if decided is not None:
                return _c(decided, _dt.bool_)
        return e if (a is e.a and b is e.b) else Compare(e.op, a, b)

    def visit_Select(self, e: Select):
        c = self.visit(e.cond)
        if isinstance(c, Const):
            return self.visit(e.a if c.value else e.b)
        a = self.visit(e.a)
        b = self.visit(e.b)
        if c is e.cond and a is e.a and b is e.b:
            return e
        return Select(c, a, b)


def _decide(op, lo, hi):
    """Decide `x op 0` from x's bounds."""
    if op == "lt":
        if hi is not None and hi < 0:
            return True
        if lo is not None and lo >= 0:
            return False
    elif op == "le":
        if hi is not None and hi <= 0:
            return True
        if lo is not None and lo > 0:
            return False
    elif op == "gt":
        if lo is not None and lo > 0:
            return True
        if hi is not None and hi <= 0:
            return False
    elif op == "ge":
        if lo is not None and lo >= 0:
            return True
        if hi is not None and hi < 0:
            return False
    elif op == "eq":
        if lo is not None and lo == hi == 0:
            return True
        if (lo is not None and lo > 0) or (hi is not None and hi < 0):
            return False
    elif op == "ne":
        if lo is not None and lo == hi == 0:
            return False
        if (lo is not None and lo > 0) or (hi is not None and hi < 0):
            return True
    return None


def linear_form(e: Expr) -> Linear:
    """e as sum(coeff * atom) + const: the terms of nested sums and of products by constants
    distributed (atoms are the non-linear sub-expressions)."""
    return _linear(e)


def simplify_linear(e: Expr) -> Expr:
    return _linear(e).to_expr()


def simplify(e, ranges: Ranges | None = None):
    """Simplify an expression (or every expression in a statement)."""
    if isinstance(e, (int, float, bool)):
        return e
    return _Simplifier(ranges).visit(e)
