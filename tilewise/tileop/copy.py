"""T.copy(src, dst): move a tile between global, shared and fragment memory.

Elements outside a global tensor read as zero and are not written."""
from __future__ import annotations

from ..errors import CompileError, InternalError, warn_once
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.builder import emit, require_kernel
from ..ir.expr import BufferLoad, Call, Const, as_expr, cast, const_value
from ..ir.simplify import simplify
from ..ir.stmt import Allocate, BufferStore, Evaluate, Stmt, seq
from ..layout.swizzle import swizzled_or_none
from ..layout.tv import default_fragment
from . import cuda_common as cc
from .base import InferLevel, LowerContext, TileOp, lowering
from .region import guarded_load, guarded_store, pair_regions, region_indices, squeezed, tile_loops
from .staged_copy import staged_halves
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
        # what a global source reads outside its bounds instead of 0: T.annotate_safe_value's
        # value, set by transform/legalize_safe_access.py when the source may reach past an edge.
        # Such a copy runs as thread copies (TMA and cp.async fill zeros).
        self.pad: Const | None = None

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
        if self.src.buffer.is_global and self.dst.buffer.is_shared and self.pad is None \
                and self.src.buffer.root.address is None:  # a pointer table's tensor: thread loads
            return self.with_fields(mechanism=mechanism, barrier=barrier)
        return None

    def as_staged(self, threads: int):
        """Global to shared copies can go through registers in two halves (tileop/staged_copy.py)."""
        if self.src.buffer.is_global and self.dst.buffer.is_shared and self.pad is None \
                and self.src.buffer.root.address is None:
            return staged_halves(self.src, self.dst, threads, self.span)
        return None

    def tma_bytes(self, machine, pass_configs: dict) -> int | None:
        plan = plan_tma(self, machine, pass_configs)
        return None if isinstance(plan, str) else plan.bytes(self.src.buffer.dtype.bytes)

    @lowering("loops")
    def lower_loops(self, ctx: LowerContext) -> Stmt:
        return elementwise_loops(self.src, self.dst, ctx, lambda v, _: v, self.pad)

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
        if s.is_fragment and d.is_fragment and level >= InferLevel.COMMON:
            # propagated only after every strict requirement is in: an operator that needs the
            # destination in its own layout (a register A operand of T.gemm replicated over the
            # warps sharing its rows, while the source is an accumulator split over them) takes
            # it, and the copy then exchanges the values through shared memory
            ls, ld = li.layout_of(s), li.layout_of(d)
            if ls is not None and ld is None:
                lay = _seen_by(ls, self.src, self.dst)
                if lay is not None:
                    li.set_fragment(d, lay, self.span)
            elif ld is not None and ls is None:
                lay = _lifted(ld, self.dst, self.src)
                if lay is not None:
                    li.set_fragment(s, lay, self.span)
        if level != InferLevel.FREE:
            return
        for b in (s, d):
            if b.is_fragment and li.layout_of(b) is None:
                li.set_fragment(b, default_fragment(b.shape, li.threads, li.vector_for([s, d])), self.span)
                return
        if s.is_fragment and d.is_shared and d not in li.viewed:
            # A fragment (an mma accumulator, typically) stored into a tile nothing else lays out:
            # its threads write a few elements of many rows at once, which a row-major tile puts in
            # the same banks (8-way for the mma C layout into 128-byte rows); the 16-byte-chunk
            # swizzle spreads the rows over the banks and keeps 16-byte vectors whole.
            swizzled = swizzled_or_none(d)
            if swizzled is not None:
                li.set_shared(d, swizzled)

    def _fragment_to_fragment(self, ctx) -> Stmt:
        """Register to register: every thread copies the destination elements it holds from
        its own registers of the source. The fragments may differ in unit dimensions
        (T.copy(F[0, :], G) from [1, N] to [N]) and the source may be a slice F[k, :] (k any
        index) of a fragment keeping the sliced dimension in registers."""
        src, dst = self.src, self.dst
        ls, ld = ctx.fragment_layout(src.buffer), ctx.fragment_layout(dst.buffer)
        seen = _seen_by(ls, src, dst)
        if seen is None:
            ks = _kept_dims(src)
            what = ("a part of it" if ks is None or _kept_dims(dst) is None else
                    "a slice along a dimension its layout spreads over threads")
            raise CompileError(
                f"T.copy between fragments {src.buffer.name} and {dst.buffer.name}: on the CUDA target the source "
                f"region is {what}; copy through a shared buffer or use a T.Parallel loop", self.span)
        if not seen.same_as(ld):
            if _whole(src) and _whole(dst) and tuple(src.buffer.shape) == tuple(dst.buffer.shape):
                return self._through_shared(ctx)
            raise CompileError(
                f"T.copy between fragments {src.buffer.name} and {dst.buffer.name} with different layouts "
                f"({ls} and {ld}); copy through a shared buffer", self.span)
        lsb, ldb = ctx.local_buffer(src.buffer), ctx.local_buffer(dst.buffer)
        ks, kd = _kept_dims(src), _kept_dims(dst)
        to_src = dict(zip(kd, ks))

        def body(v, coords):
            idx = [start for start, _ in src.region]
            for dd, sd in to_src.items():
                idx[sd] = coords[dd]
            reg = v if ls.same_as(seen) else simplify(ls.local_of(idx), ctx.ranges)
            return BufferStore(ldb, [v], cast(BufferLoad(lsb, [reg]), ldb.dtype))

        return cc.fragment_loop(ctx, dst.buffer, body, writes_memory=False)

    def _through_shared(self, ctx) -> Stmt:
        """Whole fragments of one shape whose layouts put elements in different threads (an
        accumulator split over a warp grid copied into a register gemm operand replicated over
        it): every thread stores the source elements it holds into a scratch tile, and loads the
        destination elements it holds from it. Barriers before (the scratch may share memory
        with tiles other warps still read) and after (the next write must wait for the reads)."""
        src, dst = self.src.buffer, self.dst.buffer
        ctx.note(self, f"T.copy {src.name} -> {dst.name}: the fragments' layouts differ across threads; "
                       "exchanged through shared memory")
        scratch = Buffer(f"{dst.name}_xchg", dst.shape, dst.dtype, "shared.dyn")
        scratch.self_synced = True  # barriers before and after its use: shared memory planning may share it
        lsb, ldb = ctx.local_buffer(src), ctx.local_buffer(dst)
        write = cc.fragment_loop(ctx, src, lambda v, coords: BufferStore(scratch, coords, cast(BufferLoad(lsb, [v]),
                                                                                               dst.dtype)),
                                 writes_memory=True)
        read = cc.fragment_loop(ctx, dst, lambda v, coords: BufferStore(ldb, [v], BufferLoad(scratch, coords)),
                                writes_memory=False)

        def sync():
            return Evaluate(Call("syncthreads", [], _dt.handle))

        return seq([Allocate(scratch), sync(), write, sync(), read, sync()])

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
        if have is not None and have.key() != expected.key() and self.mechanism != "tma" and \
                tile in getattr(ctx.layouts, "raw_tma", ()):
            ctx.note(self, f"{what}: thread copies, not TMA: {tile.name}'s layout is what a T.tma_load / T.tma_store "
                           "descriptor moves, not the one a TMA copy would use")
            return self.lower_cuda(ctx)
        if have is None or have.key() != expected.key():
            raise CompileError(
                f"{what} runs on the copy engine (TMA), which moves {tile.name} in its own layout, but the tile has "
                "another (an annotation?); remove it or set pass_configs {'tl.disable_tma_lower': True}", self.span)
        how = f"{plan.count} box(es) of {list(plan.box)}, {plan.swizzle or 'no'}-byte swizzle"
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
                    dst, idx, guarded_load(src, _match(src, dst, idx), ctx.ranges, self.pad), ctx.ranges))
            return cc.cooperative_copy(ctx, src, dst, async_copy=self.mechanism == "cp.async", pad=self.pad)
        if fs and fd:
            return self._fragment_to_fragment(ctx)
        frag, other = (src, dst) if fs else (dst, src)
        loc = ctx.local_buffer(frag.buffer)

        def body(v, coords):
            idx = region_indices(other, cc.squeeze_coords(frag, coords))
            if fs:
                return guarded_store(other, idx, BufferLoad(loc, [v]), ctx.ranges)
            return BufferStore(loc, [v], cast(guarded_load(other, idx, ctx.ranges, self.pad), loc.dtype))

        return cc.fragment_loop(ctx, frag.buffer, body, writes_memory=fs, region=frag)


def _whole(r: BufferRegion) -> bool:
    return all(isinstance(st, Const) and st.value == 0 and ext == dim
               for (st, ext), dim in zip(r.region, r.buffer.shape))


def _kept_dims(r: BufferRegion) -> list[int] | None:
    """The dimensions of a fragment region that span the tile (whole, extent > 1), when every
    other dimension is one index (`F[k, :]`, `F[0, :, j]`); None for a region cutting a range
    out of a dimension (`F[3:11]`)."""
    out = []
    for d, ((start, ext), full) in enumerate(zip(r.region, r.buffer.shape)):
        ext = ext.value if isinstance(ext, Const) else ext
        if not isinstance(ext, int):
            return None
        if ext == 1:
            continue
        if ext != full or const_value(as_expr(start)) != 0:
            return None
        out.append(d)
    return out


def _sliced_dims(r: BufferRegion, kept: list[int]) -> list[int]:
    """Dimensions of extent > 1 of the buffer that the region fixes to one index."""
    return [d for d, n in enumerate(r.buffer.shape) if n > 1 and d not in kept]


def _seen_by(ls, src: BufferRegion, dst: BufferRegion):
    """The layout the destination fragment must have for a copy from `src` (laid out as `ls`):
    the source's layout of the copied dimensions. None when the copy cannot be register to
    register: a region cutting a range, or a fixed index along a dimension spread over threads
    (the thread holding dst[i] would not hold src[k, i] for every k)."""
    ks, kd = _kept_dims(src), _kept_dims(dst)
    if ks is None or kd is None or len(ks) != len(kd):
        return None
    sliced = set(_sliced_dims(src, ks))
    if any(m.dim in sliced for m in ls.thread_modes):
        return None
    return ls.project(ks).remap(dst.buffer.shape, dict(enumerate(kd)))


def _lifted(ld, dst: BufferRegion, src: BufferRegion):
    """The source layout for a copy into `dst` (laid out as `ld`): the same threads hold the
    copied dimensions, each thread keeps every index of the dimensions the copy fixes."""
    ks, kd = _kept_dims(src), _kept_dims(dst)
    if ks is None or kd is None or len(ks) != len(kd):
        return None
    extra = [(d, src.buffer.shape[d]) for d in _sliced_dims(src, ks)]
    return ld.remap(src.buffer.shape, dict(zip(kd, ks)), extra=extra)


def _match(src: BufferRegion, dst: BufferRegion, dst_idx):
    """Source indices of the element at destination indices `dst_idx`."""
    tile = [i - s for (s, e), i in zip(dst.region, dst_idx) if e != 1]
    return region_indices(src, tile)


def elementwise_loops(src: BufferRegion, dst: BufferRegion, ctx: LowerContext, combine, pad=None) -> Stmt:
    """`dst[p] = combine(src[p], dst[p])` over the tile: zero (or `pad`) read outside a global
    source, nothing written outside a global destination."""
    def body(vs, ranges):
        d_idx = region_indices(dst, vs)
        value = combine(guarded_load(src, region_indices(src, vs), ranges, pad), BufferLoad(dst.buffer, d_idx))
        return guarded_store(dst, d_idx, value, ranges)

    return tile_loops(ctx, dst, body)


_COPY_HINTS = ("coalesced_width", "disable_tma", "eviction_policy")


def copy(src, dst, coalesced_width=None, disable_tma: bool = False, eviction_policy=None, *, annotations=None,
         loop_layout=None, prefer_instruction=None):
    """Copy a tile; either side may be a buffer, a corner element `A[i, j]` or a slice. TileLang's
    hints that tilewise does not use are said once (tilewise.errors.warn_once), never dropped
    silently; `disable_tma` takes effect."""
    require_kernel("T.copy")
    if annotations is not None:
        if not isinstance(annotations, dict):
            raise CompileError(f"T.copy: annotations must be a dict, got {annotations!r}")
        for k, v in annotations.items():
            if k in _COPY_HINTS:
                coalesced_width = v if k == "coalesced_width" else coalesced_width
                disable_tma = v if k == "disable_tma" else disable_tma
                eviction_policy = v if k == "eviction_policy" else eviction_policy
            else:
                _ignored(f"annotations[{k!r}]", "tilewise knows no such copy annotation")
    if coalesced_width is not None:
        _ignored("coalesced_width", "a copy's vector width follows the tiles' alignment (up to 16 bytes)")
    if eviction_policy not in (None, "evict_normal"):
        _ignored("eviction_policy", "loads and stores use the default L2 policy")
    if loop_layout is not None:
        _ignored("loop_layout", "the copy's thread layout is inferred")
    if prefer_instruction is not None:
        _ignored("prefer_instruction", "the copy mechanism (TMA, cp.async, ldmatrix, vector ld/st) is chosen "
                 "by the target; disable_tma=True keeps a copy off TMA")
    s, d = pair_regions(src, dst, "T.copy", copy_extents=True)
    if s.buffer.is_var or d.buffer.is_var:
        raise CompileError("T.copy does not take T.alloc_var scalars; assign them directly")
    emit(Copy(s, d, coalesced_width, disable_tma=bool(disable_tma)))


def _ignored(name: str, why: str) -> None:
    warn_once(("T.copy", name), f"T.copy({name}=...) has no effect in tilewise: {why}", stacklevel=4)


