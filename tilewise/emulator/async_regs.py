"""Registers owned by a wgmma in flight (PTX ISA "wgmma.wait_group"): "accessing the accumulator
register or the input register containing the fragments of matrix A of a wgmma.mma_async
instruction without first performing a wgmma.wait_group instruction that waits on a wgmma-group
including that wgmma.mma_async instruction is undefined behavior."

A register storage with owned bytes has `storage.busy`, the list of its Owned ranges (a byte
range per lane, for the lanes of the owning warpgroups); the loads and stores of registers call
`check` while it is set, and a plain access that overlaps a range is reported (AsyncAccessError)
with the wgmma's line. Ranges rather than per-byte marks keep a wgmma's bookkeeping at a few
operations per lane. The wgmma module decides which wgmma-to-wgmma accesses are allowed
(accumulator chains of one shape; A fragments read by several wgmmas)."""
from __future__ import annotations

import numpy as np

from .errors import AsyncAccessError, element_str, where


class Owned:
    """`nbytes` register bytes from root byte offset off[lane] (an array over the batch's lanes)
    of every lane in `mask`, owned by one wgmma."""

    def __init__(self, storage, mask: np.ndarray, off: np.ndarray, nbytes: int, kind: str, span, wgmma=None):
        self.storage = storage
        self.mask = mask
        self.off = off
        self.nbytes = nbytes
        self.kind = kind  # "accumulator" | "A operand"
        self.span = span
        self.wgmma = wgmma  # the wgmma.Pending that owns them

    def overlap(self, lanes: np.ndarray, off: np.ndarray, nbytes: int) -> np.ndarray:
        """Which of `lanes` (whose accesses cover off[i] .. off[i] + nbytes) touch the range."""
        o = self.off[lanes]
        return self.mask[lanes] & (off < o + self.nbytes) & (o < off + nbytes)


def own(st, o: Owned):
    s = o.storage
    if s.busy is None:
        s.busy = []
    s.busy.append(o)


def release(st, o: Owned, lanes: np.ndarray):
    """Give back the bytes of `lanes`; drop o when no lane is left."""
    o.mask[lanes] = False
    if not o.mask.any():
        s = o.storage
        s.busy.remove(o)
        if not s.busy:
            s.busy = None


def check(st, storage, site, off, nbytes: int, verb: str, lanes: np.ndarray | None = None):
    """A plain `verb` ("reads" / "writes") of the `nbytes` register bytes at root byte offset
    `off` (an int, or one per lane of the batch) by `lanes` (default: the active lanes)."""
    if lanes is None:
        lanes = st.lanes if st.mask is None else np.flatnonzero(st.mask)
    if lanes.size == 0:
        return
    o = np.broadcast_to(np.asarray(off, np.int64), (st.L,))[lanes]
    for w in storage.busy:
        hit = w.overlap(lanes, o, nbytes)
        if not hit.any():
            continue
        k = int(np.flatnonzero(hit)[0])
        lane = int(lanes[k])
        byte = max(int(o[k]), int(w.off[lane]))
        b = site.buffer
        elem = element_str(b.name, b.static_shape() or (b.numel(),), (byte - b.byte_offset) // b.dtype.bytes)
        raise AsyncAccessError(
            f"{st.thread_of_lane(lane)} {verb} register {elem} ({site.what} at {where(site.span)}) while it belongs to "
            f"the {w.wgmma.what} issued at {where(w.span)} by {w.wgmma.who(st, lane)}, whose {w.kind} it is until a "
            f"wgmma_wait completes its group{w.wgmma.uncommitted(st, lane)}"
        )
