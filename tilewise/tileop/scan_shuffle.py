"""CUDA: the cross-thread phase of T.cumsum / T.cummax on a shared tile, as warp shuffles, in
TileLang's order of operations (tl_templates/cuda/scan.h, InclusiveScanLine), so float sums
round exactly as TileLang's do:

Each line (the elements along the scanned dimension, at one index of the other dimensions) is
taken by a group of g threads, g a power of two of at most a warp: a whole warp per line, as
TileLang, or for lines of at most 16 elements a warp segment of g >= n lanes (several lines per
warp; the results are the same as a whole warp's, whose extra lanes hold the identity). Lines are
dealt to groups in rounds. The line is cut into segments of w = g lanes aligned at element 0;
they are scanned from the first (from the last with reverse=True), lane l taking element
segment * w + l (consecutive elements: no bank conflicts), lanes past the line's end holding the
identity:

  1. Hillis-Steele inclusive scan of the w values (log2 w steps: `shfl_up`, `shfl_down` in
     reverse), then combined with the carry of the segments before;
  2. the carry of the next segment is the result of lane w - 1 (lane 0 in reverse; `shfl_idx`).

A line is never spread over several warps (TileLang does not either): the exchange of warp
totals would add the segments' sums in another order. The CPU (cumsum.py `_segmented`) adds
float sums in this same order.

The warp width is the target's (ir/machine.py): 32 below stands for 64 on AMD GPUs, whose
wavefronts shuffle 64 lanes (TileLang's HIP scan keeps segments of 32, so there its float sums
round differently).

Blocks whose thread count is not a multiple of 32 (a shuffle needs all 32 lanes of a warp) keep
the serial scan: one thread per line (cumsum.py)."""
from __future__ import annotations

import math

from ..ir import dtype as _dt
from ..ir.buffer import Buffer
from ..ir.expr import BufferLoad, Call, Const, Expr, Select, logical_and
from ..ir.simplify import simplify
from ..ir.stmt import Allocate, BufferStore, For, IfThenElse, Stmt, seq
from ..ir.visitor import substitute
from . import cuda_common as cc


def _pow2_floor(x: int) -> int:
    return 1 << (max(1, x).bit_length() - 1)


def _pow2_ceil(x: int) -> int:
    return 1 << max(0, (x - 1).bit_length())


def group_size(threads: int, lines: int, n: int, warp: int = 32) -> int:
    """Threads per line: n rounded up to a power of two, at most a warp (and at most the block).
    `lines` does not matter any more (a line never spans warps) but stays for the callers."""
    return max(1, min(_pow2_floor(threads), _pow2_ceil(n), warp))


def _chunk_loop(j, chunks: int, body: Stmt) -> For:
    """A loop over a warp's chunks, kept rolled (`#pragma unroll 1`) past two: unrolled, ptxas
    interleaves the chunks' shuffles and spills long-lived values of the kernel around them."""
    if chunks <= 2:
        return For(j, 0, chunks, "unroll", body)
    return For(j, 0, chunks, "serial", body, annotations={"unroll": 1})


def shuffle_scan(op, ctx, element, identity: Const, kept_ext: list[int], n: int, reverse: bool) -> Stmt | None:
    """The scan of `op` over the block's threads, or None when the block cannot shuffle.
    element(kept_indices, e) gives (src value in dst's type, dst buffer, dst indices) of element e
    (in the tile's own order) of the line at kept_indices."""
    T = ctx.threads
    span = ctx.thread_span
    WARP = ctx.machine.warp_size  # noqa: N806 - the warp (or wavefront) width of the target
    if T % WARP or (span is not None and span[0] % WARP) or n <= 1:
        return None
    lines = math.prod(kept_ext)
    w = group_size(T, lines, n, WARP)  # lanes per line (divides the warp, so the block)
    per_round = T // w
    rounds = -(-lines // per_round)
    segments = -(-n // w)
    dt = identity.dtype
    tid = ctx.thread
    ranges = dict(ctx.ranges)
    lane = simplify(tid % w, ranges)
    slot = simplify(tid // w, ranges)

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
    line_ok = line < lines if rounds * per_round > lines else None

    j = ctx.fresh("j")
    seg = (segments - 1 - j) if reverse else j
    e = simplify(seg * w + lane, {**ranges, j: (0, segments - 1)})
    e_ok = e < n if segments * w > n else None
    ok = e_ok if line_ok is None else (line_ok if e_ok is None else logical_and(line_ok, e_ok))
    value, dbuf, d_idx = element(kept_idx, e)
    body = [st(x, value) if ok is None else IfThenElse(ok, st(x, value), st(x, identity))]
    d = 1
    while d < w:  # Hillis-Steele: after step d every lane holds the scan of its 2d nearest values
        body.append(st(up, shfl("shfl_down" if reverse else "shfl_up", ld(x), d)))
        # a select, not a branch: no divergence between the shuffles
        has = lane < w - d if reverse else lane >= d
        body.append(st(x, Select(has, op.combine(ld(up), ld(x)), ld(x))))
        d *= 2
    body.append(st(x, op.combine(ld(carry), ld(x))))
    body.append(BufferStore(dbuf, d_idx, ld(x)) if ok is None else IfThenElse(ok, BufferStore(dbuf, d_idx, ld(x))))
    body.append(st(carry, shfl("shfl_idx", ld(x), 0 if reverse else w - 1)))
    round_body = seq([st(carry, identity), _chunk_loop(j, segments, seq(body))])
    if rounds > 1:
        loop = For(r, 0, rounds, "serial", round_body)
    else:
        loop = substitute(round_body, {r: Const(0, _dt.int32)})
    return seq(allocs + [loop])
