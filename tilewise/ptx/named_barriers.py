"""Named barriers (`bar.sync id, count` / `bar.arrive id, count`) for warp-specialised kernels,
where different warpgroups synchronise among themselves (barrier 1 for the consumers) while the
others run on.

A thread arriving with bar.sync waits in the barrier's basic block (executor.py gives it one)
until `count` threads of its block have arrived at that barrier id; bar.arrive counts without
waiting. In a kernel with mbarriers `bar.sync 0` (__syncthreads) works the same way, expecting
the block's threads that have not exited, since some of them may be suspended in a wait. Arrivals are counted per thread in thread order, so more arrivals than the count in
one step form the next generation, as on the hardware. Threads that wait are suspended like an
mbarrier wait (HopperState.blocked): if every live thread is suspended and nothing progresses,
the DeadlockError names each barrier, its arrivals and the waiting threads.

Race checks: a completed named barrier advances its block's epoch (like bar.sync 0). That
orders the participants correctly but also, conservatively, the threads that did not take part:
a race between a participant and a non-participant across a named barrier is not reported."""
from __future__ import annotations

import numpy as np

from .errors import EmulatorError

MAX_ID = 16


class NamedBarrierError(EmulatorError):
    """A named barrier used with an id or a count the ISA does not allow, or inconsistently."""


class NamedBarriers:
    def __init__(self, hs):
        self.hs = hs
        T = hs.b.T
        self.arrived: dict = {}  # (cta, id) -> threads arrived in the current generation
        self.count: dict = {}  # (cta, id) -> the thread count of the current generation
        self.waiting = np.zeros(T, dtype=bool)
        self.passed = np.zeros(T, dtype=bool)
        self.where: dict = {}  # waiting thread -> (id, PTX line)

    def arrive(self, tids: np.ndarray, ids: np.ndarray, count: np.ndarray, wait: bool, instr,
               whole_block: bool = False):
        b = self.hs.b
        new = ~self.waiting[tids]  # a suspended thread retrying the barrier has already arrived
        tids, ids, count = tids[new], ids[new], count[new]
        if tids.size == 0:
            return
        bad = (ids < 0) | (ids >= MAX_ID)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise NamedBarrierError(f"{instr.where()}: {b.thread_name(int(tids[k]))} names barrier {int(ids[k])}; "
                                    f"barrier ids are 0 to {MAX_ID - 1}")
        bad = (count <= 0) | (count % 32 != 0) | (count > b.launch.padded_threads)
        if bad.any() and not whole_block:
            k = int(np.flatnonzero(bad)[0])
            raise NamedBarrierError(f"{instr.where()}: {b.thread_name(int(tids[k]))} arrives at barrier {int(ids[k])} "
                                    f"for {int(count[k])} threads; the count is a positive multiple of 32 no larger "
                                    f"than the block ({b.launch.threads_per_block} threads)")
        if wait:
            self.waiting[tids] = True
            for t, i in zip(tids.tolist(), ids.tolist()):
                self.where[t] = (i, instr.line)
        else:
            self.passed[tids] = True
        for t, i, c in zip(tids.tolist(), ids.tolist(), count.tolist()):
            key = (int(b.cta[t]), i)
            want = self.count.setdefault(key, c)
            if want != c:
                raise NamedBarrierError(
                    f"{instr.where()}: {b.thread_name(t)} arrives at barrier {i} for {c} threads while the threads "
                    f"already there ({b.thread_name(self.arrived[key][0])} first) counted {want}")
            got = self.arrived.setdefault(key, [])
            got.append(t)
            if len(got) == want:
                self._release(key)
        self.hs.progress += 1

    def _release(self, key):
        done = np.asarray(self.arrived.pop(key), dtype=np.int64)
        del self.count[key]
        w = done[self.waiting[done]]
        self.waiting[w] = False
        self.passed[w] = True
        for t in w.tolist():
            self.where.pop(t, None)
        races = self.hs.b.races
        if races is not None:
            races.barrier(np.asarray([key[0]]))

    def step(self, st, here: int, fall: int):
        """The terminator of a barrier's basic block: threads that passed go on, the others stay
        (suspended until something progresses)."""
        m = st.mask
        passed = self.passed.copy() if m is None else (self.passed & m)
        stuck = ~self.passed if m is None else (m & ~self.passed)
        self.passed[passed] = False
        if stuck.any():
            self.hs.blocked[stuck] = True
            self.hs.any_blocked = True
        return np.where(passed, fall, here)

    def describe(self, live: np.ndarray) -> str:
        """The named barriers live threads wait at, for a deadlock report."""
        b = self.hs.b
        out = []
        for key, got in self.arrived.items():
            waiters = [t for t in got if self.waiting[t] and live[t]]
            if not waiters:
                continue
            i, line = self.where[waiters[0]]
            out.append(f"{len(waiters)} thread(s), {b.thread_name(waiters[0])} first, wait at bar.sync {i} (PTX line "
                       f"{line}), where {len(got)} of the {self.count[key]} threads it counts have arrived")
        return "; ".join(out)
