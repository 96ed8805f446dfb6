"""CUDA: statements written at block level (outside T.Parallel and tile operators) run once
per block in the tile model, but every thread executes the thread program. Stores to shared or
global memory, atomics and prints there run on thread 0 only; register updates stay on every
thread (each keeps its own copy). Statements that use the thread index are the user's explicit
per-thread code and are left alone.

An atomic whose previous value is used (`return_prev=True`) is honoured at block level where the
statement runs on thread 0 (a store to shared or global memory, or a bare atomic); elsewhere
(a register, a condition) every thread would run the update and each see its own previous
value, which is a CompileError."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.expr import Call
from ..ir.span import at
from ..ir.stmt import BufferStore, Evaluate, For, IfThenElse, Kernel, LetStmt, PrimFunc
from ..ir.visitor import Mutator, collect_vars, walk
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
        self._no_previous_value(s.cond, s)
        return self.generic_visit(s)

    def visit_BufferStore(self, s: BufferStore):
        if (s.buffer.is_shared or s.buffer.is_global) and not self._per_thread(s):
            return self._first_thread(s)
        if not self._per_thread(s):
            self._no_previous_value(s, s)
        return s

    def visit_LetStmt(self, s: LetStmt):
        if not self._per_thread(s.value):
            self._no_previous_value(s.value, s)
        return s

    def visit_Evaluate(self, s: Evaluate):
        v = s.value
        if isinstance(v, Call) and (v.name.startswith("atomic_") or v.name in _EFFECTS) and not self._per_thread(s):
            return self._first_thread(s)
        if not self._per_thread(s):
            self._no_previous_value(s, s)
        return s

    def _no_previous_value(self, node, stmt) -> None:
        """Refuse an atomic's previous value in block-level code every thread runs."""
        if self.kernel is None or self.kernel.attrs.get("uses_thread_binding"):
            return  # the kernel programs its threads itself
        found = []
        walk(node, lambda n: found.append(n) if _previous_value(n) else None)
        if found:
            with at(stmt.span):
                raise CompileError(
                    f"T.{found[0].name}(..., return_prev=True) at block level on a GPU target: every thread of "
                    "the block would run the update, and the value it returns is one thread's; store it to "
                    "shared or global memory (thread 0 runs that), or use it inside T.Parallel or in per-thread "
                    "code (tx = T.get_thread_binding(); if tx == 0: ...)")


def _previous_value(n) -> bool:
    """An atomic read-modify-write used as an expression (tileop/atomic_add.py's return_prev form;
    a bare atomic statement has the handle type)."""
    return isinstance(n, Call) and n.name.startswith("atomic_") and n.name != "atomic_load" \
        and n.dtype != _dt.handle


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
