"""T.reduce(src, dst, reduce_type, dim, clear) and T.reduce_max / reduce_min / reduce_sum /
reduce_abssum / reduce_absmax / reduce_bitand / reduce_bitor / reduce_bitxor: reduce a shared or
fragment tile along one dimension (the bitwise kinds into an integer or bool destination).

dst has src's shape without `dim` (TileLang's rule), or with extent 1 there. With clear=False the
result is combined with dst's existing values as they are (TileLang reduces into a cleared copy and
then stores dst op copy: absmax does not take |dst|, a negative dst stays below the row's |x|).
Accumulation happens in dst's dtype.

TileLang 0.1.13's `batch=` (output elements per batched all-reduce, a barrier-count hint) is
checked and recorded; every lowering here already exchanges all of a thread's result elements
between one pair of barriers, so it changes no code. `nan_propagate=` (max / min / absmax): by
default a NaN element is ignored (IEEE maxNum, CUDA's __hmax / fmaxf); with nan_propagate=True
a NaN anywhere in a row (or in dst's old value when clear=False) makes the result NaN. TileLang
honours it for float16 / bfloat16 only; here it holds for every float type."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.builder import emit, require_kernel
from ..ir.dtype import DataType
from ..ir.expr import BufferLoad, Call, Const, Expr, Select, Var, binary, call, cast
from ..ir.printer import shape_str
from ..ir.simplify import simplify
from ..ir.span import at
from ..ir.stmt import Allocate, BufferStore, Evaluate, For, IfThenElse, Stmt, seq
from ..layout.tv import _places, default_fragment
from . import cuda_common as cc
from .base import InferLevel, LowerContext, TileOp, lowering
from .cuda_common import whole_fragment
from .region import (
    as_region,
    check_static_region,
    corresponding_dim,
    extents_equal,
    region_indices,
    squeezed,
)

REDUCE_TYPES = ("sum", "abssum", "max", "min", "absmax", "bitand", "bitor", "bitxor")
BITWISE_TYPES = ("bitand", "bitor", "bitxor")
_COMBINE = {"sum": "add", "abssum": "add", "max": "max", "absmax": "max", "min": "min",
            "bitand": "bitand", "bitor": "bitor", "bitxor": "bitxor"}
TILE_SCOPES = ("shared", "shared.dyn", "local.fragment", "local")


class Reduce(TileOp):
    op_name = "reduce"
    _fields = ("src", "dst")

    def __init__(self, src: BufferRegion, dst: BufferRegion, reduce_type: str, dim: int, clear: bool,
                 batch: int = 1, nan_propagate: bool = False):
        self._init()
        self.src = src
        self.dst = dst
        self.reduce_type = reduce_type
        self.dim = dim
        self.clear = clear
        self.batch = batch
        self.nan_propagate = nan_propagate

    operands_in_any_memory = True

    def attrs(self) -> dict:
        a = {"reduce_type": self.reduce_type, "dim": self.dim, "clear": self.clear}
        if self.batch != 1:
            a["batch"] = self.batch
        if self.nan_propagate:
            a["nan_propagate"] = True
        return a

    @property
    def propagates_nan(self) -> bool:
        """Whether max/min must turn a NaN operand into a NaN result (maxNum ignores it)."""
        return (self.nan_propagate and self.reduce_type in ("max", "min", "absmax")
                and self.acc_dtype.is_float)

    def reads(self) -> list[BufferRegion]:
        return [self.src] + ([] if self.clear else [self.dst])

    def writes(self) -> list[BufferRegion]:
        return [self.dst]

    def remapped(self, old: TileOp) -> None:
        self.dim = corresponding_dim(old.src, self.src, old.dim)

    # ------------------------------------------------------------------ the reduction's algebra
    @property
    def acc_dtype(self) -> DataType:
        return self.dst.buffer.dtype

    def value(self, x: Expr) -> Expr:
        """A source element as the reduction sees it: in dst's type, made non-negative for abs kinds."""
        x = cast(x, self.acc_dtype)
        return call("abs", x) if self.reduce_type in ("abssum", "absmax") else x

    def combine(self, a: Expr, b: Expr) -> Expr:
        r = binary(_COMBINE[self.reduce_type], a, b)
        if self.propagates_nan:
            # a and b are loads or casts of loads (pure): repeating them costs nothing
            r = Select(Call("isnan", [a], _dt.bool_), a, Select(Call("isnan", [b], _dt.bool_), b, r))
        return r

    def start(self, old: Expr) -> Expr | None:
        """dst's value before the first combine, or None to keep it as it is."""
        if self.clear:
            return init_value(self.reduce_type, self.acc_dtype)
        if self.reduce_type == "absmax":
            # TileLang reduces into a cleared copy, which for absmax starts at 0, and then stores
            # max(dst, copy): a row of NaNs leaves max(dst, 0). Starting from dst itself (the
            # CPU's running reduction) needs that 0 folded in.
            return self.combine(old, init_value(self.reduce_type, self.acc_dtype))
        return None

    # ------------------------------------------------------------------ CPU lowering
    @lowering("loops")
    def lower_loops(self, ctx: LowerContext) -> Stmt:
        src, dim = self.src, self.dim
        ext = list(src.extents)
        kept = [i for i, e in enumerate(ext) if i != dim and e != 1]
        before = [i for i in kept if i < dim]
        after = [i for i in kept if i > dim]

        def at(vars_: dict):
            """(src element for reduce index r, the dst element) at the kept indices `vars_`."""
            d_idx = region_indices(self.dst, [vars_[i] for i in kept])

            def src_at(r) -> Expr:
                idx = []
                for i, (s, _) in enumerate(src.region):
                    off = r if i == dim else vars_.get(i)
                    idx.append(simplify(s + off) if off is not None else s)
                return self.value(BufferLoad(src.buffer, idx))

            return src_at, d_idx

        if after:
            # Reduce loop outside the contiguous kept dimensions, so the innermost loop updates
            # a row of dst element-wise (vectorisable).
            def outer_body(vb: dict) -> Stmt:
                def init(va: dict) -> Stmt | None:
                    _, d_idx = at({**vb, **va})
                    v = self.start(BufferLoad(self.dst.buffer, d_idx))
                    return None if v is None else BufferStore(self.dst.buffer, d_idx, v)

                r = ctx.fresh("r")

                def update(va: dict) -> Stmt:
                    src_at, d_idx = at({**vb, **va})
                    cur = BufferLoad(self.dst.buffer, d_idx)
                    return BufferStore(self.dst.buffer, d_idx, self.combine(cur, src_at(r)))

                first = loop_nest(ctx, after, ext, init, innermost="parallel")
                loop = For(r, 0, ext[dim], "serial", loop_nest(ctx, after, ext, update, innermost="parallel"))
                return seq([first, loop])

            return loop_nest(ctx, before, ext, outer_body, innermost="serial")

        if self.propagates_nan:
            # the runtime's row reductions ignore NaN: a plain loop with the NaN-aware combine
            def plain_row(vb: dict) -> Stmt:
                src_at, d_idx = at(vb)
                start = self.start(BufferLoad(self.dst.buffer, d_idx))
                first = [] if start is None else [BufferStore(self.dst.buffer, d_idx, start)]
                r = ctx.fresh("r")
                cur = BufferLoad(self.dst.buffer, d_idx)
                upd = BufferStore(self.dst.buffer, d_idx, self.combine(cur, src_at(r)))
                return seq(first + [For(r, 0, ext[dim], "serial", upd)])

            return loop_nest(ctx, before, ext, plain_row, innermost="serial")

        stride = src.buffer.strides()[dim]
        many = self._reduce_rows(before, ext, at, stride)
        if many is not None:
            return many

        def row(vb: dict) -> Stmt:
            _, d_idx = at(vb)
            first = [simplify(s + vb[i]) if i in vb else s for i, (s, _) in enumerate(src.region)]
            return self._reduce_row(BufferLoad(src.buffer, first), stride, d_idx, ext[dim])

        return loop_nest(ctx, before, ext, row, innermost="serial")

    def _reduce_rows(self, before: list, ext: list, at, stride) -> Stmt | None:
        """Many short rows of 4-byte values (a score tile in attention: 128 rows of 64) through
        the runtime's sixteen-rows-at-a-time reduction, when the rows are contiguous and evenly
        spaced, the results consecutive and the elements already of dst's type."""
        src, dst = self.src, self.dst
        if len(before) != 1 or stride != 1 or src.buffer.dtype != self.acc_dtype:
            return None
        if self.reduce_type == "absmax" and not self.clear:  # its start is max(dst, 0): see start()
            return None
        if self.acc_dtype.name not in ("float32", "int32", "uint32"):
            return None
        rows, n = ext[before[0]], ext[self.dim]
        if not (isinstance(rows, int) and isinstance(n, int) and rows >= 16 and n % 16 == 0 and 16 <= n <= 256):
            return None
        pitch = src.buffer.strides()[before[0]]
        if not isinstance(pitch, int):
            return None
        (_, d0), (_, d1) = at({before[0]: Const(0, _dt.int32)}), at({before[0]: Const(1, _dt.int32)})
        strides = dst.buffer.strides()
        step = simplify(sum(((b - a) * st for a, b, st in zip(d0, d1, strides)), Const(0, _dt.int32)))
        if not (isinstance(step, Const) and step.value == 1):
            return None
        first = [s for s, _ in src.region]
        mode = 0 if self.clear else 1  # (2, |dst|, is no rule of TileLang's)
        init = init_value(self.reduce_type, self.acc_dtype) if self.clear else Const(0, self.acc_dtype)
        args = [Call("address_of", [BufferLoad(dst.buffer, d0)], _dt.handle),
                Call("address_of", [BufferLoad(src.buffer, first)], _dt.handle),
                Const(rows, _dt.int32), Const(n, _dt.int32), Const(pitch, _dt.int32), Const(mode, _dt.int32), init]
        return Evaluate(Call(f"rows_{self.reduce_type}", args, _dt.handle))

    def _reduce_row(self, src_row: Expr, stride: int, d_idx, n: int) -> Stmt:
        """dst[d_idx] (op)= src[row : row + n*stride : stride], through the runtime's row
        reduction: a simd reduction, which vectorises without fast-math."""
        dbuf = self.dst.buffer
        start = self.start(BufferLoad(dbuf, d_idx))
        if start is None:
            start = BufferLoad(dbuf, d_idx)
        addr = Call("address_of", [src_row], _dt.handle)
        args = [start, addr, Const(n, _dt.int32), Const(stride, _dt.int32)]
        return BufferStore(dbuf, d_idx, Call(f"row_{self.reduce_type}", args, self.acc_dtype))

    # ------------------------------------------------------------------ CUDA
    def _dst_layout_from(self, ls):
        keep = [i for i in range(self.src.buffer.ndim) if i != self.dim]
        proj = ls.project(keep)
        if self.dst.buffer.ndim == self.src.buffer.ndim:
            proj = proj.insert_unit_dim(self.dim)
        return proj

    def _src_layout_from(self, ld):
        keep = [i for i in range(self.src.buffer.ndim) if i != self.dim]
        dims = [k for k in range(self.dst.buffer.ndim) if not (self.dst.buffer.ndim == self.src.buffer.ndim
                                                               and k == self.dim)]
        return ld.remap(self.src.buffer.shape, dict(zip(dims, keep)),
                        extra=[(self.dim, self.src.buffer.shape[self.dim])])

    def infer_layout(self, li, level: InferLevel) -> None:
        s, d = self.src.buffer, self.dst.buffer
        with at(self.span):
            for r in (self.src, self.dst):
                if r.buffer.is_fragment:
                    whole_fragment(r, "T.reduce")
        if s.is_fragment:
            ls = li.layout_of(s)
            if ls is None and level == InferLevel.FREE:
                li.set_fragment(s, default_fragment(s.shape, li.threads, li.vector_for([s])), self.span)
                return
            if ls is not None and d.is_fragment:
                li.set_fragment(d, self._dst_layout_from(ls), self.span)
            elif ls is None and d.is_fragment and level >= InferLevel.COMMON and li.layout_of(d) is not None:
                # the result's layout is known first (a user's T.Fragment, or operators using
                # it): the source takes the one whose reduction it is, each thread walking the
                # reduced dimension in registers, rather than a free choice that would conflict
                li.set_fragment(s, self._src_layout_from(li.layout_of(d)), self.span)
        elif d.is_fragment and level == InferLevel.FREE and li.layout_of(d) is None:
            li.set_fragment(d, default_fragment(d.shape, li.threads, 1), self.span)

    @lowering("cuda")
    def lower_cuda(self, ctx) -> Stmt:
        s, d = self.src.buffer, self.dst.buffer
        if s.is_fragment and d.is_fragment:
            return self._cuda_fragments(ctx)
        if s.is_fragment:
            return self._cuda_fragment_to_memory(ctx)
        staged = self._cuda_shared_staged(ctx)
        return staged if staged is not None else self._cuda_elementwise(ctx)

    def _finish(self, old: Expr, total: Expr) -> Expr:
        """The stored result: the reduction alone, or combined with dst's old value."""
        if self.clear:
            return total
        start = self.start(old)
        return self.combine(start if start is not None else old, total)

    def _cuda_fragments(self, ctx) -> Stmt:
        cc.whole_fragment(self.src, "T.reduce")
        cc.whole_fragment(self.dst, "T.reduce")
        ls, ld = ctx.fragment_layout(self.src.buffer), ctx.fragment_layout(self.dst.buffer)
        if not ld.same_as(self._dst_layout_from(ls)):
            raise CompileError(
                f"T.reduce: {self.dst.buffer.name} is laid out as {ld}, which is not the reduction of "
                f"{self.src.buffer.name}'s layout {ls}; copy through shared memory", self.span)
        dloc = ctx.local_buffer(self.dst.buffer)
        stmts, acc = self._reduce_registers(ctx, ls, ld, f"{dloc.name}_red")
        lq = Var("v", _dt.int32)
        final = self._finish(BufferLoad(dloc, [lq]), BufferLoad(acc, [lq]))
        stmts.append(For(lq, 0, ld.num_values, "unroll", BufferStore(dloc, [lq], cast(final, dloc.dtype))))
        return seq(stmts)

    def _cuda_fragment_to_memory(self, ctx) -> Stmt:
        """A fragment reduced into shared or global memory (TileLang allows it): the registers are
        reduced as for a fragment result laid out as the reduction of the source's layout, then
        replica 0 of each result element stores it (combined with the old value unless clear)."""
        cc.whole_fragment(self.src, "T.reduce")
        ls = ctx.fragment_layout(self.src.buffer)
        ld = self._dst_layout_from(ls)
        dst = self.dst
        if [e for e in ld.shape if e != 1] != [int(getattr(e, "value", e)) for e in squeezed(dst)]:
            raise CompileError(
                f"T.reduce: {dst.buffer.name}'s region {shape_str(squeezed(dst))} is not the shape of "
                f"{self.src.buffer.name} without dimension {self.dim}", self.span)
        stmts, acc = self._reduce_registers(ctx, ls, ld, f"{self.src.buffer.name}_red")
        return self._store_reduced(ctx, ld, stmts, acc)

    def _cuda_shared_staged(self, ctx) -> Stmt | None:
        """A whole shared tile reduced into shared or global memory as TileLang 0.1.15 lowers it:
        the tile is copied into registers laid out as a default fragment (16-byte chunks per
        thread), reduced there and across threads (so a float sum adds in TileLang's order),
        then replica 0 of each result element stores it. None where that does not apply (a
        fragment result, a slice of the tile, a layout with replicas): each thread then reduces
        the elements it owns serially."""
        src, dst = self.src, self.dst
        if dst.buffer.is_fragment or ctx.threads % ctx.machine.warp_size:
            return None
        shape = [int(getattr(e, "value", e)) if not isinstance(e, int) else e for e in src.buffer.shape]
        full = all(isinstance(getattr(b, "value", b), int) and getattr(b, "value", b) == 0
                   and int(getattr(e, "value", e)) == n for (b, e), n in zip(src.region, shape))
        if not full:
            return None
        ls = default_fragment(shape, ctx.threads, max(1, 16 // src.buffer.dtype.bytes))
        if ls.replicate > 1:
            return None
        ld = self._dst_layout_from(ls)
        if [e for e in ld.shape if e != 1] != [int(getattr(e, "value", e)) for e in squeezed(dst)]:
            return None
        loc = Buffer(f"{src.buffer.name}_frag", (ls.num_values,), src.buffer.dtype, "local")
        lv = Var("v", _dt.int32)
        ranges = {**ctx.ranges, lv: (0, ls.num_values - 1)}
        coords = [simplify(c, ranges) for c in ls.inverse(ctx.thread, lv)]
        stmts: list[Stmt] = [Allocate(loc), For(lv, 0, ls.num_values, "unroll",
                                                 BufferStore(loc, [lv], BufferLoad(src.buffer, coords)))]
        red, acc = self._reduce_registers(ctx, ls, ld, f"{src.buffer.name}_red", sloc=loc)
        return self._store_reduced(ctx, ld, stmts + red, acc)

    def _store_reduced(self, ctx, ld, stmts: list[Stmt], acc: Buffer) -> Stmt:
        """Replica 0 of each result element (layout `ld`, values in `acc`) stores it into dst."""
        dst = self.dst
        lq = Var("v", _dt.int32)
        ranges = dict(ctx.ranges)
        ranges[lq] = (0, ld.num_values - 1)
        coords = [simplify(c, ranges) for c in ld.inverse(ctx.thread, lq)]
        d_idx = region_indices(dst, [c for c, e in zip(coords, ld.shape) if e != 1])
        final = self._finish(BufferLoad(dst.buffer, d_idx), BufferLoad(acc, [lq]))
        store: Stmt = BufferStore(dst.buffer, d_idx, cast(final, dst.buffer.dtype))
        if ld.replicate > 1:
            store = IfThenElse(simplify(ld.replica_index(ctx.thread), ctx.ranges) == 0, store)
        stmts.append(For(lq, 0, ld.num_values, "unroll", store))
        return seq(stmts)

    def _reduce_registers(self, ctx, ls, ld, name: str, sloc: Buffer | None = None) -> tuple[list[Stmt], Buffer]:
        """Statements leaving in a local `acc` register ld.num_values results per thread: the
        source's registers (`sloc`, else the source fragment's) combined, then across the threads
        that share a result element."""
        sloc = sloc if sloc is not None else ctx.local_buffer(self.src.buffer)
        acc = Buffer(name, (ld.num_values,), self.acc_dtype, "local")

        stmts: list[Stmt] = [Allocate(acc)]
        lp = Var("v", _dt.int32)
        stmts.append(For(lp, 0, ld.num_values, "unroll",
                         BufferStore(acc, [lp], init_value(self.reduce_type, self.acc_dtype))))
        # register l of the source feeds register g(l) of the result: the kept value digits, in
        # order, are the result's register index (its layout may merge consecutive kept modes
        # into one, e.g. two row modes that a column mode separated in the source)
        g: Expr = Const(0, _dt.int32)
        place = 1
        for m, p in zip(ls.value_modes, _places(ls.value_modes)):
            if m.dim == self.dim:
                continue
            ls_digit = (lp // p) % m.radix if p > 1 else lp % m.radix
            g = g + ls_digit * place
            place *= m.radix
        g = simplify(g, {lp: (0, ls.num_values - 1)})
        cur = BufferLoad(acc, [g])
        stmts.append(For(lp, 0, ls.num_values, "unroll",
                         BufferStore(acc, [g], self.combine(cur, self.value(BufferLoad(sloc, [lp]))))))
        stmts.extend(self._all_reduce(ctx, acc, ls, ld.num_values))
        return stmts, acc

    def _all_reduce(self, ctx, acc: Buffer, ls, n: int) -> list[Stmt]:
        """Combine the partial results of the threads that share a result element."""
        return all_reduce(ctx, acc, ls.reduced_thread_modes(self.dim), n, self.combine, self.acc_dtype,
                          stage_shuffles=self.propagates_nan)

    def _cuda_elementwise(self, ctx) -> Stmt:
        """Shared source: each thread computes the result elements it owns by a serial loop."""
        src, dst, dim = self.src, self.dst, self.dim
        ext = list(src.extents)
        kept = [i for i in range(len(ext)) if i != dim]

        def element(d_idx_tile, store):
            r = Var("r", _dt.int32)
            dpos = dict(zip([i for i in kept if ext[i] != 1], d_idx_tile))
            idx = []
            for i, (s0, _) in enumerate(src.region):
                off = r if i == dim else dpos.get(i)
                idx.append(simplify(s0 + off) if off is not None else s0)

            accb = Buffer("acc", (1,), self.acc_dtype, "local")

            body = [Allocate(accb), BufferStore(accb, [0], init_value(self.reduce_type, self.acc_dtype)),
                    For(r, 0, ext[dim], "serial", BufferStore(
                        accb, [0], self.combine(BufferLoad(accb, [0]), self.value(BufferLoad(src.buffer, idx)))))]
            return seq(body + [store(BufferLoad(accb, [0]))])

        if dst.buffer.is_fragment:
            cc.whole_fragment(dst, "T.reduce")
            dloc = ctx.local_buffer(dst.buffer)

            def body(v, coords):
                tile = cc.squeeze_coords(dst, coords)
                old = BufferLoad(dloc, [v])
                return element(tile, lambda t: BufferStore(dloc, [v], cast(self._finish(old, t), dloc.dtype)))

            return cc.fragment_loop(ctx, dst.buffer, body, writes_memory=False)
        dext = squeezed(dst)
        total = 1
        for e in dext:
            total *= e

        def chunk(c):
            tile = [simplify(p, ctx.ranges) for p in cc.unflatten(c, dext)]
            d_idx = region_indices(dst, tile)
            old = BufferLoad(dst.buffer, d_idx)
            return element(tile, lambda t: BufferStore(dst.buffer, d_idx, cast(self._finish(old, t), dst.buffer.dtype)))

        return cc.chunk_loop(ctx, total, chunk)


def all_reduce(ctx, acc: Buffer, modes, n: int, combine, dtype: DataType,
               stage_shuffles: bool = False) -> list[Stmt]:
    """Combine registers acc[0:n] across the threads that differ only in the digits of `modes`
    ((place, radix) of thread modes): warp shuffles for power-of-two modes inside a warp, a
    shared-memory exchange for the others. Afterwards all of them hold the combined values.
    stage_shuffles: each shuffle's result goes to a register first, for a `combine` that repeats
    an operand or uses it in one branch of a select (a shuffle must run once, in every lane)."""
    out: list[Stmt] = []
    shared_modes, shuffled = [], []
    # a shuffle names all lanes of a warp (32; a wavefront of 64 on AMD GPUs): with a partial
    # last warp (threads=48) every mode goes through shared memory
    W = ctx.machine.warp_size
    whole_warps = ctx.threads % W == 0
    # a power-of-two mode spanning several warps splits into its intra-warp digits (shuffles) and
    # its warp digits (one shared-memory round: a write per warp, a read per warp of the mode)
    split = []
    for place, radix in modes:
        if radix & (radix - 1) == 0 and W % place == 0 and place < W < place * radix:
            intra = W // place
            split += [(place, intra), (W, radix // intra)]
        else:
            split.append((place, radix))
    if whole_warps and all(r & (r - 1) == 0 and p & (p - 1) == 0 for p, r in split):
        return _butterfly(ctx, acc, split, n, combine, dtype, stage_shuffles)
    for place, radix in split:
        # a butterfly's partner is tx ^ off: the digit's own bits only when its place is a power of
        # two too (a (2, 5)-fragment's rows 5 threads apart pair tx=4 with 1, not 9: shared memory)
        if radix & (radix - 1) == 0 and place & (place - 1) == 0 and place * radix <= W and whole_warps:
            lv = Var("v", _dt.int32)
            off = place
            while off < place * radix:
                shfl = Call("shfl_xor", [BufferLoad(acc, [lv]), Const(off, _dt.int32)], dtype,
                            {"width": W})
                if stage_shuffles:
                    tmp = Buffer(f"{acc.name}_sh{off}", (n,), dtype, "local")
                    out.append(Allocate(tmp))
                    out.append(For(lv, 0, n, "unroll", BufferStore(tmp, [lv], shfl)))
                    lv2 = Var("v", _dt.int32)
                    out.append(For(lv2, 0, n, "unroll", BufferStore(
                        acc, [lv2], combine(BufferLoad(acc, [lv2]), BufferLoad(tmp, [lv2])))))
                    off *= 2
                    continue
                out.append(For(lv, 0, n, "unroll",
                               BufferStore(acc, [lv], combine(BufferLoad(acc, [lv]), shfl))))
                off *= 2
            shuffled.append((place, radix))
        else:
            shared_modes.append((place, radix))
    if not shared_modes:
        return out

    T = ctx.threads
    tid = ctx.thread
    # threads that differ only in shuffled digits now hold the same partials: one of them
    # (shuffled digits 0) writes for all, at an index with those digits removed
    shuffled.sort(reverse=True)

    def compact(t):
        for place, radix in shuffled:
            t = (t // (place * radix)) * place + t % place
        return t

    width = T
    for _, radix in shuffled:
        width //= radix
    ws = Buffer(f"{acc.name}_ws", (width * n,), dtype, "shared.dyn")
    ws.self_synced = True  # barriers before and after its use: shared memory planning may share it
    sync = Evaluate(Call("syncthreads", [], _dt.handle))
    lv = Var("v", _dt.int32)
    out.append(Allocate(ws))
    # partners differ from a thread only in the digits of the reduced modes
    def partners_of(t):
        base = t
        for place, radix in shared_modes:
            base = base - ((t // place) % radix) * place
        ps = [base]
        for place, radix in shared_modes:
            ps = [p + r * place for p in ps for r in range(radix)]
        return ps

    # Where value v of writer c goes. When every thread's partners are adjacent writers (the
    # warps of a block-wide row), value-major (ws[v * width + c]): one vector load brings one
    # value's partials, combined before the next value's are loaded (softmax over 4 rows of 1024
    # floats: 56 registers on sm_80 instead of 60, when all 16 partials were loaded first).
    # Otherwise writer-major (ws[c * n + v]): a writer's values in one vector store, a partner's
    # in one vector load. The combination order is the same either way.
    adjacent = n > 1 and all(
        [compact(p) for p in ps] == list(range(compact(ps[0]), compact(ps[0]) + len(ps)))
        for ps in map(partners_of, range(T)))

    def slot(c, v):
        return v * width + c if adjacent else c * n + v

    write = For(lv, 0, n, "unroll", BufferStore(ws, [simplify(slot(compact(tid), lv), ctx.ranges)],
                                                 BufferLoad(acc, [lv])))
    if shuffled:
        lead = None
        for place, radix in shuffled:
            c = (tid // place) % radix == 0
            lead = c if lead is None else lead & c
        write = IfThenElse(simplify(lead, ctx.ranges), write, None)
    out.append(write)
    out.append(sync)
    lw = Var("v", _dt.int32)
    val = None
    for p in partners_of(tid):
        x = BufferLoad(ws, [simplify(slot(compact(p), lw), ctx.ranges)])
        val = x if val is None else combine(val, x)
    out.append(For(lw, 0, n, "unroll", BufferStore(acc, [lw], val)))
    out.append(Evaluate(Call("syncthreads", [], _dt.handle)))
    return out


def _butterfly(ctx, acc: Buffer, modes, n: int, combine, dtype: DataType, stage_shuffles: bool) -> list[Stmt]:
    """TileLang's tl::AllReduce order, for modes of power-of-two places and radices: partners
    tx ^ off for every offset bit, largest offset first, each step x = x op partner's x. The
    offsets of a warp or more are tl::AllReduce's shared-memory steps: here they are one round,
    each thread writing its values and combining its partners' in the same tree (x op y = y op x
    bit for bit, so every thread of a group gets the same result); the smaller offsets are warp
    shuffles. A float sum is then TileLang's bit for bit."""
    W = ctx.machine.warp_size
    offsets = sorted((p << k for p, r in modes for k in range(r.bit_length() - 1)), reverse=True)
    cross = [o for o in offsets if o >= W]
    out: list[Stmt] = []
    if cross:
        T, tid = ctx.threads, ctx.thread
        ws = Buffer(f"{acc.name}_ws", (T * n,), dtype, "shared.dyn")
        ws.self_synced = True  # barriers before and after its use: shared memory planning may share it
        out.append(Allocate(ws))
        lv = Var("v", _dt.int32)
        # value-major: a warp's stores of one value are consecutive words
        out.append(For(lv, 0, n, "unroll", BufferStore(ws, [simplify(lv * T + tid, ctx.ranges)],
                                                        BufferLoad(acc, [lv]))))
        out.append(Evaluate(Call("syncthreads", [], _dt.handle)))
        lw = Var("v", _dt.int32)
        K = len(cross)

        # x op y = y op x bit for bit, so the tree is the same from any thread of the group: read
        # it from the group's first thread (cross bits clear), partners at constant offsets
        base = tid
        for o in cross:
            base = base - ((tid // o) % 2) * o
        base = simplify(lw * T + base, {**ctx.ranges, lw: (0, n - 1)})

        def partner(j: int) -> Expr:
            """Partner base + (the offsets of j's bits)'s value."""
            m = sum(cross[b] for b in range(K) if j >> b & 1)
            return BufferLoad(ws, [simplify(base + m) if m else base])

        if not stage_shuffles:
            # one expression, depth first (rms_norm kept 62 registers on sm_80, as TileLang's
            # code does, where all 2^K loads into registers first took 63). fold(k, j): partner
            # j's partial after the k largest offsets; the outermost step is the smallest's
            def fold(k: int, j: int) -> Expr:
                return partner(j) if k == 0 else combine(fold(k - 1, j), fold(k - 1, j | 1 << (k - 1)))
            out.append(For(lw, 0, n, "unroll", BufferStore(acc, [lw], fold(K, 0))))
        else:
            # a `combine` that repeats its operands (NaN-propagating selects): each partial to a
            # register first, tree[j] the partial of partner j; level k folds in cross[k]
            tree = Buffer(f"{acc.name}_tree", (1 << K,), dtype, "local")
            body: list[Stmt] = [BufferStore(tree, [Const(j, _dt.int32)], partner(j)) for j in range(1 << K)]
            for k in range(K):
                for j in range(0, 1 << K, 2 << k):
                    a, b = BufferLoad(tree, [Const(j, _dt.int32)]), BufferLoad(tree, [Const(j | 1 << k, _dt.int32)])
                    body.append(BufferStore(tree, [Const(j, _dt.int32)], combine(a, b)))
            body.append(BufferStore(acc, [lw], BufferLoad(tree, [Const(0, _dt.int32)])))
            out.append(Allocate(tree))
            out.append(For(lw, 0, n, "unroll", seq(body)))
        out.append(Evaluate(Call("syncthreads", [], _dt.handle)))
    for off in (o for o in offsets if o < W):
        lv = Var("v", _dt.int32)
        shfl = Call("shfl_xor", [BufferLoad(acc, [lv]), Const(off, _dt.int32)], dtype, {"width": W})
        if stage_shuffles:  # a shuffle runs once, in every lane: its result to a register first
            tmp = Buffer(f"{acc.name}_sh{off}", (n,), dtype, "local")
            out.append(Allocate(tmp))
            out.append(For(lv, 0, n, "unroll", BufferStore(tmp, [lv], shfl)))
            lv2 = Var("v", _dt.int32)
            out.append(For(lv2, 0, n, "unroll", BufferStore(
                acc, [lv2], combine(BufferLoad(acc, [lv2]), BufferLoad(tmp, [lv2])))))
        else:
            out.append(For(lv, 0, n, "unroll", BufferStore(acc, [lv], combine(BufferLoad(acc, [lv]), shfl))))
    return out


def loop_nest(ctx: LowerContext, dims: list[int], ext: list, make_body, innermost: str) -> Stmt | None:
    """Loops over `dims` (fresh variables) around make_body({dim: var}); the innermost loop has
    kind `innermost`, the others are serial."""
    vars_ = {i: ctx.fresh("i") for i in dims}
    body = make_body(vars_)
    if body is None:
        return None
    for k, i in enumerate(reversed(dims)):
        body = For(vars_[i], 0, ext[i], innermost if k == 0 else "serial", body)
    return body


def init_value(reduce_type: str, dt: DataType) -> Const:
    """The identity of the reduction in dst's type."""
    if reduce_type in ("sum", "abssum", "absmax", "bitor", "bitxor"):
        return Const(0, dt)
    if reduce_type == "bitand":
        return Const(True if dt.is_bool else -1, dt)  # all bits set (Const wraps -1 to unsigned ones)
    lowest = reduce_type == "max"
    if dt.is_float:
        return Const(float("-inf") if lowest else float("inf"), dt)
    if dt.is_signed:
        return Const(-(1 << (dt.bits - 1)) if lowest else (1 << (dt.bits - 1)) - 1, dt)
    return Const(0 if lowest else (1 << dt.bits) - 1, dt)


# ---------------------------------------------------------------------------- user functions


def tile_operand(x, what: str, role: str) -> BufferRegion:
    """A shared / fragment / local tile (or a slice of one) as a region with constant extents."""
    if isinstance(x, Buffer) and x.is_var:
        raise CompileError(f"{what}: the {role} {x.name} is a T.alloc_var scalar; it must be a tile")
    if isinstance(x, (Expr, int, float)) and not isinstance(x, BufferLoad):
        raise CompileError(f"{what}: the {role} must be a buffer or a slice of one, got {x!r}")
    r = as_region(x, f"{what} {role}", allow_corner=False)
    if r.buffer.scope not in TILE_SCOPES:
        raise CompileError(
            f"{what}: the {role} {r.buffer.name} is a {r.buffer.scope} buffer; it must be a shared or "
            "fragment tile (T.copy a global tensor into one first)"
        )
    check_static_region(r, f"{what} {role}")
    return r


def _var_destination(src: BufferRegion, var: Buffer, what: str) -> BufferRegion:
    """A T.alloc_var scalar as the destination: TileLang 0.1.15 reduces into one only from a
    T.alloc_local tile (each thread reduces its own registers; it raises "Invalid buffer scopes"
    for a shared or fragment source). The scalar is a one-element region; the shape check that
    follows wants the reduced shape to be a single element too."""
    if src.buffer.scope != "local":
        raise CompileError(
            f"{what}: Invalid buffer scopes: {src.buffer.scope} and local.var (a T.alloc_var destination "
            f"takes a T.alloc_local source; reduce {src.buffer.name} into a fragment or a T.alloc_local tile)")
    return BufferRegion.full(var)


def static_dim(dim, ndim: int, what: str, name: str) -> int:
    """`dim` as a non-negative axis of an `ndim`-dimensional tile."""
    if isinstance(dim, Expr):
        v = simplify(dim)
        if not isinstance(v, Const):
            raise CompileError(f"{what}: dim must be a compile-time integer, got {dim}")
        dim = v.value
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise CompileError(f"{what}: dim must be an integer, got {dim!r}")
    if not -ndim <= dim < ndim:
        raise CompileError(f"{what}: dim={dim} is out of range for the {ndim}-D tile {name}")
    return dim % ndim


def static_flag(v, what: str, name: str) -> bool:
    if isinstance(v, Expr):
        raise CompileError(f"{what}: {name} must be a Python bool, not a device value {v}")
    return bool(v)


def reduce(buffer, out, reduce_type: str, dim: int = -1, clear: bool = True, batch: int = 1,
           nan_propagate: bool = False, annotations: dict | None = None) -> None:
    """Reduce `buffer` along `dim` into `out` with one of sum, abssum, max, min, absmax."""
    _reduce(buffer, out, reduce_type, dim, clear, "T.reduce", batch, nan_propagate, annotations)


# TileLang 0.1.15's `annotations=` keys of its reductions: `nan_propagate` (max / min / absmax) and
# `batch` are the keywords above; `enable_fadd2` switches SM100's packed float32x2 accumulation,
# which no tilewise target has, so either value gives the same (scalar) code.
ANNOTATION_KEYS = ("nan_propagate", "batch", "enable_fadd2")


def _annotated(annotations, what: str, batch, nan_propagate):
    """batch and nan_propagate with TileLang's annotations dict applied (a key given both ways
    must agree); an unknown key or a non-dict is a CompileError naming it."""
    if annotations is None:
        return batch, nan_propagate
    if not isinstance(annotations, dict):
        raise CompileError(f"{what}: annotations must be a dict, got {annotations!r}")
    for key, value in annotations.items():
        if key not in ANNOTATION_KEYS:
            raise CompileError(f"{what}: unknown annotation {key!r}; tilewise knows {', '.join(ANNOTATION_KEYS)}")
        if key == "enable_fadd2":
            static_flag(value, what, "enable_fadd2")
    if "batch" in annotations:
        batch = annotations["batch"] if batch == 1 else batch
    if "nan_propagate" in annotations:
        flag = static_flag(annotations["nan_propagate"], what, "nan_propagate")
        if nan_propagate and not flag:
            raise CompileError(f"{what}: nan_propagate=True and annotations {{'nan_propagate': False}} disagree")
        nan_propagate = flag
    return batch, nan_propagate


def static_batch(batch, what: str) -> int:
    """TileLang's `batch=`: a positive compile-time integer (ValueError otherwise, as there)."""
    if isinstance(batch, Expr):
        v = simplify(batch)
        batch = v.value if isinstance(v, Const) else batch
    if isinstance(batch, bool) or not isinstance(batch, int):
        raise CompileError(f"{what}: batch must be a compile-time integer, got {batch!r}")
    if batch < 1:
        raise ValueError(f"{what}: batch must be >= 1, got {batch}")
    return batch


def _reduce(buffer, out, reduce_type, dim, clear, what: str, batch=1, nan_propagate=False, annotations=None) -> None:
    require_kernel(what)
    if not isinstance(reduce_type, str) or reduce_type not in REDUCE_TYPES:
        raise CompileError(f"{what}: unknown reduce_type {reduce_type!r}; expected one of {', '.join(REDUCE_TYPES)}")
    batch, nan_propagate = _annotated(annotations, what, batch, nan_propagate)
    clear = static_flag(clear, what, "clear")
    batch = static_batch(batch, what)
    nan_propagate = static_flag(nan_propagate, what, "nan_propagate")
    src = tile_operand(buffer, what, "source")
    if isinstance(out, Buffer) and out.is_var:
        dst = _var_destination(src, out, what)
    else:
        dst = tile_operand(out, what, "destination")
    if src.buffer.root is dst.buffer.root:
        raise CompileError(f"{what}: the source and destination are the same buffer {src.buffer.name}")
    d = static_dim(dim, len(src.region), what, src.buffer.name)
    ext = list(src.extents)
    expected = ext[:d] + ext[d + 1:]
    if not extents_equal(squeezed(BufferRegion(src.buffer, [(0, e) for e in expected])), squeezed(dst)):
        raise CompileError(
            f"{what}: reducing {src.buffer.name} of shape {shape_str(ext)} along dim {d} gives shape "
            f"{shape_str(expected)}, but the destination {dst.buffer.name} has shape {shape_str(dst.extents)}"
        )
    dt = dst.buffer.dtype
    if reduce_type in BITWISE_TYPES:
        if not (dt.is_int or dt.is_bool) or not (src.buffer.dtype.is_int or src.buffer.dtype.is_bool):
            raise CompileError(
                f"{what}: a bitwise reduction needs integer or bool tiles, but {src.buffer.name} is "
                f"{src.buffer.dtype} and {dst.buffer.name} is {dt}")
    elif dt.is_bool or not (dt.is_float or dt.is_int):
        raise CompileError(f"{what}: the destination {dst.buffer.name} has type {dt}; it must be a number type")
    if not (src.buffer.dtype.is_float or src.buffer.dtype.is_int or src.buffer.dtype.is_bool):
        raise CompileError(f"{what}: the source {src.buffer.name} has type {src.buffer.dtype}")
    emit(Reduce(src, dst, reduce_type, d, clear, batch, nan_propagate))


def _kind(name: str):
    # TileLang's signatures: nan_propagate= only on max / min / absmax; abssum has no clear=
    if name in ("max", "min", "absmax"):
        def f(buffer, out, dim: int = -1, clear: bool = True, batch: int = 1, nan_propagate: bool = False,
              annotations: dict | None = None) -> None:
            _reduce(buffer, out, name, dim, clear, f"T.reduce_{name}", batch, nan_propagate, annotations)
        sig = "dim=-1, clear=True, batch=1, nan_propagate=False, annotations=None"
    else:
        def f(buffer, out, dim: int = -1, clear: bool = True, batch: int = 1, annotations: dict | None = None) -> None:
            _reduce(buffer, out, name, dim, clear, f"T.reduce_{name}", batch, annotations=annotations)
        sig = "dim=-1, clear=True, batch=1, annotations=None"

    f.__name__ = f"reduce_{name}"
    f.__qualname__ = f.__name__
    f.__doc__ = f"T.reduce_{name}(src, dst, {sig}): {name}-reduce src along dim into dst."
    return f


reduce_sum = _kind("sum")
reduce_abssum = _kind("abssum")
reduce_max = _kind("max")
reduce_min = _kind("min")
reduce_absmax = _kind("absmax")
reduce_bitand = _kind("bitand")
reduce_bitor = _kind("bitor")
reduce_bitxor = _kind("bitxor")
