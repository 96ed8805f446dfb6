"""mbarriers (PTX ISA "Parallel Synchronization and Communication Instructions: mbarrier"):
`mbarrier_init`, `mbarrier_arrive`, `mbarrier_arrive_expect_tx`, `mbarrier_wait` (try_wait.parity
in a loop), `fence_barrier_init`, the TMA transfers that complete on a barrier, and
`cp_async_mbarrier_arrive` (`cp.async.mbarrier.arrive{.noinc}`): an arrival triggered when all
earlier cp.async copies of the executing thread have landed. Without .noinc the pending count is
incremented when the instruction executes, so the triggered arrival changes it by nothing (the
thread still arrives itself); with .noinc it is not, so the triggered arrival is one of the
phase's expected arrivals. Like TMA transfers, the tracked copies land (and the arrival happens)
only when a wait needs the barrier's phase: reading their destination before that wait is
reported as a read of a cp.async copy in flight.

State per barrier (a uint64 of shared memory, per block): the current phase (its parity is what a
wait names), pending and expected arrivals, and the tx-count. A phase completes when pending
arrivals and tx-count are both zero; the phase then advances and pending is reset to expected.
`try_wait.parity p` is true when the phase with parity p has completed, i.e. when the current
phase's parity differs from p (the ISA allows only the current and the immediately preceding
phase to be named, so parity is enough).

A wait whose phase has not completed lets the TMA transfers in flight on that barrier land first
(their bytes reach shared memory and the tx-count drops by them; transfers complete only when a
wait needs them, which is one legal order of an asynchronous copy). If the phase still has not
completed:
- when warps are scheduled (schedule.py) the unit blocks until it has; when no unit can run any
  more the scheduler reports the wait (barrier, phase and parity, waiting threads, what the phase
  lacks, the line);
- in lockstep (kernels without warp-divergent synchronisation) nothing executed later can arrive
  before the wait returns: DeadlockError names the barrier, its phase, the arrivals and bytes it
  lacks and the waiting statement.

Checks besides deadlocks (MbarrierError): use before init, a plain store over a live barrier
(the init writes a token into the barrier's 8 bytes and every operation checks it), more
arrivals than the phase expects in one statement, a thread arriving twice on one phase, a count
or parity outside the ISA's range, several threads initialising one barrier at once, a TMA copy
on a barrier whose init no fence_barrier_init (or fence_proxy_async) has followed, a phase whose
arrivals are complete while its tx-count is negative (the copies brought more bytes than
expect_tx announced: a wrong byte count), and a wait whose phase is ambiguous: each thread's
waits on a barrier are taken to be for successive phases of the named parity (the first phase
after the last one the thread saw complete, or the current phase when it starts waiting; when
warps are scheduled a thread's first wait since the init is for phase 0, or for the phase before
it with parity 1), and a wait is reported when the barrier has completed that phase and the next
one before the wait returns, so that its parity names a later phase (the barrier ran two phases
ahead of the waiter).
A phase that waits for bytes no copy in flight will bring (expect_tx too large, or a copy never
issued) is reported when nothing else can run.

With the race checks on, an init is a write and every other operation a read of the barrier's
bytes, so a use by another thread with no __syncthreads after the init is a RaceError. Phases
also order shared-memory accesses (order.py): an arrival releases what the arriving thread did
before it, a TMA load landing what its issuer did before issuing it (its bytes count as written
by the issuer), and a wait that returns acquires the phase it returned for. Re-initialising a
barrier with no transfer in flight on it is allowed (as if invalidated first)."""
from __future__ import annotations

import numpy as np

from . import async_proxy, order, races, schedule
from .errors import DeadlockError, MbarrierError, element_str, where
from .hopper import active_lanes, address, block_name, lane_offsets, state, values

MAX_COUNT = (1 << 20) - 1
MAGIC = 0x6D62_6172_0000_0000  # "mbar" in the high half of the token the init writes
NONE = -1
UNSEEN = np.iinfo(np.int64).min  # a thread that has not waited on the barrier since its init
FIRST = -2  # what a first wait is taken to follow when warps are scheduled


class BarrierRow:
    """The barrier at one byte offset of one shared root, for every block of the batch."""

    def __init__(self, storage, off: int, nb: int, L: int, buffer):
        self.storage = storage
        self.off = off
        self.buffer = buffer  # a view naming the barrier in messages
        self.inited = np.zeros(nb, bool)
        self.fenced = np.zeros(nb, bool)
        self.phase = np.zeros(nb, np.int64)
        self.pending = np.zeros(nb, np.int64)
        self.expected = np.zeros(nb, np.int64)
        self.tx = np.zeros(nb, np.int64)
        self.token = np.zeros(nb, np.uint64)
        self.init_site = np.full(nb, NONE, np.int64)
        self.arrive_site = np.full(nb, NONE, np.int64)
        self.seen = np.full(L, UNSEEN, np.int64)  # per lane: the last phase its wait returned for
        self.arrived = np.full(L, NONE, np.int64)  # per lane: the phase it last arrived on
        self.acc = None  # order.py vectors [nb, T]: releases into the phase being filled
        self.pub = None  # ... and into the phase that completed last

    def vectors(self, st):
        if self.acc is None:
            self.acc = order.new_vector(st)
            self.pub = order.new_vector(st)
        return self.acc

    def name(self, st, block: int) -> str:
        b = self.buffer
        shape = b.static_shape() or (b.numel(),)
        elem = element_str(b.name, shape, (self.off - b.byte_offset) // b.dtype.bytes)
        return f"mbarrier {elem} ({self.storage.name} byte {self.off}) of {block_name(st, block)}"

    def complete(self, blocks: np.ndarray):
        """Advance the phase of the blocks whose phase has all its arrivals and bytes."""
        done = self.inited[blocks] & (self.pending[blocks] == 0) & (self.tx[blocks] == 0)
        b = blocks[done]
        self.phase[b] += 1
        self.pending[b] = self.expected[b]
        if self.acc is not None and b.size:
            self.pub[b] = self.acc[b]
            self.acc[b] = order.NOTHING

    def check_tx(self, st, blocks: np.ndarray, span, what: str):
        """A phase with all its arrivals and a negative tx-count can never complete: the TMA
        copies brought more bytes than expect_tx announced."""
        bad = self.inited[blocks] & (self.pending[blocks] == 0) & (self.tx[blocks] < 0)
        if bad.any():
            b = int(blocks[np.flatnonzero(bad)[0]])
            tx = int(self.tx[b])
            raise MbarrierError(
                f"wrong expect_tx byte count: phase {int(self.phase[b])} of {self.name(st, b)} has all its "
                f"{int(self.expected[b])} arrivals but a tx-count of {tx}: the TMA copies completed {-tx} bytes more "
                f"than expect_tx announced ({what} {where(span)}); the phase can never complete"
            )


class CpArrival:
    """A cp_async_mbarrier_arrive of `lanes` (blocks `blocks`) whose arrival waits for their
    copies issued before serial `upto` (asyncq.py). `seq` / `snap`: the order.py sequence number
    and release vector of the arriving threads at the statement (None without race checks)."""

    def __init__(self, row: BarrierRow, lanes, blocks, noinc: bool, upto: int, seq, snap, sid: int, span):
        self.row = row
        self.lanes = lanes
        self.blocks = blocks
        self.noinc = noinc
        self.upto = upto
        self.seq = seq
        self.snap = snap
        self.sid = sid
        self.span = span


class Transfer:
    """Bytes of TMA loads in flight on one barrier: row i goes to flat byte indices flat[i] of
    `storage` (already swizzled) and completes `nbytes` transactions of block blocks[i]. `seq`
    is the issue's sequence number (order.py) when the batch orders threads."""

    def __init__(self, row: BarrierRow, storage, blocks, tids, flat, data, sid: int, span, seq=None):
        self.seq = seq
        self.row = row
        self.storage = storage
        self.blocks = blocks
        self.tids = tids
        self.flat = flat
        self.data = data
        self.sid = sid
        self.span = span

    @property
    def nbytes(self) -> int:
        return self.data.shape[1]


# ------------------------------------------------------------------------------ lookups


def _groups(st, acc, lanes, what):
    """(row offset, lanes) for each barrier the lanes address, with the lanes' barrier offsets
    checked (8 bytes, 8-byte aligned, inside the buffer)."""
    off = lane_offsets(st, acc, lanes, 8, 8, what)
    storage = st.store[acc.slot]
    for o in np.unique(off):
        yield storage, int(o), lanes[off == o]


def row_of(st, storage, off: int, buffer) -> BarrierRow:
    hs = state(st)
    key = (id(storage), off)
    row = hs.barriers.get(key)
    if row is None:
        row = BarrierRow(storage, off, st.nb, st.L, buffer)
        hs.barriers[key] = row
    return row


def _shadow(st, storage, off, lanes, sid, write: bool):
    if storage.shadow is None:
        return
    flat = (st.lane_block[lanes] * storage.data.shape[1] + off)[:, None] + np.arange(8)
    tids = np.repeat(st.lane_tid[lanes], 8)
    if write:
        races.on_write(st, storage, flat.reshape(-1), tids, sid)
    else:
        races.on_read(st, storage, flat.reshape(-1), tids, sid)


def live(st, row: BarrierRow, lanes: np.ndarray, what: str, span):
    """Check that the barrier is initialised and intact for the blocks of `lanes`."""
    blocks = st.lane_block[lanes]
    bad = ~row.inited[blocks]
    if bad.any():
        lane = int(lanes[np.flatnonzero(bad)[0]])
        raise MbarrierError(
            f"{what} at {where(span)} by {st.thread_of_lane(lane)} uses {row.name(st, int(st.lane_block[lane]))} "
            f"before any mbarrier_init of it"
        )
    cur = row.storage.typed(np.uint64)[blocks, row.off // 8]
    bad = cur != row.token[blocks]
    if bad.any():
        lane = int(lanes[np.flatnonzero(bad)[0]])
        b = int(st.lane_block[lane])
        init = st.sites[int(row.init_site[b])]
        raise MbarrierError(
            f"{what} at {where(span)} by {st.thread_of_lane(lane)} uses {row.name(st, b)}, whose 8 bytes were "
            f"overwritten by a plain store after its mbarrier_init at {where(init.span)} (a barrier's memory may only "
            f"be used by mbarrier operations until it is invalidated)"
        )


# ------------------------------------------------------------------------------ intrinsics


def _init(comp, e):
    bar = address(comp, e.args[0], "mbarrier init", "shared")
    fcount = comp.expr(e.args[1])
    span, sid = comp.span, bar.site.sid
    comp.prog.uses_hopper = True

    def mbarrier_init(st):
        lanes = active_lanes(st)
        if lanes.size == 0:
            return
        hs = state(st)
        counts = values(st, fcount, lanes)
        for storage, off, ls in _groups(st, bar, lanes, "mbarrier init"):
            row = row_of(st, storage, off, bar.buf)
            blocks = st.lane_block[ls]
            c = counts[np.isin(lanes, ls)]
            uniq, first = np.unique(blocks, return_index=True)
            if uniq.size != blocks.size:
                dup = np.setdiff1d(np.arange(blocks.size), first)[0]
                raise MbarrierError(
                    f"mbarrier_init at {where(span)}: {row.name(st, int(blocks[dup]))} is initialised by several "
                    f"threads at once ({st.thread_of_lane(int(ls[dup]))} among them); one thread initialises a barrier"
                )
            bad = (c < 1) | (c > MAX_COUNT)
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                raise MbarrierError(
                    f"mbarrier_init at {where(span)} by {st.thread_of_lane(int(ls[k]))}: arrival count {int(c[k])} is "
                    f"outside the ISA's range [1, {MAX_COUNT}]"
                )
            for t in hs.loads:
                if t.row is row and np.isin(t.blocks, blocks).any():
                    raise MbarrierError(
                        f"mbarrier_init at {where(span)} re-initialises {row.name(st, int(blocks[0]))} while the TMA "
                        f"load issued at {where(t.span)} is still in flight on it"
                    )
            _shadow(st, storage, off, ls, sid, write=True)
            hs.token += 1
            row.inited[blocks] = True
            row.fenced[blocks] = False
            row.phase[blocks] = 0
            row.pending[blocks] = c
            row.expected[blocks] = c
            row.tx[blocks] = 0
            row.token[blocks] = MAGIC + hs.token
            row.init_site[blocks] = sid
            of_blocks = np.isin(st.lane_block, blocks)
            row.seen[of_blocks] = UNSEEN
            row.arrived[of_blocks] = NONE
            if row.acc is not None:
                row.acc[blocks] = order.NOTHING
                row.pub[blocks] = order.NOTHING
            storage.typed(np.uint64)[blocks, off // 8] = row.token[blocks]
            if storage.init is not None:
                storage.init[blocks[:, None], off + np.arange(8)] = True

    return mbarrier_init


def _arrive_common(comp, e, with_tx: bool, arrival: bool = True):
    """arrive (arrival), arrive.expect_tx (tx-count += bytes, then an arrival) or expect_tx alone
    (no arrival: the program's own arrivals follow)."""
    what = ("mbarrier arrive.expect_tx" if arrival else "mbarrier expect_tx") if with_tx else "mbarrier arrive"
    bar = address(comp, e.args[0], what, "shared")
    ftx = comp.expr(e.args[1]) if with_tx else None
    span, sid = comp.span, bar.site.sid
    comp.prog.uses_hopper = True

    def arrive(st):
        lanes = active_lanes(st)
        if lanes.size == 0:
            return
        txs = values(st, ftx, lanes) if with_tx else None
        for storage, off, ls in _groups(st, bar, lanes, what):
            row = row_of(st, storage, off, bar.buf)
            live(st, row, ls, what, span)
            _shadow(st, storage, off, ls, sid, write=False)
            blocks = st.lane_block[ls]
            if with_tx:
                tx = txs[np.isin(lanes, ls)]
                bad = (tx < 0) | (tx > MAX_COUNT)
                if bad.any():
                    k = int(np.flatnonzero(bad)[0])
                    raise MbarrierError(f"{what} at {where(span)} by {st.thread_of_lane(int(ls[k]))}: tx count "
                                        f"{int(tx[k])} is outside the ISA's range [0, {MAX_COUNT}]")
                np.add.at(row.tx, blocks, tx)
            if arrival:
                arrive_blocks(st, row, blocks, ls, sid, what, span)

    return arrive


def arrive_blocks(st, row: BarrierRow, blocks, lanes, sid: int, what: str, span):
    """One arrival per entry of `blocks` (the blocks of the arriving lanes)."""
    twice = row.arrived[lanes] == row.phase[blocks]
    if twice.any():
        k = int(np.flatnonzero(twice)[0])
        b = int(blocks[k])
        raise MbarrierError(
            f"{what} at {where(span)}: {st.thread_of_lane(int(lanes[k]))} arrives a second time on phase "
            f"{int(row.phase[b])} of {row.name(st, b)} (count {int(row.expected[b])}) before it completes: its "
            f"arrivals would stand for another thread's (the last arrival was at "
            f"{where(st.sites[int(row.arrive_site[b])].span) if row.arrive_site[b] != NONE else '?'})"
        )
    row.arrived[lanes] = row.phase[blocks]
    if order.enable(st) is not None:
        order.release(st, row.vectors(st), blocks, st.lane_tid[lanes])
    n = np.bincount(blocks, minlength=st.nb)
    b = np.flatnonzero(n)
    row.pending[b] -= n[b]
    over = row.pending[b] < 0
    if over.any():
        blk = int(b[np.flatnonzero(over)[0]])
        lane = int(lanes[np.flatnonzero(blocks == blk)[0]])
        tx = int(row.tx[blk])
        raise MbarrierError(
            f"{what} at {where(span)} by {st.thread_of_lane(lane)}: {row.name(st, blk)} receives more arrivals than "
            f"its phase {int(row.phase[blk])} expects ({int(row.expected[blk])})"
            + (f"; the phase is still waiting for a tx-count of {tx} bytes" if tx else "")
        )
    row.arrive_site[b] = sid
    row.check_tx(st, b, span, f"seen at the {what} at")
    row.complete(b)


def _cp_arrive(comp, e):
    noinc = bool(e.attrs.get("noinc"))
    what = "cp.async.mbarrier.arrive" + (".noinc" if noinc else "")
    bar = address(comp, e.args[0], what, "shared")
    span, sid = comp.span, bar.site.sid
    comp.prog.uses_hopper = True

    def cp_async_mbarrier_arrive(st):
        lanes = active_lanes(st)
        if lanes.size == 0:
            return
        hs = state(st)
        for storage, off, ls in _groups(st, bar, lanes, what):
            row = row_of(st, storage, off, bar.buf)
            live(st, row, ls, what, span)
            _shadow(st, storage, off, ls, sid, write=False)
            blocks = st.lane_block[ls]
            seq = snap = None
            o = order.enable(st)
            if o is not None:  # what the threads did up to here is released when the arrival happens
                seq = o.seq
                snap = order.new_vector(st)
                order.release(st, snap, blocks, st.lane_tid[ls])
            if not noinc:
                np.add.at(row.pending, blocks, 1)
            hs.cp_arrivals.append(CpArrival(row, ls, blocks, noinc, st.asyncq.issued, seq, snap, sid, span))

    return cp_async_mbarrier_arrive


def land_cp_arrivals(st, row: BarrierRow, blocks: np.ndarray):
    """Land the copies tracked by the cp.async arrivals pending on `row` for `blocks`, then make
    those arrivals (in the order they were issued)."""
    hs = state(st)
    if not hs.cp_arrivals:
        return
    keep = []
    for a in hs.cp_arrivals:
        sel = np.isin(a.blocks, blocks) if a.row is row else None
        if sel is None or not sel.any():
            keep.append(a)
            continue
        lanes, bl = a.lanes[sel], a.blocks[sel]
        mask = np.zeros(st.L, bool)
        mask[lanes] = True
        st.asyncq.land_prior(st, mask, a.upto, a.seq)
        what = "the arrival of cp.async.mbarrier.arrive" + (".noinc" if a.noinc else "")
        if a.noinc:
            twice = row.arrived[lanes] == row.phase[bl]
            if twice.any():
                k = int(np.flatnonzero(twice)[0])
                b = int(bl[k])
                raise MbarrierError(
                    f"{what} at {where(a.span)}: {st.thread_of_lane(int(lanes[k]))} arrives a second time on phase "
                    f"{int(row.phase[b])} of {row.name(st, b)} (count {int(row.expected[b])}) before it completes")
            row.arrived[lanes] = row.phase[bl]
        if a.snap is not None:
            ub = np.unique(bl)
            acc = row.vectors(st)
            acc[ub] = np.maximum(acc[ub], a.snap[ub])
        n = np.bincount(bl, minlength=st.nb)
        b = np.flatnonzero(n)
        row.pending[b] -= n[b]
        over = row.pending[b] < 0
        if over.any():
            blk = int(b[np.flatnonzero(over)[0]])
            raise MbarrierError(
                f"{what} at {where(a.span)}: {row.name(st, blk)} receives more arrivals than its phase "
                f"{int(row.phase[blk])} expects ({int(row.expected[blk])})")
        row.arrive_site[b] = a.sid
        row.check_tx(st, b, a.span, f"seen at {what} at")
        row.complete(b)
        if (~sel).any():
            a.lanes, a.blocks = a.lanes[~sel], a.blocks[~sel]
            keep.append(a)
    hs.cp_arrivals = keep


def _wait(comp, e):
    bar = address(comp, e.args[0], "mbarrier wait", "shared")
    fpar = comp.expr(e.args[1])
    span, sid = comp.span, bar.site.sid
    comp.prog.uses_hopper = True

    def mbarrier_wait(st):
        lanes = active_lanes(st)
        if lanes.size == 0:
            return
        par = values(st, fpar, lanes)
        bad = (par != 0) & (par != 1)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise MbarrierError(f"mbarrier_wait at {where(span)} by {st.thread_of_lane(int(lanes[k]))}: phase parity "
                                f"{int(par[k])} is not 0 or 1")
        groups = []
        for storage, off, ls in _groups(st, bar, lanes, "mbarrier wait"):
            row = row_of(st, storage, off, bar.buf)
            live(st, row, ls, "mbarrier_wait", span)
            _shadow(st, storage, off, ls, sid, write=False)
            groups.append(_Group(st, row, ls, par[np.isin(lanes, ls)]))
        w = Wait(st, groups, span)
        if not w.evaluate(first=True):
            if st.sched is None:
                g = next(g for g in groups if g.need.any())
                _deadlock(st, g.row, g.lanes[g.need], span)
            schedule.wait(st, w)

    return mbarrier_wait


class _Group:
    """The lanes of one wait statement that wait on one barrier, with their parities."""

    def __init__(self, st, row: BarrierRow, lanes: np.ndarray, parity: np.ndarray):
        self.row = row
        self.lanes = lanes
        self.blocks = st.lane_block[lanes]
        self.parity = parity
        self.want = None  # the phase each lane waits for
        self.need = None  # lanes whose phase has not completed yet


class Wait(schedule.Blocker):
    """An mbarrier_wait statement; blocks its unit while a phase has not completed for some of
    its lanes. A lane whose phase has completed is done (it acquires the phase then: its unit may
    wait on for other lanes while the barrier moves on)."""

    kind = "mbarrier"

    def __init__(self, st, groups: list[_Group], span):
        self.st = st
        self.groups = groups
        self.span = span

    def evaluate(self, first: bool) -> bool:
        st = self.st
        ok = True
        for g in self.groups:
            row = g.row
            if first:
                need = (row.phase[g.blocks] & 1) == g.parity
                if need.any():
                    land(st, row, np.unique(g.blocks[need]))
                ph = row.phase[g.blocks]
                need = (ph & 1) == g.parity
                g.want = np.where(need, ph, ph - 1)
                seen = row.seen[g.lanes]
                if st.sched is not None:
                    # scheduled warps: a thread's first wait is for phase 0 (parity 0) or the one
                    # before it (parity 1, "the previous phase has completed")
                    seen = np.where(seen == UNSEEN, FIRST, seen)
                known = seen != UNSEEN
                if known.any():
                    nxt = np.where(known, seen, 0) + 1
                    intended = nxt + ((nxt & 1) != g.parity)
                    bad = known & (g.want > intended)
                    if bad.any():
                        self._ambiguous(g, int(np.flatnonzero(bad)[0]), int(intended[bad][0]), int(seen[bad][0]))
                g.need = np.ones(g.lanes.size, bool)
                self._done(g, ~need)
            elif g.need.any():
                land(st, row, np.unique(g.blocks[g.need]))
                ph = row.phase[g.blocks]
                bad = g.need & (ph >= g.want + 2)
                if bad.any():
                    self._ambiguous(g, int(np.flatnonzero(bad)[0]), int(g.want[bad][0]), None)
                self._done(g, g.need & (ph == g.want + 1))
            ok = ok and not g.need.any()
        return ok

    def _done(self, g: _Group, sel: np.ndarray):
        """Lanes whose phase (g.want) has completed: they saw it, and acquire it (order.py)."""
        if not sel.any():
            return
        g.need = g.need & ~sel
        lanes = g.lanes[sel]
        g.row.seen[lanes] = g.want[sel]
        if g.row.pub is not None:
            order.acquire(self.st, g.row.pub, g.blocks[sel], self.st.lane_tid[lanes])

    def _ambiguous(self, g: _Group, k: int, intended: int, seen):
        st, row = self.st, g.row
        b = int(g.blocks[k])
        ph = int(row.phase[b])
        p = int(g.parity[k])
        why = ("the phase that was current when it started waiting" if seen is None else
               "its first wait on the barrier since the init: phase 0 for parity 0, the one before for parity 1"
               if seen == FIRST else f"the first phase with that parity after phase {seen}, the last it saw complete")
        returns = f"wait for phase {ph} to complete" if (ph & 1) == p else f"return for phase {ph - 1} at once"
        raise MbarrierError(
            f"ambiguous mbarrier phase: mbarrier_wait at {where(self.span)} by {st.thread_of_lane(int(g.lanes[k]))} "
            f"waits with parity {p} for phase {intended} of {row.name(st, b)} ({why}), but the barrier has completed "
            f"phase {intended} and phase {intended + 1} (its current phase is {ph}): parity {p} names a later phase "
            f"now, so the wait would {returns} (the barrier ran two phases ahead of the waiter; another barrier must "
            f"hold the threads that complete its phases back)"
        )

    def ready(self) -> bool:
        return self.evaluate(first=False)

    def ready_blocks(self):
        done = np.ones(self.st.nb, bool)
        involved = np.zeros(self.st.nb, bool)
        for g in self.groups:
            involved[g.blocks] = True
            done[g.blocks[g.need]] = False
        return done[involved]

    def describe(self, sched) -> str:
        for g in self.groups:
            if g.need.any():
                return describe_wait(self.st, g.row, g.lanes[g.need], self.span)
        return f"mbarrier_wait at {where(self.span)}"


def describe_wait(st, row: BarrierRow, lanes: np.ndarray, span) -> str:
    """What a wait of `lanes` (on the current phase of `row`) waits for and what it lacks."""
    lane = int(lanes[0])
    b = int(st.lane_block[lane])
    nwait = int((st.lane_block[lanes] == b).sum())
    ph, pend, exp, tx = int(row.phase[b]), int(row.pending[b]), int(row.expected[b]), int(row.tx[b])
    lacks = []
    if pend:
        lacks.append(f"{pend} of its {exp} arrivals")
    if tx > 0:
        lacks.append(f"{tx} bytes of transactions (tx-count {tx}) that no TMA copy in flight will bring"
                     + (" (expect_tx announced more bytes than the copies bring?)" if not pend else ""))
    if tx < 0:
        lacks.append(f"a tx-count of 0: it is {tx}, the TMA copies completed {-tx} bytes more than expect_tx announced")
    init = st.sites[int(row.init_site[b])]
    last = "" if row.arrive_site[b] == NONE else f"; the last arrival was at {where(st.sites[int(row.arrive_site[b])].span)}"
    return (
        f"mbarrier_wait at {where(span)} ({nwait} waiting thread{'s' if nwait != 1 else ''} of {block_name(st, b)}, "
        f"{st.thread_of_lane(lane)} among them) waits for phase {ph} (parity {ph & 1}) of {row.name(st, b)} to "
        f"complete, but that phase still lacks {' and '.join(lacks)} (initialised at {where(init.span)}{last})"
    )


def _deadlock(st, row: BarrierRow, lanes: np.ndarray, span):
    raise DeadlockError(
        f"deadlock: {describe_wait(st, row, lanes, span)}, and nothing executed later can arrive before the wait "
        f"returns. The kernel runs in lockstep (no synchronisation under a condition that differs between threads, "
        f"and Kernel.attrs['warp_specialized'] is not set): a wait that only a later statement could complete, such "
        f"as a consumer branch after a producer branch of an `if` on the thread index, is reported too"
    )


def _fence_init(comp, e):
    comp.prog.uses_hopper = True

    def fence_barrier_init(st):
        lanes = active_lanes(st)
        if lanes.size == 0:
            return
        fence_blocks(st, np.unique(st.lane_block[lanes]))

    return fence_barrier_init


def fence_blocks(st, blocks: np.ndarray):
    """A fence after barrier inits by a thread of each of `blocks`: their barriers may now be used
    by TMA copies."""
    for row in state(st).barriers.values():
        row.fenced[blocks] |= row.inited[blocks]


# ------------------------------------------------------------------------------ transfers


def attach(st, t: Transfer, lanes: np.ndarray, span):
    """A TMA load issued by `lanes` that will complete tx on t.row."""
    row = t.row
    live(st, row, lanes, "TMA load", span)
    blocks = st.lane_block[lanes]
    bad = ~row.fenced[blocks]
    if bad.any():
        lane = int(lanes[np.flatnonzero(bad)[0]])
        b = int(st.lane_block[lane])
        raise MbarrierError(
            f"TMA load at {where(span)} by {st.thread_of_lane(lane)} completes on {row.name(st, b)}, but no "
            f"fence_barrier_init (fence.mbarrier_init) or fence_proxy_async followed its mbarrier_init at "
            f"{where(st.sites[int(row.init_site[b])].span)}: the copy engine may not see the initialised barrier"
        )
    state(st).loads.append(t)


def land(st, row: BarrierRow, blocks: np.ndarray):
    """Complete every TMA transfer in flight on `row` for `blocks`: the bytes land in shared
    memory and the tx-count drops by them; the same for the cp.async arrivals pending on it; then
    the phases that have everything complete."""
    land_cp_arrivals(st, row, blocks)
    hs = state(st)
    keep = []
    landed = None
    for t in hs.loads:
        sel = np.isin(t.blocks, blocks) if t.row is row else None
        if sel is None or not sel.any():
            keep.append(t)
            continue
        landed = t
        _write(st, t, sel)
        if t.seq is not None and order.get(st) is not None:
            order.release_at(st, row.vectors(st), t.blocks[sel], t.tids[sel], np.full(int(sel.sum()), t.seq, np.int32))
        np.subtract.at(row.tx, t.blocks[sel], t.nbytes)
        if (~sel).any():
            t.blocks, t.tids, t.flat, t.data = t.blocks[~sel], t.tids[~sel], t.flat[~sel], t.data[~sel]
            keep.append(t)
    hs.loads = keep
    if landed is not None:
        row.check_tx(st, blocks, landed.span, "seen when the copies in flight on it landed, the last issued at")
    row.complete(blocks)


def _write(st, t: Transfer, sel: np.ndarray):
    s = t.storage
    flat = t.flat[sel].reshape(-1)
    s.data.reshape(-1)[flat] = t.data[sel].reshape(-1)
    if s.init is not None:
        s.init.reshape(-1)[flat] = True
    sh = s.shadow
    if sh is not None:
        # fresh data: the readers of the old bytes were checked when the copy was issued
        for a in (sh.p, sh.ps, sh.w, sh.ws, sh.r1, sh.r1s, sh.r2, sh.r2s):
            a[flat] = NONE
        if sh.wq is not None and t.seq is not None:
            # written by the issuing thread, ordered through the barrier's phase (order.py)
            sh.w[flat] = np.repeat(t.tids[sel], t.flat.shape[1])
            sh.ws[flat] = t.sid
            sh.wq[flat] = t.seq
        if sh.any_pending and not (sh.p != NONE).any():
            sh.any_pending = False
    if st.hopper is not None:
        async_proxy.async_landed(st, s, flat)


HANDLERS = {
    "mbarrier_init": _init,
    "mbarrier_arrive": lambda comp, e: _arrive_common(comp, e, False),
    "mbarrier_arrive_expect_tx": lambda comp, e: _arrive_common(comp, e, True),
    "mbarrier_expect_tx": lambda comp, e: _arrive_common(comp, e, True, arrival=False),
    "mbarrier_wait": _wait,
    "fence_barrier_init": _fence_init,
    "cp_async_mbarrier_arrive": _cp_arrive,
}
