"""cp.async queues: each thread's copies are read from global memory when issued, grouped by
`cp.async.commit_group`, and written to shared memory only when a `cp.async.wait_group n` of
that thread covers their group (all but the newest n committed groups), as the PTX ISA defines
("Data Movement and Conversion Instructions: cp.async.commit_group" and "cp.async.wait_group /
cp.async.wait_all"; an empty group is trivially complete). A `cp.async.mbarrier.arrive` makes an
mbarrier track every earlier copy of the thread, committed or not (mbarrier.py lands them when a
wait needs that barrier's phase: `land_prior`)."""
from __future__ import annotations

import numpy as np

from . import async_proxy, races
from .memory import Storage


class Chunk:
    """The copies one cp_async statement issued for its active lanes."""

    __slots__ = ("storage", "lanes", "flat", "data", "group", "sid", "serial")

    def __init__(self, storage: Storage, lanes: np.ndarray, flat: np.ndarray, data: np.ndarray, sid: int):
        self.serial = 0  # issue order (AsyncQueues.issued when issued)
        self.storage = storage
        self.lanes = lanes  # lane ids [n]
        self.flat = flat  # flat byte index of the destination's first byte [n]
        self.data = data  # bytes to write [n, nbytes]
        self.group = np.full(lanes.shape[0], -1, np.int64)  # -1: not committed yet
        self.sid = sid


class AsyncQueues:
    def __init__(self, lanes: int):
        self.committed = np.zeros(lanes, np.int64)  # groups committed so far, per lane
        self.chunks: list[Chunk] = []
        self.issued = 0  # cp_async statements executed so far: Chunk.serial

    def issue(self, chunk: Chunk):
        chunk.serial = self.issued
        self.issued += 1
        self.chunks.append(chunk)

    def commit(self, mask: np.ndarray | None):
        for c in self.chunks:
            open_ = c.group < 0
            if mask is not None:
                open_ &= mask[c.lanes]
            if open_.any():
                c.group[open_] = self.committed[c.lanes[open_]]
        if mask is None:
            self.committed += 1
        else:
            self.committed[mask] += 1

    def wait(self, st, n: int, mask: np.ndarray | None):
        """Land every committed copy of the active lanes except their newest n groups."""
        def select(c: Chunk) -> np.ndarray:
            land = (c.group >= 0) & (c.group < self.committed[c.lanes] - n)
            return land if mask is None else land & mask[c.lanes]

        self._land_where(st, select, None)

    def land_prior(self, st, mask: np.ndarray, upto: int, seq):
        """Land the copies of the lanes in `mask` issued before serial `upto`, committed or not
        (an mbarrier's cp.async arrival tracking them completes); `seq`: the order.py sequence
        number the landed bytes count as written at (the arrival's)."""
        self._land_where(st, lambda c: mask[c.lanes] if c.serial < upto else np.zeros(c.lanes.size, bool), seq)

    def _land_where(self, st, select, seq):
        keep = []
        for c in self.chunks:
            land = select(c)
            if land.any():
                self._land(st, c, land, seq)
                rest = ~land
                if not rest.any():
                    continue
                c.lanes, c.flat, c.data, c.group = c.lanes[rest], c.flat[rest], c.data[rest], c.group[rest]
            keep.append(c)
        self.chunks = keep

    def _land(self, st, c: Chunk, land: np.ndarray, seq=None):
        nbytes = c.data.shape[1]
        flat = (c.flat[land][:, None] + np.arange(nbytes)).reshape(-1)
        c.storage.data.reshape(-1)[flat] = c.data[land].reshape(-1)
        if c.storage.init is not None:
            c.storage.init.reshape(-1)[flat] = True
        if c.storage.shadow is not None:
            tids = np.repeat(st.lane_tid[c.lanes[land]], nbytes).astype(np.int32)
            o = st.sync.order
            if seq is None and o is not None:
                seq = o.seq
            races.on_async_land(c.storage, flat, tids, np.full(flat.size, c.sid, np.int32), seq)
            if st.hopper is not None:  # cp.async writes through the generic proxy
                async_proxy.on_generic_write(st, c.storage, flat, tids, c.sid, "lands a cp.async copy into")
