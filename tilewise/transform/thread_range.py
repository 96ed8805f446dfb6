"""Tile operators inside `if` on the thread index (TileLang's `tx = T.get_thread_binding()`,
`if tx < 128: T.copy(...)`): the operator runs on the threads the condition keeps, so it must be
spread over exactly those, not over the whole block with the rest masked off (which would leave
part of the tile undone). A condition that keeps a contiguous range of a one-dimensional block
(`tx < c`, `tx >= c`, both, `tx == c`) narrows the threads the operator is spread over; any
other condition on the thread index around a tile operator is an error."""
from __future__ import annotations

from ..errors import CompileError
from ..ir.expr import BinOp, Compare, Const, Var
from ..ir.stmt import Kernel
from ..ir.visitor import collect_vars
from .ranges import _FLIP, _NEG, narrow

INEXACT = "inexact"


def _conjuncts(cond, truth: bool) -> list[tuple]:
    """(condition, truth) pairs all of which hold when `cond == truth`."""
    if isinstance(cond, BinOp) and ((cond.op == "and" and truth) or (cond.op == "or" and not truth)):
        return _conjuncts(cond.a, truth) + _conjuncts(cond.b, truth)
    return [(cond, truth)]


def _is_range_bound(cond, truth: bool, tv: Var) -> bool:
    if not isinstance(cond, Compare):
        return False
    op, a, b = cond.op, cond.a, cond.b
    if isinstance(a, Const) and b is tv:
        op, a, b = _FLIP[op], b, a
    if a is not tv or not isinstance(b, Const):
        return False
    return (op if truth else _NEG[op]) in ("lt", "le", "gt", "ge", "eq")


def branch_threads(cond, truth: bool, kernel: Kernel, current: tuple[int, int]):
    """The thread range [lo, hi] of the branch taken when `cond == truth`, within `current`:
    `current` when the condition does not read the thread index, INEXACT when it does but does
    not keep a contiguous range."""
    tvars = set(kernel.thread_vars)
    used = [v for v in collect_vars(cond) if v in tvars]
    if not used:
        return current
    one_d = all(t == 1 for t in kernel.threads[1:])
    tv = kernel.thread_vars[0]
    ranges = {tv: current}
    for c, t in _conjuncts(cond, truth):
        if not any(v in tvars for v in collect_vars(c)):
            continue  # uniform over the block: it does not change who runs the operator
        if not one_d or not _is_range_bound(c, t, tv):
            return _complement(cond, truth, kernel, current)
        narrow(ranges, c, t)
    return ranges[tv]


def _complement(cond, truth: bool, kernel: Kernel, current: tuple[int, int]):
    """The else branch of a conjunction of bounds on the thread index (`elif tx >= 128 and tx <
    256:` leaves, after `if tx < 128:`, the threads from 256 up): what `current` keeps outside the
    range the conjunction keeps, when that is contiguous; INEXACT otherwise. Every conjunct must
    read the thread index (a uniform one would make the branch all of `current` or not)."""
    if truth or current == INEXACT:
        return INEXACT
    tvars = set(kernel.thread_vars)
    parts = _conjuncts(cond, True)
    if len(parts) < 2 or not all(any(v in tvars for v in collect_vars(c)) for c, _ in parts):
        return INEXACT
    kept = branch_threads(cond, True, kernel, current)
    if kept == INEXACT:
        return INEXACT
    lo, hi = current
    klo, khi = kept
    if klo > khi:  # the conjunction keeps none of them
        return current
    if klo <= lo:
        return (khi + 1, hi)
    if khi >= hi:
        return (lo, klo - 1)
    return INEXACT


def narrowed(kernel: Kernel, ranges: dict) -> tuple[int, int] | None:
    """The thread range the value ranges of a lowering pass keep, when narrower than the block."""
    if not all(t == 1 for t in kernel.threads[1:]):
        return None
    lo, hi = ranges.get(kernel.thread_vars[0], (0, kernel.threads[0] - 1))
    lo = 0 if lo is None else lo
    hi = kernel.threads[0] - 1 if hi is None else hi
    if (lo, hi) == (0, kernel.threads[0] - 1):
        return None
    return lo, hi


def not_a_range(what: str, span) -> CompileError:
    return CompileError(
        f"{what} inside an `if` on the thread index that does not keep a contiguous range of threads: "
        "a tile operator is spread over the threads that run it, so write the condition as "
        "`tx < c`, `tx >= c` or both (one-dimensional thread blocks), or move the operator out of the `if`",
        span)


def fragment_in_range(buf, span) -> CompileError:
    return CompileError(
        f"fragment {buf.name} is used by a tile operator inside an `if` on the thread index; a fragment is "
        "spread over all threads of the block, so use it outside the `if` (or copy it to shared memory first)",
        span)
