"""T.copy from global to shared memory on Hopper's copy engine (TMA): whether a copy can use it
(`plan_tma`) and the thread IR it becomes (`emit_tma_load`), following docs/THREAD_IR.md.

The destination tile is stored in the swizzled atoms of layout/wgmma.py (what wgmma reads): a
tile whose rows are 32, 64 or 128 bytes is one box with that swizzle, a wider one is cut into
128-byte column blocks, one box each. A tile that fits no swizzled layout is stored row-major
and copied as one unswizzled box. One thread issues the boxes; they complete on the pipeline
stage's mbarrier, whose expected byte count is the sum of the boxes (elements outside the tensor
are zero-filled and count too)."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.expr import BufferLoad, Call, Const, as_expr, const_value
from ..ir.machine import Machine
from ..ir.simplify import simplify
from ..ir.stmt import Allocate, BufferStore, Evaluate, IfThenElse, Stmt, seq
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
    # leading source dimensions copied one index per box: (dimension, extent). The swizzled
    # layout stores each leading index's (rows, cols) tile whole, so a box spanning a leading
    # dimension would write its second index over the first index's next column block
    outer: tuple[tuple[int, int], ...] = ()

    @property
    def swizzle(self) -> int:
        return self.layout.swizzle if self.layout is not None else 0

    @property
    def count(self) -> int:
        """How many boxes the copy issues."""
        return self.blocks * math.prod(e for _, e in self.outer)

    def bytes(self, elem_bytes: int) -> int:
        return math.prod(self.box) * self.blocks * math.prod(e for _, e in self.outer) * elem_bytes

    def shared_layout(self, shape) -> Layout:
        """How the shared tile is stored: what the boxes write (or a store reads)."""
        if self.layout is not None:
            return self.layout.layout(shape)
        return Layout(tuple(shape))  # row-major, fixed: what an unswizzled box writes

    dst_layout = shared_layout


def plan_tma(copy, machine: Machine, pass_configs: dict, dynamic: bool = False) -> TmaPlan | str:
    """The boxes a global -> shared T.copy (a load) or shared -> global T.copy (a store)
    becomes, or why it stays a thread-level copy. `dynamic`: a tensor with dynamic dimensions may
    be copied (T.tma_copy, which asks for TMA explicitly; the compiler's own choice for T.copy
    keeps such tensors on thread copies)."""
    if not machine.has("tma"):
        return f"{machine.name} has no TMA"
    if pass_configs.get("tl.disable_tma_lower"):
        return "tl.disable_tma_lower is set"
    if copy.disable_tma:
        return "T.copy(..., disable_tma=True)"
    if getattr(copy, "pad", None) is not None:
        return "T.annotate_safe_value asks for a value other than 0 outside the source (TMA fills zeros)"
    if copy.src.buffer.is_global and copy.dst.buffer.is_shared:
        src, dst = copy.src, copy.dst  # the global region, the shared tile
    elif copy.src.buffer.is_shared and copy.dst.buffer.is_global:
        src, dst = copy.dst, copy.src
    else:
        return "it is not a copy between global and shared memory"
    g, s = src.buffer, dst.buffer
    if g.dtype != s.dtype:
        return f"it converts {copy.src.buffer.dtype} to {copy.dst.buffer.dtype} (TMA moves bytes)"
    if g.root.address is not None:
        return f"{g.name} is at an address read at run time (a pointer table's): a tensor map needs it at launch"
    if g.explicit_strides is not None or g.base is not None or g.pointer is not None:
        return f"{g.name} is strided or a view (TMA's tensor maps describe whole contiguous tensors)"
    if not dynamic and g.static_shape() is None:
        return f"{g.name} has a dynamic shape (the compiler moves such tensors with thread copies; T.tma_copy takes them)"
    if not 1 <= g.ndim <= 5:
        return f"{g.name} has {g.ndim} dimensions (TMA takes 1 to 5)"
    eb = g.dtype.bytes
    if g.dtype.bits < 8 or g.dtype.kind == "float4":
        # fp4 is packed two per byte (transform/pack_fp4.py): the thread copies move its bytes
        return f"{g.dtype} elements are smaller than a byte"
    # dynamic dimensions are fine (the map is encoded at launch from the tensor passed), as long as
    # every row stride is a multiple of 16 bytes whatever their values: the static dimensions
    # inside each stride must make it one
    static = [const_value(as_expr(d)) if not isinstance(d, int) else d for d in g.shape]
    for d in range(g.ndim - 1):
        if math.prod(x for x in static[d + 1:] if x is not None) * eb % 16:
            return (f"{g.name}'s rows are not a multiple of 16 bytes" if all(x is not None for x in static[d + 1:])
                    else f"{g.name}'s rows are a multiple of 16 bytes only for some values of its dynamic dimensions")
    ext = [e for _, e in src.region]
    if any(not isinstance(e, int) for e in ext) or ext[-1] == 1:
        return "the copied region needs static extents and a contiguous innermost dimension"
    if s.static_shape() is None or not _whole_tiles(dst):
        return f"the shared side is a part of {s.name} (TMA moves whole tiles)"
    if squeezed(src) != squeezed(dst) or s.shape[-1] != ext[-1]:
        return f"the source region and {s.name} do not have the same shape"
    tile_bytes = math.prod(squeezed(dst)) * s.dtype.bytes
    if tile_bytes % 128:
        # a box's shared address must be 128-byte aligned: the tile's is, but a pipeline's
        # later stages start tile_bytes apart
        return f"{s.name} is {tile_bytes} bytes, not a multiple of 128 (each stage of a TMA destination starts aligned)"
    lay = operand_layout(s.shape, s.dtype) if len(squeezed(dst)) >= 2 else None
    inner = lay.block_cols if lay is not None else ext[-1]
    outer: tuple[tuple[int, int], ...] = ()
    if lay is not None and ext[-1] > inner:
        nonunit = [d for d, e in enumerate(ext) if e != 1]
        outer = tuple((d, ext[d]) for d in nonunit[:-2])
    cut = {d for d, _ in outer}
    box = tuple(1 if d in cut else e for d, e in enumerate(ext[:-1])) + (inner,)
    if inner * eb % 16:
        return f"a box row of {inner * eb} bytes is not a multiple of 16"
    if max(box) > MAX_BOX:
        return f"a box of {list(box)} elements: TMA boxes are at most {MAX_BOX} per dimension"
    plan = TmaPlan(lay, box, ext[-1] // inner, outer)
    user = s.user_layout
    if user is not None and user.key() != plan.shared_layout(s.shape).key():
        # the copy engine writes its own layout; the user's wins and the copy stays the threads'
        return f"{s.name} has a layout from T.annotate_layout that the copy engine does not write"
    return plan


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


def _boxes(plan: TmaPlan, glob: BufferRegion, tile: BufferRegion, ctx):
    """(shared address, global coordinates) of each box."""
    starts = [as_expr(st) for st, _ in glob.region]
    lead = [as_expr(st) for st, _ in tile.region[:-1]]
    # the tile's dimension matching each outer source dimension: non-unit dimensions pair in order
    tile_dims = [d for d, (_, e) in enumerate(tile.region) if e != 1]
    glob_dims = [d for d, (_, e) in enumerate(glob.region) if e != 1]
    pair = {g: t for g, t in zip(glob_dims, tile_dims)}
    for idx in itertools.product(*(range(e) for _, e in plan.outer)):
        g_at, t_at = list(starts), list(lead)
        for (d, _), i in zip(plan.outer, idx):
            g_at[d] = simplify(g_at[d] + i, ctx.ranges)
            t_at[pair[d]] = simplify(t_at[pair[d]] + i, ctx.ranges)
        for b in range(plan.blocks):
            col = b * plan.box[-1]
            yield (address(tile.buffer, t_at + [Const(col, _dt.int32)]),
                   g_at[:-1] + [simplify(g_at[-1] + col, ctx.ranges)])


def emit_tma_load(copy, plan: TmaPlan, barrier: BufferRegion, ctx) -> Stmt:
    """Thread 0 issues every box of the copy, completing on `barrier`."""
    tmap = tensor_map(ctx, copy.src.buffer, plan)
    bar = address(barrier.buffer, [as_expr(st) for st, _ in barrier.region])
    issues = [Evaluate(Call("tma_load", [where, bar, *coords], _dt.handle, {"map": tmap.name}))
              for where, coords in _boxes(plan, copy.src, copy.dst, ctx)]
    return IfThenElse(ctx.thread == 0, seq(issues))


def emit_tma_load_now(copy, plan: TmaPlan, ctx) -> Stmt:
    """A copy outside a pipeline: thread 0 announces the bytes and issues the boxes on the
    copy's own mbarrier (set up once, at the kernel's start), every thread waits for the phase
    it is at and flips it. A refill of the tile comes after a __syncthreads (insert_barriers: the
    tile was read), so the next phase cannot begin while a thread still waits on this one."""
    bar_buf = Buffer(f"{copy.dst.buffer.name}_tma_bar", (1,), _dt.uint64, "shared.dyn")
    phase = Buffer(f"{copy.dst.buffer.name}_tma_phase", (1,), _dt.int32, "local.var")
    zero = Const(0, _dt.int32)
    bar = address(bar_buf, [zero])
    ctx.kernel_prologue += [
        Allocate(bar_buf), Allocate(phase, zero),
        IfThenElse(ctx.kernel_thread == 0, seq([Evaluate(Call("mbarrier_init", [bar, Const(1, _dt.int32)], _dt.handle)),
                                                Evaluate(Call("fence_barrier_init", [], _dt.handle))])),
        Evaluate(Call("syncthreads", [], _dt.handle)),
    ]
    tmap = tensor_map(ctx, copy.src.buffer, plan)
    nbytes = Const(plan.bytes(copy.src.buffer.dtype.bytes), _dt.int32)
    issue = [Evaluate(Call("mbarrier_arrive_expect_tx", [bar, nbytes], _dt.handle))]
    issue += [Evaluate(Call("tma_load", [where, bar, *coords], _dt.handle, {"map": tmap.name}))
              for where, coords in _boxes(plan, copy.src, copy.dst, ctx)]
    cur = BufferLoad(phase, [zero])
    return seq([IfThenElse(ctx.thread == 0, seq(issue)),
                Evaluate(Call("mbarrier_wait", [bar, cur], _dt.handle)),
                BufferStore(phase, [zero], cur ^ 1)])


def emit_tma_store(copy, plan: TmaPlan, ctx) -> Stmt:
    """Every thread fences its writes of the tile for the copy engine, then (after a
    __syncthreads) thread 0 stores the boxes and waits until they have been read out of shared
    memory; a second __syncthreads keeps the tile from being overwritten before that."""
    tmap = tensor_map(ctx, copy.dst.buffer, plan)
    stores = [Evaluate(Call("tma_store", [where, *coords], _dt.handle, {"map": tmap.name}))
              for where, coords in _boxes(plan, copy.dst, copy.src, ctx)]
    stores += [Evaluate(Call("tma_store_commit", [], _dt.handle)), Evaluate(Call("tma_store_wait", [], _dt.handle, {"n": 0}))]
    sync = Evaluate(Call("syncthreads", [], _dt.handle))
    return seq([Evaluate(Call("fence_proxy_async", [], _dt.handle)), sync, IfThenElse(ctx.thread == 0, seq(stores)),
                sync])
