"""Bounds guards for element accesses to global tensors (TileLang's LegalizeSafeMemoryAccess).

Indices that are provably negative first count from the end of their dimension (TileLang's
LegalizeNegativeIndex; this part runs whatever the pass config says). An element load `A[i, j]`
written in the kernel whose indices the compiler cannot prove inside
A's shape reads the tensor's safe value instead (0, or what T.annotate_safe_value set) when it
is outside (in a store into a buffer given T.annotate_padding, that buffer's padding value);
such a store is skipped, and so is an element atomic (`T.atomic_min(S[j], v)`) whose address is
outside. Accesses proven in range are left alone, so aligned kernels
pay nothing. Tile operators guard their own regions and are not touched. The pass runs first,
while loop extents and block indices still have their source-level ranges.
`pass_configs={"tl.disable_safe_memory_legalize": True}` turns it off."""
from __future__ import annotations

from ..errors import CompileError
from ..ir.buffer import Buffer
from ..ir.expr import BufferLoad, Call, Const, Expr, Select, compare, logical_and
from ..ir.simplify import bound, prove
from ..ir.stmt import Annotation, BufferStore, Evaluate, IfThenElse, PrimFunc
from ..ir.visitor import Visitor
from ..tileop.base import TileOp
from ..tileop.copy import Copy
from .ranges import RangeMutator

DISABLE_KEY = "tl.disable_safe_memory_legalize"


def legalize_safe_access(func: PrimFunc, pass_configs: dict | None = None) -> PrimFunc:
    body = _FromEnd().visit(func.body)
    if body is not func.body:
        func = func.with_body(body)
    if (pass_configs or {}).get(DISABLE_KEY):
        return func
    finder = _SafeValues()
    finder.visit(func.body)
    body = _Guard(finder.values, finder.padding).visit(func.body)
    if body is func.body:
        return func
    return func.with_body(body)


class _FromEnd(RangeMutator):
    """Indices provably negative count from the end of their dimension, as TileLang's
    LegalizeNegativeIndex does (`A[i - 4]` for i < 4); constant ones were already rewritten by the
    parser. Others are left alone."""

    def visit(self, node):
        if isinstance(node, TileOp):
            return node
        return super().visit(node)

    def _indices(self, buf: Buffer, indices):
        out, changed = [], False
        for idx, dim in zip(indices, buf.shape):
            hi = bound(idx, self.ranges)[1]
            if hi is not None and hi < 0 and not isinstance(idx, Const):
                idx, changed = idx + dim, True
            out.append(idx)
        return out if changed else None

    def visit_BufferLoad(self, e: BufferLoad):
        e = self.generic_visit(e)
        idx = self._indices(e.buffer, e.indices)
        return e if idx is None else BufferLoad(e.buffer, idx)

    def visit_BufferStore(self, s: BufferStore):
        s = self.generic_visit(s)
        idx = self._indices(s.buffer, s.indices)
        return s if idx is None else s.with_fields(indices=tuple(idx))


class _SafeValues(Visitor):
    def __init__(self):
        self.values: dict[Buffer, Const] = {}
        self.padding: dict[Buffer, Const] = {}  # T.annotate_padding: keyed by the buffer stored into

    def visit_Annotation(self, a: Annotation):
        if a.kind == "safe_value":
            self.values.update(dict(a.payload))
        elif a.kind == "padding":
            self.padding.update(dict(a.payload))


class _Guard(RangeMutator):
    def __init__(self, safe_values: dict, padding: dict | None = None):
        super().__init__()
        self.safe_values = safe_values
        self.padding = padding or {}
        self.pad: Const | None = None  # the padding of the buffer the current store writes

    def visit(self, node):
        if isinstance(node, TileOp):
            return self._check_tile_reads(node)
        return super().visit(node)

    def _check_tile_reads(self, op: TileOp):
        """Tile operators read 0 outside a global tensor. T.copy reads a non-zero
        T.annotate_safe_value there instead, as TileLang's copy does (the returned copy carries
        it); for the other operators reading a tensor possibly past its edge that is not
        implemented: a CompileError rather than a silent 0."""
        for r in op.reads():
            b = r.buffer
            safe = self.safe_values.get(b.root, self.safe_values.get(b)) if b.is_global else None
            if safe is None or safe.value == 0:
                continue
            inside = all(
                prove(compare("ge", start, 0), self.ranges) is True
                and prove(compare("le", start + ext, dim), self.ranges) is True
                for (start, ext), dim in zip(r.region, b.shape))
            if not inside and type(op) is Copy and r is op.src:  # T.async_copy, T.tma_copy: explicit zero fill
                op = op.with_fields(pad=safe)
            elif not inside:
                raise CompileError(
                    f"T.{op.op_name} reads {b.name} possibly outside its bounds, where T.annotate_safe_value asks "
                    f"for {safe.value}: tilewise's tile operators read 0 there (the safe value is not implemented "
                    "for them); read the tensor with element accesses in a T.Parallel loop", op.span)
        return op

    def visit_Call(self, e: Call):
        if e.name == "address_of":  # an address, not a read
            return e
        atomic = self._atomic(e)
        if atomic is not None:  # `T.atomic_add(S[i], v, return_prev=True)`: an expression
            call, cond = atomic
            if cond is None:
                return call
            return Select(cond, call, Const(False if call.dtype.is_bool else 0, call.dtype))
        return self.generic_visit(e)

    def visit_Evaluate(self, s: Evaluate):
        """An element atomic (`T.atomic_min(S[j], v)`) writes the element its address names: outside
        the tensor it is skipped, like a store (and its old value, as an expression, reads 0)."""
        atomic = self._atomic(s.value)
        if atomic is None:
            return self.generic_visit(s)
        call, cond = atomic
        out = s if call is s.value else Evaluate(call, span=s.span)
        return out if cond is None else IfThenElse(cond, out, span=s.span)

    def _atomic(self, e) -> tuple[Call, Expr | None] | None:
        """For an element atomic on a global tensor: the call with its operands guarded and the
        bounds check its address needs (None when proven); None for anything else."""
        if not (isinstance(e, Call) and e.name.startswith("atomic_") and e.args):
            return None
        addr = e.args[0]
        if not (isinstance(addr, Call) and addr.name == "address_of" and len(addr.args) == 1
                and isinstance(addr.args[0], BufferLoad) and addr.args[0].buffer.is_global):
            return None
        dst = addr.args[0]
        idx = [self.visit(i) for i in dst.indices]  # the indices themselves may read tensors
        rest = [self.visit(a) for a in e.args[1:]]
        call = e
        if any(a is not b for a, b in zip(idx + rest, list(dst.indices) + list(e.args[1:]))):
            dst = BufferLoad(dst.buffer, idx)
            call = Call(e.name, [Call("address_of", [dst], addr.dtype, addr.attrs), *rest], e.dtype, e.attrs)
        return call, self.in_bounds(dst.buffer, dst.indices)

    def in_bounds(self, buf: Buffer, indices) -> Expr | None:
        """The conjunction of the bound checks not proven, or None when all are proven."""
        conds = []
        for idx, dim in zip(indices, buf.shape):
            lo, hi = bound(idx, self.ranges)
            if lo is None or lo < 0:
                conds.append(compare("ge", idx, 0))
            if isinstance(dim, int):
                if hi is None or hi >= dim:
                    conds.append(compare("lt", idx, dim))
            elif prove(compare("lt", idx, dim), self.ranges) is not True:
                conds.append(compare("lt", idx, dim))
        if not conds:
            return None
        out = conds[0]
        for c in conds[1:]:
            out = logical_and(out, c)
        return out

    def visit_BufferLoad(self, e: BufferLoad):
        e = self.generic_visit(e)
        if not e.buffer.is_global:
            return e
        cond = self.in_bounds(e.buffer, e.indices)
        if cond is None:
            return e
        safe = self.pad if self.pad is not None else \
            self.safe_values.get(e.buffer.root, self.safe_values.get(e.buffer))
        if safe is not None and safe.dtype != e.dtype:
            safe = Const(safe.value, e.dtype)
        if safe is None:
            safe = Const(False if e.dtype.is_bool else 0, e.dtype)
        return Select(cond, e, safe)

    def visit_BufferStore(self, s: BufferStore):
        outer, self.pad = self.pad, self.padding.get(s.buffer, self.pad)
        try:
            s = self.generic_visit(s)
        finally:
            self.pad = outer
        if not s.buffer.is_global:
            return s
        cond = self.in_bounds(s.buffer, s.indices)
        if cond is None:
            return s
        out = IfThenElse(cond, s, span=s.span)
        return out
