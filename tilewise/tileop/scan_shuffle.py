"""CUDA: the cross-thread phase of T.cumsum / T.cummax on a shared tile, as warp shuffles.

Each line (the elements along the scanned dimension, at one index of the other dimensions) is
taken by a group of g threads, g a power of two: a warp segment of g lanes when g <= 32, else
g / 32 whole warps. Lines are dealt to groups in rounds. A warp (segment) of w = min(g, 32) lanes
walks its part of the line w elements at a time, lane l taking element j * w + l of its part (the
w lanes read consecutive elements: no bank conflicts):

  1. Hillis-Steele inclusive scan of the w values with `shfl_up` (log2 w steps), combined with the
     carry of the chunks before; the carry of the next chunk is lane w - 1's result (`shfl_idx`).
  2. When a line spans several warps (g > 32), each warp's part is scanned by 1. into dst; the
     last lane of each warp writes the warp's total to shared memory (double-buffered by round
     parity, so one barrier per round suffices), and after the barrier every thread combines the
     totals of the warps before it in its line (an exclusive prefix over at most g / 32 - 1
     values) into its elements of dst.

The warp width is the target's (ir/machine.py): 32 below stands for 64 on AMD GPUs, whose
wavefronts shuffle 64 lanes.

Blocks whose thread count is not a multiple of 32 (a shuffle needs all 32 lanes of a warp) keep
the serial scan: one thread per line (cumsum.py)."""
from __future__ import annotations

import math

from ..ir import dtype as _dt
from ..ir.buffer import Buffer
from ..ir.expr import BufferLoad, Call, Const, Expr, Select, logical_and
from ..ir.simplify import simplify
from ..ir.stmt import Allocate, BufferStore, Evaluate, For, IfThenElse, Stmt, seq
from ..ir.visitor import substitute
from . import cuda_common as cc


def _pow2_floor(x: int) -> int:
    return 1 << (max(1, x).bit_length() - 1)


def _pow2_ceil(x: int) -> int:
    return 1 << max(0, (x - 1).bit_length())


def group_size(threads: int, lines: int, n: int, warp: int = 32) -> int:
    """Threads per line: as many as the line can use (n rounded up to a power of two), at most a
    warp when there are enough lines to keep every warp busy, at most the block."""
    per_line = max(warp, _pow2_floor(threads // max(lines, 1)))
    return max(1, min(_pow2_floor(threads), _pow2_ceil(n), per_line))


def _chunk_loop(j, chunks: int, body: Stmt) -> For:
    """A loop over a warp's chunks, kept rolled (`#pragma unroll 1`) past two: unrolled, ptxas
    interleaves the chunks' shuffles and spills long-lived values of the kernel around them."""
    if chunks <= 2:
        return For(j, 0, chunks, "unroll", body)
    return For(j, 0, chunks, "serial", body, annotations={"unroll": 1})


def shuffle_scan(op, ctx, element, identity: Const, kept_ext: list[int], n: int) -> Stmt | None:
    """The scan of `op` over the block's threads, or None when the block cannot shuffle.
    element(kept_indices, k) gives (src value in dst's type, dst buffer, dst indices) of element k
    of the line at kept_indices (reverse already applied)."""
    T = ctx.threads
    span = ctx.thread_span
    WARP = ctx.machine.warp_size  # noqa: N806 - the warp (or wavefront) width of the target
    if T % WARP or (span is not None and span[0] % WARP) or n <= 1:
        return None
    lines = math.prod(kept_ext)
    g = group_size(T, lines, n, WARP)
    w = min(g, WARP)
    warps_per_line = g // w if g > WARP else 1
    per_round = T // g
    rounds = -(-lines // per_round)
    chunks = -(-n // g)  # chunks of w elements per warp part: a part is chunks * w elements
    dt = identity.dtype
    tid = ctx.thread
    ranges = dict(ctx.ranges)
    lane = simplify(tid % w, ranges)
    slot = simplify(tid // g, ranges)
    warp_in_line = simplify((tid % g) // WARP, ranges) if warps_per_line > 1 else None

    x = Buffer("scan_x", (1,), dt, "local")
    carry = Buffer("scan_carry", (1,), dt, "local")
    up = Buffer("scan_up", (1,), dt, "local")
    allocs: list[Stmt] = [Allocate(x), Allocate(carry), Allocate(up)]

    def ld(b):
        return BufferLoad(b, [Const(0, _dt.int32)])

    def st(b, v):
        return BufferStore(b, [Const(0, _dt.int32)], v)

    def shfl(name: str, v: Expr, arg: int) -> Call:
        return Call(name, [v, Const(arg, _dt.int32)], dt, {"width": w})

    r = ctx.fresh("r")
    line = simplify(r * per_round + slot, {**ranges, r: (0, rounds - 1)})
    kept_idx = cc.unflatten(line, kept_ext) if kept_ext else []
    line_ok = line < lines if rounds * per_round > lines or T % g else None
    if T % g:  # threads past the last whole group hold no line
        line_ok = logical_and(line_ok, slot < per_round) if line_ok is not None else slot < per_round

    def guard(cond, s: Stmt) -> Stmt:
        return s if cond is None else IfThenElse(cond, s)

    def both(a, b):
        if a is None:
            return b
        return a if b is None else logical_and(a, b)

    j = ctx.fresh("j")
    k = simplify((warp_in_line * (chunks * w) if warp_in_line is not None else 0) + j * w + lane,
                 {**ranges, j: (0, chunks - 1)})
    k_ok = k < n if warps_per_line * chunks * w > n else None
    ok = both(line_ok, k_ok)
    value, dbuf, d_idx = element(kept_idx, k)
    body = [st(x, value) if ok is None else IfThenElse(ok, st(x, value), st(x, identity))]
    d = 1
    while d < w:  # Hillis-Steele: after step d every lane holds the scan of its last 2d values
        body.append(st(up, shfl("shfl_up", ld(x), d)))
        # a select, not a branch: no divergence between the shuffles
        body.append(st(x, Select(lane >= d, op.combine(ld(up), ld(x)), ld(x))))
        d *= 2
    body.append(st(x, op.combine(ld(carry), ld(x))))
    body.append(guard(ok, BufferStore(dbuf, d_idx, ld(x))))
    body.append(st(carry, shfl("shfl_idx", ld(x), w - 1)))
    per_chunk = seq(body)
    round_body = [st(carry, identity),
                  _chunk_loop(j, chunks, per_chunk)]
    after: list[Stmt] = []
    if warps_per_line > 1:
        # one shared-memory round across the warps of a line: warp totals -> exclusive prefix -> add
        nw = T // WARP
        tot = Buffer("scan_warp_totals", (2 * nw,), dt, "shared.dyn")
        allocs.append(Allocate(tot))
        parity = simplify(r % 2, {**ranges, r: (0, rounds - 1)})
        warp = simplify(tid // WARP, ranges)
        round_body.append(IfThenElse(tid % WARP == WARP - 1, BufferStore(tot, [parity * nw + warp], ld(carry))))
        round_body.append(Evaluate(Call("syncthreads", [], _dt.handle)))
        q = ctx.fresh("q")
        round_body.append(st(up, identity))
        round_body.append(For(q, 0, warps_per_line - 1, "unroll", IfThenElse(
            q < warp_in_line,
            st(up, op.combine(ld(up), BufferLoad(tot, [parity * nw + slot * warps_per_line + q]))))))
        j2 = ctx.fresh("j")
        k2 = simplify(warp_in_line * (chunks * w) + j2 * w + lane, {**ranges, j2: (0, chunks - 1)})
        ok2 = both(both(line_ok, k2 < n if warps_per_line * chunks * w > n else None), warp_in_line > 0)
        _, dbuf2, d_idx2 = element(kept_idx, k2)
        fix = BufferStore(dbuf2, d_idx2, op.combine(ld(up), BufferLoad(dbuf2, d_idx2)))
        round_body.append(_chunk_loop(j2, chunks, guard(ok2, fix)))
        # the totals' buffers are written again by this operator's next use
        after.append(Evaluate(Call("syncthreads", [], _dt.handle)))
    if rounds > 1:
        loop = For(r, 0, rounds, "serial", seq(round_body))
    else:
        loop = substitute(seq(round_body), {r: Const(0, _dt.int32)})
    return seq(allocs + [loop] + after)
