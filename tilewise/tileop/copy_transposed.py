"""CopyTransposed(src, dst): dst[j, i] = src[..., i, j], with src a region of a tensor in global
memory (elements outside it read as zero, as T.copy's do) and dst a region of a 2-D tile. Not a
user operator: transform/transpose_gemm_operands.py makes it, on the CPU only, out of the T.copy
that fills a transposed T.gemm operand, so that the tile is stored the way the NN micro-kernel
reads it. Its loops lowering is one call into the CPU header tw_pack.h (`tw::copy_transposed`),
which turns W x W blocks in registers."""
from __future__ import annotations

from ..errors import InternalError
from ..ir import dtype as _dt
from ..ir.buffer import BufferRegion
from ..ir.expr import BufferLoad, Call, Const, as_expr, logical_and
from ..ir.stmt import Evaluate, Stmt
from .base import LowerContext, TileOp, lowering


class CopyTransposed(TileOp):
    op_name = "copy_transposed"
    _fields = ("src", "dst")
    operands_in_any_memory = True

    def __init__(self, src: BufferRegion, dst: BufferRegion):
        self._init()
        self.src = src
        self.dst = dst

    def reads(self) -> list[BufferRegion]:
        return [self.src]

    def writes(self) -> list[BufferRegion]:
        return [self.dst]

    @lowering("loops")
    def lower_loops(self, ctx: LowerContext) -> Stmt:
        s, d = self.src, self.dst
        g = s.buffer
        strides = g.strides()
        if not (isinstance(strides[-1], int) and strides[-1] == 1):
            raise InternalError(f"copy_transposed: {g.name}'s last axis is not contiguous")
        rows, cols = s.extents[-2], s.extents[-1]
        if not (isinstance(rows, int) and isinstance(cols, int) and list(d.extents) == [cols, rows]):
            raise InternalError(f"copy_transposed: {g.name} region {s.extents} against tile region {d.extents}")
        inside = Const(True, _dt.bool_)
        for st, n in zip(s.starts[:-2], g.shape[:-2]):
            inside = logical_and(inside, logical_and(st >= 0, st < as_expr(n)))
        rs, cs = s.starts[-2], s.starts[-1]
        args = [Call("address_of", [BufferLoad(g, list(s.starts))], _dt.handle),
                as_expr(strides[-2]),
                Call("address_of", [BufferLoad(d.buffer, list(d.starts))], _dt.handle),
                rs, as_expr(g.shape[-2]), cs, as_expr(g.shape[-1]), inside]
        attrs = {"rows": rows, "cols": cols, "ldd": d.buffer.strides()[-2]}
        return Evaluate(Call("copy_transposed", args, _dt.handle, attrs))
