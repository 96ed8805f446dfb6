"""cp.async groups: copies are in flight from issue until a `cp.async.wait_group` of the issuing
thread covers their group, and only then land in shared memory.

The source bytes are read at issue (PTX leaves the moment open; tilewise never writes a source
while a copy of it is in flight) and zero-filled past `src-size`. Each thread counts the groups it
committed; a copy belongs to the group its thread commits next. `wait_group n` lands every copy
of the executing threads whose group is older than their newest `n`. Until a copy lands, its
destination words are marked pending, and any shared-memory read or write of a pending word is an
`AsyncCopyError` naming the byte, the thread and the cp.async that has not been waited for: on a
GPU that access would see stale or half-written data."""
from __future__ import annotations

import numpy as np

from .errors import AsyncCopyError


class AsyncCopies:
    def __init__(self, batch, stride: int):
        self.b = batch
        self.committed = np.zeros(batch.T, dtype=np.int64)
        self.records: list = []  # (tids, flat dst, data (n, size), group, line)
        nwords = max(batch.ncta * stride // 4, 1)
        self.pending = np.zeros(nwords, dtype=np.int32)
        self.pending_line = np.zeros(nwords, dtype=np.int32)
        self.count = 0  # copies in flight
        self.issued = 0  # cp.async instructions executed: a record's serial (cp.async.mbarrier.arrive)
        self.serials: list[int] = []  # per record

    def issue(self, tids: np.ndarray, flat: np.ndarray, data: np.ndarray, line: int):
        size = data.shape[1]
        words = (flat >> 2)[:, None] + np.arange(max(size // 4, 1))
        np.add.at(self.pending, words.ravel(), 1)
        self.pending_line[words.ravel()] = line
        self.records.append((tids, flat, data, self.committed[tids].copy(), line))
        self.serials.append(self.issued)
        self.issued += 1
        self.count += len(tids)

    def commit(self, tids):
        if tids is None:
            self.committed += 1
        else:
            self.committed[tids] += 1

    def wait(self, tids, n: int):
        if not self.records:
            return
        limit = np.full(self.b.T, -1, dtype=np.int64)
        if tids is None:
            limit[:] = self.committed - n
        else:
            limit[tids] = self.committed[tids] - n
        self._land(lambda rt, group, serial: group < limit[rt])

    def land_prior(self, tids: np.ndarray, upto: int):
        """Land the copies of threads `tids` issued before serial `upto`, committed or not (a
        cp.async.mbarrier.arrive tracking them completes)."""
        if not self.records:
            return
        mine = np.zeros(self.b.T, dtype=bool)
        mine[tids] = True
        self._land(lambda rt, group, serial: mine[rt] & (serial < upto))

    def _land(self, select):
        keep, serials = [], []
        shared = self.b.shared
        for rec, serial in zip(self.records, self.serials):
            rt, flat, data, group, line = rec
            done = select(rt, group, serial)
            if not done.any():
                keep.append(rec)
                serials.append(serial)
                continue
            size = data.shape[1]
            f = flat[done]
            shared[f[:, None] + np.arange(size)] = data[done]
            if self.b.races is not None:
                self.b.races.landed(f, size, rt[done], line)
            words = (f >> 2)[:, None] + np.arange(max(size // 4, 1))
            np.subtract.at(self.pending, words.ravel(), 1)
            self.count -= int(done.sum())
            if not done.all():
                rest = ~done
                keep.append((rt[rest], flat[rest], data[rest], group[rest], line))
                serials.append(serial)
        self.records = keep
        self.serials = serials

    def check(self, flat: np.ndarray, size: int, tids, instr, access: str, write: bool = False, track: bool = True):
        """Raise if any of the `size`-byte shared accesses at batch offsets `flat` touches bytes a
        cp.async has not delivered yet. The Hopper asynchronous operations (TMA, wgmma, bulk
        stores: hopper.py) check the same accesses against their own bookkeeping."""
        if self.b.hopper is not None:
            self.b.hopper.check_access(flat, size, tids, instr, access, write, track)
        if self.count == 0:
            return
        nw = max((size + 3) // 4, 1)
        words = (np.asarray(flat) >> 2)[:, None] + np.arange(nw) if nw > 1 else (np.asarray(flat) >> 2)[:, None]
        hit = self.pending[words].any(axis=1)
        if not hit.any():
            return
        i = int(np.flatnonzero(hit)[0])
        t = int(tids[i]) if tids is not None else i
        w = int(words[i][np.flatnonzero(self.pending[words[i]])[0]])
        stride = self.b.shared_stride
        byte = (w * 4) % stride
        raise AsyncCopyError(
            f"{access} of shared byte {byte} by {self.b.thread_name(t)} at {instr.where()}: a cp.async "
            f"(PTX line {int(self.pending_line[w])}) writing it has not been waited for "
            f"(cp.async.wait_group, or a wait on the mbarrier a cp.async.mbarrier.arrive tracks it on) by the "
            "thread that issued it"
        )
