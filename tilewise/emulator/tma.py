"""TMA (PTX ISA "cp.async.bulk.tensor" and "Tensors"): `tma_load`, `tma_store`,
`tma_store_commit`, `tma_store_wait` and `fence_proxy_async`, for the tensor maps a kernel lists
in `Kernel.attrs["tensor_maps"]` (ir/tensor_map.py).

A box is the tensor's elements from the coordinates (outermost first) over the box extents; in
shared memory it is dense and row-major, byte b at shared address dst + b moved by the map's
swizzle (hopper.swizzle: the 16-byte chunk index XOR the 128-byte line index, modulo S / 16).

- Loads ("tile" mode, zero fill): read global memory when issued, elements outside the tensor
  read as zero; the bytes are in flight until a wait on the barrier needs its phase
  (mbarrier.land). Reading them earlier is an AsyncCopyError, as for cp.async (race checks on).
  Issuing one is a write of the destination by the issuing thread for the race checks: a plain
  access of those bytes by another thread that no barrier orders before the issue (a producer
  refilling a stage without waiting for its consumers) is a RaceError. Landed bytes count as
  written by the issuing thread, ordered through the barrier's phase (order.py).
- Stores: read the shared source when issued (checked for copies in flight, for plain writes of
  other threads with no __syncthreads since, and for plain writes with no fence_proxy_async
  since) and write the elements inside the tensor to global memory at once; the source bytes
  stay in use until a `tma_store_wait` of the issuing thread covers the store's bulk group
  ("cp.async.bulk.wait_group.read": all but the newest n groups), and writing them earlier is
  an AsyncAccessError. Coordinates must be non-negative (the ISA's rule for shared -> global).
- `fence_proxy_async`: generic-proxy writes before it are visible to the async proxy (see
  async_proxy.py); it also counts as the fence after mbarrier inits.
- A block that exits with a TMA load or store in flight is reported.

The maps are checked as cuTensorMapEncodeTiled would: box extents in [1, 256], box rows a
multiple of 16 bytes, byte strides of the outer dimensions multiples of 16, a swizzled box row
at most the swizzle span."""
from __future__ import annotations

import math

import numpy as np

from ..ir.stmt import Kernel, SeqStmt
from ..ir.tensor_map import TensorMap
from . import arith, async_proxy, mbarrier, order, races
from .async_proxy import Reader
from .errors import AsyncAccessError, AsyncCopyError, MisalignedAddressError, OutOfBoundsError, UnsupportedError, where
from .hopper import active_lanes, address, block_name, lane_offsets, state, swizzle, values
from .memory import NONE, strides_of

ALIGN = 128  # shared-memory alignment of a tensor copy's box


# ------------------------------------------------------------------------------ maps


def _kernels(s):
    if isinstance(s, Kernel):
        yield s
    elif isinstance(s, SeqStmt):
        for x in s.stmts:
            yield from _kernels(x)


def find_map(comp, name: str) -> TensorMap:
    for k in _kernels(comp.prog.func.body):
        for m in k.attrs.get("tensor_maps", ()):
            if m.name == name:
                return m
    raise UnsupportedError(f"no tensor map named {name!r} in the kernel's attrs['tensor_maps'] at {where(comp.span)}")


class MapAccess:
    """A tensor map compiled for the emulator: the global tensor's storage slot and the box."""

    def __init__(self, comp, e):
        name = e.attrs.get("map")
        if not isinstance(name, str):
            raise UnsupportedError(f"{e.name} at {where(comp.span)} names no tensor map (attr 'map')")
        m = find_map(comp, name)
        self.map = m
        buf = m.buffer
        if not buf.root.is_global:
            raise UnsupportedError(f"tensor map {m.name} describes {buf.name}, a {buf.root.scope} buffer, not a global tensor")
        self.buf = buf
        self.slot = comp.buf_slot(buf.root)
        self.npdt = arith.np_dtype(buf.dtype)
        self.esize = buf.dtype.bytes
        self.box = m.box
        self.rank = m.rank
        self.swizzle = m.swizzle
        self.box_bytes = m.box_bytes
        self.grid = np.indices(self.box).reshape(self.rank, -1).T.astype(np.int64)  # [elements, rank]
        bad = [b for b in self.box if not 1 <= b <= 256]
        if bad:
            raise UnsupportedError(f"tensor map {m.name}: box {list(self.box)} has an extent outside [1, 256]")
        if (self.box[-1] * self.esize) % 16:
            raise MisalignedAddressError(f"tensor map {m.name}: a box row of {self.box[-1]} x {buf.dtype} = "
                                         f"{self.box[-1] * self.esize} bytes is not a multiple of 16 bytes")
        if buf.byte_offset % 16:
            raise MisalignedAddressError(f"tensor map {m.name}: {buf.name} starts at byte {buf.byte_offset} of "
                                         f"{buf.root.name}, not 16-byte aligned")
        if len(e.args) != self._nargs(e.name):
            raise UnsupportedError(f"{e.name} at {where(comp.span)} takes {self._nargs(e.name)} arguments for the "
                                   f"{self.rank}-d map {m.name}, got {len(e.args)}")

    def _nargs(self, name: str) -> int:
        return self.rank + (2 if name == "tma_load" else 1)

    def shape(self, st) -> tuple[int, ...]:
        s = self.buf.static_shape()
        if s is None:
            s = st.shapes[self.buf.root] if self.buf.base is None else st.shapes[self.buf]
        s = tuple(int(d) for d in s)
        for d, stride in enumerate(strides_of(s)[:-1]):
            if (stride * self.esize) % 16:
                raise MisalignedAddressError(
                    f"tensor map {self.map.name}: dimension {d} of {self.buf.name} (shape {list(s)}) has a stride of "
                    f"{stride * self.esize} bytes, not a multiple of 16 (cuTensorMapEncodeTiled rejects it)"
                )
        return s

    def elements(self, st, coords: np.ndarray):
        """For boxes at coords [n, rank]: element offsets into the tensor's typed storage [n, E]
        and whether each element is inside the tensor."""
        shape = np.asarray(self.shape(st), np.int64)
        idx = coords[:, None, :] + self.grid[None]
        inside = ((idx >= 0) & (idx < shape)).all(axis=-1)
        strides = np.asarray(strides_of(tuple(shape)), np.int64)
        off = (idx * strides).sum(axis=-1) + self.buf.byte_offset // self.esize
        return np.where(inside, off, 0), inside

    def shared_flat(self, st, storage, start: np.ndarray, lanes: np.ndarray, acc) -> np.ndarray:
        """Flat byte indices [n, box_bytes] of the boxes whose first byte is at root offsets
        `start` (swizzled), checked to stay inside the view `acc` names."""
        base = state(st).base(st, storage)
        addr = base + start[:, None] + np.arange(self.box_bytes)
        off = swizzle(addr, self.swizzle) - base
        b = acc.buf
        hi = b.byte_offset + b.dtype.bytes * math.prod(acc.shape_strides(st)[0])
        over = off.max(axis=1) >= hi
        if over.any():
            k = int(np.flatnonzero(over)[0])
            raise OutOfBoundsError(
                f"the {self.swizzle}-byte swizzle of tensor map {self.map.name} moves bytes of the box at {b.name} "
                f"(byte offset {int(start[k])}) past the end of {b.name} ({hi} bytes) by {st.thread_of_lane(int(lanes[k]))} "
                f"at {where(acc.site.span)}"
            )
        return st.lane_block[lanes][:, None] * storage.data.shape[1] + off


# ------------------------------------------------------------------------------ load


def _load(comp, e):
    m = MapAccess(comp, e)
    dst = address(comp, e.args[0], "TMA load write", "shared")
    bar = address(comp, e.args[1], "TMA load barrier", "shared")
    fcoords = [comp.expr(a) for a in e.args[2:]]
    span, sid = comp.span, dst.site.sid
    comp.prog.uses_hopper = True

    def tma_load(st):
        lanes = active_lanes(st)
        if lanes.size == 0:
            return
        start = lane_offsets(st, dst, lanes, m.box_bytes, ALIGN, "TMA load destination")
        storage = st.store[dst.slot]
        flat = m.shared_flat(st, storage, start, lanes, dst)
        _one_issuer(st, lanes, flat, "tma_load", span)
        coords = np.stack([values(st, f, lanes) for f in fcoords], axis=1)
        off, inside = m.elements(st, coords)
        src = st.store[m.slot].typed(m.npdt)[0]
        data = np.where(inside, src[off], np.zeros((), m.npdt)).astype(m.npdt).view(np.uint8)
        tids = st.lane_tid[lanes]
        seq = None
        if storage.shadow is not None:
            _check_in_flight(st, storage, flat, tids, sid)
            async_proxy.check_no_readers(st, storage, flat, tids, "TMA load", span)
            o = order.enable(st)
            races.check_overwrite(st, storage, flat.reshape(-1), np.repeat(tids, flat.shape[1]), sid,
                                  "issues a TMA load into")
            seq = o.seq
            o.seq += 1
            sh = storage.shadow
            sh.p[flat] = tids[:, None]
            sh.ps[flat] = sid
            sh.any_pending = True
        boff = lane_offsets(st, bar, lanes, 8, 8, "TMA load barrier")
        bstore = st.store[bar.slot]
        for o in np.unique(boff):
            sel = boff == o
            row = mbarrier.row_of(st, bstore, int(o), bar.buf)
            t = mbarrier.Transfer(row, storage, st.lane_block[lanes[sel]], tids[sel], flat[sel], data[sel], sid, span,
                                  seq)
            mbarrier.attach(st, t, lanes[sel], span)

    return tma_load


def _one_issuer(st, lanes, flat, what, span):
    """Several threads of a block copying into the same bytes at once: a copy meant to be issued
    by one thread that the kernel lets every thread issue."""
    blocks = st.lane_block[lanes]
    if np.unique(blocks).size == blocks.size:
        return
    f = flat.reshape(-1)
    order = np.argsort(f, kind="stable")
    dup = np.flatnonzero(f[order][1:] == f[order][:-1])
    if dup.size:
        i, j = order[dup[0]] // flat.shape[1], order[dup[0] + 1] // flat.shape[1]
        raise AsyncCopyError(
            f"{what} at {where(span)} is issued by {st.thread_of_lane(int(lanes[i]))} and by "
            f"{st.thread_of_lane(int(lanes[j]))} into the same shared bytes: a TMA copy is issued by one thread"
        )


def _check_in_flight(st, storage, flat, tids, sid):
    """A copy into bytes another asynchronous copy is still writing."""
    sh = storage.shadow
    if not sh.any_pending:
        return
    f = flat.reshape(-1)
    p = sh.p[f]
    bad = p != NONE
    if bad.any():
        t = np.repeat(tids, flat.shape[1])
        races._report(st, storage, AsyncCopyError, f, t, sid, p, sh.ps[f], bad, "", "issues a TMA load into")


# ------------------------------------------------------------------------------ store


class BulkGroups:
    """cp.async.bulk groups, per thread: the TMA stores whose shared source is still being read."""

    def __init__(self, L: int):
        self.committed = np.zeros(L, np.int64)
        self.stores: list[dict] = []


def _groups(st) -> BulkGroups:
    hs = state(st)
    if hs.stores is None:
        hs.stores = BulkGroups(st.L)
    return hs.stores


def _store(comp, e):
    m = MapAccess(comp, e)
    src = address(comp, e.args[0], "TMA store read", "shared")
    fcoords = [comp.expr(a) for a in e.args[1:]]
    span, sid = comp.span, src.site.sid
    comp.prog.uses_hopper = True

    def tma_store(st):
        lanes = active_lanes(st)
        if lanes.size == 0:
            return
        start = lane_offsets(st, src, lanes, m.box_bytes, ALIGN, "TMA store source")
        storage = st.store[src.slot]
        flat = m.shared_flat(st, storage, start, lanes, src)
        coords = np.stack([values(st, f, lanes) for f in fcoords], axis=1)
        neg = (coords < 0).any(axis=1)
        if neg.any():
            k = int(np.flatnonzero(neg)[0])
            raise OutOfBoundsError(
                f"TMA store at {where(span)} by {st.thread_of_lane(int(lanes[k]))} writes the box of tensor map "
                f"{m.map.name} at coordinates {coords[k].tolist()}: the PTX ISA requires non-negative coordinates for "
                f"shared -> global tensor copies"
            )
        tids = st.lane_tid[lanes]
        who = st.thread_of_lane(int(lanes[0]))
        if storage.shadow is not None:
            races.on_read(st, storage, flat.reshape(-1), np.repeat(tids, m.box_bytes), sid)
        if st.hopper is not None:
            async_proxy.check_fenced(st, storage, flat.reshape(-1), "TMA store", span, who)
        async_proxy.check_initialised(st, storage, flat.reshape(-1), "TMA store", span, who)
        data = np.ascontiguousarray(storage.data.reshape(-1)[flat]).view(m.npdt)
        off, inside = m.elements(st, coords)
        dst = st.store[m.slot].typed(m.npdt)[0]
        dst[off[inside]] = data[inside]
        g = _groups(st)
        issuers = dict(zip(st.lane_block[lanes].tolist(), tids.tolist()))
        rid = async_proxy.add_readers(st, storage, flat.reshape(-1), Reader(
            "TMA store read", span, "tma_store_wait of the issuing thread",
            lambda st_, b: st_.describe(b, issuers.get(b, 0))))
        g.stores.append({"lanes": lanes.copy(), "flat": flat, "group": np.full(lanes.size, -1, np.int64),
                         "storage": storage, "rid": rid, "span": span})

    return tma_store


def _store_commit(comp, e):
    comp.prog.uses_hopper = True

    def tma_store_commit(st):
        lanes = active_lanes(st)
        if lanes.size == 0:
            return
        g = _groups(st)
        active = np.zeros(st.L, bool)
        active[lanes] = True
        for r in g.stores:
            open_ = (r["group"] < 0) & active[r["lanes"]]
            r["group"][open_] = g.committed[r["lanes"][open_]]
        g.committed[lanes] += 1

    return tma_store_commit


def _store_wait(comp, e):
    n = int(e.attrs.get("n", 0))
    comp.prog.uses_hopper = True

    def tma_store_wait(st):
        lanes = active_lanes(st)
        if lanes.size == 0:
            return
        g = _groups(st)
        active = np.zeros(st.L, bool)
        active[lanes] = True
        keep = []
        for r in g.stores:
            ls = r["lanes"]
            done = (r["group"] >= 0) & (r["group"] < g.committed[ls] - n) & active[ls]
            if done.any():
                async_proxy.drop_readers(st, r["storage"], r["flat"][done].reshape(-1))
                rest = ~done
                r["lanes"], r["flat"], r["group"] = ls[rest], r["flat"][rest], r["group"][rest]
            if r["lanes"].size:
                keep.append(r)
        g.stores = keep

    return tma_store_wait


# ------------------------------------------------------------------------------ fences, exit


def _fence_proxy_async(comp, e):
    comp.prog.uses_hopper = True

    def fence_proxy_async(st):
        lanes = active_lanes(st)
        if lanes.size == 0:
            return
        blocks = np.unique(st.lane_block[lanes])
        async_proxy.fence(st, blocks)
        mbarrier.fence_blocks(st, blocks)

    return fence_proxy_async


def check_exit(st):
    """The batch's blocks end: a TMA copy still in flight would touch the shared memory of a
    block that no longer exists."""
    hs = st.hopper
    if hs is None:
        return
    if hs.loads:
        t = hs.loads[0]
        b = int(t.blocks[0])
        raise AsyncCopyError(
            f"{block_name(st, b)} exits while the TMA load issued at {where(t.span)} by {st.describe(b, int(t.tids[0]))} "
            f"into {t.storage.name} is still in flight: no mbarrier_wait needed the phase of {t.row.name(st, b)}"
        )
    if hs.stores is not None and hs.stores.stores:
        r = hs.stores.stores[0]
        lane = int(r["lanes"][0])
        raise AsyncAccessError(
            f"{block_name(st, int(st.lane_block[lane]))} exits while the TMA store issued at {where(r['span'])} by "
            f"{st.thread_of_lane(lane)} may still be reading its shared source: no tma_store_wait covered its bulk group"
        )


HANDLERS = {
    "tma_load": _load,
    "tma_store": _store,
    "tma_store_commit": _store_commit,
    "tma_store_wait": _store_wait,
    "fence_proxy_async": _fence_proxy_async,
}
