"""Shared memory seen from the async proxy (PTX ISA "Async Proxy" of the wgmma and bulk-copy
chapters): wgmma operand reads and TMA copies are performed by the async proxy, plain loads,
stores, atomics and (non-bulk) cp.async by the generic proxy.

Two things are tracked per byte of a shared root, only while the race checks are on (they hang
off the same hooks as the race shadow):

- readers in flight: a wgmma reads its operands and a TMA store reads its source at some time
  before the wait that completes it (`wgmma_wait`, `tma_store_wait`); a write to such a byte in
  between is reported (AsyncAccessError) with both lines;
- generic writes not yet fenced: "accessing the same memory location across multiple proxies
  needs a cross-proxy fence" (fence.proxy.async). A generic write followed, with no
  `fence_proxy_async` since, by an async-proxy read of the byte is reported (RaceError). A fence
  by any thread of a block counts for the whole block (the usual pattern is write, fence, barrier,
  issue); TMA loads write through the async proxy and their completion is followed by an implicit
  fence, so bytes they land are clean."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import AsyncAccessError, RaceError, UninitializedReadError, element_str, where
from .hopper import block_name, state

NONE = -1


@dataclass
class Reader:
    """An async-proxy read of shared memory that stays in flight until a wait."""

    what: str  # "wgmma operand read", "TMA store read"
    span: object
    wait: str  # the statement that ends it
    who: Callable  # (st, block of the batch) -> the issuing threads of that block


class ProxyShadow:
    def __init__(self, n: int, row_bytes: int):
        self.n = n
        self.row_bytes = row_bytes
        self.readers = None  # int32 count of reads in flight per byte
        self.reader = None  # index into HopperState.readers of the latest
        self.uf_site = None  # site id of the last generic write not fenced since
        self.uf_tid = None

    def ensure_readers(self):
        if self.readers is None:
            self.readers = np.zeros(self.n, np.int32)
            self.reader = np.full(self.n, NONE, np.int32)

    def ensure_unfenced(self):
        if self.uf_site is None:
            self.uf_site = np.full(self.n, NONE, np.int32)
            self.uf_tid = np.full(self.n, NONE, np.int32)


def _shadow(st, storage) -> ProxyShadow:
    hs = state(st)
    ps = hs.proxy.get(id(storage))
    if ps is None:
        ps = ProxyShadow(storage.data.size, storage.data.shape[1])
        hs.proxy[id(storage)] = ps
    return ps


def _byte_name(st, storage, sid: int, byte: int) -> str:
    if sid == NONE:
        return f"{storage.name} byte {byte}"
    b = st.sites[sid].buffer
    shape = b.static_shape() or (b.numel(),)
    return f"{element_str(b.name, shape, (byte - b.byte_offset) // b.dtype.bytes)} ({storage.name} byte {byte})"


# ------------------------------------------------------------------------------ generic side


def on_generic_write(st, storage, flat: np.ndarray, tids: np.ndarray, sid: int, verb: str):
    """A generic-proxy write of the flat byte indices (plain store, atomic, cp.async): reported if
    an async read of the bytes is in flight; remembered until a fence_proxy_async."""
    ps = _shadow(st, storage)
    if ps.readers is not None:
        busy = ps.readers[flat] > 0
        if busy.any():
            k = int(np.flatnonzero(busy)[0])
            block, byte = divmod(int(flat[k]), ps.row_bytes)
            r = st.hopper.readers[int(ps.reader[flat[k]])]
            site = st.sites[sid]
            raise AsyncAccessError(
                f"{st.describe(block, int(tids[k]))} {verb} {_byte_name(st, storage, sid, byte)} ({site.what} at "
                f"{where(site.span)}) while an asynchronous {r.what} of it is in flight: issued by {r.who(st, block)} at "
                f"{where(r.span)}, and no {r.wait} has completed it yet"
            )
    ps.ensure_unfenced()
    ps.uf_site[flat] = sid
    ps.uf_tid[flat] = tids


def fence(st, blocks: np.ndarray | None):
    """fence.proxy.async by a thread of each of `blocks` (None: every block of the batch)."""
    hs = state(st)
    for ps in hs.proxy.values():
        if ps.uf_site is None:
            continue
        if blocks is None:
            ps.uf_site.fill(NONE)
        else:
            ps.uf_site.reshape(-1, ps.row_bytes)[blocks] = NONE


# ------------------------------------------------------------------------------ async side


def check_fenced(st, storage, flat: np.ndarray, what: str, span, who: str):
    """An async-proxy read of the flat byte indices: every generic write to them must have been
    followed by a fence_proxy_async."""
    ps = _shadow(st, storage)
    if ps.uf_site is None:
        return
    bad = ps.uf_site[flat] != NONE
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        block, byte = divmod(int(flat[k]), ps.row_bytes)
        sid = int(ps.uf_site[flat[k]])
        site = st.sites[sid]
        raise RaceError(
            f"{what} by {who} at {where(span)} reads {_byte_name(st, storage, sid, byte)} in shared memory, which "
            f"{st.describe(block, int(ps.uf_tid[flat[k]]))} wrote through the generic proxy ({site.what} at "
            f"{where(site.span)}) with no fence_proxy_async (fence.proxy.async) since: the async proxy may not see "
            f"the write"
        )


def check_initialised(st, storage, flat: np.ndarray, what: str, span, who: str):
    """With check_uninit: an async-proxy read of bytes nothing wrote."""
    if storage.init is None:
        return
    bad = ~storage.init.reshape(-1)[flat]
    if bad.any():
        block, byte = divmod(int(flat[int(np.flatnonzero(bad)[0])]), storage.data.shape[1])
        raise UninitializedReadError(
            f"{what} by {who} at {where(span)} reads uninitialised shared memory: {storage.name} byte {byte} of "
            f"{block_name(st, block)}; nothing wrote it before"
        )


def check_no_readers(st, storage, flat: np.ndarray, tids: np.ndarray, what: str, span):
    """An async-proxy write (a TMA load) by threads tids [n] to the bytes flat [n, m] that an
    async read may still be reading."""
    ps = _shadow(st, storage)
    if ps.readers is None:
        return
    busy = ps.readers[flat] > 0
    if busy.any():
        i, j = (int(x[0]) for x in np.nonzero(busy))
        block, byte = divmod(int(flat[i, j]), ps.row_bytes)
        r = st.hopper.readers[int(ps.reader[flat[i, j]])]
        raise AsyncAccessError(
            f"{what} by {st.describe(block, int(tids[i]))} at {where(span)} overwrites {storage.name} byte {byte} while "
            f"an asynchronous {r.what} of it is in flight: issued by {r.who(st, block)} at {where(r.span)}, and no "
            f"{r.wait} has completed it yet"
        )


def add_readers(st, storage, flat: np.ndarray, reader: Reader) -> int:
    """Mark the bytes as read by an async operation in flight; returns the reader's id."""
    hs = state(st)
    ps = _shadow(st, storage)
    ps.ensure_readers()
    rid = len(hs.readers)
    hs.readers.append(reader)
    # flat may repeat a byte (A and B of one wgmma in the same tile): count it once, and
    # drop_readers removes it once
    ps.readers[flat] += 1
    ps.reader[flat] = rid
    return rid


def drop_readers(st, storage, flat: np.ndarray):
    ps = _shadow(st, storage)
    ps.readers[flat] -= 1


def async_landed(st, storage, flat: np.ndarray):
    """A TMA load wrote the bytes: async-proxy data, visible to both proxies once its barrier
    phase completes."""
    ps = _shadow(st, storage)
    if ps.uf_site is not None:
        ps.uf_site[flat] = NONE
