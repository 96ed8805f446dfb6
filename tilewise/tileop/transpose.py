"""T.transpose(src, dst): dst[..., j, i] = src[..., i, j] for shared tiles (TileLang's shared-memory
transpose): src of shape (..., M, N) and dst of shape (..., N, M), buffers or slices of them.
On CUDA the block's threads take the destination's elements in turn (consecutive threads write
consecutive elements); on the CPU it is a loop nest."""
from __future__ import annotations

import math

from ..errors import CompileError
from ..ir.buffer import BufferRegion
from ..ir.builder import emit, require_kernel
from ..ir.expr import BufferLoad, cast
from ..ir.printer import shape_str
from ..ir.simplify import simplify
from ..ir.stmt import BufferStore, For, Stmt
from . import cuda_common as cc
from .base import LowerContext, TileOp, lowering
from .region import as_region, check_static_region, extents_equal


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
        """dst at position d_pos (..., j, i) of its region from src at (..., i, j)."""
        s_pos = list(d_pos[:-2]) + [d_pos[-1], d_pos[-2]]
        s_idx = [simplify(st + p, ranges) for (st, _), p in zip(self.src.region, s_pos)]
        d_idx = [simplify(st + p, ranges) for (st, _), p in zip(self.dst.region, d_pos)]
        value = BufferLoad(self.src.buffer, s_idx)
        return BufferStore(self.dst.buffer, d_idx, cast(value, self.dst.buffer.dtype))

    @lowering("loops")
    def lower_loops(self, ctx: LowerContext) -> Stmt:
        ext = list(self.dst.extents)
        vs = [ctx.fresh("i") for _ in ext]
        ranges = {**ctx.ranges, **{v: (0, e - 1) for v, e in zip(vs, ext)}}
        body = self._store(vs, ranges)
        for k, (v, e) in enumerate(reversed(list(zip(vs, ext)))):
            body = For(v, 0, e, "parallel" if k == 0 else "serial", body)
        return body

    @lowering("cuda")
    def lower_cuda(self, ctx) -> Stmt:
        ext = list(self.dst.extents)
        return cc.chunk_loop(ctx, math.prod(ext), lambda c: self._store(cc.unflatten(c, ext), ctx.ranges))


def transpose(src, dst, annotations: dict | None = None) -> None:
    """dst[..., j, i] = src[..., i, j] between shared tiles of shapes (..., M, N) and (..., N, M)."""
    what = "T.transpose"
    require_kernel(what)
    s = as_region(src, f"{what} source", allow_corner=False)
    d = as_region(dst, f"{what} destination", allow_corner=False)
    for r, role in ((s, "source"), (d, "destination")):
        if not r.buffer.is_shared:
            raise CompileError(f"{what}: the {role} {r.buffer.name} is a {r.buffer.scope} buffer; T.transpose "
                               "works on shared tiles (T.copy into a T.alloc_shared tile first)")
        check_static_region(r, f"{what} {role}")
    se, de = list(s.extents), list(d.extents)
    if len(se) < 2 or len(de) != len(se) or not extents_equal(se[:-2] + [se[-1], se[-2]], de):
        raise CompileError(f"{what}: the source {s.buffer.name} has shape {shape_str(se)}, so the destination must "
                           f"have its last two dimensions swapped, but {d.buffer.name} has shape {shape_str(de)}")
    if s.buffer.root is d.buffer.root:
        raise CompileError(f"{what}: the source and destination are the same buffer {s.buffer.name}")
    emit(Transpose(s, d))
