"""T.atomic_add(dst, value), and T.atomic_max / T.atomic_min: read-modify-write that is safe
when several blocks update the same global (or shared) elements.

Element form: `T.atomic_add(C[i, j], v)` with a scalar v (`return_prev=True` makes it an expression
whose value is the element's old value, in per-thread code). Tile form: `T.atomic_add(C[r, c], C_local)`
(either side a buffer, a corner element or a slice; a scalar value is added to every element):
element-wise atomics over the tile, skipping elements outside a global destination."""
from __future__ import annotations

from ..errors import CompileError, warn_once
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.builder import emit, require_kernel
from ..ir.expr import BufferLoad, Call, Expr, as_expr, cast
from ..ir.simplify import simplify
from ..ir.span import at
from ..ir.stmt import Evaluate, IfThenElse, Stmt
from . import cuda_common as cc
from .base import LowerContext, TileOp, lowering
from .region import as_region, guarded, guarded_load, in_bounds, pair_regions, region_indices, squeezed, tile_loops

ATOMIC_SCOPES = ("global", "shared", "shared.dyn")
MEMORY_ORDERS = ("relaxed", "consume", "acquire", "release", "acq_rel", "seq_cst")


def atomic_call(kind: str, dst: BufferLoad, value: Expr) -> Evaluate:
    """`tw::atomic_<kind>(&dst, value)`; value already has dst's type."""
    addr = Call("address_of", [dst], _dt.handle)
    return Evaluate(Call(f"atomic_{kind}", [addr, value], _dt.handle))


class _AtomicTile(TileOp):
    """Element-wise atomics of a tile (or a scalar) into a region."""

    kind = ""
    _fields = ("src", "dst")

    def __init__(self, src: BufferRegion | Expr, dst: BufferRegion, use_tma: bool = False):
        self._init()
        self.src = src
        self.dst = dst
        self.use_tma = use_tma  # TileLang's TMA reduction (cp.reduce.async.bulk) request

    def attrs(self) -> dict:
        return {"use_tma": True} if self.use_tma else {}

    def reads(self) -> list[BufferRegion]:
        return ([self.src] if isinstance(self.src, BufferRegion) else []) + [self.dst]

    def writes(self) -> list[BufferRegion]:
        return [self.dst]

    @lowering("loops")
    def lower_loops(self, ctx: LowerContext) -> Stmt:
        if self.use_tma:
            with at(self.span):
                raise CompileError(f"T.{self.op_name}(..., use_tma=True): the CPU target has no TMA (cp.reduce."
                                   "async.bulk is a Hopper instruction); drop use_tma")

        def body(vs, ranges):
            d_idx = region_indices(self.dst, vs)
            value = guarded_load(self.src, region_indices(self.src, vs), ranges) \
                if isinstance(self.src, BufferRegion) else self.src
            call = atomic_call(self.kind, BufferLoad(self.dst.buffer, d_idx), cast(value, self.dst.buffer.dtype))
            return guarded(self.dst, d_idx, call, ranges)

        return tile_loops(ctx, self.dst, body)

    @lowering("cuda")
    def lower_cuda(self, ctx) -> Stmt:
        dst = self.dst
        if dst.buffer.is_local:
            with at(self.span):
                raise CompileError(
                    f"T.{self.op_name} on a GPU target: the destination {dst.buffer.name} is a T.alloc_local tile, "
                    "which every thread holds a private copy of; a tile-region atomic is the block's (the CPU "
                    "target, where a block is one thread, accepts it): update the tile directly or use shared memory")
        if self.use_tma:
            warn_once((self.op_name, "use_tma"), f"T.{self.op_name}(..., use_tma=True): tilewise does not emit the TMA "
                      "reduction (cp.reduce.async.bulk); the tile is updated with element atomics (same result)")
        if isinstance(self.src, BufferRegion) and self.src.buffer.is_fragment:
            loc = ctx.local_buffer(self.src.buffer)

            def body(v, coords):
                idx = region_indices(dst, cc.squeeze_coords(self.src, coords))
                st: Stmt = atomic_call(self.kind, BufferLoad(dst.buffer, idx), cast(BufferLoad(loc, [v]), dst.buffer.dtype))
                g = in_bounds(idx, dst.buffer, ctx.ranges) if dst.buffer.is_global else None
                return IfThenElse(g, st) if g is not None else st

            return cc.fragment_loop(ctx, self.src.buffer, body, writes_memory=True, region=self.src)
        ext = squeezed(dst)
        total = 1
        for e in ext:
            total *= e

        def chunk(c):
            pos = [simplify(p, ctx.ranges) for p in cc.unflatten(c, ext)]
            d_idx = region_indices(dst, pos)
            if isinstance(self.src, BufferRegion):
                value = guarded_load(self.src, region_indices(self.src, pos), ctx.ranges)
            else:
                value = self.src
            st: Stmt = atomic_call(self.kind, BufferLoad(dst.buffer, d_idx), cast(value, dst.buffer.dtype))
            g = in_bounds(d_idx, dst.buffer, ctx.ranges) if dst.buffer.is_global else None
            return IfThenElse(g, st) if g is not None else st

        return cc.chunk_loop(ctx, total, chunk)


class AtomicAdd(_AtomicTile):
    op_name = "atomic_add"
    kind = "add"


class AtomicMax(_AtomicTile):
    op_name = "atomic_max"
    kind = "max"


class AtomicMin(_AtomicTile):
    op_name = "atomic_min"
    kind = "min"


_TILE_OPS = {"add": AtomicAdd, "max": AtomicMax, "min": AtomicMin}


def _is_tile(x) -> bool:
    return isinstance(x, BufferRegion) or (isinstance(x, Buffer) and not x.is_var)


def _check_dst(buffer: Buffer, what: str, tile: bool = False) -> None:
    """Atomics update global or shared memory; a tile-region atomic may also update a
    T.alloc_local tile, which the CPU target (a block is one thread) accepts and GPU targets refuse
    when lowering."""
    if buffer.scope not in ATOMIC_SCOPES and not (tile and buffer.scope == "local"):
        raise CompileError(
            f"{what}: the destination {buffer.name} is a {buffer.scope} buffer; atomics update global or "
            "shared memory (a fragment or local buffer is private to its block; update it directly)"
        )
    dt = buffer.dtype
    if not (dt.is_float or dt.is_int):
        raise CompileError(f"{what}: the destination {buffer.name} has type {dt}; atomics need a number type")


def _atomic(kind: str, dst, value, memory_order, return_prev: bool, use_tma: bool = False):
    what = f"T.atomic_{kind}"
    require_kernel(what)
    tile = _is_tile(value) or _is_tile(dst)
    if use_tma and (return_prev or not tile):
        raise CompileError(f"{what}: use_tma=True asks for a TMA reduction of a tile; it applies to the tile-region "
                           "form (T.atomic_add(C[r:r+m, c:c+n], tile)) without return_prev")
    if memory_order is not None and memory_order not in MEMORY_ORDERS:
        raise CompileError(f"{what}: unknown memory_order {memory_order!r}; expected one of {', '.join(MEMORY_ORDERS)}")
    if return_prev:
        return _with_previous(kind, dst, value, what)
    if _is_tile(value) or _is_tile(dst):
        if _is_tile(value):
            src, d = pair_regions(value, dst, what)
        else:
            d = as_region(dst, f"{what} destination", allow_corner=False)
            src = _scalar(value, d.buffer, what)
        _check_dst(d.buffer, what, tile=True)
        if isinstance(src, BufferRegion) and not (src.buffer.dtype.is_float or src.buffer.dtype.is_int
                                                  or src.buffer.dtype.is_bool):
            raise CompileError(f"{what}: the value {src.buffer.name} has type {src.buffer.dtype}")
        emit(_TILE_OPS[kind](src, d, bool(use_tma)))
        return
    if not isinstance(dst, BufferLoad):
        raise CompileError(
            f"{what}: the destination must be a buffer element such as C[i, j], or a tile; got {dst!r}"
        )
    _check_dst(dst.buffer, what)
    emit(atomic_call(kind, dst, _scalar(value, dst.buffer, what)))


def _with_previous(kind: str, dst, value, what: str) -> Expr:
    """`T.atomic_add(C[i], v, return_prev=True)`: the update as an expression whose value is the
    element's old value. At block level it runs once per block like any block-level statement:
    on the CPU a block is one thread; on CUDA guard_block_effects runs a store of it to shared or
    global memory on thread 0 and refuses it where every thread would run the update (a value
    kept in registers: one thread's result cannot be handed to the others)."""
    if _is_tile(value) or _is_tile(dst):
        raise CompileError(f"{what}: return_prev=True is not supported for tile-region atomics (as in TileLang); "
                           "use an element destination such as C[i, j]")
    if not isinstance(dst, BufferLoad):
        raise CompileError(f"{what}: the destination must be a buffer element such as C[i, j], got {dst!r}")
    _check_dst(dst.buffer, what)
    addr = Call("address_of", [dst], _dt.handle)
    return Call(f"atomic_{kind}", [addr, _scalar(value, dst.buffer, what)], dst.buffer.dtype)


def _scalar(value, dst: Buffer, what: str) -> Expr:
    if isinstance(value, Buffer):  # a T.alloc_var scalar
        value = value.load_var()
    if not isinstance(value, (Expr, int, float, bool)):
        raise CompileError(f"{what}: the value must be a scalar expression or a tile, got {value!r}")
    v = as_expr(value, dst.dtype)
    return v if v.dtype == dst.dtype else cast(v, dst.dtype)


def atomic_add(dst, value, memory_order: str | None = None, return_prev: bool = False, use_tma: bool = False):
    """dst += value atomically: an element `C[i, j]` and a scalar, or element-wise over a tile.
    With return_prev=True (an element) the value is dst's old value."""
    return _atomic("add", dst, value, memory_order, return_prev, use_tma)


def atomic_max(dst, value, memory_order: str | None = None, return_prev: bool = False):
    """dst = max(dst, value) atomically (NaN operands are ignored, as by T.max)."""
    return _atomic("max", dst, value, memory_order, return_prev)


def atomic_min(dst, value, memory_order: str | None = None, return_prev: bool = False):
    """dst = min(dst, value) atomically (NaN operands are ignored, as by T.min)."""
    return _atomic("min", dst, value, memory_order, return_prev)
