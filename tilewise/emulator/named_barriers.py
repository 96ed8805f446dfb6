"""Named barriers (PTX ISA "bar / barrier"): `named_barrier(id, count)` is `bar.sync id, count`,
`named_barrier_arrive(id, count)` is `bar.arrive id, count`; `syncthreads` is barrier 0 with the
block's thread count when warps are scheduled (schedule.py; in lockstep it is calls.py's
`__syncthreads`).

Per block and barrier id (0-15) the state is the generation being filled: its count (set by the
first arrival; every arrival must name the same one), the threads that arrived and whether they
wait (bar.sync) or not (bar.arrive), and the lines they arrived at. Arrivals are by whole warps
(`bar` is `.aligned`: a warp arriving with only some of its threads active is a
DivergenceError). When `count` threads have arrived the generation completes: the waiting threads
go on, and the barrier orders shared-memory accesses: if every thread of the block took part
with bar.sync it is a `__syncthreads` (the race shadow forgets the block's accesses), otherwise
what each participant did before arriving is ordered before what the waiting threads do after
(order.py). More arrivals than the count (BarrierError), a `__syncthreads` generation completed
by threads at different `syncthreads` statements (DivergenceError: CUDA requires one
`__syncthreads` reached by every thread) and counts that are not a multiple of 32 or exceed the
block (BarrierError) are reported.

A bar.sync whose generation does not complete blocks its unit when warps are scheduled; when
nothing else can run, the report names the barrier, its count, who arrived and where the
missing threads are (finished: a divergent barrier; waiting elsewhere: a deadlock). In lockstep
the missing threads could only arrive later in program order, which lockstep execution cannot
wait for: DeadlockError."""
from __future__ import annotations

import numpy as np

from . import order, races, schedule
from .errors import BarrierError, DeadlockError, DivergenceError, UnsupportedError, where
from .hopper import active_lanes, block_name, values

IDS = 16


class NamedBarriers:
    def __init__(self, st):
        nb, T = st.nb, st.T
        self.T = T
        self.count = np.zeros((nb, IDS), np.int64)
        self.arrived = np.zeros((nb, IDS), np.int64)
        self.gen = np.zeros((nb, IDS), np.int64)
        self.who = np.zeros((nb, IDS, T), bool)
        self.waits = np.zeros((nb, IDS, T), bool)
        self.site = np.full((nb, IDS), -1, np.int64)  # the first arrival's site of the generation
        self.other = np.full((nb, IDS), -1, np.int64)  # a syncthreads arrival at another site
        self.syncthreads = np.zeros((nb, IDS), bool)  # some arrival was a syncthreads
        self.vec = None  # order.py release vectors [nb, IDS, T]

    def vectors(self, st) -> np.ndarray:
        if self.vec is None:
            self.vec = np.full((st.nb, IDS, order.width(st.T)), order.NOTHING, np.int32)
        return self.vec

    def reset(self, blocks, bid: int):
        self.count[blocks, bid] = 0
        self.arrived[blocks, bid] = 0
        self.who[blocks, bid] = False
        self.waits[blocks, bid] = False
        self.site[blocks, bid] = -1
        self.other[blocks, bid] = -1
        self.syncthreads[blocks, bid] = False
        if self.vec is not None:
            self.vec[blocks, bid] = order.NOTHING


def state(st) -> NamedBarriers:
    sync = st.sync
    if sync.named is None:
        sync.named = NamedBarriers(st)
    return sync.named


def _what(kind: str, bid, count) -> str:
    if kind == "syncthreads":
        return "__syncthreads()"
    return f"bar.{'sync' if kind == 'sync' else 'arrive'} {bid}, {count} ({'named_barrier' if kind == 'sync' else 'named_barrier_arrive'})"


def _whole_warps(st, lanes: np.ndarray, what: str, span):
    """bar is .aligned: every thread of a warp that executes it must."""
    m = np.zeros(st.L, bool)
    m[lanes] = True
    mw = st.to_warps(m, fill=False)
    exists = st.to_warps(np.ones(st.L, bool), fill=False)
    partial = mw.any(axis=1) & ((mw != exists).any(axis=1))
    if partial.any():
        w = int(np.flatnonzero(partial)[0])
        b, wib = divmod(w, st.warps_per_block)
        on = int(np.flatnonzero(mw[w])[0])
        off = int(np.flatnonzero(exists[w] & ~mw[w])[0])
        raise DivergenceError(
            f"{what} at {where(span)} is reached by {st.describe(b, wib * 32 + on)} but not by "
            f"{st.describe(b, wib * 32 + off)}: a barrier in divergent code deadlocks or misbehaves on the GPU "
            f"(bar.sync / bar.arrive are executed by whole warps)"
        )


def arrive(st, lanes: np.ndarray, bid: int, count: int, kind: str, sid: int, span):
    """Arrivals of `lanes` at barrier `bid` (kind "sync", "arrive" or "syncthreads"); returns the
    blocks whose generation the lanes wait for (with its number), or None."""
    what = _what(kind, bid, count)
    _whole_warps(st, lanes, what, span)
    nb_ = state(st)
    blocks = st.lane_block[lanes]
    tids = st.lane_tid[lanes]
    n = np.bincount(blocks, minlength=st.nb)
    bl = np.flatnonzero(n)
    cur = nb_.count[bl, bid]
    bad = (cur != 0) & (cur != count)
    if bad.any():
        b = int(bl[np.flatnonzero(bad)[0]])
        raise BarrierError(
            f"{what} at {where(span)} by {st.thread_of_lane(int(lanes[blocks == b][0]))} names {count} threads, but "
            f"barrier {bid} of {block_name(st, b)} already has arrivals counting {int(nb_.count[b, bid])} (at "
            f"{where(st.sites[int(nb_.site[b, bid])].span)})"
        )
    over = nb_.arrived[bl, bid] + n[bl] > count
    if over.any():
        b = int(bl[np.flatnonzero(over)[0]])
        raise BarrierError(
            f"{what} at {where(span)}: {int(n[b])} threads of {block_name(st, b)} arrive at barrier {bid}, which "
            f"{'already has ' + str(int(nb_.arrived[b, bid])) + ' arrivals and ' if nb_.arrived[b, bid] else ''}"
            f"counts {count} threads: more arrivals than its count ({st.thread_of_lane(int(lanes[blocks == b][0]))} "
            f"among them)"
        )
    nb_.count[bl, bid] = count
    first = nb_.site[bl, bid] < 0
    nb_.site[bl[first], bid] = sid
    if kind == "syncthreads":
        nb_.syncthreads[bl, bid] = True
    if kind == "syncthreads" or nb_.syncthreads[bl, bid].any():
        differs = (nb_.site[bl, bid] != sid) & (nb_.other[bl, bid] < 0)
        nb_.other[bl[differs], bid] = sid
    nb_.who[blocks, bid, tids] = True
    if kind != "arrive":
        nb_.waits[blocks, bid, tids] = True
    o = order.get(st) if (count == st.T and kind != "arrive") else order.enable(st)
    if o is not None:
        order.release(st, nb_.vectors(st)[:, bid], blocks, tids)
    nb_.arrived[bl, bid] += n[bl]
    gen0 = nb_.gen[bl, bid].copy()
    done = bl[nb_.arrived[bl, bid] == count]
    if done.size:
        _complete(st, nb_, done, bid, span)
    if kind == "arrive":
        return None
    return bl, gen0


def _complete(st, nb_: NamedBarriers, blocks: np.ndarray, bid: int, span):
    mixed = nb_.syncthreads[blocks, bid] & (nb_.other[blocks, bid] >= 0)
    if mixed.any():
        b = int(blocks[np.flatnonzero(mixed)[0]])
        s1, s2 = st.sites[int(nb_.site[b, bid])], st.sites[int(nb_.other[b, bid])]
        raise DivergenceError(
            f"divergent __syncthreads: the threads of {block_name(st, b)} meet at barrier {bid} from different "
            f"statements, {where(s1.span)} and {where(s2.span)}; every thread of a block must reach the same "
            f"__syncthreads (a barrier in divergent code deadlocks or misbehaves on the GPU)"
        )
    full = nb_.waits[blocks, bid].all(axis=1)
    if full.any():
        fb = blocks[full]
        races.block_barrier(st, fb)
    if nb_.vec is not None and (~full).any():
        pb = blocks[~full]
        bi, ti = np.nonzero(nb_.waits[pb, bid])
        order.acquire(st, nb_.vec[:, bid], pb[bi], ti)
    nb_.gen[blocks, bid] += 1
    nb_.reset(blocks, bid)


class BarSync(schedule.Blocker):
    kind = "barrier"

    def __init__(self, st, blocks, gen0, bid: int, count: int, what: str, span, lanes):
        self.st = st
        self.blocks = blocks
        self.gen0 = gen0
        self.bid = bid
        self.count = count
        self.what = what
        self.span = span
        self.lanes = lanes

    def ready(self) -> bool:
        return bool((state(self.st).gen[self.blocks, self.bid] > self.gen0).all())

    def ready_blocks(self):
        return state(self.st).gen[self.blocks, self.bid] > self.gen0

    def _pending_block(self) -> int:
        nb_ = state(self.st)
        return int(self.blocks[np.flatnonzero(nb_.gen[self.blocks, self.bid] == self.gen0)[0]])

    def divergent(self, sched) -> bool:
        """Threads this generation misses have finished, or wait at another __syncthreads."""
        b = self._pending_block()
        nb_ = state(self.st)
        missing = np.flatnonzero(~nb_.who[b, self.bid])
        for u in sched.units:
            if not ((missing >= u.lo) & (missing < u.hi)).any():
                continue
            if u.state == "done":
                return True
            other = u.blocker
            if (u.state == "blocked" and isinstance(other, BarSync) and other.bid == self.bid
                    and other.span is not self.span and "syncthreads" in (self.what + other.what)):
                return True
        return False

    def describe(self, sched) -> str:
        st = self.st
        b = self._pending_block()
        nb_ = state(st)
        who = nb_.who[b, self.bid]
        arrived = np.flatnonzero(who)
        missing = np.flatnonzero(~who)
        return (
            f"{self.what} at {where(self.span)} waits for {self.count} threads of {block_name(st, b)} at barrier "
            f"{self.bid}, but only {arrived.size} have arrived ({_ranges(arrived)}); the others "
            f"({_ranges(missing)}): {sched.unit_states(b, missing)}"
        )


def _ranges(tids: np.ndarray) -> str:
    if tids.size == 0:
        return "none"
    out = []
    start = prev = int(tids[0])
    for t in tids[1:].tolist() + [None]:
        if t is not None and t == prev + 1:
            prev = t
            continue
        out.append(f"thread {start}" if start == prev else f"threads {start}-{prev}")
        if t is not None:
            start = prev = t
    return ", ".join(out)


def _sync(st, lanes, bid: int, count: int, kind: str, sid: int, span):
    what = _what(kind, bid, count)
    res = arrive(st, lanes, bid, count, kind, sid, span)
    blocks, gen0 = res
    nb_ = state(st)
    pending = nb_.gen[blocks, bid] == gen0
    if not pending.any():
        return
    w = BarSync(st, blocks, gen0, bid, count, what, span, lanes)
    if st.sched is None:
        b = int(blocks[np.flatnonzero(pending)[0]])
        who = nb_.who[b, bid]
        raise DeadlockError(
            f"deadlock: {what} at {where(span)} waits for {count} threads of {block_name(st, b)} at barrier {bid}, "
            f"but only {int(who.sum())} have arrived ({_ranges(np.flatnonzero(who))}), and the kernel runs in "
            f"lockstep (no synchronisation under a condition that differs between threads, and "
            f"Kernel.attrs['warp_specialized'] is not set): the others cannot arrive before it returns"
        )
    schedule.wait(st, w)


# ------------------------------------------------------------------------------ intrinsics


def _ids(comp, e, what: str):
    if len(e.args) != 2:
        raise UnsupportedError(f"{what} takes (id, count), got {len(e.args)} arguments at {where(comp.span)}")
    return comp.expr(e.args[0]), comp.expr(e.args[1])


def _uniform(st, f, lanes, what: str, span) -> int:
    v = values(st, f, lanes)
    if (v != v[0]).any():
        k = int(np.flatnonzero(v != v[0])[0])
        raise BarrierError(f"{what} at {where(span)}: {st.thread_of_lane(int(lanes[k]))} passes {int(v[k])} but "
                           f"{st.thread_of_lane(int(lanes[0]))} passes {int(v[0])}; barrier ids and counts must agree")
    return int(v[0])


def _named(comp, e, kind: str):
    name = "named_barrier" if kind == "sync" else "named_barrier_arrive"
    fid, fcount = _ids(comp, e, name)
    span = comp.span
    sid = comp.prog.new_site(None, span, name).sid
    comp.prog.uses_order = True

    def named_barrier(st):
        lanes = active_lanes(st)
        if lanes.size == 0:
            return
        bid = _uniform(st, fid, lanes, f"{name} id", span)
        count = _uniform(st, fcount, lanes, f"{name} count", span)
        if not 0 <= bid < IDS:
            raise BarrierError(f"{name} at {where(span)}: barrier id {bid} is outside 0-{IDS - 1}")
        if count <= 0 or count % 32 or count > -(-st.T // 32) * 32:
            raise BarrierError(f"{name} at {where(span)}: a count of {count} threads is not a positive multiple of 32 "
                               f"up to the block's {st.T} threads")
        if kind == "sync":
            _sync(st, lanes, bid, count, kind, sid, span)
        else:
            arrive(st, lanes, bid, count, kind, sid, span)

    return named_barrier


def syncthreads_units(st, sid: int, span):
    """`__syncthreads` of a scheduled unit: barrier 0 for all the block's threads."""
    lanes = active_lanes(st)
    if lanes.size == 0:
        return
    _sync(st, lanes, 0, st.T, "syncthreads", sid, span)


HANDLERS = {
    "named_barrier": lambda comp, e: _named(comp, e, "sync"),
    "named_barrier_arrive": lambda comp, e: _named(comp, e, "arrive"),
}
