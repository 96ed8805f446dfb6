"""T.transpose(src, dst): dst[..., j, i] = src[..., i, j], swapping only the final two axes: src of
shape (..., M, N) and dst of shape (..., N, M), buffers or slices of them (TileLang's tl.transpose).

As in TileLang, the element positions are guarded against each buffer's own shape, so a region
that runs past a tensor's edge (a ragged tile) is honoured: outside the source reads zero,
outside the destination nothing is written.

Memories: on the CPU a block is one thread, so any memory works (a loop nest). On CUDA the
block's threads take the destination's elements in turn (consecutive threads write consecutive
elements), which is right for global and shared buffers; two T.alloc_local tiles are each
thread's own, so every thread transposes its own (as TileLang does). A fragment operand, or a
local tile with a block-wide one, is refused there with a CompileError."""
from __future__ import annotations

import math

from ..errors import CompileError
from ..ir.buffer import BufferRegion
from ..ir.builder import emit, require_kernel
from ..ir.expr import BufferLoad, Const, Select, cast
from ..ir.printer import shape_str
from ..ir.simplify import simplify
from ..ir.span import at
from ..ir.stmt import BufferStore, For, IfThenElse, Stmt
from . import cuda_common as cc
from .base import LowerContext, TileOp, lowering
from .region import as_region, check_static_region, extents_equal, in_bounds


class Transpose(TileOp):
    op_name = "transpose"
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

    def _store(self, d_pos, ranges) -> Stmt:
        """dst at position d_pos (..., j, i) of its region from src at (..., i, j), guarded by
        both buffers' shapes (a guard provably true is left out)."""
        s_pos = list(d_pos[:-2]) + [d_pos[-1], d_pos[-2]]
        s_idx = [simplify(st + p, ranges) for (st, _), p in zip(self.src.region, s_pos)]
        d_idx = [simplify(st + p, ranges) for (st, _), p in zip(self.dst.region, d_pos)]
        value = cast(BufferLoad(self.src.buffer, s_idx), self.dst.buffer.dtype)
        s_ok = in_bounds(s_idx, self.src.buffer, ranges)
        if s_ok is not None:
            value = Select(s_ok, value, Const(0, self.dst.buffer.dtype))
        body: Stmt = BufferStore(self.dst.buffer, d_idx, value)
        d_ok = in_bounds(d_idx, self.dst.buffer, ranges)
        return body if d_ok is None else IfThenElse(d_ok, body)

    @lowering("loops")
    def lower_loops(self, ctx: LowerContext) -> Stmt:
        return self._loop_nest(ctx, "parallel")

    def _loop_nest(self, ctx, innermost: str) -> Stmt:
        """The whole transpose as one thread's loop nest; the innermost loop of kind `innermost`."""
        ext = list(self.dst.extents)
        vs = [ctx.fresh("i") for _ in ext]
        ranges = {**ctx.ranges, **{v: (0, e - 1) for v, e in zip(vs, ext)}}
        body = self._store(vs, ranges)
        for k, (v, e) in enumerate(reversed(list(zip(vs, ext)))):
            body = For(v, 0, e, innermost if k == 0 else "serial", body)
        return body

    @lowering("cuda")
    def lower_cuda(self, ctx) -> Stmt:
        scopes = (self.src.buffer, self.dst.buffer)
        if all(b.is_local for b in scopes):
            return self._loop_nest(ctx, "serial")  # each thread's own tiles (a parallel loop is the block's)
        for b in scopes:
            if b.is_fragment or b.is_local:
                with at(self.span):
                    raise CompileError(
                        f"T.transpose on a GPU target: {b.name} is a {b.scope} buffer; here the block's threads share "
                        "the transpose, which works between global and shared buffers (or between two T.alloc_local "
                        "tiles, which each thread transposes for itself); T.copy the fragment through shared memory")
        ext = list(self.dst.extents)
        return cc.chunk_loop(ctx, math.prod(ext), lambda c: self._store(cc.unflatten(c, ext), ctx.ranges))


def transpose(src, dst, annotations: dict | None = None) -> None:
    """dst[..., j, i] = src[..., i, j] between tiles of shapes (..., M, N) and (..., N, M) (the final
    two axes swap); elements outside either buffer are read as zero / not written."""
    what = "T.transpose"
    require_kernel(what)
    s = as_region(src, f"{what} source", allow_corner=False)
    d = as_region(dst, f"{what} destination", allow_corner=False)
    for r, role in ((s, "source"), (d, "destination")):
        if r.buffer.is_var:
            raise CompileError(f"{what}: the {role} {r.buffer.name} is a scalar (T.alloc_var); it needs a tile")
        check_static_region(r, f"{what} {role}")
    se, de = list(s.extents), list(d.extents)
    if len(se) < 2 or len(de) != len(se) or not extents_equal(se[:-2] + [se[-1], se[-2]], de):
        raise CompileError(f"{what}: the source {s.buffer.name} has shape {shape_str(se)}, so the destination must "
                           f"have its last two dimensions swapped, but {d.buffer.name} has shape {shape_str(de)}")
    if s.buffer.root is d.buffer.root:
        raise CompileError(f"{what}: the source and destination are the same buffer {s.buffer.name}")
    emit(Transpose(s, d))
