"""Run-time bounds checks for element accesses to on-chip tiles on the CPU target.

On the CPU a shared tile, a fragment or a local buffer is an array on the block's stack or in
its workspace: an index outside it (a gather through an index tensor, `S[I[i]]`) would read
another tile's bytes or overwrite the stack, silently or with a segfault that kills the Python
process. Global tensors are guarded by legalize_safe_access (out-of-bounds reads give the safe
value, stores are dropped, as in TileLang); an on-chip access out of bounds is a bug in the
kernel, which the emulator reports as an OutOfBoundsError. Here every element access to an
on-chip buffer whose indices the compiler cannot prove inside its shape is checked: out of
bounds, it does nothing (a read gives 0), the first such access's message (buffer, shape,
user's line) is kept, and the call raises tilewise.emulator.errors.OutOfBoundsError after the
blocks have run (backend/cpu/library.py). Accesses proven in range (nearly all: loop indices
over the tile's extents) are left alone and cost nothing.

Runs after legalize_safe_access, while loop extents have their source-level ranges; tile
operators check their own regions and are not touched.
`pass_configs={"tl.disable_safe_memory_legalize": True}` turns these checks off with the
global guards."""
from __future__ import annotations

from ..ir import dtype as _dt
from ..ir.buffer import Buffer
from ..ir.expr import BufferLoad, Call, Select
from ..ir.printer import shape_str
from ..ir.stmt import BufferStore, Evaluate, IfThenElse, PrimFunc, Stmt
from ..tileop.base import TileOp
from .legalize_safe_access import DISABLE_KEY, _Guard

ATTR = "tilewise_tile_bounds_checks"  # set on a function with at least one check (codegen reads it)
FAIL = "bounds_fail"  # the Call that records a failed check (backend/cpu/codegen.py)


def check_tile_bounds(func: PrimFunc, pass_configs: dict | None = None) -> PrimFunc:
    if (pass_configs or {}).get(DISABLE_KEY):
        return func
    m = _Check()
    body = m.visit(func.body)
    if body is func.body:
        return func
    out = func.with_body(body)
    out.attrs[ATTR] = True
    return out


def _on_chip(b: Buffer) -> bool:
    return not b.is_global


class _Check(_Guard):
    def __init__(self):
        super().__init__({})
        self.span = None  # of the statement being visited: the message names the user's line

    def visit(self, node):
        if isinstance(node, TileOp):
            return node
        if isinstance(node, Stmt) and getattr(node, "span", None) is not None:
            outer, self.span = self.span, node.span
            try:
                return super().visit(node)
            finally:
                self.span = outer
        return super().visit(node)

    def _message(self, kind: str, buf: Buffer) -> str:
        where = f"{self.span}: " if self.span is not None else ""
        src = getattr(self.span, "source", None) if self.span is not None else None
        line = f" `{src.strip()}`" if src else ""
        # the element's indices follow at run time (backend/cpu/library.py)
        return f"{where}out-of-bounds {kind} of {buf.name} ({buf.scope} buffer of shape {shape_str(buf.shape)}){line}"

    def visit_BufferLoad(self, e: BufferLoad):
        e = self.generic_visit(e)
        if not _on_chip(e.buffer):
            return e
        cond = self.in_bounds(e.buffer, e.indices)
        if cond is None:
            return e
        fail = Call(FAIL, list(e.indices), e.dtype, {"msg": self._message("read", e.buffer)})
        return Select(cond, e, fail)

    def visit_BufferStore(self, s: BufferStore):
        s = self.generic_visit(s)
        if not _on_chip(s.buffer):
            return s
        cond = self.in_bounds(s.buffer, s.indices)
        if cond is None:
            return s
        fail = Call(FAIL, list(s.indices), _dt.handle, {"msg": self._message("write", s.buffer)})
        return IfThenElse(cond, s, Evaluate(fail, span=s.span), span=s.span)
