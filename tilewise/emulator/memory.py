"""Memory of a batch of blocks. Every root buffer is bytes: one row for a global tensor (a view
of the caller's numpy array, so writes land in it), one row per block for shared memory, one row
per lane for registers. Typed accesses use numpy views of those bytes, so aliasing views (shared
memory planning, reinterpreting registers) see the same data."""
from __future__ import annotations

import numpy as np

from ..ir.buffer import Buffer
from ..ir.span import Span
from .errors import MisalignedAddressError, OutOfBoundsError, UninitializedReadError, element_str, where


class Site:
    """One memory access in the program (a load, a store, an intrinsic operand): what to name in
    error messages."""

    __slots__ = ("sid", "buffer", "span", "what")

    def __init__(self, sid: int, buffer: Buffer, span: Span | None, what: str):
        self.sid = sid
        self.buffer = buffer
        self.span = span
        self.what = what


class Storage:
    """The bytes of one root buffer: `data` is a 2-D uint8 array [rows, row_bytes]."""

    __slots__ = ("name", "scope", "data", "nbytes", "_typed", "shadow", "init", "busy")

    def __init__(self, name: str, scope: str, data: np.ndarray, nbytes: int):
        self.name = name
        self.scope = scope  # "global" | "shared" | "local"
        self.data = data
        self.nbytes = nbytes  # bytes of the buffer (rows may be padded past it)
        self._typed: dict = {}
        self.shadow = None  # SharedShadow for shared memory when race checks are on
        self.init = None  # bool array like data, when uninitialised reads are checked
        self.busy = None  # registers owned by a wgmma in flight (async_regs.py)

    def typed(self, npdt: np.dtype) -> np.ndarray:
        """A [rows, row_bytes // itemsize] view of the bytes as npdt."""
        v = self._typed.get(npdt)
        if v is None:
            v = self.data.view(npdt)
            self._typed[npdt] = v
        return v


def new_rows(rows: int, nbytes: int) -> np.ndarray:
    """Zeroed byte rows, padded to 16 bytes so that every vector type can view them."""
    return np.zeros((rows, max(16, -(-nbytes // 16) * 16)), dtype=np.uint8)


def global_storage(name: str, arr: np.ndarray) -> Storage:
    flat = arr.reshape(-1)
    data = flat.view(np.uint8).reshape(1, -1)
    return Storage(name, "global", data, data.shape[1])


# ------------------------------------------------------------------------------ index checks


def strides_of(shape) -> tuple[int, ...]:
    out = []
    s = 1
    for d in reversed(shape):
        out.append(s)
        s *= int(d)
    return tuple(reversed(out))


def flat_index(st, site: Site, idx: list, shape, strides):
    """Row-major element offset (int or int64 array) of `idx` in a buffer of `shape`, after
    checking every dimension on the active lanes. Inactive lanes get offset 0."""
    bad = None
    scalar_bad = False
    for v, n in zip(idx, shape):
        if np.ndim(v) == 0:
            if not 0 <= v < n:
                scalar_bad = True
        else:
            b = (v < 0) | (v >= n)
            bad = b if bad is None else (bad | b)
    mask = st.mask
    if scalar_bad:
        if mask is None or mask.any():
            lane = 0 if mask is None else int(np.flatnonzero(mask)[0])
            raise_oob(st, site, [_lane_value(v, lane) for v in idx], shape, lane)
        bad = None
    if bad is not None:
        act_bad = bad if mask is None else (bad & mask)
        if act_bad.any():
            lane = int(np.flatnonzero(act_bad)[0])
            raise_oob(st, site, [_lane_value(v, lane) for v in idx], shape, lane)
    off = 0
    for v, s in zip(idx, strides):
        if np.ndim(v) == 0:
            off = off + int(v) * s
        else:
            off = off + v.astype(np.int64) * s
    if bad is not None and bad.any():
        off = np.where(bad, 0, off)
    elif scalar_bad:
        off = 0
    return off


def _lane_value(v, lane: int) -> int:
    return int(v) if np.ndim(v) == 0 else int(v[lane])


def raise_oob(st, site: Site, index, shape, lane: int, extra: str = ""):
    b = site.buffer
    idx = ", ".join(str(i) for i in index)
    dims = ", ".join(str(d) for d in shape)
    raise OutOfBoundsError(
        f"out-of-bounds {site.what} of {b.name}[{idx}] ({b.scope} buffer of shape [{dims}]){extra} by "
        f"{st.thread_of_lane(lane)} at {where(site.span)}"
    )


def check_byte_range(st, site: Site, off, nbytes: int, act, shape):
    """Check that the `nbytes` bytes from byte offset `off` (relative to the root) lie inside the
    view buffer of `site`, for the lanes `act` (indices, or None for all)."""
    b = site.buffer
    esize = b.dtype.bytes
    lo = b.byte_offset
    total = 1
    for d in shape:
        total *= int(d)
    hi = lo + total * esize
    if np.ndim(off) == 0:
        if lo <= off and off + nbytes <= hi:
            return
        lanes = np.arange(st.L) if act is None else act
        if lanes.size == 0:
            return
        lane = int(lanes[0])
        o = int(off)
    else:
        o_act = off if act is None else off[act]
        bad = (o_act < lo) | (o_act + nbytes > hi)
        if not bad.any():
            return
        k = int(np.flatnonzero(bad)[0])
        lane = k if act is None else int(act[k])
        o = int(o_act[k])
    dims = ", ".join(str(d) for d in shape)
    if o < lo:
        problem = f"starts {lo - o} bytes before {b.name}"
    else:
        first_bad = max(o, hi)
        problem = f"reaches {element_str(b.name, shape, (first_bad - lo) // esize)}, outside {b.name}"
    raise OutOfBoundsError(
        f"out-of-bounds {site.what} ({nbytes} bytes) from {element_str(b.name, shape, (o - lo) // esize)}: it "
        f"{problem} ({b.scope} buffer of shape [{dims}], {total} elements) by {st.thread_of_lane(lane)} "
        f"at {where(site.span)}"
    )


# ------------------------------------------------------------------------------ shared shadow

NONE = -1


class SharedShadow:
    """Who accessed each byte of one shared allocation since the last barrier, per block.

    For every byte: the last writer (thread and site), up to two distinct readers (enough to name
    a reader other than any given writer), and the thread and site of a cp.async whose copy into
    the byte is still in flight. Arrays are flat over [blocks, row_bytes].

    Once a batch orders threads through mbarriers or named barriers (order.py), every entry also
    carries the sequence number of its access (wq, r1q, r2q), and the two reader slots keep the
    most recent readers (an older read is more likely ordered before a later write)."""

    def __init__(self, rows: int, row_bytes: int):
        n = rows * row_bytes
        self.row_bytes = row_bytes
        self.w = np.full(n, NONE, np.int32)
        self.ws = np.full(n, NONE, np.int32)
        self.r1 = np.full(n, NONE, np.int32)
        self.r1s = np.full(n, NONE, np.int32)
        self.r2 = np.full(n, NONE, np.int32)
        self.r2s = np.full(n, NONE, np.int32)
        self.p = np.full(n, NONE, np.int32)
        self.ps = np.full(n, NONE, np.int32)
        self.any_pending = False
        self.wq = self.r1q = self.r2q = None

    def enable_order(self):
        """Sequence numbers for the entries (order.py); accesses so far get 0."""
        if self.wq is None:
            n = self.w.size
            self.wq = np.zeros(n, np.int32)
            self.r1q = np.zeros(n, np.int32)
            self.r2q = np.zeros(n, np.int32)

    def barrier(self, blocks: np.ndarray | None):
        """Forget the epoch's accesses of the blocks that passed a barrier (None: all)."""
        if blocks is None:
            for a in (self.w, self.ws, self.r1, self.r1s, self.r2, self.r2s):
                a.fill(NONE)
            return
        rb = self.row_bytes
        for a in (self.w, self.ws, self.r1, self.r1s, self.r2, self.r2s):
            a.reshape(-1, rb)[blocks] = NONE


def check_init(st, storage: Storage, site: Site, flat: np.ndarray, lanes: np.ndarray, shape):
    """Raise if a byte at the flat indices [n, k] (of lanes [n]) was never written."""
    ok = storage.init.reshape(-1)[flat]
    if ok.all():
        return
    bad = ~ok
    row = int(np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))[0])
    col = int(np.flatnonzero(bad.reshape(bad.shape[0], -1)[row])[0])
    byte = int(flat.reshape(flat.shape[0], -1)[row, col]) % storage.data.shape[1]
    b = site.buffer
    elem = (byte - b.byte_offset) // b.dtype.bytes
    raise UninitializedReadError(
        f"{site.what} of uninitialised {b.scope} memory: {element_str(b.name, shape, elem)} "
        f"by {st.thread_of_lane(int(lanes[row]))} at {where(site.span)}; nothing wrote it before"
    )


def resolve_pointers(st, site: Site, addr: np.ndarray, esize: int, lanes: np.ndarray):
    """The argument tensors host addresses point into (a tensor T.make_tensor made from a pointer
    table's element): for the lanes `lanes` with addresses `addr` (int64, one per such lane),
    their storage slots and element indices. An address outside every tensor argument, or not
    aligned to the element, raises naming it: the emulator knows memory by the tensors passed."""
    slots = np.full(addr.shape, -1, np.int64)
    elem = np.zeros(addr.shape, np.int64)
    for slot, s in enumerate(st.store):
        if s is None or s.scope != "global" or not s.nbytes:
            continue
        start = int(s.data.__array_interface__["data"][0])
        inside = (slots < 0) & (addr >= start) & (addr + esize <= start + s.nbytes)
        if inside.any():
            slots[inside] = slot
            elem[inside] = addr[inside] - start
    bad = slots < 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        b = site.buffer
        raise OutOfBoundsError(
            f"{site.what} of {b.name} (a tensor at an address read at run time) at host address {int(addr[i]):#x}, "
            f"which lies in no tensor argument of the kernel (the emulator maps such addresses onto the tensors "
            f"passed; pass the tensor the pointer table points into as an argument too) by "
            f"{st.thread_of_lane(int(lanes[i]))} at {where(site.span)}")
    mis = elem % esize
    if mis.any():
        i = int(np.flatnonzero(mis)[0])
        raise MisalignedAddressError(
            f"{site.what} of {site.buffer.name} at host address {int(addr[i]):#x}, not a multiple of its "
            f"{esize}-byte element, by {st.thread_of_lane(int(lanes[i]))} at {where(site.span)}")
    return slots, elem // esize
