"""T.fill(buf, value) and T.clear(buf): set every element of a tile."""
from __future__ import annotations

from ..errors import CompileError
from ..ir.buffer import Buffer, BufferRegion
from ..ir.builder import emit, require_kernel
from ..ir.expr import Expr, as_expr, cast
from ..ir.stmt import BufferStore, Stmt
from ..layout.tv import default_fragment
from . import cuda_common as cc
from .base import InferLevel, LowerContext, TileOp, lowering
from .region import as_region, guarded_store, region_indices, tile_loops


class Fill(TileOp):
    op_name = "fill"
    _fields = ("dst", "value")
    operands_in_any_memory = True

    def __init__(self, dst: BufferRegion, value: Expr):
        self._init()
        self.dst = dst
        self.value = value

    def reads(self) -> list[BufferRegion]:
        return []

    def writes(self) -> list[BufferRegion]:
        return [self.dst]

    @lowering("loops")
    def lower_loops(self, ctx: LowerContext) -> Stmt:
        return tile_loops(ctx, self.dst, lambda vs, ranges: guarded_store(
            self.dst, region_indices(self.dst, vs), self.value, ranges))

    # ------------------------------------------------------------------ CUDA
    def infer_layout(self, li, level: InferLevel) -> None:
        b = self.dst.buffer
        if level == InferLevel.FALLBACK and b.is_fragment and li.layout_of(b) is None:
            li.set_fragment(b, default_fragment(b.shape, li.threads, li.vector_for([b])), self.span)

    @lowering("cuda")
    def lower_cuda(self, ctx) -> Stmt:
        b = self.dst.buffer
        if b.is_fragment:
            # a slice of the fragment (`T.clear(C_local[:, :16])`): each thread sets its registers inside it
            loc = ctx.local_buffer(b)
            return cc.fragment_loop(ctx, b, lambda v, _: BufferStore(loc, [v], self.value), writes_memory=False,
                                    region=self.dst)
        if b.is_local:
            return cc.per_thread_loops(self.dst, ctx, lambda idx: BufferStore(b, idx, self.value))
        return cc.cooperative_fill(ctx, self.dst, self.value)


def fill(buffer, value) -> None:
    require_kernel("T.fill")
    if isinstance(buffer, Buffer) and buffer.is_var:
        region = BufferRegion(buffer, [(0, 1)])
    else:
        region = as_region(buffer, "T.fill", allow_corner=False)
    dt = region.buffer.dtype
    if isinstance(value, Buffer) and value.is_var:
        value = value.load_var()
    if not isinstance(value, (int, float, bool, Expr)):
        raise CompileError(f"T.fill: the value must be a scalar, got {type(value).__name__}")
    v = as_expr(value, dt)
    if v.dtype != dt:
        v = cast(v, dt)
    emit(Fill(region, v))


def clear(buffer) -> None:
    fill(buffer, 0)
