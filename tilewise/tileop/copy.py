"""T.copy(src, dst): move a tile between global, shared and fragment memory.

Elements outside a global tensor read as zero and are not written."""
from __future__ import annotations

from ..errors import CompileError, InternalError
from ..ir.buffer import BufferRegion
from ..ir.builder import emit, require_kernel
from ..ir.expr import BufferLoad, Const, as_expr, cast, const_value
from ..ir.stmt import BufferStore, Stmt
from ..layout.tv import default_fragment
from . import cuda_common as cc
from .base import InferLevel, LowerContext, TileOp, lowering
from .region import guarded_load, guarded_store, pair_regions, region_indices, squeezed, tile_loops
from .tma import emit_tma_load, emit_tma_load_now, emit_tma_store, plan_tma


class Copy(TileOp):
    op_name = "copy"
    _fields = ("src", "dst", "barrier")
    operands_in_any_memory = True

    def __init__(self, src: BufferRegion, dst: BufferRegion, coalesced_width=None, mechanism: str | None = None,
                 barrier: BufferRegion | None = None, disable_tma: bool = False):
        self._init()
        self.src = src
        self.dst = dst
        self.coalesced_width = coalesced_width
        self.disable_tma = disable_tma  # T.copy(..., disable_tma=True): never on the copy engine
        # how a software pipeline issues it: None (synchronously), "cp.async" (each thread's part
        # lands at its cp.async wait) or "tma" (the copy engine: the data lands, for every thread,
        # when a wait on `barrier`, an mbarrier element, completes its phase)
        self.mechanism = mechanism
        self.barrier = barrier

    def attrs(self) -> dict:
        out = {"coalesced_width": self.coalesced_width} if self.coalesced_width else {}
        if self.disable_tma:
            out["disable_tma"] = True
        if self.mechanism:
            out["async"] = self.mechanism
        return out

    def reads(self) -> list[BufferRegion]:
        return [self.src]

    def writes(self) -> list[BufferRegion]:
        return [self.dst]

    def async_writes(self) -> list[BufferRegion]:
        return [self.dst] if self.mechanism == "cp.async" else []

    def synced_writes(self) -> list[BufferRegion]:
        return [self.dst] if self.mechanism == "tma" else []

    def as_async(self, mechanism: str = "cp.async", barrier: BufferRegion | None = None) -> Copy | None:
        """Global to shared copies can be issued asynchronously."""
        if self.src.buffer.is_global and self.dst.buffer.is_shared:
            return self.with_fields(mechanism=mechanism, barrier=barrier)
        return None

    def tma_bytes(self, machine, pass_configs: dict) -> int | None:
        plan = plan_tma(self, machine, pass_configs)
        return None if isinstance(plan, str) else plan.bytes(self.src.buffer.dtype.bytes)

    @lowering("loops")
    def lower_loops(self, ctx: LowerContext) -> Stmt:
        return elementwise_loops(self.src, self.dst, ctx, lambda v, _: v)

    # ------------------------------------------------------------------ CUDA
    def infer_layout(self, li, level: InferLevel) -> None:
        s, d = self.src.buffer, self.dst.buffer
        if level == InferLevel.REQUIRED:
            # the copy engine reads and writes its own layout: it binds the tile before anything else
            plan = self._tma_plan(li.machine, li.pass_configs)
            if self.mechanism == "tma" and isinstance(plan, str):
                raise InternalError(f"T.copy into {d.name} was planned for TMA but cannot use it: {plan}")
            if not isinstance(plan, str):
                tile = d if d.is_shared else s
                if tile in li.viewed:
                    if self.mechanism == "tma":
                        raise CompileError(f"{tile.name} is filled by a pipelined copy and also viewed with T.view / "
                                           "T.reshape; give the view its own buffer", self.span)
                    return  # stays row-major for its views: copied by threads (lower_sm90 sees no layout)
                li.set_shared(tile, plan.shared_layout(tile.shape))
            return
        if s.is_fragment and d.is_fragment:
            ls, ld = li.layout_of(s), li.layout_of(d)
            to_d, to_s = _dim_map(self.src, self.dst), _dim_map(self.dst, self.src)
            if to_d is None:
                pass  # a part of a fragment: the whole-tile operators using it decide its layout
            elif ls is not None and ld is None:
                li.set_fragment(d, ls.remap(d.shape, to_d), self.span)
            elif ld is not None and ls is None:
                li.set_fragment(s, ld.remap(s.shape, to_s), self.span)
        if level != InferLevel.FREE:
            return
        for b in (s, d):
            if b.is_fragment and li.layout_of(b) is None:
                li.set_fragment(b, default_fragment(b.shape, li.threads, li.vector_for([s, d])), self.span)
                return

    def _tma_plan(self, machine, pass_configs):
        """The copy-engine plan, or the reason there is none. Copies a pipeline issues as
        cp.async are the threads' own; whole-tile copies between global and shared memory run on
        the copy engine whether pipelined or not."""
        if machine is None or self.mechanism == "cp.async":
            return "no TMA"
        return plan_tma(self, machine, pass_configs)

    @lowering("sm90")
    def lower_sm90(self, ctx) -> Stmt:
        what = f"T.copy {self.src.buffer.name} -> {self.dst.buffer.name}"
        plan = self._tma_plan(ctx.machine, ctx.pass_configs)
        if isinstance(plan, str):
            if self.mechanism == "tma":
                raise InternalError(f"{what} was planned for TMA but cannot use it: {plan}")
            if self.mechanism == "cp.async" and ctx.machine.has("tma"):
                why = plan_tma(self, ctx.machine, ctx.pass_configs)
                why = why if isinstance(why, str) else "another stage-0 statement of its pipeline cannot use TMA"
                ctx.note(self, f"{what}: cp.async, not TMA: {why}")
            elif ctx.machine.has("tma") and (self.src.buffer.is_shared or self.dst.buffer.is_shared) and \
                    (self.src.buffer.is_global or self.dst.buffer.is_global):
                ctx.note(self, f"{what}: thread copies, not TMA: {plan}")
            return self.lower_cuda(ctx)
        tile = self.dst.buffer if self.dst.buffer.is_shared else self.src.buffer
        expected = plan.shared_layout(tile.shape)
        have = ctx.shared_layout(tile)
        if have is None and self.mechanism != "tma":
            ctx.note(self, f"{what}: thread copies, not TMA: {tile.name} has views (T.view / T.reshape)")
            return self.lower_cuda(ctx)
        if have is None or have.key() != expected.key():
            raise CompileError(
                f"{what} runs on the copy engine (TMA), which moves {tile.name} in its own layout, but the tile has "
                "another (an annotation?); remove it or set pass_configs {'tl.disable_tma_lower': True}", self.span)
        how = f"{plan.blocks} box(es) of {list(plan.box)}, {plan.swizzle or 'no'}-byte swizzle"
        if self.dst.buffer.is_global:
            ctx.note(self, f"{what}: TMA store, {how}")
            return emit_tma_store(self, plan, ctx)
        if self.mechanism == "tma":
            ctx.note(self, f"{what}: TMA, {how}, completing on its pipeline stage's mbarrier")
            return emit_tma_load(self, plan, self.barrier, ctx)
        ctx.note(self, f"{what}: TMA, {how}, completing on its own mbarrier")
        return emit_tma_load_now(self, plan, ctx)

    @lowering("cuda")
    def lower_cuda(self, ctx) -> Stmt:
        src, dst = self.src, self.dst
        fs, fd = src.buffer.is_fragment, dst.buffer.is_fragment
        if not fs and not fd:
            # a single element (`T.copy(A[i, j], B[i, j])`, typically inside T.Parallel) is a plain
            # store that the enclosing loop distributes, as in TileLang
            single = not squeezed(dst)
            if single or src.buffer.is_local or dst.buffer.is_local:
                return cc.per_thread_loops(dst, ctx, lambda idx: guarded_store(
                    dst, idx, guarded_load(src, _match(src, dst, idx), ctx.ranges), ctx.ranges))
            return cc.cooperative_copy(ctx, src, dst, async_copy=self.mechanism == "cp.async")
        if fs and fd:
            cc.whole_fragment(src, "T.copy")
            cc.whole_fragment(dst, "T.copy")
            # the fragments may differ in unit dimensions (T.copy(F[0, :], G) from [1, N] to [N]):
            # seen through the tile's correspondence, the layouts must hold each element in the
            # same thread and register
            seen = ctx.fragment_layout(src.buffer).remap(dst.buffer.shape, _dim_map(src, dst))
            if not seen.same_as(ctx.fragment_layout(dst.buffer)):
                raise CompileError(
                    f"T.copy between fragments {src.buffer.name} and {dst.buffer.name} with different layouts; "
                    "copy through a shared buffer", self.span)
            ls, ld = ctx.local_buffer(src.buffer), ctx.local_buffer(dst.buffer)
            return cc.fragment_loop(ctx, src.buffer, lambda v, _: BufferStore(
                ld, [v], cast(BufferLoad(ls, [v]), ld.dtype)), writes_memory=False)
        frag, other = (src, dst) if fs else (dst, src)
        loc = ctx.local_buffer(frag.buffer)

        def body(v, coords):
            idx = region_indices(other, cc.squeeze_coords(frag, coords))
            if fs:
                return guarded_store(other, idx, BufferLoad(loc, [v]), ctx.ranges)
            return BufferStore(loc, [v], cast(guarded_load(other, idx, ctx.ranges), loc.dtype))

        return cc.fragment_loop(ctx, frag.buffer, body, writes_memory=fs, region=frag)


def _dim_map(a: BufferRegion, b: BufferRegion) -> dict | None:
    """{dimension of a's buffer: dimension of b's buffer} pairing the non-unit dimensions of two
    regions that each cover their whole buffer (unit dimensions hold no layout modes); None when
    either is a part of its buffer."""
    def dims(r: BufferRegion):
        out = []
        for d, ((start, ext), full) in enumerate(zip(r.region, r.buffer.shape)):
            ext = ext.value if isinstance(ext, Const) else ext
            if not (const_value(as_expr(start)) == 0 and isinstance(ext, int) and ext == full):
                return None
            if ext != 1:
                out.append(d)
        return out

    da, db = dims(a), dims(b)
    if da is None or db is None or len(da) != len(db):
        return None
    return dict(zip(da, db))


def _match(src: BufferRegion, dst: BufferRegion, dst_idx):
    """Source indices of the element at destination indices `dst_idx`."""
    tile = [i - s for (s, e), i in zip(dst.region, dst_idx) if e != 1]
    return region_indices(src, tile)


def elementwise_loops(src: BufferRegion, dst: BufferRegion, ctx: LowerContext, combine) -> Stmt:
    """`dst[p] = combine(src[p], dst[p])` over the tile: zero read outside a global source,
    nothing written outside a global destination."""
    def body(vs, ranges):
        d_idx = region_indices(dst, vs)
        value = combine(guarded_load(src, region_indices(src, vs), ranges), BufferLoad(dst.buffer, d_idx))
        return guarded_store(dst, d_idx, value, ranges)

    return tile_loops(ctx, dst, body)


def copy(src, dst, coalesced_width=None, disable_tma: bool = False, eviction_policy=None, **_):
    """Copy a tile; either side may be a buffer, a corner element `A[i, j]` or a slice."""
    require_kernel("T.copy")
    s, d = pair_regions(src, dst, "T.copy")
    if s.buffer.is_var or d.buffer.is_var:
        raise CompileError("T.copy does not take T.alloc_var scalars; assign them directly")
    emit(Copy(s, d, coalesced_width, disable_tma=bool(disable_tma)))


