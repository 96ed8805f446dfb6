"""The state spaces of one launch: global memory as one flat heap, shared and local memory per
batch of blocks, and the address windows that generic addressing maps onto them.

Global memory is a single little-endian byte array standing for addresses `GLOBAL_BASE ...`:
module `.global` variables first (so their addresses are constants of the decoded kernel), then
every buffer argument, each in its own region, 256-byte aligned, with an unmapped gap after it at
least as large as the region. Every access is checked against the table of regions, so an access
outside every buffer is reported with the nearest buffer's name instead of silently reading the
neighbour. The base is above 4 GiB so that addresses truncated to 32 bits are caught too.

Generic addresses: global addresses are their own generic addresses (as on the GPU); shared, local
and kernel-parameter addresses live in windows far from the heap (a `__grid_constant__` parameter,
a TMA tensor map, is addressed through the parameter window). `cvta` moves between the forms."""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from .errors import MisalignedAddressError, OutOfBoundsError, PtxLaunchError

GLOBAL_BASE = 0x7F12_3400_0000
SHARED_WINDOW = 0x0000_1000_0000_0000  # generic address of shared byte 0
LOCAL_WINDOW = 0x0000_2000_0000_0000  # generic address of local byte 0
PARAM_WINDOW = 0x0000_3000_0000_0000  # generic address of kernel parameter byte 0 (cvta.param)
WINDOW_SIZE = 1 << 32

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def align_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


@dataclass
class Region:
    name: str  # "parameter A", "global variable $str"
    start: int  # address
    size: int
    array: np.ndarray | None = None  # the caller's bytes (written back after the launch)
    writable: bool = True


def span_bytes(a: np.ndarray) -> np.ndarray:
    """The bytes an array occupies, as a uint8 view of its memory: the array itself when
    contiguous; for a strided view (a column slice, say) every byte from its first to its last
    element, as a kernel indexing it with its strides addresses them."""
    if a.size == 0:
        return np.zeros(0, dtype=np.uint8)
    if a.flags.c_contiguous:
        return a.reshape(-1).view(np.uint8)
    if any(s < 0 for s in a.strides):
        raise PtxLaunchError("arrays with negative strides are not supported")
    span = sum((n - 1) * s for n, s in zip(a.shape, a.strides)) + a.itemsize
    first = np.lib.stride_tricks.as_strided(a, shape=(1,), strides=(a.itemsize,)).view(np.uint8)
    return np.lib.stride_tricks.as_strided(first, shape=(span,), strides=(1,), writeable=a.flags.writeable)


class GlobalMemory:
    """The heap: regions laid out from GLOBAL_BASE; `views[k]` sees the heap as k-byte words."""

    def __init__(self, regions: list[Region], end: int):
        self.regions = sorted(regions, key=lambda r: r.start)
        self.starts = np.array([r.start for r in self.regions], dtype=np.uint64)
        self.ends = np.array([r.start + r.size for r in self.regions], dtype=np.uint64)
        size = align_up(max(end - GLOBAL_BASE, 16), 16)
        self.words = np.zeros(size // 8, dtype=np.uint64)  # 8-byte aligned backing store
        self.bytes = self.words.view(np.uint8)
        self.views = {k: self.bytes.view(t) for k, t in _UINT.items()}
        for r in self.regions:
            if r.array is not None and r.size:
                o = r.start - GLOBAL_BASE
                self.bytes[o : o + r.size] = r.array

    def write_back(self):
        for r in self.regions:
            if r.array is not None and r.writable and r.size:
                o = r.start - GLOBAL_BASE
                r.array[:] = self.bytes[o : o + r.size]

    def offsets(self, addr, size: int, what, thread_of=None):
        """Heap byte offsets of `size`-byte accesses at `addr` (uint64 values), checked to lie
        inside one region each and to be aligned. `what(i, msg, exc)` raises for element i."""
        a = np.asarray(addr, dtype=np.uint64)
        if a.size == 0:
            return a.astype(np.int64)
        lo = int(a.min())
        hi = int(a.max())
        k = int(np.searchsorted(self.starts, np.uint64(lo), side="right")) - 1
        if not (k >= 0 and hi + size <= int(self.ends[k])):
            idx = np.searchsorted(self.starts, a, side="right").astype(np.int64) - 1
            inside = idx >= 0
            safe = np.maximum(idx, 0)
            inside &= (a >= self.starts[safe]) & (a + np.uint64(size) <= self.ends[safe])
            if not inside.all():
                i = int(np.flatnonzero(~inside)[0])
                what(i, self.describe(int(a.flat[i]), size), OutOfBoundsError)
        if size > 1:
            mis = a & np.uint64(size - 1)
            if mis.any():
                i = int(np.flatnonzero(mis)[0])
                what(i, f"a {size}-byte access at {self.name_of(int(a.flat[i]))} is not {size}-byte aligned",
                     MisalignedAddressError)
        return (a - np.uint64(GLOBAL_BASE)).astype(np.int64)

    def region_of(self, address: int) -> Region | None:
        k = int(np.searchsorted(self.starts, np.uint64(address), side="right")) - 1
        if k >= 0 and address < int(self.ends[k]):
            return self.regions[k]
        return None

    def name_of(self, address: int) -> str:
        r = self.region_of(address)
        if r is None:
            return f"global address {address:#x}"
        return f"{r.name} + byte {address - r.start}"

    def describe(self, address: int, size: int) -> str:
        """An out-of-bounds access, named by the nearest region."""
        best = None
        for r in self.regions:
            d = address - (r.start + r.size) if address >= r.start else r.start - address
            if best is None or d < best[0]:
                best = (d, r)
        msg = f"a {size}-byte global access at address {address:#x} is outside every kernel buffer"
        if best is not None:
            r = best[1]
            rel = address - r.start
            msg += f" ({r.name} has {r.size} bytes; the access is at byte offset {rel} of it)"
        return msg


def layout_global(module_vars: list, args: list[tuple[str, np.ndarray | None, int]]):
    """Addresses of module variables and buffer arguments. `args` holds (name, array or None,
    size); returns (regions, variable addresses, argument addresses, end)."""
    regions = []
    var_addr = {}
    addr = GLOBAL_BASE
    for v in module_vars:
        addr = align_up(addr, max(16, v.align))
        var_addr[v.name] = addr
        regions.append(Region(f"global variable {v.name}", addr, v.size, None, True))
        addr += max(v.size, 1) + 256
    arg_addr = []
    placed: dict[int, tuple[int, int]] = {}  # argument index -> (its group's region address, byte offset in it)
    for lo, hi, members in _overlap_groups(args):
        addr = align_up(addr, 256)
        if len(members) == 1:
            name, arr, size = args[members[0]]
            regions.append(Region(f"parameter {name}", addr, size, arr, arr is None or arr.flags.writeable))
            placed[members[0]] = (addr, 0)
        else:
            # Arguments sharing memory (the same buffer twice, a[1:] beside a[:-1], an output
            # inside an input) are one region, as on a GPU: a write through one is seen through
            # the others, and the union is written back once.
            names = " / ".join(args[i][0] for i in members)
            union = np.frombuffer((ctypes.c_uint8 * (hi - lo)).from_address(lo), dtype=np.uint8)
            writable = any(args[i][1].flags.writeable for i in members)
            regions.append(Region(f"parameter {names}", addr, hi - lo, union, writable))
            for i in members:
                placed[i] = (addr, _address(args[i][1]) - lo)
            size = hi - lo
        addr += max(size, 1) + max(4096, size)
    for i in range(len(args)):
        base, off = placed[i]
        arg_addr.append(base + off)
    return regions, var_addr, arg_addr, addr


def _address(arr: np.ndarray) -> int:
    return arr.__array_interface__["data"][0]


def _overlap_groups(args) -> list[tuple[int, int, list[int]]]:
    """The arguments in groups of those whose bytes overlap (transitively), in argument order:
    (lowest address, end, member indices). Arguments without an array or without bytes are
    groups of their own."""
    groups: list[list] = []
    for i, (_name, arr, _size) in enumerate(args):
        if arr is None or arr.nbytes == 0:
            groups.append([0, 0, [i], False])
            continue
        lo, hi = _address(arr), _address(arr) + arr.nbytes
        hit = [g for g in groups if g[3] and g[0] < hi and lo < g[1]]
        if not hit:
            groups.append([lo, hi, [i], True])
            continue
        first = hit[0]
        first[0], first[1] = min([lo] + [g[0] for g in hit]), max([hi] + [g[1] for g in hit])
        for g in hit[1:]:
            first[2].extend(g[2])
            groups.remove(g)
        first[2].append(i)
        first[2].sort()
    return [(g[0], g[1], g[2]) for g in groups]


def fill_variables(mem: GlobalMemory, module_vars: list, var_addr: dict):
    """Write the initialisers of module `.global` variables into the heap."""
    import struct

    for v in module_vars:
        if not v.init:
            continue
        o = var_addr[v.name] - GLOBAL_BASE
        eb = v.elem_bytes
        out = bytearray()
        for x in v.init:
            if hasattr(x, "bits"):
                out += int(x.bits).to_bytes(x.width // 8, "little")
            elif isinstance(x, float):
                out += struct.pack("<f" if eb == 4 else "<d", x)
            elif isinstance(x, int):
                out += (x & ((1 << (8 * eb)) - 1)).to_bytes(eb, "little")
            else:
                raise PtxLaunchError(f"initialiser {x} of {v.name} is not supported")
        mem.bytes[o : o + len(out)] = np.frombuffer(bytes(out), dtype=np.uint8)
