"""mbarriers (PTX ISA "Parallel Synchronization and Communication Instructions: mbarrier"):
`mbarrier_init`, `mbarrier_arrive`, `mbarrier_arrive_expect_tx`, `mbarrier_wait` (try_wait.parity
in a loop), `fence_barrier_init`, and the TMA transfers that complete on a barrier.

State per barrier (a uint64 of shared memory, per block): the current phase (its parity is what a
wait names), pending and expected arrivals, and the tx-count. A phase completes when pending
arrivals and tx-count are both zero; the phase then advances and pending is reset to expected.
`try_wait.parity p` is true when the phase with parity p has completed, i.e. when the current
phase's parity differs from p (the ISA allows only the current and the immediately preceding
phase to be named, so parity is enough).

All threads run in lockstep, so a wait cannot spin for other threads to arrive later: when lanes
wait on a phase that has not completed, the TMA transfers in flight on that barrier land (their
bytes reach shared memory and the tx-count drops by them; transfers complete only here, which
is one legal order of an asynchronous copy), and if the phase still has not completed the wait
can never return: DeadlockError names the barrier, its phase, the arrivals and bytes it lacks and
the waiting statement. (So a wait that only a statement executed later could satisfy, such as a
producer and a consumer in the two branches of an `if` on the thread index, is reported too.)

Checks besides deadlocks (MbarrierError): use before init, a plain store over a live barrier
(the init writes a token into the barrier's 8 bytes and every operation checks it), more
arrivals than the phase expects, a count or parity outside the ISA's range, several threads
initialising one barrier at once, and a TMA copy on a barrier whose init no fence_barrier_init
(or fence_proxy_async) has followed. With the race checks on, an init is a write and every other
operation a read of the barrier's bytes, so a use by another thread with no __syncthreads after
the init is a RaceError. Re-initialising a barrier with no transfer in flight on it is allowed
(as if invalidated first)."""
from __future__ import annotations

import numpy as np

from . import async_proxy, races
from .errors import DeadlockError, MbarrierError, element_str, where
from .hopper import active_lanes, address, block_name, lane_offsets, state, values

MAX_COUNT = (1 << 20) - 1
MAGIC = 0x6D62_6172_0000_0000  # "mbar" in the high half of the token the init writes
NONE = -1


class BarrierRow:
    """The barrier at one byte offset of one shared root, for every block of the batch."""

    def __init__(self, storage, off: int, nb: int, buffer):
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


class Transfer:
    """Bytes of TMA loads in flight on one barrier: row i goes to flat byte indices flat[i] of
    `storage` (already swizzled) and completes `nbytes` transactions of block blocks[i]."""

    def __init__(self, row: BarrierRow, storage, blocks, tids, flat, data, sid: int, span):
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
        row = BarrierRow(storage, off, st.nb, buffer)
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
            storage.typed(np.uint64)[blocks, off // 8] = row.token[blocks]
            if storage.init is not None:
                storage.init[blocks[:, None], off + np.arange(8)] = True

    return mbarrier_init


def _arrive_common(comp, e, with_tx: bool):
    what = "mbarrier arrive.expect_tx" if with_tx else "mbarrier arrive"
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
            arrive_blocks(st, row, blocks, ls, sid, what, span)

    return arrive


def arrive_blocks(st, row: BarrierRow, blocks, lanes, sid: int, what: str, span):
    """One arrival per entry of `blocks` (the blocks of the arriving lanes)."""
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
    row.complete(b)


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
        for storage, off, ls in _groups(st, bar, lanes, "mbarrier wait"):
            row = row_of(st, storage, off, bar.buf)
            live(st, row, ls, "mbarrier_wait", span)
            _shadow(st, storage, off, ls, sid, write=False)
            p = par[np.isin(lanes, ls)]
            blocks = st.lane_block[ls]
            need = (row.phase[blocks] & 1) == p
            if not need.any():
                continue
            land(st, row, np.unique(blocks[need]))
            need = (row.phase[blocks] & 1) == p
            if need.any():
                _deadlock(st, row, ls[need], span)

    return mbarrier_wait


def _deadlock(st, row: BarrierRow, lanes: np.ndarray, span):
    lane = int(lanes[0])
    b = int(st.lane_block[lane])
    nwait = int((st.lane_block[lanes] == b).sum())
    ph, pend, exp, tx = int(row.phase[b]), int(row.pending[b]), int(row.expected[b]), int(row.tx[b])
    lacks = []
    if pend:
        lacks.append(f"{pend} of its {exp} arrivals")
    if tx > 0:
        lacks.append(f"{tx} bytes of transactions (tx-count {tx}) that no TMA copy in flight will bring")
    if tx < 0:
        lacks.append(f"a tx-count of 0: it is {tx}, the TMA copies completed {-tx} bytes more than expect_tx announced")
    init = st.sites[int(row.init_site[b])]
    last = "" if row.arrive_site[b] == NONE else f"; the last arrival was at {where(st.sites[int(row.arrive_site[b])].span)}"
    raise DeadlockError(
        f"deadlock: mbarrier_wait at {where(span)} ({nwait} waiting thread{'s' if nwait != 1 else ''} of "
        f"{block_name(st, b)}, "
        f"{st.thread_of_lane(lane)} among them) waits for phase {ph} (parity {ph & 1}) of {row.name(st, b)} to "
        f"complete, but that phase still lacks {' and '.join(lacks)}, and nothing executed later can arrive before "
        f"the wait returns (initialised at {where(init.span)}{last}). The emulator runs all threads in lockstep: a "
        f"wait that only a later statement could complete, such as a consumer branch after a producer branch of an "
        f"`if` on the thread index, is reported too"
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
    memory and the tx-count drops by them; then the phases that have everything complete."""
    hs = state(st)
    keep = []
    for t in hs.loads:
        sel = np.isin(t.blocks, blocks) if t.row is row else None
        if sel is None or not sel.any():
            keep.append(t)
            continue
        _write(st, t, sel)
        np.subtract.at(row.tx, t.blocks[sel], t.nbytes)
        if (~sel).any():
            t.blocks, t.tids, t.flat, t.data = t.blocks[~sel], t.tids[~sel], t.flat[~sel], t.data[~sel]
            keep.append(t)
    hs.loads = keep
    row.complete(blocks)


def _write(st, t: Transfer, sel: np.ndarray):
    s = t.storage
    flat = t.flat[sel].reshape(-1)
    s.data.reshape(-1)[flat] = t.data[sel].reshape(-1)
    if s.init is not None:
        s.init.reshape(-1)[flat] = True
    sh = s.shadow
    if sh is not None:
        # fresh data ordered by the barrier: no plain access of the old bytes can race with it
        for a in (sh.p, sh.ps, sh.w, sh.ws, sh.r1, sh.r1s, sh.r2, sh.r2s):
            a[flat] = NONE
        if sh.any_pending and not (sh.p != NONE).any():
            sh.any_pending = False
    if st.hopper is not None:
        async_proxy.async_landed(st, s, flat)


HANDLERS = {
    "mbarrier_init": _init,
    "mbarrier_arrive": lambda comp, e: _arrive_common(comp, e, False),
    "mbarrier_arrive_expect_tx": lambda comp, e: _arrive_common(comp, e, True),
    "mbarrier_wait": _wait,
    "fence_barrier_init": _fence_init,
}
