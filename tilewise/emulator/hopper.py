"""What a batch of blocks keeps for the Hopper intrinsics (docs/THREAD_IR.md, "Hopper"):
mbarrier states, TMA copies and wgmma operations in flight, and the shared-memory address space
that descriptors and swizzles are written in.

Shared memory is one address space per block, as on the GPU: the shared roots of the batch get
base addresses in allocation order, each aligned to 1024 bytes (the period of the widest
swizzle pattern), the first at 0. A wgmma descriptor holds such an address, and the TMA and
wgmma swizzles are functions of its bits, so the emulator's layout of a block's shared memory is
the GPU's when the kernel's dynamic shared memory starts 1024-byte aligned (which the CUDA
renderer must ensure).

The state is created when a batch of a program that uses these intrinsics starts (the compiler
marks the program), so that every shared-memory write of the batch is seen by the async-proxy
checks (async_proxy.py)."""
from __future__ import annotations

import numpy as np

from ..ir.expr import BufferLoad, Call
from .access import Access
from .errors import MisalignedAddressError, OutOfBoundsError, UnsupportedError, coords, element_str, where
from .memory import check_byte_range

PATTERN = 1024  # bytes after which every swizzle pattern repeats


def swizzle(addr, S: int):
    """The byte address a swizzle of S bytes (0, 32, 64 or 128) moves `addr` to: the 16-byte
    chunk index (bits 4..) is XOR-ed with the 128-byte line index (bits 7..), both taken modulo
    S / 16. PTX ISA "Tensors: Swizzling Modes": each row of its tables is a 128-byte line and the
    pattern repeats every 256 / 512 / 1024 bytes for 32 / 64 / 128-byte swizzles (CuTe writes these
    as Swizzle<1,4,3>, Swizzle<2,4,3> and Swizzle<3,4,3> on byte addresses)."""
    if not S:
        return addr
    mask = S // 16 - 1
    return addr ^ (((addr >> 7) & mask) << 4)


class HopperState:
    """Per batch: every field is owned by the module that uses it (mbarrier.py, tma.py,
    wgmma.py, async_proxy.py, async_regs.py); this class only holds them and the address space."""

    def __init__(self, st):
        self.bases: dict[int, int] = {}
        self.barriers: dict = {}  # (id(storage), byte offset) -> mbarrier.BarrierRow
        self.loads: list = []  # TMA loads in flight (tma.Load)
        self.cp_arrivals: list = []  # cp.async mbarrier arrivals not made yet (mbarrier.CpArrival)
        self.stores = None  # tma.BulkGroups
        self.wgmma = None  # wgmma.Groups
        self.proxy: dict[int, object] = {}  # id(storage) -> async_proxy.ProxyShadow
        self.readers: list = []  # async_proxy.Reader: who reads shared memory through the async proxy
        self.token = 0  # serial numbers of mbarrier inits

    # ------------------------------------------------------------------ shared address space
    def base(self, st, storage) -> int:
        """The shared address of the first byte of a shared root."""
        b = self.bases.get(id(storage))
        if b is None:
            nxt = 0
            for s in st.shared:
                if id(s) not in self.bases:
                    self.bases[id(s)] = nxt
                nxt = -(-(self.bases[id(s)] + s.nbytes) // PATTERN) * PATTERN
            b = self.bases[id(storage)]
        return b

    def resolve(self, st, addr: np.ndarray, nbytes: int, what: str, span, lanes: np.ndarray):
        """(storage, root byte offsets) of shared addresses `addr` (any shape, all in one root),
        whose `nbytes` bytes each must lie inside that root; `lanes` name a thread per leading
        index for the error message."""
        flat = np.asarray(addr, np.int64).reshape(addr.shape[0] if np.ndim(addr) else 1, -1)
        lo, hi = int(flat.min()), int(flat.max()) + nbytes
        for s in st.shared:
            b = self.base(st, s)
            if b <= lo and hi <= b + s.nbytes:
                return s, np.asarray(addr, np.int64) - b
        bad = None
        for s in st.shared:
            b = self.base(st, s)
            inside = (flat >= b) & (flat + nbytes <= b + s.nbytes)
            bad = ~inside if bad is None else (bad & ~inside)
        k = int(np.flatnonzero(bad.any(axis=1))[0]) if bad is not None and bad.any() else 0
        a = int(flat[k][np.flatnonzero(bad[k])[0]]) if bad is not None and bad.any() else lo
        roots = ", ".join(f"{s.name} at [{self.base(st, s)}, {self.base(st, s) + s.nbytes})" for s in st.shared)
        raise OutOfBoundsError(
            f"{what} reaches shared address {a}, outside every shared allocation ({roots or 'none'}), by "
            f"{st.thread_of_lane(int(lanes[min(k, lanes.size - 1)]))} at {where(span)}"
        )


def state(st) -> HopperState:
    if st.hopper is None:
        st.hopper = HopperState(st)
    return st.hopper


def block_name(st, block: int) -> str:
    """`block (x, y, z)` of a block of the batch."""
    return f"block {coords(int(st.block_ids[block]), st.grid)}"


# ------------------------------------------------------------------------------ operands


def address(comp, e, what: str, kind: str | None = None) -> Access:
    """The access behind an `address_of(buf[idx])` argument, in memory of `kind` if given."""
    if not (isinstance(e, Call) and e.name == "address_of" and len(e.args) == 1 and isinstance(e.args[0], BufferLoad)):
        raise UnsupportedError(f"expected address_of(buffer[index]) as an address, got {e!r} at {where(comp.span)}")
    acc = Access(comp, e.args[0].buffer, e.args[0].indices, what)
    if kind is not None and acc.kind != kind:
        raise UnsupportedError(f"{what}: {acc.buf.name} is {acc.buf.scope} memory, expected {kind} at {where(comp.span)}")
    return acc


def active_lanes(st) -> np.ndarray:
    return st.lanes if st.mask is None else np.flatnonzero(st.mask)


def lane_offsets(st, acc: Access, lanes: np.ndarray, nbytes: int, align: int, what: str) -> np.ndarray:
    """Root byte offsets [len(lanes)] of the `nbytes` bytes each lane addresses through acc,
    checked to lie inside the buffer and to be aligned to `align` bytes."""
    off = acc.byte_offset(st)
    act = None if st.mask is None else lanes
    check_byte_range(st, acc.site, off, nbytes, act, acc.shape_strides(st)[0])
    o = np.broadcast_to(np.asarray(off, np.int64), (st.L,))[lanes]
    bad = o % align != 0
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        b = acc.buf
        elem = element_str(b.name, acc.shape_strides(st)[0], (int(o[k]) - b.byte_offset) // b.dtype.bytes)
        raise MisalignedAddressError(
            f"misaligned {what}: {elem} ({b.scope} byte offset {int(o[k])}) is not aligned to {align} bytes, by "
            f"{st.thread_of_lane(int(lanes[k]))} at {where(acc.site.span)}"
        )
    return o


def values(st, f, lanes: np.ndarray) -> np.ndarray:
    """An evaluated expression as int64 values of the lanes."""
    return np.broadcast_to(np.asarray(f(st)), (st.L,))[lanes].astype(np.int64)
