"""The Hopper asynchronous state of one batch of blocks: mbarriers, TMA copies in flight, TMA
store groups, wgmma groups, shared-memory writes not yet fenced for the async proxy, and the
threads suspended in an mbarrier wait. Created by the first instruction that needs it.

Model (PTX ISA, "mbarrier", "cp.async.bulk.tensor", "wgmma"):
- An mbarrier has an expected arrival count, pending arrivals, a tx-count and a phase. A phase
  completes when pending arrivals and tx-count are both zero: the phase number grows by one and
  pending is reset to expected. try_wait.parity p succeeds once the phase of parity p is over,
  i.e. when the current phase's parity differs from p.
- A TMA load reads global memory when issued and lands as late as it can: when every live thread
  is suspended in an mbarrier wait and has retried once since anything happened (the copy engine
  may finish at any time; the latest schedule is the one that exposes a wait that does not wait). Landing writes the box,
  completes its bytes on the barrier's tx-count, and clears the landed bytes' race history (the
  barrier orders them). Until then its destination is pending: any access is an AsyncCopyError.
- A TMA store reads shared memory and writes global memory when issued; its source stays
  reserved until a `cp.async.bulk.wait_group.read` covers its group: writing it earlier is an
  AsyncAccessError.
- wgmma computes when issued. Until a wgmma.wait_group covers its group, the shared memory it
  read must not be written and its accumulator and A registers must not be touched by other
  instructions (AsyncAccessError naming the register); wgmma instructions themselves may chain
  on the same accumulator.
- Shared-memory writes by threads are visible to the async proxy (TMA stores, wgmma operands)
  only after a `fence.proxy.async` by the writing thread: reading an unfenced byte through the
  async proxy is an AsyncAccessError.
- A completed phase orders the arrivals before the waits that observe it: the shared-memory race
  checker counts it as a barrier of the block.
- A failed try_wait (or test_wait) suspends its threads: the others run first. When every live
  thread is suspended they all retry; if nothing happened since the last time (no arrival, no
  landed copy) the copies in flight land first, and if there are none no thread can ever complete
  a wait: the launch fails with a DeadlockError naming the barrier, its phase and the waiting PTX
  line."""
from __future__ import annotations

import numpy as np

from .errors import AsyncAccessError, AsyncCopyError, DeadlockError, EmulatorError
from .named_barriers import NamedBarriers


def hopper(st) -> HopperState:
    if st.hopper is None:
        st.hopper = HopperState(st)
    return st.hopper


class HopperState:
    def __init__(self, batch):
        self.b = batch
        nbytes = max(batch.ncta * batch.shared_stride, 8)
        n8, n4 = nbytes // 8, nbytes // 4
        # mbarriers, by batch byte offset / 8
        self.bar_init = np.zeros(n8, dtype=bool)
        self.bar_expected = np.zeros(n8, dtype=np.int64)
        self.bar_pending = np.zeros(n8, dtype=np.int64)
        self.bar_tx = np.zeros(n8, dtype=np.int64)
        self.bar_phase = np.zeros(n8, dtype=np.int64)
        self.bars_live = False  # some mbarrier was initialised
        # TMA loads in flight: per 4-byte word, how many land there, and the last such PTX line
        self.tma_pending = np.zeros(n4, dtype=np.int32)
        self.tma_line = np.zeros(n4, dtype=np.int32)
        self.tma_loads: list = []  # (batch byte offsets (n, e), data (n, e), barrier index, bytes, line)
        self.cp_arrivals: list = []  # cp.async.mbarrier.arrive not completed: (threads, barriers, serial, line)
        # TMA store groups (per thread) and the shared words their sources reserve
        self.bulk_committed = np.zeros(batch.T, dtype=np.int64)
        self.bulk_records: list = []  # (thread, group, words, line)
        self.store_reads = np.zeros(n4, dtype=np.int32)
        self.store_line = np.zeros(n4, dtype=np.int32)
        # wgmma groups (per warpgroup) and the shared words their operands reserve
        self.nwg = max(batch.T // 128, 1)
        self.wg_committed = np.zeros(self.nwg, dtype=np.int64)
        self.wg_records: list = []  # [warpgroups, groups, words (wgs, n), register uids, line]
        self.wg_reads = np.zeros(n4, dtype=np.int32)
        self.wg_line = np.zeros(n4, dtype=np.int32)
        # generic-proxy writes not yet fenced for the async proxy: the writing thread per word
        self.writer = np.full(n4, -1, dtype=np.int32)
        self.writer_line = np.zeros(n4, dtype=np.int32)
        # threads suspended in an mbarrier wait
        self.blocked = np.zeros(batch.T, dtype=bool)
        self.any_blocked = False
        self.waits: dict = {}  # thread -> (barrier index, parity, PTX line) of its last failed wait
        self.progress = 0  # arrivals, completions and landed copies so far
        self.progress_at_stall = -1
        self.named = NamedBarriers(self)  # bar.sync / bar.arrive with an id or a count

    # ------------------------------------------------------------------ reporting helpers
    def _byte(self, flat: int) -> str:
        b = self.b
        cta = int(b.cta_ids[flat // b.shared_stride])
        return f"shared byte {flat % b.shared_stride} of block {cta}"

    # ------------------------------------------------------------------ access checks
    def check_access(self, flat, size: int, tids, instr, access: str, write: bool, track: bool = True):
        """Every access to shared memory passes here (from AsyncCopies.check); `track`: a write by
        a thread (generic proxy), which the async proxy sees only after a fence.proxy.async."""
        flat = np.asarray(flat, dtype=np.int64)
        if flat.size == 0:
            return
        nw = max((size + 3) // 4, 1)
        words = (flat >> 2)[:, None] + np.arange(nw)
        if self.tma_loads:
            hit = self.tma_pending[words].any(axis=1)
            if hit.any():
                i, w = self._first(words, hit, self.tma_pending)
                raise AsyncCopyError(
                    f"{access} of {self._byte(w * 4)} by {self._thread(tids, i)} at {instr.where()}: a TMA load (PTX "
                    f"line {int(self.tma_line[w])}) writing it has not landed; wait on its mbarrier first")
        if not write:
            return
        if self.wg_records:
            hit = self.wg_reads[words].any(axis=1)
            if hit.any():
                i, w = self._first(words, hit, self.wg_reads)
                raise AsyncAccessError(
                    f"{access} of {self._byte(w * 4)} by {self._thread(tids, i)} at {instr.where()} while the wgmma at "
                    f"PTX line {int(self.wg_line[w])} that reads it is in flight (no wgmma.wait_group has covered it)")
        if self.bulk_records:
            hit = self.store_reads[words].any(axis=1)
            if hit.any():
                i, w = self._first(words, hit, self.store_reads)
                raise AsyncAccessError(
                    f"{access} of {self._byte(w * 4)} by {self._thread(tids, i)} at {instr.where()} while the TMA store "
                    f"at PTX line {int(self.store_line[w])} may still read it (no cp.async.bulk.wait_group.read has "
                    "covered it)")
        if not track:
            return
        t = np.arange(self.b.T, dtype=np.int32) if tids is None else np.asarray(tids, dtype=np.int32)
        self.writer[words] = t[:, None]
        self.writer_line[words] = instr.line
        if self.bars_live:  # a plain store over an mbarrier ends it (the ISA wants mbarrier.inval first)
            self.bar_init[words.reshape(-1) >> 1] = False

    def _first(self, words, hit, table):
        i = int(np.flatnonzero(hit)[0])
        w = int(words[i][np.flatnonzero(table[words[i]])[0]])
        return i, w

    def _thread(self, tids, i: int) -> str:
        return self.b.thread_name(int(tids[i]) if tids is not None else i)

    def async_read(self, words: np.ndarray, who: str, instr, thread: int):
        """The async proxy (a TMA store, a wgmma) reads these shared words: they must have landed
        and been fenced by the threads that wrote them."""
        if self.tma_loads:
            hit = self.tma_pending[words] != 0
            if hit.any():
                w = int(words[np.flatnonzero(hit)[0]])
                raise AsyncCopyError(
                    f"{who} at {instr.where()} reads {self._byte(w * 4)} before the TMA load at PTX line "
                    f"{int(self.tma_line[w])} writing it has landed (no wait on its mbarrier)")
        wr = self.writer[words]
        hit = wr >= 0
        if hit.any():
            k = int(np.flatnonzero(hit)[0])
            w = int(words[k])
            raise AsyncAccessError(
                f"{who} issued by {self.b.thread_name(thread)} at {instr.where()} reads {self._byte(w * 4)}, written by "
                f"{self.b.thread_name(int(wr[k]))} at PTX line {int(self.writer_line[w])} with no fence.proxy.async "
                "by that thread since: the write may not be visible to the asynchronous proxy")

    def fence_proxy(self, tids):
        """fence.proxy.async by these threads: their shared writes so far are visible to TMA and wgmma."""
        if tids is None:
            self.writer[:] = -1
            return
        hit = np.isin(self.writer, np.asarray(tids, dtype=np.int32))
        self.writer[hit] = -1

    # ------------------------------------------------------------------ mbarriers
    def bar_index(self, flat: np.ndarray, instr, what: str, init: bool = False) -> np.ndarray:
        flat = np.asarray(flat, dtype=np.int64)
        if (flat & 7).any():
            i = int(np.flatnonzero(flat & 7)[0])
            raise EmulatorError(f"{what} at {instr.where()}: the mbarrier at {self._byte(int(flat[i]))} is not 8-byte aligned")
        idx = flat >> 3
        if not init and not self.bar_init[idx].all():
            i = int(np.flatnonzero(~self.bar_init[idx])[0])
            raise EmulatorError(f"{what} at {instr.where()} uses the mbarrier at {self._byte(int(flat[i]))} before "
                                "mbarrier.init (or after a plain store overwrote it)")
        return idx

    def init(self, idx: np.ndarray, count: np.ndarray, instr):
        if (count < 1).any() or (count >= 1 << 20).any():
            raise EmulatorError(f"mbarrier.init at {instr.where()} with count {int(count.min())}: 1 to 2^20 - 1")
        self.bar_init[idx] = True
        self.bars_live = True
        self.bar_expected[idx] = count
        self.bar_pending[idx] = count
        self.bar_tx[idx] = 0
        self.bar_phase[idx] = 0
        self.progress += 1

    def arrive(self, idx: np.ndarray, arrivals: np.ndarray, tx: np.ndarray, instr, drop: bool = False):
        """Each executing thread adds its tx bytes, then its arrivals, in thread order."""
        for b in np.unique(idx):
            sel = idx == b
            self.bar_tx[b] += int(tx[sel].sum())
            n = int(arrivals[sel].sum())
            if drop:
                self.bar_expected[b] -= n
            self.progress += 1
            while n > 0:
                take = min(n, int(self.bar_pending[b]))
                if take == 0:
                    raise EmulatorError(
                        f"{instr.where()}: more arrivals on the mbarrier at {self._byte(int(b) * 8)} than it expects in "
                        f"phase {int(self.bar_phase[b])}, which still waits for {int(self.bar_tx[b])} transaction bytes")
                self.bar_pending[b] -= take
                n -= take
                self._maybe_complete(int(b))
            self._maybe_complete(int(b))

    def expect_tx(self, idx: np.ndarray, tx: np.ndarray, sign: int):
        for b in np.unique(idx):
            self.bar_tx[b] += sign * int(tx[idx == b].sum())
            self.progress += 1
            self._maybe_complete(int(b))

    def _maybe_complete(self, b: int):
        if self.bar_pending[b] == 0 and self.bar_tx[b] == 0:
            self.bar_phase[b] += 1
            self.bar_pending[b] = self.bar_expected[b]
            self.progress += 1
            if self.b.races is not None:
                # what the arriving threads wrote is visible to the waiting ones: for the race
                # checker a completed phase is a barrier of the whole block (it may hide a race
                # between threads that took no part in the phase, never invent one)
                self.b.races.barrier(np.asarray([b * 8 // self.b.shared_stride]))

    def wait_done(self, idx: np.ndarray, parity: np.ndarray) -> np.ndarray:
        """try_wait.parity / test_wait.parity: whether the phase of that parity has completed."""
        parity = np.broadcast_to(np.asarray(parity).astype(np.int64) & 1, idx.shape)
        return (self.bar_phase[idx] & 1) != parity

    def suspend(self, tids: np.ndarray, idx: np.ndarray, parity, instr):
        self.blocked[tids] = True
        self.any_blocked = True
        par = np.broadcast_to(np.asarray(parity), tids.shape)
        for t, b, p in zip(tids.tolist(), idx.tolist(), par.tolist()):
            self.waits[t] = (b, int(p), instr.line)

    def stalled(self, live: np.ndarray):
        """Every live thread is suspended. If something happened since the last time (an arrival,
        a landed copy) they all retry; if not, the copies in flight land first (only now: a thread
        that does not really wait for its barrier runs ahead of its copy and is caught reading
        it); if there are none, no wait can ever complete: a deadlock."""
        if self.progress == self.progress_at_stall:
            if self.tma_loads or self.cp_arrivals:
                self.land(None)
            if self.progress == self.progress_at_stall:
                raise DeadlockError(self._deadlock(live))
        self.progress_at_stall = self.progress
        self.blocked[:] = False
        self.any_blocked = False

    def _deadlock(self, live: np.ndarray) -> str:
        named = self.named.describe(live)
        waiting = [t for t in np.flatnonzero(live & self.blocked).tolist()
                   if t in self.waits and not self.named.waiting[t]]
        if not waiting:
            if named:
                return f"deadlock at named barriers: {named}; no thread or copy in flight can complete them"
            return "every live thread waits on an mbarrier and nothing can complete any of the waits"
        t = waiting[0]
        b, p, line = self.waits[t]
        same = [u for u in waiting if self.waits[u][0] == b]
        return (f"deadlock: {len(waiting)} thread(s), {self.b.thread_name(t)} first, wait at PTX line {line} for the "
                f"phase of parity {p} of the mbarrier at {self._byte(b * 8)} ({len(same)} waiting on it), which is in "
                f"phase {int(self.bar_phase[b])} (parity {int(self.bar_phase[b]) & 1}) with "
                f"{int(self.bar_pending[b])} of {int(self.bar_expected[b])} arrivals and {int(self.bar_tx[b])} "
                "transaction bytes missing; no thread or copy in flight can complete it"
                + (f"; also {named}" if named else ""))

    # ------------------------------------------------------------------ TMA loads
    def issue_load(self, flat: np.ndarray, data: np.ndarray, bar: int, line: int):
        words = np.unique(flat.reshape(-1) >> 2)
        self.tma_pending[words] += 1
        self.tma_line[words] = line
        self.tma_loads.append((flat, data, bar, data.size, line))

    def cp_arrive(self, tids: np.ndarray, bars: np.ndarray, noinc: bool, serial: int, instr):
        """cp.async.mbarrier.arrive{.noinc} by threads `tids` on barrier indices `bars`: without
        .noinc the pending count grows now and the triggered arrival brings it back."""
        if not noinc:
            np.add.at(self.bar_pending, bars, 1)
        self.cp_arrivals.append((tids, bars, serial, instr))

    def _land_cp_arrivals(self):
        """Complete every pending cp.async.mbarrier.arrive: its thread's earlier copies land, then
        it arrives (in issue order)."""
        arrivals, self.cp_arrivals = self.cp_arrivals, []
        for tids, bars, serial, instr in arrivals:
            self.b.asyncq.land_prior(tids, serial)
            self.arrive(bars, np.ones(len(bars), dtype=np.int64), np.zeros(len(bars), dtype=np.int64), instr)

    def land(self, bars):
        """Land the TMA loads waiting on these barrier indices (all of them for None), and (for
        None) the copies tracked by cp.async.mbarrier.arrive, making their arrivals."""
        if bars is None and self.cp_arrivals:
            self._land_cp_arrivals()
        keep = []
        shared = self.b.shared
        done = []
        for rec in self.tma_loads:
            flat, data, bar, nbytes, line = rec
            if bars is not None and bar not in bars:
                keep.append(rec)
                continue
            shared[flat.reshape(-1)] = data.reshape(-1)
            words = np.unique(flat.reshape(-1) >> 2)
            self.tma_pending[words] -= 1
            self.writer[words] = -1  # written by the async proxy now: nothing to fence
            if self.b.races is not None:
                self.b.races.reset(flat.reshape(-1))
            done.append((bar, nbytes))
        self.tma_loads = keep
        for bar, nbytes in done:
            self.bar_tx[bar] -= nbytes
            self.progress += 1
            self._maybe_complete(bar)

    # ------------------------------------------------------------------ TMA stores
    def issue_store(self, thread: int, words: np.ndarray, line: int):
        words = np.unique(words)
        self.store_reads[words] += 1
        self.store_line[words] = line
        self.bulk_records.append((thread, int(self.bulk_committed[thread]), words, line))

    def bulk_commit(self, tids):
        if tids is None:
            self.bulk_committed += 1
        else:
            self.bulk_committed[tids] += 1

    def bulk_wait(self, tids, n: int):
        act = np.zeros(self.b.T, dtype=bool)
        act[slice(None) if tids is None else tids] = True
        keep = []
        for rec in self.bulk_records:
            t, group, words, line = rec
            if act[t] and group < self.bulk_committed[t] - n:
                self.store_reads[words] -= 1
            else:
                keep.append(rec)
        self.bulk_records = keep

    # ------------------------------------------------------------------ wgmma
    def wgmma_issue(self, wgs: np.ndarray, words: np.ndarray, uids: frozenset, line: int):
        flat = np.unique(words)
        np.add.at(self.wg_reads, words.reshape(-1), 1)
        self.wg_line[flat] = line
        self.wg_records.append([wgs, self.wg_committed[wgs].copy(), words, uids, line])

    def wgmma_commit(self, wgs):
        self.wg_committed[wgs] += 1

    def wgmma_wait(self, wgs: np.ndarray, n: int):
        act = np.zeros(self.nwg, dtype=bool)
        act[wgs] = True
        keep = []
        for rec in self.wg_records:
            rw, groups, words, uids, line = rec
            done = act[rw] & (groups < self.wg_committed[rw] - n)
            if done.any():
                np.subtract.at(self.wg_reads, words[done].reshape(-1), 1)
                if self.b.races is not None:
                    # the reads are over for the whole warpgroup, which waited for them together
                    self.b.races.forget_reads((np.unique(words[done]) * 4)[:, None] + np.arange(4))
                rest = ~done
                if not rest.any():
                    continue
                rec = [rw[rest], groups[rest], words[rest], uids, line]
            keep.append(rec)
        self.wg_records = keep

    def check_registers(self, uids: frozenset, instr):
        """An instruction other than wgmma touches registers a wgmma in flight owns."""
        st = self.b
        m = st.mask
        act = np.ones(self.nwg, dtype=bool) if m is None else m.reshape(self.nwg, -1).any(axis=1)
        for rw, _groups, _words, owned, line in self.wg_records:
            common = owned & uids
            if not common:
                continue
            hit = act[rw]
            if hit.any():
                wg = int(rw[np.flatnonzero(hit)[0]])
                t = wg * 128
                if m is not None:
                    t += int(np.flatnonzero(m[wg * 128 : wg * 128 + 128])[0])
                regs = ", ".join(sorted(instr_regs(instr, common)))
                raise AsyncAccessError(
                    f"{instr.where()} by {st.thread_name(t)} touches {regs}, registers of the wgmma at PTX line {line} "
                    "that no wgmma.wait_group has completed yet")


def instr_regs(instr, uids) -> set[str]:
    """Names of the registers among `uids` that an instruction mentions."""
    from .decode import operand_regs

    return {r.name for r in operand_regs(instr) if r.decl.uid in uids}
