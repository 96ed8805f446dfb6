"""Reducers, TileLang's deferred reductions over T.Parallel loops:

    acc = T.alloc_reducer((M,), "float32", op="sum", replication="all")
    T.clear(acc)                                   # or T.reducer_init(acc, init=None)
    for i, j in T.Parallel(M, N):
        acc[i] += x[i, j]                           # or T.reducer_update(acc[i], x[i, j])
    T.finalize_reducer(acc)                         # or T.finalize_reducer(acc, dst)

A reducer is a fragment that each thread updates with the loop iterations it runs, although
other threads update the same elements: every thread holds its own partial value (a replica),
and T.finalize_reducer combines the replicas with the reducer's `op` (sum, max, min, bitand,
bitor, bitxor), after which every replica holds the result. Like TileLang, the initial fill
belongs to every replica: a sum reducer must start at 0 (T.reducer_init fills the identity and
combines its `init` once, at finalize, into `dst`).

`replication="all"` gives every thread the whole reducer; otherwise (None, "none") the reducer
takes the layout of the loops that update it, replicated over the threads that split the reduced
loop dimensions (fewer registers). A reducer never decides a loop's partition, and a loop may
write it without running on every replica (layout_inference.py asks `is_reducer`).

On the CPU a block runs as one thread: the reducer is an array holding the result as it goes,
and finalizing has nothing to combine."""
from __future__ import annotations

import math

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.builder import emit, require, require_kernel
from ..ir.dtype import as_dtype
from ..ir.expr import BufferLoad, Expr, Var, as_expr, binary, cast
from ..ir.stmt import Allocate, Annotation, BufferStore, For, Stmt, seq
from ..layout.tv import _places, replicated_fragment
from .base import InferLevel, LowerContext, TileOp, lowering
from .fill import fill
from .reduce import all_reduce, init_value
from .region import region_indices, tile_loops

REDUCER_OPS = ("sum", "max", "min", "bitand", "bitor", "bitxor")
_COMBINE = {"sum": "add", "max": "max", "min": "min", "bitand": "bitand", "bitor": "bitor", "bitxor": "bitxor"}


def is_reducer(buf: Buffer) -> bool:
    return getattr(buf.root, "reducer_op", None) is not None


def combine(op: str, a, b) -> Expr:
    return binary(_COMBINE[op], a, b)


def replica_modes(lay, warp: int = 32) -> list[tuple[int, int]]:
    """(place, radix) of a layout's replicating thread modes, split at the warp size so that the
    part inside a warp combines by shuffles (a mode of 128 replicas is 32 lanes x 4 warps)."""
    out = []
    for m, p in zip(lay.thread_modes, _places(lay.thread_modes)):
        if m.dim is not None or m.radix == 1:
            continue
        r = m.radix
        if p < warp and p * r > warp and r & (r - 1) == 0 and warp % p == 0:
            inner = warp // p
            out.append((p, inner))
            out.append((warp, r // inner))
        else:
            out.append((p, r))
    return out


class FinalizeReducer(TileOp):
    """Combine the replicas of a reducer (and, given `dst`, write the result there combined with
    the init value T.reducer_init captured)."""

    op_name = "finalize_reducer"
    _fields = ("reducer", "dst", "init")

    def __init__(self, reducer: BufferRegion, op: str, dst: BufferRegion | None = None, init: Expr | None = None):
        self._init()
        self.reducer = reducer
        self.op = op
        self.dst = dst
        self.init = init

    def attrs(self) -> dict:
        return {"op": self.op}

    def reads(self) -> list[BufferRegion]:
        return [self.reducer]

    def writes(self) -> list[BufferRegion]:
        return [self.reducer] + ([self.dst] if self.dst is not None else [])

    def _result(self, x: Expr) -> Expr:
        dt = (self.dst or self.reducer).buffer.dtype
        return cast(x if self.init is None else combine(self.op, x, self.init), dt)

    @lowering("loops")
    def lower_loops(self, ctx: LowerContext) -> Stmt:
        if self.dst is None:
            return seq([])  # one thread per block: the reducer already holds the result
        r = self.reducer
        return tile_loops(ctx, self.dst, lambda vs, ranges: BufferStore(
            self.dst.buffer, region_indices(self.dst, vs),
            self._result(BufferLoad(r.buffer, region_indices(r, vs)))))

    def infer_layout(self, li, level: InferLevel) -> None:
        if self.dst is None or level < InferLevel.COMMON:
            return
        lr, ld = li.layout_of(self.reducer.buffer), li.layout_of(self.dst.buffer)
        if lr is not None and ld is None:
            li.set_fragment(self.dst.buffer, lr, self.span)

    @lowering("cuda")
    def lower_cuda(self, ctx) -> Stmt:
        r = self.reducer.buffer
        lay = ctx.fragment_layout(r)
        loc = ctx.local_buffer(r)
        out = all_reduce(ctx, loc, replica_modes(lay, ctx.machine.warp_size), lay.num_values, lambda a, b: combine(self.op, a, b), r.dtype)
        if self.dst is not None:
            d = self.dst.buffer
            if not ctx.fragment_layout(d).same_as(lay):
                raise CompileError(
                    f"T.finalize_reducer: the destination {d.name} is laid out as {ctx.fragment_layout(d)}, "
                    f"but the reducer {r.name} as {lay}; use a fresh fragment as the destination", self.span)
            dloc = ctx.local_buffer(d)
            v = Var("v", _dt.int32)
            out.append(For(v, 0, lay.num_values, "unroll", BufferStore(dloc, [v], self._result(BufferLoad(loc, [v])))))
        return seq(out)


# ---------------------------------------------------------------------------- user functions


def alloc_reducer(shape, dtype, op: str = "sum", replication: str | None = None) -> Buffer:
    """A reducer fragment of `shape` combined with `op` (see the module docstring)."""
    what = "T.alloc_reducer"
    b = require(what)
    k = require_kernel(what)
    if op not in REDUCER_OPS:
        raise CompileError(f"{what}: unknown op {op!r}; expected one of {', '.join(REDUCER_OPS)}")
    if replication not in (None, "all", "none"):
        raise CompileError(f"{what}: replication must be 'all', 'none' or None, got {replication!r}")
    try:
        dt = as_dtype(dtype)
    except (TypeError, ValueError) as e:
        raise CompileError(f"{what}: {e}") from None
    if op in ("bitand", "bitor", "bitxor") and not (dt.is_int or dt.is_bool):
        raise CompileError(f"{what}: op={op!r} needs an integer or bool type, got {dt}")
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (list, tuple)) or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                                       for d in shape):
        raise CompileError(f"{what}: the shape must be positive integers known at compile time, got {shape!r}")
    buf = Buffer(f"reducer_{op}", shape, dt, "local.fragment")
    buf.auto_named = True
    buf.reducer_op = op
    buf.reducer_init = None
    b.emit(Allocate(buf))
    if replication == "all":
        emit(Annotation("layout", {buf: replicated_fragment(buf.shape, math.prod(k.threads))}))
    return buf


def _reducer(x, what: str) -> Buffer:
    if isinstance(x, BufferRegion):
        x = x.buffer
    if not isinstance(x, Buffer) or not is_reducer(x):
        raise CompileError(f"{what}: expected a buffer from T.alloc_reducer, got {x!r}")
    return x


def reducer_init(reducer, init=None) -> None:
    """Open a reduction: every replica starts at the op's identity; `init` (a value captured
    now) is combined once into each result by T.finalize_reducer(reducer, dst)."""
    what = "T.reducer_init"
    buf = _reducer(reducer, what)
    fill(buf, init_value(buf.reducer_op, buf.dtype))
    if init is None:
        buf.reducer_init = None
        return
    if isinstance(init, Buffer) and init.is_var:
        init = init.load_var()
    if not isinstance(init, (Expr, int, float, bool)):
        raise CompileError(f"{what}: init must be a scalar, got {init!r}")
    captured = Buffer(f"{buf.name}_init", (1,), buf.dtype, "local.var")
    emit(Allocate(captured, cast(as_expr(init, buf.dtype), buf.dtype)))
    buf.reducer_init = captured


def reducer_update(target, value) -> None:
    """Contribute `value` to the reducer element `target` (`acc[i]`)."""
    what = "T.reducer_update"
    require_kernel(what)
    if not isinstance(target, BufferLoad):
        raise CompileError(f"{what}: the first argument must be a reducer element such as acc[i], got {target!r}")
    buf = _reducer(target.buffer, what)
    if isinstance(value, Buffer) and value.is_var:
        value = value.load_var()
    v = cast(as_expr(value, buf.dtype), buf.dtype)
    emit(BufferStore(buf, target.indices, combine(buf.reducer_op, BufferLoad(buf, target.indices), v)))


def finalize_reducer(reducer, dst=None, batch: int = 1, annotations: dict | None = None) -> None:
    """Combine the replicas of `reducer`: in place (TileLang's first form), or into the fragment
    `dst` of the same shape, with T.reducer_init's init value combined once."""
    what = "T.finalize_reducer"
    require_kernel(what)
    buf = _reducer(reducer, what)
    if isinstance(batch, bool) or not isinstance(batch, int):
        raise CompileError(f"{what}: batch must be a compile-time integer, got {batch!r}")
    if batch < 1:
        raise CompileError(f"finalize_reducer: batch must be >= 1, got {batch}")
    # TileLang 0.1.13's checks (on its per-thread layout size; here on the reducer's element
    # count, which is never smaller). The all-reduce exchanges all values per barrier pair anyway.
    total = 1
    for e in buf.shape:
        total *= int(e)
    if batch > total:
        raise CompileError(f"finalize_reducer: batch ({batch}) exceeds total output elements ({total})")
    if total % batch:
        raise CompileError(f"finalize_reducer: batch ({batch}) must evenly divide total output elements ({total})")
    init = buf.reducer_init.load_var() if buf.reducer_init is not None else None
    d = None
    if dst is not None:
        d = BufferRegion.full(dst) if isinstance(dst, Buffer) else dst
        if not isinstance(d, BufferRegion) or not d.buffer.is_fragment or is_reducer(d.buffer):
            raise CompileError(f"{what}: the destination must be a fragment (T.alloc_fragment), got {dst!r}")
        if tuple(d.buffer.shape) != tuple(buf.shape) or d.extents != tuple(buf.shape):
            raise CompileError(
                f"{what}: the destination {d.buffer.name} has shape {d.extents}, the reducer {buf.name} {buf.shape}")
    elif init is not None:
        raise CompileError(f"{what}: T.reducer_init gave an init value; finalize into a destination fragment "
                           f"(T.finalize_reducer({buf.name}, dst))")
    emit(FinalizeReducer(BufferRegion.full(buf), buf.reducer_op, d, init))
