"""Shared-memory race detection between barriers, byte by byte.

Every block counts the `bar.sync`s it has passed (its epoch). For each shared byte the checker
remembers the last writing thread and its epoch, and the smallest and largest thread that read
it in the reader's epoch. A read of a byte another thread wrote in the same epoch, a write of a
byte another thread wrote or read in the same epoch, and two threads of one instruction writing
one byte are races (same-thread accesses never are; atomics are not tracked). A lockstep
interpreter computes the "right" values even when a barrier is missing, so this check is what
turns a dropped `__syncthreads` into a report. cp.async copies count as writes of the issuing
thread when they land (their reads before landing are the async checker's).

`bar.warp.sync` (__syncwarp) orders the accesses of one warp's lanes: each warp counts the ones
it passed, every write records its writer's count and every byte the largest count of its
readers in the epoch, and an earlier access by another lane of the same warp is ordered when
the warp's count has grown since (for reads: when every reader of the epoch is in that warp)."""
from __future__ import annotations

import numpy as np

from .errors import RaceError

_BIG = np.int32(2**31 - 1)


class SharedRaces:
    def __init__(self, batch):
        self.b = batch
        n = max(batch.ncta * batch.shared_stride, 1)
        self.w = np.full(n, -1, dtype=np.int32)  # last writer
        self.we = np.full(n, -1, dtype=np.int32)  # its epoch
        self.wl = np.zeros(n, dtype=np.int32)  # its PTX line
        self.rmin = np.full(n, _BIG, dtype=np.int32)  # smallest / largest reader of the epoch re
        self.rmax = np.full(n, -1, dtype=np.int32)
        self.re = np.full(n, -1, dtype=np.int32)
        self.rl = np.zeros(n, dtype=np.int32)
        self.epoch = np.zeros(batch.ncta, dtype=np.int32)
        self.wsync = np.zeros(batch.T // 32 + 1, dtype=np.int32)  # bar.warp.sync passed, per warp
        self.ww = np.full(n, -1, dtype=np.int32)  # the writer's warp count at the write
        self.rw = np.full(n, -1, dtype=np.int32)  # the largest warp count of the epoch's readers

    def barrier(self, ctas: np.ndarray):
        self.epoch[ctas] += 1

    def warp_sync(self, warps: np.ndarray):
        self.wsync[warps] += 1

    def _warp_ordered(self, other, t, count):
        """Accesses by `other` (recorded at warp count `count`) ordered before thread t's now by a
        bar.warp.sync of their warp."""
        other = np.asarray(other)
        return (other >= 0) & (other // 32 == t // 32) & (self.wsync[t // 32] > count)

    def _bytes(self, flat, size, tids):
        flat = np.asarray(flat, dtype=np.int64)
        t = np.arange(self.b.T, dtype=np.int32) if tids is None else np.asarray(tids, dtype=np.int32)
        if size > 1:
            byte = (flat[:, None] + np.arange(size)).reshape(-1)
            t = np.repeat(t, size)
        else:
            byte = flat
        return byte, t, self.epoch[self.b.cta[t]]

    def read(self, flat, size: int, tids, instr):
        byte, t, E = self._bytes(flat, size, tids)
        bad = (self.we[byte] == E) & (self.w[byte] != t) & ~self._warp_ordered(self.w[byte], t, self.ww[byte])
        if bad.any():
            self._report(byte, t, bad, "wrote", self.w, self.wl, "reads", instr)
        fresh = self.re[byte] != E
        if fresh.any():
            fb = byte[fresh]
            self.rmin[fb] = _BIG
            self.rmax[fb] = -1
            self.rw[fb] = -1
            self.re[fb] = E[fresh]
        np.minimum.at(self.rmin, byte, t)
        np.maximum.at(self.rmax, byte, t)
        np.maximum.at(self.rw, byte, self.wsync[t // 32])
        self.rl[byte] = instr.line

    def write(self, flat, size: int, tids, instr, line: int | None = None, record: bool = True):
        byte, t, E = self._bytes(flat, size, tids)
        same = self.we[byte] == E
        bad = same & (self.w[byte] != t) & ~self._warp_ordered(self.w[byte], t, self.ww[byte])
        if bad.any():
            self._report(byte, t, bad, "wrote", self.w, self.wl, "writes", instr)
        rsame = self.re[byte] == E
        rmin, rmax = self.rmin[byte], self.rmax[byte]
        readers_synced = self._warp_ordered(rmin, t, self.rw[byte]) & (rmax // 32 == t // 32)
        bad = rsame & ((rmin != t) | (rmax != t)) & ~readers_synced
        if bad.any():
            other = np.where(self.rmin[byte] != t, self.rmin[byte], self.rmax[byte])
            self._report(byte, t, bad, "read", other, self.rl, "writes", instr, direct=True)
        if not record:
            return
        self.w[byte] = t
        self.we[byte] = E
        self.ww[byte] = self.wsync[t // 32]
        self.wl[byte] = instr.line if line is None else line
        clash = self.w[byte] != t  # two threads of this instruction wrote one byte
        if clash.any():
            self._report(byte, t, clash, "wrote", self.w, self.wl, "writes", instr)

    def landed(self, flat, size: int, tids, line: int):
        """cp.async data arriving: a write by the issuing threads, checked when it was issued."""
        byte, t, E = self._bytes(flat, size, tids)
        self.w[byte] = t
        self.we[byte] = E
        self.ww[byte] = self.wsync[t // 32]
        self.wl[byte] = line

    def reset(self, flat):
        """Bytes written by the asynchronous proxy (a TMA load landing): whatever threads did to
        them before is ordered by the mbarrier wait that landed them."""
        flat = np.asarray(flat, dtype=np.int64)
        self.w[flat] = -1
        self.we[flat] = -1
        self.re[flat] = -1

    def forget_reads(self, flat):
        """Reads that are known to be over (a wgmma's operands once its group was waited for)."""
        self.re[np.asarray(flat, dtype=np.int64).reshape(-1)] = -1

    def _report(self, byte, t, bad, verb_old, who, lines, verb_now, instr, direct=False):
        k = int(np.flatnonzero(bad)[0])
        b = int(byte[k])
        other = int(who[k]) if direct else int(who[b])
        stride = self.b.shared_stride
        raise RaceError(
            f"shared-memory race on shared byte {b % stride}: {self.b.thread_name(other)} {verb_old} it "
            f"(PTX line {int(lines[b])}), then {self.b.thread_name(int(t[k]))} {verb_now} it at {instr.where()}, "
            "with no bar.sync between them"
        )
