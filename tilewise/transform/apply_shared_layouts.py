"""CUDA: store each shared tile in its physical layout (swizzled or padded): every access goes
through the layout's forward map, and the buffer takes the layout's output shape."""
from __future__ import annotations

from ..ir.buffer import Buffer
from ..ir.stmt import Kernel, PrimFunc
from ..ir.visitor import Mutator
from .buffer_rewrite import rewrite_buffers


class _Apply(Mutator):
    def visit_Kernel(self, k: Kernel):
        layouts = k.attrs.get("layouts")
        if layouts is None or not layouts.shared:
            return k
        mapping = {}
        for buf, lay in layouts.shared.items():
            phys = Buffer(buf.name, lay.output_shape(), buf.dtype, buf.scope, span=buf.span)
            mapping[buf] = (phys, lambda idx, lay=lay: lay.map(idx))
        body = rewrite_buffers(k.body, mapping)
        out = Kernel(k.block_vars, k.grid, k.threads, k.thread_vars, body, k.attrs)
        out.span = k.span
        return out


def apply_shared_layouts(func: PrimFunc) -> PrimFunc:
    return func.with_body(_Apply().visit(func.body))
