"""Happens-before between the threads of a block beyond `__syncthreads`: what mbarrier phases
and named barriers order, for the shared-memory race checks (races.py).

`__syncthreads` (and a named barrier every thread of the block passes with bar.sync) orders
everything before it before everything after it: the race shadow simply forgets the block's
accesses (memory.SharedShadow.barrier). Warp-specialised code synchronises through mbarriers and
named barriers of part of the block, which order only the threads involved. For those the
emulator keeps a vector clock, lite:

- a batch-wide sequence number `seq`; every shared access recorded in the shadow carries the
  value of `seq` at that time (SharedShadow.wq / r1q / r2q), and every release increments it;
- per block, a matrix `hb[t, u]`: the accesses of thread u with a sequence number up to
  `hb[t, u]` are ordered before what thread t does now (-1: none are);
- a release (an mbarrier arrive, a bar.arrive or bar.sync) by thread u adds to the barrier's
  vector what u knows (`hb[u, :]`) and u's own accesses so far (`seq`); an mbarrier keeps one
  vector for the phase being filled and one for the phase that completed last; a TMA load that
  lands adds its issuing thread's accesses up to the issue (the bytes it writes are recorded as
  written by that thread then);
- an acquire (an `mbarrier_wait` that returns, a bar.sync that completes) raises `hb[t, :]` to
  the vector of the phase or barrier generation it returns for;
- a wgmma reads its shared operands asynchronously, until the `wgmma_wait` that completes it:
  the reads are recorded then, as reads by a pseudo-thread of the warpgroup (hb has one column
  per warpgroup after the threads), which that wait orders before every thread of the
  warpgroup. So a consumer that arrives on "empty" after its wgmma_wait releases the reads, and
  one that arrives before it does not.

An earlier access by thread u conflicts with thread t's access when u != t, one of them writes,
and its sequence number is above `hb[t, u]`. So a consumer that reads a stage after waiting on
its "full" barrier, and a producer that refills it after waiting on its "empty" barrier (on which
every reader arrived after reading), are ordered; a reader that skipped the wait, or a producer
that skipped it, is not, and the race is reported.

The state is created (`enable`) at the first mbarrier arrive or wait, TMA load or named barrier
of part of the block in a batch with the race checks on; accesses recorded before that carry
sequence number 0. Kernels that synchronise only with `__syncthreads` never create it and run
the checks as before."""
from __future__ import annotations

import numpy as np

NOTHING = -1  # hb / barrier vector entry: no access of that thread is ordered


WG = 128


def width(T: int) -> int:
    """Columns of hb: the block's threads, then one pseudo-thread per warpgroup standing for the
    async-proxy reads of its wgmmas (ordered before the warpgroup's threads by its wgmma_wait)."""
    return T + -(-T // WG)


class Order:
    def __init__(self, nb: int, T: int):
        self.seq = 1
        self.hb = np.full((nb, T, width(T)), NOTHING, np.int32)


def get(st) -> Order | None:
    return st.sync.order


def enable(st) -> Order | None:
    """The batch's happens-before state, created on first use (None when races are not checked)."""
    sync = st.sync
    if sync.order is None:
        if not st.check_races:
            return None
        sync.order = Order(st.nb, st.T)
        for s in st.shared:
            if s.shadow is not None:
                s.shadow.enable_order()
    return sync.order


def new_vector(st) -> np.ndarray:
    """A barrier's release vector over the threads of each block: [nb, width(T)]."""
    return np.full((st.nb, width(st.T)), NOTHING, np.int32)


def release(st, vec: np.ndarray, blocks: np.ndarray, tids: np.ndarray):
    """Threads (blocks[i], tids[i]) release into vec [nb, T] (or [nb, k, T] indexed by the caller):
    everything they know and their own accesses up to now."""
    o = enable(st)
    if o is None or blocks.size == 0:
        return
    rows = o.hb[blocks, tids]  # [n, T]
    order = np.argsort(blocks, kind="stable")
    bs = blocks[order]
    ub, starts = np.unique(bs, return_index=True)
    red = np.maximum.reduceat(rows[order], starts, axis=0)
    vec[ub] = np.maximum(vec[ub], red)
    vec[blocks, tids] = np.maximum(vec[blocks, tids], o.seq)
    o.seq += 1


def release_at(st, vec: np.ndarray, blocks: np.ndarray, tids: np.ndarray, seqs: np.ndarray):
    """Accesses of threads (blocks, tids) up to sequence numbers `seqs` join vec (a TMA load
    landing: its issuer's accesses before the issue)."""
    if get(st) is None:
        return
    np.maximum.at(vec, (blocks, tids), seqs)


def acquire(st, vec: np.ndarray, blocks: np.ndarray, tids: np.ndarray):
    """Threads (blocks[i], tids[i]) (distinct) now come after everything vec holds."""
    o = get(st)
    if o is None or blocks.size == 0:
        return
    o.hb[blocks, tids] = np.maximum(o.hb[blocks, tids], vec[blocks])


def unordered(st, row_bytes: int, flat: np.ndarray, tids: np.ndarray, other: np.ndarray, other_q: np.ndarray,
              bad: np.ndarray) -> np.ndarray:
    """Refine `bad` (accesses of thread `other` with sequence numbers other_q at the flat byte
    indices conflicting with threads `tids`, same length): drop those ordered before the thread."""
    o = get(st)
    if o is None or other_q is None:
        return bad
    k = np.flatnonzero(bad)
    if k.size == 0:
        return bad
    blk = flat[k] // row_bytes
    ok = other_q[k] <= o.hb[blk, tids[k], other[k]]
    if ok.any():
        bad = bad.copy()
        bad[k[ok]] = False
    return bad


def async_reads_done(st, blocks: np.ndarray, wg: np.ndarray) -> int:
    """A wgmma_wait of warpgroups wg[i] of blocks[i]: the operand reads of the wgmmas it completes
    are recorded as reads by the warpgroup's pseudo-thread at the returned sequence number, and
    are ordered before every thread of the warpgroup from now on."""
    o = get(st)
    q = o.seq
    T = st.T
    for b, j in zip(blocks.tolist(), wg.tolist()):
        lo, hi = j * WG, min(T, (j + 1) * WG)
        col = o.hb[b, lo:hi, T + j]
        o.hb[b, lo:hi, T + j] = np.maximum(col, q)
    o.seq += 1
    return q


def group_view(st, blocks: np.ndarray, lo: np.ndarray, n: int) -> np.ndarray:
    """What every one of the threads lo[i] .. lo[i] + n - 1 of block blocks[i] knows: [len, T]
    (the minimum of their rows of hb; a warpgroup reading through the async proxy)."""
    o = get(st)
    idx = lo[:, None] + np.arange(n)
    return o.hb[blocks[:, None], idx].min(axis=1)
