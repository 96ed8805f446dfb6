"""CUDA: store each shared tile in its physical layout (swizzled or padded): every access goes
through the layout's forward map, and the buffer takes the layout's output shape."""
from __future__ import annotations

from ..errors import CompileError
from ..ir.buffer import Buffer
from ..ir.stmt import Kernel, PrimFunc
from ..ir.visitor import Mutator, Visitor
from .buffer_rewrite import rewrite_buffers


class _Apply(Mutator):
    def visit_Kernel(self, k: Kernel):
        layouts = k.attrs.get("layouts")
        if layouts is None or not layouts.shared:
            return k
        _refuse_views_of_laid_out(k.body, layouts.shared)
        mapping = {}
        for buf, lay in layouts.shared.items():
            phys = Buffer(buf.name, lay.output_shape(), buf.dtype, buf.scope, span=buf.span)
            phys.base_align = lay.base_align
            mapping[buf] = (phys, lambda idx, lay=lay: lay.map(idx))
        body = rewrite_buffers(k.body, mapping)
        return k.with_fields(body=body)


def _refuse_views_of_laid_out(body, laid_out: dict) -> None:
    """A view reads and writes its root's bytes in plain row-major order, which a swizzled root
    does not have (and a swizzled view would scramble its root)."""
    class _Views(Visitor):
        def visit_Allocate(self, s):
            b = s.buffer
            if b.base is not None:
                chain, x = [], b
                while x is not None:
                    chain.append(x)
                    x = x.base
                hit = next((c for c in chain if c in laid_out), None)
                if hit is not None:
                    raise CompileError(
                        f"{b.name} is a view of the shared buffer {b.root.name}, and {hit.name} is stored swizzled for "
                        f"T.gemm (or T.annotate_layout); views of swizzled tiles are not supported on the CUDA target: "
                        "give the GEMM operand its own T.alloc_shared buffer", s.span)
            self.generic_visit(s)

    _Views().visit(body)


def apply_shared_layouts(func: PrimFunc) -> PrimFunc:
    return func.with_body(_Apply().visit(func.body))
