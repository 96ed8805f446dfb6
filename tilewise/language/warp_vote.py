"""TileLang 0.1.15's warp votes, warp matches and block votes, with its names, arguments and
result types:

- `T.any_sync(predicate, mask=0xffffffff)`, `T.all_sync(...)` -> int32 (1 / 0 on every lane);
- `T.ballot_sync(predicate, mask=0xffffffff)`, `T.ballot(predicate)` -> uint64 (bit i: lane i's
  predicate; a CUDA warp fills the low 32 bits, an AMD wavefront all 64);
- `T.activemask()` -> uint64 (the lanes executing it);
- `T.match_any_sync(value, mask=0xffffffff)` -> uint32 (the lanes holding the same value),
  `T.match_all_sync(value, mask=...)` -> uint32 (all lanes if they all hold the same value, else 0);
- `T.syncthreads_count(predicate)`, `T.syncthreads_and(...)`, `T.syncthreads_or(...)` -> int32: a
  `__syncthreads` of the block that also counts / ands / ors the predicate over its threads.

A predicate is an integer or boolean (a float is refused, as in TileLang); non-zero is true. They
become the thread-IR calls `vote_any`, `vote_all`, `vote_ballot`, `activemask`, `match_any`,
`match_all`, `syncthreads_count/and/or` (docs/THREAD_IR.md): `__any_sync` ... on CUDA, the AMD
builtins on HIP, and the emulator's implementation of CUDA's definitions (emulator/warp_vote.py).
As for shuffles, the warp operations are executed by the whole warp: the mask must name all 32
lanes (a partial mask is a CompileError). Using one makes the kernel a thread-level kernel, which
the CPU target runs thread-exactly in the emulator."""
from __future__ import annotations

from ..errors import CompileError, DtypeError
from ..ir import dtype as _dt
from ..ir.builder import require_kernel
from ..ir.expr import Call, Expr, const_value
from .loops import py_scalar
from .warp import FULL_MASK, _value


def _kernel(what: str) -> None:
    k = require_kernel(what)
    k.thread_binding_used = True  # a thread-level kernel (jit/kernel.py)


def _predicate(predicate, what: str) -> Expr:
    p = _value(predicate, what)
    if not (p.dtype.is_int or p.dtype.is_bool):
        # a TypeError, as TileLang's (DtypeError is also a CompileError)
        raise DtypeError(f"{what} requires an integer or boolean predicate, but got {p.dtype}")
    return p


def _full_mask(mask, what: str) -> None:
    m = py_scalar(mask)
    if isinstance(m, Expr):
        m = const_value(m)
    if isinstance(m, int) and m & FULL_MASK == FULL_MASK:
        return
    raise CompileError(
        f"{what}: mask {mask} names only part of the warp; tilewise's warp votes are executed by all 32 lanes "
        "(mask 0xffffffff) — restructure the code so that the whole warp votes")


def _warp_vote(name: str, what: str, dtype, predicate, mask) -> Call:
    # the argument's type is checked first: a float predicate is wrong wherever the call is written
    p = _predicate(predicate, what)
    _kernel(what)
    _full_mask(mask, what)
    return Call(name, [p], dtype)


def any_sync(predicate, mask=FULL_MASK) -> Call:
    """1 on every lane if any lane's predicate is non-zero, else 0 (`__any_sync`)."""
    return _warp_vote("vote_any", "T.any_sync", _dt.int32, predicate, mask)


def all_sync(predicate, mask=FULL_MASK) -> Call:
    """1 on every lane if every lane's predicate is non-zero, else 0 (`__all_sync`)."""
    return _warp_vote("vote_all", "T.all_sync", _dt.int32, predicate, mask)


def ballot_sync(predicate, mask=FULL_MASK) -> Call:
    """The lanes whose predicate is non-zero, as a uint64 bit mask (`__ballot_sync`)."""
    return _warp_vote("vote_ballot", "T.ballot_sync", _dt.uint64, predicate, mask)


def ballot(predicate) -> Call:
    """T.ballot_sync with the full warp."""
    return _warp_vote("vote_ballot", "T.ballot", _dt.uint64, predicate, FULL_MASK)


def activemask() -> Call:
    """The lanes of the warp executing this call, as a uint64 bit mask (`__activemask`)."""
    _kernel("T.activemask")
    return Call("activemask", [], _dt.uint64)


def _match(name: str, what: str, value, mask) -> Call:
    _kernel(what)
    _full_mask(mask, what)
    v = _value(value, what)
    if v.dtype.bits not in (32, 64) or not (v.dtype.is_int or v.dtype.kind == "float"):
        raise CompileError(f"{what}: the value must be a 32- or 64-bit integer or float, got {v.dtype}")
    return Call(name, [v], _dt.uint32)


def match_any_sync(value, mask=FULL_MASK) -> Call:
    """The lanes whose value has the same bits as this lane's (`__match_any_sync`, sm_70+)."""
    return _match("match_any", "T.match_any_sync", value, mask)


def match_all_sync(value, mask=FULL_MASK) -> Call:
    """All lanes (0xffffffff) if every lane holds the same value, else 0 (`__match_all_sync`)."""
    return _match("match_all", "T.match_all_sync", value, mask)


def _block_vote(name: str, predicate) -> Call:
    what = f"T.{name}"
    p = _predicate(predicate, what)
    _kernel(what)
    return Call(name, [p], _dt.int32)


def syncthreads_count(predicate) -> Call:
    """__syncthreads(), then the number of the block's threads whose predicate is non-zero."""
    return _block_vote("syncthreads_count", predicate)


def syncthreads_and(predicate) -> Call:
    """__syncthreads(), then 1 if every thread's predicate is non-zero, else 0."""
    return _block_vote("syncthreads_and", predicate)


def syncthreads_or(predicate) -> Call:
    """__syncthreads(), then 1 if any thread's predicate is non-zero, else 0."""
    return _block_vote("syncthreads_or", predicate)
