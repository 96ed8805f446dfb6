"""T.cumsum(src, dst=None, dim=0, reverse=False): inclusive prefix sum of a shared or fragment
tile along one dimension (a suffix sum with reverse=True). dst defaults to src (in place);
the running sum is kept in dst's dtype."""
from __future__ import annotations

import math

from ..errors import CompileError, InternalError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.builder import emit, require_kernel
from ..ir.expr import BufferLoad, Call, Const, Expr, Select, as_expr, cast
from ..ir.printer import shape_str
from ..ir.simplify import simplify, structural_equal
from ..ir.stmt import Allocate, BufferStore, Evaluate, For, IfThenElse, Stmt, seq
from . import cuda_common as cc
from .base import LowerContext, TileOp, lowering
from .reduce import init_value, loop_nest, static_dim, static_flag, tile_operand
from .region import corresponding_dim, extents_equal, region_indices, squeezed
from .scan_shuffle import shuffle_scan

SEG = 32  # TileLang's scan segment (tl_templates/cuda/scan.h): the order float sums are added in


def _segment_width(n: int) -> int:
    """Lanes of a segment for lines of n elements: SEG, or n's power of two when the line is
    shorter (the lanes past it never reach the valid lanes: forward they are above them, in
    reverse they hold the identity), as the CUDA shuffles' group (scan_shuffle.group_size)."""
    return min(SEG, 1 << max(0, (n - 1).bit_length()))


class CumSum(TileOp):
    op_name = "cumsum"
    _fields = ("src", "dst")

    def __init__(self, src: BufferRegion, dst: BufferRegion, dim: int, reverse: bool):
        self._init()
        self.src = src
        self.dst = dst
        self.dim = dim
        self.reverse = reverse

    def attrs(self) -> dict:
        return {"dim": self.dim, "reverse": self.reverse}

    def reads(self) -> list[BufferRegion]:
        return [self.src]

    def writes(self) -> list[BufferRegion]:
        return [self.dst]

    def remapped(self, old: TileOp) -> None:
        self.dim = corresponding_dim(old.src, self.src, old.dim)

    def combine(self, running: Expr, x: Expr) -> Expr:
        """The scan's operator (T.cummax overrides it)."""
        return running + x

    def identity(self, dt) -> Const:
        """The operator's identity in dst's type (what threads with no element contribute)."""
        return init_value("sum", dt)

    @lowering("loops")
    def lower_loops(self, ctx: LowerContext) -> Stmt:
        return self._scan(ctx, over_threads=False)

    def _scan(self, ctx: LowerContext, over_threads: bool) -> Stmt:
        """The scan as loops; with `over_threads`, the lines are spread over a CUDA block's
        threads, one thread scanning each line."""
        src, dst, dim = self.src, self.dst, self.dim
        ext = list(src.extents)
        n = ext[dim]
        nonunit = [i for i, e in enumerate(ext) if e != 1]
        kept = [i for i in nonunit if i != dim]
        before = [i for i in kept if i < dim]
        after = [i for i in kept if i > dim]

        def pos(k):
            return n - 1 - k if self.reverse else k

        def element_at(vars_: dict, e):
            """(src value, dst indices) of element e (in the tile's order) at the kept indices vars_."""
            s_idx = []
            for i, (s, _) in enumerate(src.region):
                off = e if i == dim else vars_.get(i)
                s_idx.append(simplify(s + off) if off is not None else s)
            d_idx = region_indices(dst, [e if i == dim else vars_[i] for i in nonunit])
            return cast(BufferLoad(src.buffer, s_idx), dst.buffer.dtype), d_idx

        def element(vars_: dict, k):
            """(src value, dst indices) at scan step k and the kept indices vars_."""
            return element_at(vars_, pos(k))

        in_place = src.buffer is dst.buffer and all(
            structural_equal(simplify(as_expr(a)), simplify(as_expr(b)))
            for (a, _), (b, _) in zip(src.region, dst.region)
        )

        # TileLang's scan combines every element with a carry, the identity before the first: a
        # float sum's first -0 becomes +0 (no prefix sum is ever -0), a max's first NaN becomes
        # -inf (max ignores NaN). Forward scans only here.
        carry_first = not self.reverse and dst.buffer.dtype.is_float

        def first(vars_: dict) -> Stmt | None:
            v, d_idx = element(vars_, 0)
            if carry_first:
                ident = self.identity(dst.buffer.dtype)
                if type(self) is CumSum:
                    # v + 0.0 as a select: the simplifier folds x + 0.0 to x, as TVM's does (and
                    # TileLang's `x + T.float16(0)` keeps -0), but the scan's carry is added
                    return BufferStore(dst.buffer, d_idx, Select(v == ident, ident, v))
                return BufferStore(dst.buffer, d_idx, self.combine(v, ident))
            if in_place:
                return None  # the first element is its own prefix sum
            return BufferStore(dst.buffer, d_idx, v)

        def step(vars_: dict, k: Expr) -> Stmt:
            v, d_idx = element(vars_, k)
            _, prev = element(vars_, k - 1)
            return BufferStore(dst.buffer, d_idx, self.combine(BufferLoad(dst.buffer, prev), v))

        if dst.buffer.dtype.is_float and n > 1 and not over_threads:
            # float sums round by their order: TileLang's (scan_shuffle.py), not the serial one
            bufs = self._segment_buffers([ext[i] for i in after], n)
            return seq([Allocate(bufs[0]), Allocate(bufs[1]), loop_nest(
                ctx, before, ext, lambda vb: self._segmented(ctx, vb, after, ext, n, element_at, bufs),
                innermost="serial")])
        if after and not over_threads:
            # The scan runs over the outer dimension: each step adds a whole (contiguous) row of
            # the previous result, element-wise, so the innermost loop vectorises.
            def outer(vb: dict) -> Stmt:
                k = ctx.fresh("k")
                head = loop_nest(ctx, after, ext, lambda va: first({**vb, **va}), innermost="parallel")
                body = loop_nest(ctx, after, ext, lambda va: step({**vb, **va}, k), innermost="parallel")
                return seq([head, For(k, 1, n - 1, "serial", body)])

            return loop_nest(ctx, before, ext, outer, innermost="serial")

        def row(vb: dict) -> Stmt:
            k = ctx.fresh("k")
            return seq([first(vb), For(k, 1, n - 1, "serial", step(vb, k))])

        if over_threads:
            if src.buffer.is_fragment or dst.buffer.is_fragment:
                raise InternalError("T.cumsum of a fragment reached the shared-memory scan", self.span)
            kept_ext = [ext[i] for i in kept]

            def line_element(kept_idx, e):
                v, d_idx = element_at(dict(zip(kept, kept_idx)), e)
                return v, dst.buffer, d_idx

            shuffled = shuffle_scan(self, ctx, line_element, self.identity(dst.buffer.dtype), kept_ext, n,
                                    self.reverse)
            if shuffled is not None:
                return shuffled
            if n == 1:
                return cc.chunk_loop(ctx, math.prod([ext[i] for i in kept]), lambda c: first(
                    dict(zip(kept, cc.unflatten(c, [ext[i] for i in kept])))) or seq([]))
            kept_ext = [ext[i] for i in kept]
            if dst.buffer.dtype.is_float:  # one thread per line, in the shuffles' order
                bufs = self._segment_buffers([], n)
                return seq([Allocate(bufs[0]), Allocate(bufs[1]), cc.chunk_loop(ctx, math.prod(kept_ext), lambda c: (
                    self._segmented(ctx, dict(zip(kept, cc.unflatten(c, kept_ext))), [], ext, n, element_at, bufs)))])
            return cc.chunk_loop(ctx, math.prod(kept_ext), lambda c: row(dict(zip(kept, cc.unflatten(c, kept_ext)))))
        if n == 1:
            return loop_nest(ctx, kept, ext, first, innermost="parallel") or seq([])
        return loop_nest(ctx, before, ext, row, innermost="serial")

    def _segment_buffers(self, after_ext: list[int], n: int) -> tuple[Buffer, Buffer]:
        """_segmented's registers: the segment's lanes and the carry, for each line scanned side by side."""
        dt = self.dst.buffer.dtype
        # two halves: each Hillis-Steele step reads one and writes the other, so that every step is
        # a forward loop without a dependence between its lanes, which g++ vectorises (in place, a
        # step had to visit its lanes backwards and stayed scalar: half the speed of the scan)
        return (Buffer("scan_seg", (2 * _segment_width(n), *after_ext), dt, "local"), Buffer("scan_carry", (1, *after_ext), dt, "local"))

    def _segmented(self, ctx: LowerContext, vb: dict, after: list[int], ext: list, n: int, element_at,
                   bufs: tuple[Buffer, Buffer]) -> Stmt:
        """The scan of the line(s) at the kept indices vb in TileLang's order of operations (the
        CUDA shuffles' of scan_shuffle.py, done by one thread): segments of SEG = 32 elements
        aligned at element 0, taken from the first (the last with reverse); in each, the
        Hillis-Steele scan of the SEG values (elements past the line's end are the identity),
        each then combined with the carry, which becomes the last (reverse: first) result. The
        dimensions `after` (those after the scanned one) are scanned side by side, element-wise
        in the innermost loops, so they vectorise."""
        tmp, carry = bufs
        identity = self.identity(self.dst.buffer.dtype)
        width = _segment_width(n)
        segments = -(-n // width)
        rev = self.reverse
        padded = segments * width > n

        def rows(make) -> Stmt:
            """make(va, after indices) inside loops over the `after` dimensions."""
            return loop_nest(ctx, after, ext, lambda va: make(va, [va[i] for i in after]), innermost="parallel")

        def t(lane, a, half=0):
            return BufferLoad(tmp, [lane + half * width, *a])

        s = ctx.fresh("s")
        seg = (segments - 1 - s) if rev else s

        def lanes(make) -> For:
            lv = ctx.fresh("l")
            return For(lv, 0, width, "serial", rows(lambda va, a: make(va, a, lv, simplify(seg * width + lv))))

        def load(va, a, lv, e):
            v, _ = element_at({**vb, **va}, e)
            store = BufferStore(tmp, [lv, *a], v)
            return IfThenElse(e < n, store, BufferStore(tmp, [lv, *a], identity)) if padded else store

        steps: list[Stmt] = [lanes(load)]
        d, cur = 1, 0
        while d < width:
            # step d: lane l takes its neighbour d lanes towards the segment's start (reverse: end)
            # added to it; the d lanes without such a neighbour keep their value
            src, dst = cur * width, (1 - cur) * width
            q, r = ctx.fresh("l"), ctx.fresh("l")
            kept = r + (width - d) if rev else r
            lane = q if rev else q + d
            other = q + d if rev else q

            def keep(va, a, kept=kept, src=src, dst=dst):
                return BufferStore(tmp, [kept + dst, *a], BufferLoad(tmp, [kept + src, *a]))

            def hs(va, a, lane=lane, other=other, src=src, dst=dst):
                return BufferStore(tmp, [lane + dst, *a],
                                   self.combine(BufferLoad(tmp, [other + src, *a]), BufferLoad(tmp, [lane + src, *a])))

            steps.append(For(r, 0, d, "serial", rows(keep)))
            steps.append(For(q, 0, width - d, "serial", rows(hs)))
            d, cur = d * 2, 1 - cur
        last = cur

        def finish(va, a, lv, e):
            _, d_idx = element_at({**vb, **va}, e)
            out = BufferStore(self.dst.buffer, d_idx, t(lv, a, last))
            return seq([BufferStore(tmp, [lv + last * width, *a], self.combine(BufferLoad(carry, [0, *a]), t(lv, a, last))),
                        IfThenElse(e < n, out) if padded else out])

        steps.append(lanes(finish))
        steps.append(rows(lambda va, a: BufferStore(carry, [0, *a], t(0 if rev else width - 1, a, last))))
        return seq([rows(lambda va, a: BufferStore(carry, [0, *a], identity)),
                    For(s, 0, segments, "serial", seq(steps))])

    @lowering("cuda")
    def lower_cuda(self, ctx) -> Stmt:
        """Shared tiles are scanned in place by threads taking whole lines. A line of a fragment
        is spread over threads, so fragment operands go through shared scratch tiles: every
        thread stores its registers, the lines are scanned there, and read back into registers."""
        src, dst = self.src, self.dst
        if not src.buffer.is_fragment and not dst.buffer.is_fragment:
            return self._scan(ctx, over_threads=True)
        scratch: dict = {}
        allocs: list = []

        def staged(r: BufferRegion) -> BufferRegion:
            b = r.buffer
            if not b.is_fragment:
                return r
            if b not in scratch:
                scratch[b] = Buffer(f"{b.name}_scan", b.shape, b.dtype, "shared.dyn", span=b.span)
                allocs.append(Allocate(scratch[b]))
            return BufferRegion(scratch[b], r.region)

        def sync() -> Stmt:
            return Evaluate(Call("syncthreads", [], _dt.handle))

        s2, d2 = staged(src), staged(dst)
        before, after = [], []
        if src.buffer.is_fragment:
            loc = ctx.local_buffer(src.buffer)
            before.append(cc.fragment_loop(ctx, src.buffer, lambda v, c: BufferStore(
                s2.buffer, c, BufferLoad(loc, [v])), writes_memory=True, region=src))
            before.append(sync())
        if dst.buffer.is_fragment:
            dloc = ctx.local_buffer(dst.buffer)
            after.append(sync())
            after.append(cc.fragment_loop(ctx, dst.buffer, lambda v, c: BufferStore(
                dloc, [v], BufferLoad(d2.buffer, c)), writes_memory=False, region=dst))
        # the scratch tiles are free again only when every thread is done with them
        after.append(sync())
        scan = type(self)(s2, d2, self.dim, self.reverse)._scan(ctx, over_threads=True)
        return seq(allocs + before + [scan] + after)



def cumsum(src, dst=None, dim: int = 0, reverse: bool = False) -> None:
    """Inclusive prefix sum of src along dim into dst (src itself when dst is None)."""
    emit(scan_operands(CumSum, "T.cumsum", src, dst, dim, reverse))


def scan_operands(op: type[CumSum], what: str, src, dst, dim, reverse) -> CumSum:
    """The scan `op` of src into dst (src itself when None) along dim, its operands checked."""
    require_kernel(what)
    reverse = static_flag(reverse, what, "reverse")
    s = tile_operand(src, what, "source")
    d = s if dst is None else tile_operand(dst, what, "destination")
    if not extents_equal(squeezed(s), squeezed(d)):
        raise CompileError(
            f"{what}: the source {s.buffer.name} has shape {shape_str(s.extents)} but the destination "
            f"{d.buffer.name} has shape {shape_str(d.extents)}"
        )
    for r, role in ((s, "source"), (d, "destination")):
        if not (r.buffer.dtype.is_float or r.buffer.dtype.is_int):
            raise CompileError(f"{what}: the {role} {r.buffer.name} has type {r.buffer.dtype}; it must be a number type")
    k = static_dim(dim, len(s.region), what, s.buffer.name)
    return op(s, d, k, reverse)
