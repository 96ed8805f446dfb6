"""Warp votes and block votes (language/warp_vote.py), with CUDA's semantics (CUDA C++ Programming
Guide, "Warp Vote Functions", "Warp Match Functions", "Synchronization Functions"):

- `vote_any` / `vote_all` (pred): 1 on every lane of the warp if any / all of its lanes' predicates
  are non-zero, else 0; `vote_ballot` (pred): bit i set when lane i's predicate is non-zero (uint64:
  a 64-lane AMD wavefront fills all of it, a CUDA warp the low 32 bits).
- `activemask`: bit i set when lane i of the warp executes the call (uint64 likewise).
- `match_any` (value): the lanes of the warp whose value has the same bits as this lane's;
  `match_all` (value): all lanes' bits if every lane has the same value, else 0 (uint32).
- `syncthreads_count / and / or` (pred): a `__syncthreads` of the block that also gives every thread
  the number of threads whose predicate is non-zero / whether all do / whether any does.

The warp votes and matches take a full member mask (language/warp_vote.py): every lane of the
warp must execute them (a DivergenceError otherwise, as for shuffles)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..ir.expr import Call
from . import calls
from .errors import UnsupportedError, where

if TYPE_CHECKING:
    from .compiler import Compiler


def _per_lane(st, v) -> np.ndarray:
    return np.broadcast_to(np.asarray(v), (st.L,))


def _bits(st, on: np.ndarray) -> np.ndarray:
    """Per lane: the uint64 bit mask of the lanes of its warp where `on` holds."""
    w = st.to_warps(on, fill=False)
    bits = (w.astype(np.uint64) << np.arange(st.warp, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)
    return bits[st.lane_warp]


def _active(st) -> np.ndarray:
    return np.ones(st.L, bool) if st.mask is None else st.mask


def _vote(comp: Compiler, e: Call):
    fp = comp.expr(e.args[0])
    span = comp.span
    kind = e.name
    what = {"vote_any": "__any_sync", "vote_all": "__all_sync", "vote_ballot": "__ballot_sync"}[kind]

    def vote(st):
        amd = st.warp != 32
        calls.full_warps(st, what, span, missing_ok=amd)
        active = _active(st)
        p = (_per_lane(st, fp(st)) != 0) & active
        yes = _bits(st, p)
        if kind == "vote_ballot":
            return yes
        if kind == "vote_any":
            return (yes != 0).astype(np.int32)
        return (yes == _bits(st, active)).astype(np.int32)

    return vote


def _activemask(comp: Compiler, e: Call):
    def activemask(st):
        return _bits(st, _active(st))

    return activemask


def _match(comp: Compiler, e: Call):
    fv = comp.expr(e.args[0])
    span = comp.span
    kind = e.name
    what = f"__{kind}_sync"
    width = e.args[0].dtype.bits
    view = np.uint32 if width <= 32 else np.uint64

    def match(st):
        calls.full_warps(st, what, span)
        v = np.ascontiguousarray(_per_lane(st, fv(st)))
        v = v.view(view) if v.dtype.itemsize == np.dtype(view).itemsize else v.astype(view)
        w = st.to_warps(v)
        same = w[:, :, None] == w[:, None, :]
        bits = (same.astype(np.uint64) << np.arange(st.warp, dtype=np.uint64)).sum(axis=2, dtype=np.uint64)
        if kind == "match_any":
            return st.from_warps(bits).astype(np.uint32)
        full = np.uint32((1 << st.warp) - 1)
        return np.where(same.all(axis=(1, 2))[st.lane_warp], full, np.uint32(0))

    return match


def _syncthreads_vote(comp: Compiler, e: Call):
    fp = comp.expr(e.args[0])
    span = comp.span
    kind = e.name
    barrier = calls._syncthreads(comp, Call("syncthreads", [], e.dtype))

    def block_vote(st):
        if st.unit is not None:
            raise UnsupportedError(f"__{kind} at {where(span)} in a warp-specialised kernel")
        if st.mask is not None and not st.mask.any():
            return np.zeros(st.L, np.int32)
        barrier(st)  # also raises DivergenceError when part of a block is missing
        p = (_per_lane(st, fp(st)) != 0) & _active(st)
        count = np.bincount(st.lane_block[p], minlength=st.nb)
        here = np.bincount(st.lane_block[_active(st)], minlength=st.nb)
        if kind == "syncthreads_count":
            out = count
        elif kind == "syncthreads_and":
            out = (count == here).astype(np.int64)
        else:
            out = (count > 0).astype(np.int64)
        return out[st.lane_block].astype(np.int32)

    return block_vote


HANDLERS = {
    "vote_any": _vote, "vote_all": _vote, "vote_ballot": _vote, "activemask": _activemask,
    "match_any": _match, "match_all": _match,
    "syncthreads_count": _syncthreads_vote, "syncthreads_and": _syncthreads_vote, "syncthreads_or": _syncthreads_vote,
}
