"""T.copy from global to shared memory on Hopper's copy engine (TMA): whether a copy can use it
(`plan_tma`) and the thread IR it becomes (`emit_tma_load`), following docs/THREAD_IR.md.

The destination tile is stored in the swizzled atoms of layout/wgmma.py (what wgmma reads): a
tile whose rows are 32, 64 or 128 bytes is one box with that swizzle, a wider one is cut into
128-byte column blocks, one box each. A tile that fits no swizzled layout is stored row-major
and copied as one unswizzled box. One thread issues the boxes; they complete on the pipeline
stage's mbarrier, whose expected byte count is the sum of the boxes (elements outside the tensor
are zero-filled and count too)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..ir import dtype as _dt
from ..ir.buffer import BufferRegion
from ..ir.expr import Call, Const, as_expr
from ..ir.machine import Machine
from ..ir.simplify import simplify
from ..ir.stmt import Evaluate, IfThenElse, Stmt, seq
from ..ir.tensor_map import TensorMap
from ..layout.layout import Layout
from ..layout.wgmma import OperandLayout, operand_layout
from .cuda_common import address
from .region import squeezed

MAX_BOX = 256  # elements per box dimension


@dataclass(frozen=True)
class TmaPlan:
    layout: OperandLayout | None  # None: the destination stays row-major, unswizzled
    box: tuple[int, ...]  # per source dimension
    blocks: int  # boxes along the contiguous dimension (column blocks)

    @property
    def swizzle(self) -> int:
        return self.layout.swizzle if self.layout is not None else 0

    def bytes(self, elem_bytes: int) -> int:
        return math.prod(self.box) * self.blocks * elem_bytes

    def dst_layout(self, shape) -> Layout:
        if self.layout is not None:
            return self.layout.layout(shape)
        return Layout(tuple(shape))  # row-major, fixed: what an unswizzled box writes


def plan_tma(copy, machine: Machine, pass_configs: dict) -> TmaPlan | str:
    """The boxes a global -> shared T.copy becomes, or why it stays a cp.async copy."""
    if not machine.has("tma"):
        return f"{machine.name} has no TMA"
    if pass_configs.get("tl.disable_tma_lower"):
        return "tl.disable_tma_lower is set"
    if copy.disable_tma:
        return "T.copy(..., disable_tma=True)"
    src, dst = copy.src, copy.dst
    g, s = src.buffer, dst.buffer
    if not (g.is_global and s.is_shared):
        return "it is not a global -> shared copy"
    shape = g.static_shape()
    if shape is None or g.explicit_strides is not None or g.base is not None or g.pointer is not None:
        return f"{g.name} has a dynamic or strided shape (TMA's strides are fixed when the kernel is built)"
    if not 1 <= g.ndim <= 5:
        return f"{g.name} has {g.ndim} dimensions (TMA takes 1 to 5)"
    eb = g.dtype.bytes
    if g.dtype.bits < 8:
        return f"{g.dtype} elements are smaller than a byte"
    for d in range(g.ndim - 1):
        if math.prod(shape[d + 1:]) * eb % 16:
            return f"{g.name}'s rows are not a multiple of 16 bytes"
    ext = [e for _, e in src.region]
    if any(not isinstance(e, int) for e in ext) or ext[-1] == 1:
        return "the copied region needs static extents and a contiguous innermost dimension"
    if s.static_shape() is None or not _whole_tiles(dst):
        return f"the destination is a part of {s.name} (TMA fills whole tiles)"
    if squeezed(src) != squeezed(dst) or s.shape[-1] != ext[-1]:
        return f"the source region and {s.name} do not have the same shape"
    lay = operand_layout(s.shape, s.dtype) if len(squeezed(dst)) >= 2 else None
    inner = lay.block_cols if lay is not None else ext[-1]
    box = tuple(ext[:-1]) + (inner,)
    if inner * eb % 16:
        return f"a box row of {inner * eb} bytes is not a multiple of 16"
    if max(box) > MAX_BOX:
        return f"a box of {list(box)} elements: TMA boxes are at most {MAX_BOX} per dimension"
    return TmaPlan(lay, box, ext[-1] // inner)


def _whole_tiles(r: BufferRegion) -> bool:
    """Every dimension complete, or a unit one (a pipeline slot) at any position."""
    for (st, e), d in zip(r.region, r.buffer.shape):
        if e == d:
            if getattr(st, "value", st) != 0:
                return False
        elif e != 1:
            return False
    return True


def tensor_map(ctx, g, plan: TmaPlan) -> TensorMap:
    """The kernel's tensor map for boxes of this shape over `g` (one per distinct box)."""
    for m in ctx.tensor_maps:
        if m.buffer is g and m.box == plan.box and m.swizzle == plan.swizzle:
            return m
    m = TensorMap(f"{g.name}_tmap{len(ctx.tensor_maps)}", g, plan.box, plan.swizzle)
    ctx.tensor_maps.append(m)
    return m


def emit_tma_load(copy, plan: TmaPlan, barrier: BufferRegion, ctx) -> Stmt:
    """Thread 0 issues every box of the copy, completing on `barrier`."""
    tmap = tensor_map(ctx, copy.src.buffer, plan)
    dst = copy.dst
    starts = [as_expr(st) for st, _ in copy.src.region]
    bar = address(barrier.buffer, [as_expr(st) for st, _ in barrier.region])
    lead = [as_expr(st) for st, _ in dst.region[:-1]]
    issues = []
    for b in range(plan.blocks):
        col = b * plan.box[-1]
        coords = starts[:-1] + [simplify(starts[-1] + col, ctx.ranges)]
        where = address(dst.buffer, lead + [Const(col, _dt.int32)])
        issues.append(Evaluate(Call("tma_load", [where, bar, *coords], _dt.handle, {"map": tmap.name})))
    return IfThenElse(ctx.thread == 0, seq(issues))
