"""Global indices that can pass 2^31 are computed in 64 bits from their leaves up.

The renderers flatten a multi-dimensional index in 64 bits (`(int64_t)i0 * stride + ...`), but
each dimension's own index expression is int32 arithmetic: `bx * 1024 + i` into a tensor of
2^32 elements wraps before any cast. For every dimension of a global tensor whose extent can
reach 2^31 (a static extent that large, or a dynamic one declared int64), the index expression
is rebuilt with its variables, loads and constants widened to int64 first, on every target.
Other dimensions keep 32-bit arithmetic: their indices, sums and products of non-negative
terms bounded by the extent, cannot overflow."""
from __future__ import annotations

from ..ir import dtype as _dt
from ..ir.buffer import Buffer
from ..ir.expr import BinOp, BufferLoad, Cast, Const, Expr, Select
from ..ir.stmt import BufferStore, PrimFunc
from ..ir.visitor import Mutator

LIMIT = 1 << 31
_WIDENED = ("add", "sub", "mul", "floordiv", "floormod", "div", "mod", "min", "max",
            "bitand", "bitor", "bitxor", "shl", "shr")


def widen_indices(func: PrimFunc) -> PrimFunc:
    return func.with_body(_Widen().visit(func.body))


def wide_dims(b: Buffer) -> list[bool]:
    """Per dimension of a global buffer: can its index reach 2^31?"""
    if not b.root.is_global:
        return [False] * len(b.shape)
    out = []
    for d in b.shape:
        out.append(d >= LIMIT if isinstance(d, int) else d.dtype.bits >= 64)
    return out


def widen(e: Expr) -> Expr:
    """e computed in int64: integer leaves cast first, arithmetic rebuilt on them."""
    if not e.dtype.is_int or e.dtype.bits >= 64:
        return e
    if isinstance(e, Const):
        return Const(e.value, _dt.int64)
    if isinstance(e, BinOp) and e.op in _WIDENED:
        return BinOp(e.op, widen(e.a), widen(e.b), _dt.int64)
    if isinstance(e, Select):
        return Select(e.cond, widen(e.a), widen(e.b))
    return Cast(e, _dt.int64)


class _Widen(Mutator):
    def _indices(self, b: Buffer, indices):
        wide = wide_dims(b)
        if not any(wide):
            return indices
        return tuple(widen(i) if w else i for i, w in zip(indices, wide))

    def visit_BufferLoad(self, e: BufferLoad):
        e = self.generic_visit(e)
        idx = self._indices(e.buffer, e.indices)
        return e if idx is e.indices else BufferLoad(e.buffer, idx, span=e.span)

    def visit_BufferStore(self, s: BufferStore):
        s = self.generic_visit(s)
        idx = self._indices(s.buffer, s.indices)
        return s if idx is s.indices else s.with_fields(indices=idx)
