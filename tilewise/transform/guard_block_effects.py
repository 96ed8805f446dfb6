"""CUDA: statements written at block level (outside T.Parallel and tile operators) run once
per block in the tile model, but every thread executes the thread program. Stores to shared or
global memory, atomics and prints there run on thread 0 only; register updates stay on every
thread (each keeps its own copy). Statements that use the thread index are the user's explicit
per-thread code and are left alone."""
from __future__ import annotations

from ..ir.expr import Call
from ..ir.stmt import BufferStore, Evaluate, For, IfThenElse, Kernel, PrimFunc
from ..ir.visitor import Mutator, collect_vars
from ..tileop.base import TileOp
from ..tileop.copy import Copy
from ..tileop.region import squeezed

_EFFECTS = ("print",)


class _Guard(Mutator):
    def __init__(self):
        self.kernel: Kernel | None = None

    def visit_Kernel(self, k: Kernel):
        self.kernel = k
        body = self.visit(k.body)
        return k.with_fields(body=body)

    def visit_For(self, f: For):
        if f.kind == "parallel":
            return f
        return self.generic_visit(f)

    def generic_visit(self, node):
        if isinstance(node, TileOp):
            if _single_store(node) and not self._per_thread(node):
                return self._first_thread(node)
            return node
        return super().generic_visit(node)

    def _per_thread(self, node) -> bool:
        tv = {id(v) for v in self.kernel.thread_vars}
        return any(id(v) in tv for v in collect_vars(node))

    def _first_thread(self, node):
        tid = self.kernel.thread_vars[0]
        cond = tid == 0
        for v in self.kernel.thread_vars[1:]:
            cond = cond & (v == 0)
        out = IfThenElse(cond, node, span=node.span)
        return out

    def visit_IfThenElse(self, s: IfThenElse):
        if self._per_thread(s.cond):
            return s
        return self.generic_visit(s)

    def visit_BufferStore(self, s: BufferStore):
        if (s.buffer.is_shared or s.buffer.is_global) and not self._per_thread(s):
            return self._first_thread(s)
        return s

    def visit_Evaluate(self, s: Evaluate):
        v = s.value
        if isinstance(v, Call) and (v.name.startswith("atomic_") or v.name in _EFFECTS) and not self._per_thread(s):
            return self._first_thread(s)
        return s


def _single_store(op: TileOp) -> bool:
    """A T.copy of one element between shared or global buffers: a plain store (tileop/copy.py
    lowers it so, for an enclosing T.Parallel to distribute), which at block level is one too."""
    if not isinstance(op, Copy):
        return False
    src, dst = op.src.buffer, op.dst.buffer
    if not all(b.is_shared or b.is_global for b in (src, dst)):
        return False
    return not squeezed(op.dst)


def guard_block_effects(func: PrimFunc) -> PrimFunc:
    return func.with_body(_Guard().visit(func.body))
