"""T.copy(src, dst): move a tile between global, shared and fragment memory.

Elements outside a global tensor read as zero and are not written."""
from __future__ import annotations

from ..errors import CompileError
from ..ir.buffer import BufferRegion
from ..ir.expr import BufferLoad, Const, Select, cast
from ..ir.stmt import BufferStore, For, IfThenElse, Stmt
from ..language.builder import emit, require_kernel
from .base import LowerContext, TileOp, register
from .region import in_bounds, pair_regions, region_indices, squeezed


@register
class Copy(TileOp):
    op_name = "copy"
    _fields = ("src", "dst")

    def __init__(self, src: BufferRegion, dst: BufferRegion, coalesced_width=None):
        self._init()
        self.src = src
        self.dst = dst
        self.coalesced_width = coalesced_width

    def attrs(self) -> dict:
        return {"coalesced_width": self.coalesced_width} if self.coalesced_width else {}

    def lower_cpu(self, ctx: LowerContext) -> Stmt:
        return elementwise_loops(self.src, self.dst, ctx, lambda v, _: v)


def elementwise_loops(src: BufferRegion, dst: BufferRegion, ctx: LowerContext, combine) -> Stmt:
    """`dst[p] = combine(src[p], dst[p])` over the tile, with global bounds guards.
    The innermost loop is a parallel (vectorisable) loop."""
    ext = squeezed(dst)
    loop_vars = [ctx.fresh("i") for _ in ext]
    ranges = dict(ctx.ranges)
    for v, e in zip(loop_vars, ext):
        if isinstance(e, int):
            ranges[v] = (0, e - 1)
    s_idx = region_indices(src, loop_vars)
    d_idx = region_indices(dst, loop_vars)
    value = BufferLoad(src.buffer, s_idx)
    if src.buffer.scope == "global":
        guard = in_bounds(s_idx, src.buffer, ranges)
        if guard is not None:
            value = Select(guard, value, Const(0, src.buffer.dtype))
    value = combine(value, BufferLoad(dst.buffer, d_idx))
    if value.dtype != dst.buffer.dtype:
        value = cast(value, dst.buffer.dtype)
    body: Stmt = BufferStore(dst.buffer, d_idx, value)
    if dst.buffer.scope == "global":
        guard = in_bounds(d_idx, dst.buffer, ranges)
        if guard is not None:
            body = IfThenElse(guard, body)
    for i, (v, e) in enumerate(reversed(list(zip(loop_vars, ext)))):
        body = For(v, 0, e, "parallel" if i == 0 else "serial", body)
    return body


def copy(src, dst, coalesced_width=None, disable_tma: bool = False, eviction_policy=None, **_):
    """Copy a tile; either side may be a buffer, a corner element `A[i, j]` or a slice."""
    require_kernel("T.copy")
    s, d = pair_regions(src, dst, "T.copy")
    if s.buffer.scope == "local.var" or d.buffer.scope == "local.var":
        raise CompileError("T.copy does not take T.alloc_var scalars; assign them directly")
    emit(Copy(s, d, coalesced_width))


