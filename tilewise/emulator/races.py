"""Shared-memory race detection between barriers, at byte granularity, vectorised over every
access of a statement. Same-thread accesses never race; a read of a byte whose cp.async copy
is still in flight is reported whichever thread issued the copy.

Two accesses of different threads to a byte, one a write, race unless a barrier orders them:
`__syncthreads` (the shadow forgets the block's accesses), or, once the batch uses them, an
mbarrier phase or a named barrier between the two threads (order.py: the recorded access's
sequence number must not exceed what the later thread knows of its thread)."""
from __future__ import annotations

import numpy as np

from . import async_proxy, order
from .errors import AsyncCopyError, RaceError, element_str, thread_str, where
from .hopper import block_name
from .memory import NONE, SharedShadow, Storage


def _site_elem(st, sid: int, byte: int) -> str:
    site = st.sites[sid]
    b = site.buffer
    if b is None:
        return f"byte {byte}"
    elem = (byte - b.byte_offset) // b.dtype.bytes
    shape = b.static_shape() or (b.numel(),)
    return element_str(b.name, shape, elem)


def _access(st, sid: int, block: int, tid: int, verb: str, target: str = "it") -> str:
    site = st.sites[sid]
    target = f" {target}" if target else ""
    if tid >= st.T:  # order.py's pseudo-thread of a warpgroup: its wgmmas' operand reads
        j = tid - st.T
        who = f"a wgmma of warpgroup {j} (threads {128 * j}-{min(st.T, 128 * j + 128) - 1}) of {block_name(st, block)}"
        return f"{who} {verb}{target} ({site.what} at {where(site.span)}, completed by a wgmma_wait)"
    return f"{st.describe(block, tid)} {verb}{target} ({site.what} at {where(site.span)})"


def _report(st, storage: Storage, kind, flat, tids, sid, other_t, other_s, bad, verb_old: str, verb_now: str):
    """Raise for the first byte where `bad` holds: this access (threads tids, site sid) conflicts
    with an earlier one (thread other_t, site other_s)."""
    k = int(np.flatnonzero(bad)[0])
    rb = storage.shadow.row_bytes
    block, byte = divmod(int(flat[k]), rb)
    t_now, t_old, s_old = int(tids[k]), int(other_t[k]), int(other_s[k])
    here = _site_elem(st, sid, byte)
    there = _site_elem(st, s_old, byte)
    alias = "" if there == here or st.sites[s_old].buffer is None else f" (the same bytes as {there})"
    if kind is AsyncCopyError and st.sites[s_old].what.startswith("TMA load"):
        msg = (
            f"{_access(st, sid, block, t_now, verb_now, here + alias)} in shared memory ({storage.name} byte "
            f"{byte}) while a TMA load into it is still in flight: "
            f"{_access(st, s_old, block, t_old, 'issued the load', '')}, and no mbarrier_wait has seen the phase of "
            f"its barrier complete since"
        )
    elif kind is AsyncCopyError:
        msg = (
            f"{_access(st, sid, block, t_now, verb_now, here + alias)} in shared memory ({storage.name} byte "
            f"{byte}) while a cp.async copy into it is still in flight: "
            f"{_access(st, s_old, block, t_old, 'issued the copy', '')}, and no cp_async_wait "
            + ("of that thread has covered it yet" if t_old == t_now else "by that thread, followed by a __syncthreads, came between")
            + " (nor a wait for the mbarrier phase a cp.async.mbarrier.arrive of that thread made track it)"
        )
    else:
        between = ("with no __syncthreads between them" if storage.shadow.wq is None else
                   "with no __syncthreads, named barrier or mbarrier phase ordering them")
        msg = (
            f"shared-memory race on {here}{alias} ({storage.name} byte {byte}): "
            f"{_access(st, s_old, block, t_old, verb_old)}, then {_access(st, sid, block, t_now, verb_now)}, "
            f"{between}"
        )
    raise kind(msg + _fp4_hint(st.sites[sid].buffer))


def _conflicts(st, sh: SharedShadow, flat, tids, other, other_q) -> np.ndarray:
    """Which entries (threads `other`) conflict with accesses of threads `tids` at `flat`."""
    bad = (other != NONE) & (other != tids)
    if other_q is not None and bad.any():
        bad = order.unordered(st, sh.row_bytes, flat, tids, other, other_q[flat], bad)
    return bad


def on_read(st, storage: Storage, flat: np.ndarray, tids: np.ndarray, sid: int):
    """Record reads of the flat byte indices `flat` (1-D) by threads `tids` (same length)."""
    sh: SharedShadow = storage.shadow
    if sh.any_pending:
        p = sh.p[flat]
        bad = p != NONE
        if bad.any():
            _report(st, storage, AsyncCopyError, flat, tids, sid, p, sh.ps[flat], bad, "", "reads")
    w = sh.w[flat]
    bad = _conflicts(st, sh, flat, tids, w, sh.wq)
    if bad.any():
        _report(st, storage, RaceError, flat, tids, sid, w, sh.ws[flat], bad, "wrote", "reads")
    if sh.wq is not None:
        _record_readers(st, sh, flat, tids, sid)
        return
    r1 = sh.r1[flat]
    new = r1 == NONE
    if new.any():
        sh.r1[flat[new]] = tids[new]
        sh.r1s[flat[new]] = sid
        r1 = sh.r1[flat]
    other = r1 != tids
    if other.any():
        f2 = flat[other]
        free = sh.r2[f2] == NONE
        if free.any():
            sh.r2[f2[free]] = tids[other][free]
            sh.r2s[f2[free]] = sid


def _record_readers(st, sh: SharedShadow, flat, tids, sid, q=None):
    """With sequence numbers: a thread already in a slot refreshes it; a new reader takes a free
    slot, else the slot of the older read (two rounds: two new readers of one byte in one
    statement both get a slot)."""
    if q is None:
        q = order.get(st).seq
    for _ in range(2):
        r1, r2 = sh.r1[flat], sh.r2[flat]
        mine1, mine2 = r1 == tids, r2 == tids
        if mine1.any():
            sh.r1q[flat[mine1]] = q
            sh.r1s[flat[mine1]] = sid
        if mine2.any():
            sh.r2q[flat[mine2]] = q
            sh.r2s[flat[mine2]] = sid
        need = ~(mine1 | mine2)
        if not need.any():
            return
        f, t = flat[need], tids[need]
        p1 = np.where(r1[need] == NONE, -2, sh.r1q[f])
        p2 = np.where(r2[need] == NONE, -2, sh.r2q[f])
        use1 = p1 <= p2
        take = np.minimum(p1, p2) < q  # not a slot another reader of this statement just took
        for slot, sel in ((1, take & use1), (2, take & ~use1)):
            if sel.any():
                r, rs, rq = (sh.r1, sh.r1s, sh.r1q) if slot == 1 else (sh.r2, sh.r2s, sh.r2q)
                r[f[sel]] = t[sel]
                rs[f[sel]] = sid
                rq[f[sel]] = q


def on_async_read_done(st, storage: Storage, flat: np.ndarray, tids: np.ndarray, sid: int, q: int):
    """Reads through the async proxy that a wait has completed (wgmma operands), by order.py's
    pseudo-threads `tids` at sequence number q: recorded like plain reads (their conflicts were
    checked when issued, and writes while in flight by async_proxy.py)."""
    _record_readers(st, storage.shadow, flat, tids, sid, q)


def check_overwrite(st, storage: Storage, flat: np.ndarray, tids: np.ndarray, sid: int, now: str):
    """An asynchronous write issued by threads `tids` (a TMA load): the bytes' earlier plain
    accesses by other threads must be ordered before the issue."""
    sh: SharedShadow = storage.shadow
    for r, rs, rq, verb in ((sh.w, sh.ws, sh.wq, "wrote"), (sh.r1, sh.r1s, sh.r1q, "read"),
                            (sh.r2, sh.r2s, sh.r2q, "read")):
        rv = r[flat]
        bad = _conflicts(st, sh, flat, tids, rv, rq)
        if bad.any():
            _report(st, storage, RaceError, flat, tids, sid, rv, rs[flat], bad, verb, now)


def on_write(st, storage: Storage, flat: np.ndarray, tids: np.ndarray, sid: int, pending: bool = False,
             atomic: bool = False, new=None):
    """Record writes (or, with pending=True, the issue of cp.async copies) of the flat byte indices.
    Atomics are only checked against plain accesses: they do not race with each other, and are
    not recorded (a plain access after an atomic without a barrier goes unreported). `new`: a
    callable giving the bytes written (one per entry of `flat`), when known: threads of one
    statement that write the same value to a byte do not race (as for global memory below:
    TileLang programs have every thread of a group store the value they all computed)."""
    sh: SharedShadow = storage.shadow
    now = "issues a cp.async copy into" if pending else ("atomically updates" if atomic else "writes")
    if st.hopper is not None:
        async_proxy.on_generic_write(st, storage, flat, tids, sid, now)
    if sh.any_pending:
        p = sh.p[flat]
        bad = p != NONE
        if bad.any():
            _report(st, storage, AsyncCopyError, flat, tids, sid, p, sh.ps[flat], bad, "", now)
    w = sh.w[flat]
    bad = _conflicts(st, sh, flat, tids, w, sh.wq)
    if bad.any():
        _report(st, storage, RaceError, flat, tids, sid, w, sh.ws[flat], bad, "wrote", now)
    for r, rs, rq in ((sh.r1, sh.r1s, sh.r1q), (sh.r2, sh.r2s, sh.r2q)):
        rv = r[flat]
        bad = _conflicts(st, sh, flat, tids, rv, rq)
        if bad.any():
            _report(st, storage, RaceError, flat, tids, sid, rv, rs[flat], bad, "read", now)
    if atomic:
        return
    if flat.size > 1:
        # two threads writing one byte in the same statement
        order_ = np.argsort(flat, kind="stable")
        fs = flat[order_]
        ts = tids[order_]
        dup = (fs[1:] == fs[:-1]) & (ts[1:] != ts[:-1])
        if dup.any() and new is not None:
            nv = np.asarray(new())[order_]
            dup &= nv[1:] != nv[:-1]
        if dup.any():
            k = int(np.flatnonzero(dup)[0])
            sel = np.zeros(flat.size, bool)
            sel[order_[k + 1]] = True
            prev_t = np.full(flat.size, ts[k], np.int32)
            prev_s = np.full(flat.size, sid, np.int32)
            _report(st, storage, RaceError, flat, tids, sid, prev_t, prev_s, sel, "writes", now)
    if pending:
        sh.p[flat] = tids
        sh.ps[flat] = sid
        sh.any_pending = True
    else:
        sh.w[flat] = tids
        sh.ws[flat] = sid
        if sh.wq is not None:
            sh.wq[flat] = order.get(st).seq


def on_async_land(storage: Storage, flat: np.ndarray, tids: np.ndarray, sids: np.ndarray, seq=None):
    """A cp.async copy landed at a wait: it now counts as a write by its thread in this epoch
    (at sequence number `seq` when the batch orders threads, order.py)."""
    sh: SharedShadow = storage.shadow
    sh.p[flat] = NONE
    sh.ps[flat] = NONE
    sh.w[flat] = tids
    sh.ws[flat] = sids
    if sh.wq is not None:
        sh.wq[flat] = 0 if seq is None else seq
    if sh.any_pending and not (sh.p != NONE).any():
        sh.any_pending = False


# ------------------------------------------------------------------------------ global memory
#
# The same shadow (last writer and two readers per location, with their sites), kept for every
# global buffer the kernel writes, for a whole launch (across the batches of blocks) at the
# granularity of the buffer's elements. Threads are numbered launch-wide (block * T + thread).
# Ordering differs from shared memory: a __syncthreads orders only the accesses of its own
# block, so instead of forgetting entries the shadow stores each access's barrier epoch (how
# many __syncthreads its block had passed) and an entry of the same block from an earlier
# epoch is ordered; accesses of different blocks are never ordered within a launch.


class GlobalShadow(SharedShadow):
    """The shared-memory shadow over one global buffer's elements, plus each entry's epoch.
    `epoch` is the launch's per-block barrier count (shared by every global shadow of the
    launch); `same_block` False checks only conflicts between blocks (programs whose threads
    are also ordered by mbarriers or named barriers, which the epoch does not capture)."""

    def __init__(self, nelems: int, granule: int, epoch: np.ndarray, threads: int, same_block: bool):
        # the writer and reader slots of SharedShadow (no cp.async lands in global memory)
        self.row_bytes = nelems
        for name in ("w", "ws", "r1", "r1s", "r2", "r2s"):
            setattr(self, name, np.full(nelems, NONE, np.int32))
        self.p = self.ps = None
        self.any_pending = False
        self.wq = self.r1q = self.r2q = None
        self.granule = granule
        self.epoch = epoch
        self.T = threads
        self.same_block = same_block
        self.we = np.zeros(nelems, np.int32)
        self.r1e = np.zeros(nelems, np.int32)
        self.r2e = np.zeros(nelems, np.int32)


def launch_ids(st, lanes: np.ndarray, n: int = 1) -> np.ndarray:
    """Launch-wide thread numbers (block * T + thread) of `lanes`, each repeated n times."""
    g = st.block_ids[st.lane_block[lanes]].astype(np.int64) * st.T + st.lane_tid[lanes]
    return np.repeat(g, n) if n > 1 else g


def block_barrier(st, blocks: np.ndarray | None):
    """The blocks (indices in the batch, None: all) passed a __syncthreads: their shared accesses
    so far are forgotten, their global ones move to an earlier epoch."""
    for storage in st.shared:
        if storage.shadow is not None:
            storage.shadow.barrier(blocks)
    if st.global_epoch is not None:
        st.global_epoch[st.block_ids if blocks is None else st.block_ids[blocks]] += 1


def _gconflicts(sh: GlobalShadow, el, gids, other, other_e) -> np.ndarray:
    bad = (other != NONE) & (other != gids)
    if bad.any():
        T = sh.T
        same = (other // T) == (gids // T)
        if sh.same_block:
            ordered = same & (other_e[el] < sh.epoch[gids // T])
        else:
            ordered = same
        bad &= ~ordered
    return bad


def _greport(st, storage: Storage, el, gids, sid, other_g, other_s, bad, verb_old: str, verb_now: str):
    sh: GlobalShadow = storage.shadow
    k = int(np.flatnonzero(bad)[0])
    e, g_now, g_old, s_old = int(el[k]), int(gids[k]), int(other_g[k]), int(other_s[k])
    T = sh.T

    def who(g, s, verb):
        site = st.sites[s]
        return f"{thread_str(g // T, g % T, st.grid, st.threads)} {verb} it ({site.what} at {where(site.span)})"

    b = st.sites[sid].buffer
    shape = st.shapes.get(b.root) if b is not None else None
    here = element_str(storage.name, shape or (storage.nbytes // sh.granule,), e)
    if g_old // T != g_now // T:
        between = "in different blocks of one launch, which nothing orders"
    else:
        between = "with no __syncthreads between them"
    if _fp4_hint(b):
        here = f"byte {e} of {storage.name}"
    raise RaceError(
        f"global-memory race on {here} (parameter {storage.name}, element {e}): {who(g_old, s_old, verb_old)}, "
        f"then {who(g_now, sid, verb_now)}, {between}{_fp4_hint(b)}"
    )


def _fp4_hint(b) -> str:
    """What to add when the bytes are packed fp4 (transform/pack_fp4.py): the byte holds two values."""
    while b is not None and not b.packed_fp4:
        b = b.base
    if b is None:
        return ""
    return (f" ({b.name.removesuffix('_bytes')} is fp4, stored two values per byte: a store of one value rewrites "
            "its byte, so threads "
            "storing the two values of one byte race; give each thread whole pairs (an even number of consecutive "
            "elements from an even one))")


def on_global_read(st, storage: Storage, flat_bytes: np.ndarray, gids: np.ndarray, sid: int, atomic: bool = False):
    """Reads of the global bytes `flat_bytes` by the launch-wide threads `gids` (same length);
    atomic loads are checked against plain writes but not recorded."""
    sh: GlobalShadow = storage.shadow
    el = flat_bytes // sh.granule
    w = sh.w[el]
    bad = _gconflicts(sh, el, gids, w, sh.we)
    if bad.any():
        _greport(st, storage, el, gids, sid, w, sh.ws[el], bad, "wrote", "atomically reads" if atomic else "reads")
    if atomic:
        return
    ep = sh.epoch[gids // sh.T]
    r1 = sh.r1[el]
    first = (r1 == NONE) | (r1 == gids)
    if first.any():
        sh.r1[el[first]] = gids[first]
        sh.r1s[el[first]] = sid
        sh.r1e[el[first]] = ep[first]
    if not first.all():  # a second reader: the latest one other than the first
        o = ~first
        sh.r2[el[o]] = gids[o]
        sh.r2s[el[o]] = sid
        sh.r2e[el[o]] = ep[o]


def on_global_write(st, storage: Storage, flat_bytes: np.ndarray, gids: np.ndarray, sid: int, atomic: bool = False,
                    new: np.ndarray | None = None):
    """Writes (atomic: read-modify-writes, which do not race with each other and are not
    recorded) of the global bytes `flat_bytes` by the launch-wide threads `gids`. `new`: the
    bytes written, one row of `granule` bytes per entry, when known. Two unordered writes of the
    same bytes are not reported: whichever lands last, memory holds that value (TileLang programs
    routinely have every thread of a reduction group store its identical result)."""
    sh: GlobalShadow = storage.shadow
    el = flat_bytes // sh.granule
    now = "atomically updates" if atomic else "writes"
    same = None
    if new is not None and not atomic:
        cur = storage.data.reshape(-1)[(el * sh.granule)[:, None] + np.arange(sh.granule)]
        same = (cur == new).all(axis=1)
    for r, rs, re_, verb in ((sh.w, sh.ws, sh.we, "wrote"), (sh.r1, sh.r1s, sh.r1e, "read"),
                             (sh.r2, sh.r2s, sh.r2e, "read")):
        rv = r[el]
        bad = _gconflicts(sh, el, gids, rv, re_)
        if same is not None and verb == "wrote":
            bad &= ~same
        if bad.any():
            _greport(st, storage, el, gids, sid, rv, rs[el], bad, verb, now)
    if atomic:
        return
    if el.size > 1:
        order_ = np.argsort(el, kind="stable")
        es, gs = el[order_], gids[order_]
        dup = (es[1:] == es[:-1]) & (gs[1:] != gs[:-1])
        if new is not None and dup.any():
            nv = new[order_]
            dup &= ~(nv[1:] == nv[:-1]).all(axis=1)
        if dup.any():
            k = int(np.flatnonzero(dup)[0])
            sel = np.zeros(el.size, bool)
            sel[order_[k + 1]] = True
            _greport(st, storage, el, gids, sid, np.full(el.size, gs[k]), np.full(el.size, sid), sel, "writes", now)
    sh.w[el] = gids
    sh.ws[el] = sid
    sh.we[el] = sh.epoch[gids // sh.T]


def global_access(st, storage: Storage, byte_off, n: int, lanes: np.ndarray, sid: int, write: bool,
                  atomic: bool = False, data: np.ndarray | None = None):
    """Check and record an access of n bytes at byte offset `byte_off` (a scalar, or one per lane
    of `lanes`) of a global buffer with a race shadow, by the active `lanes`. `data`: for a write,
    the bytes each lane writes (lanes x n, uint8), so that writes of equal values are told apart."""
    if lanes.size == 0:
        return
    g = storage.shadow.granule
    steps = np.arange(0, max(n, g), g)
    o = np.broadcast_to(np.asarray(byte_off, np.int64), lanes.shape)
    flat = (o[:, None] + steps).reshape(-1)
    gids = launch_ids(st, lanes, steps.size)
    if write:
        new = None
        if data is not None and n % g == 0:
            new = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1, g)
        on_global_write(st, storage, flat, gids, sid, atomic, new)
    else:
        on_global_read(st, storage, flat, gids, sid, atomic)
