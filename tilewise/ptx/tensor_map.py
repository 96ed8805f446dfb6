"""TMA tensor maps as the interpreter takes them, and where a box's elements live.

On a GPU a tensor map is 128 opaque bytes made by `cuTensorMapEncodeTiled`. The interpreter
takes instead the arguments that call is given (`TensorMapDesc`: the tensor, its dimensions and
byte strides innermost first, the box, the swizzle), passed for the kernel's
`.param .align 64 .b8 name[128]` parameter; the launch writes a marker and an index into those
128 bytes, so a copy of the parameter still names the same map.

Semantics, from the PTX ISA ("Tensor" data, "Tensor-map swizzling") and the driver API: the box
at coordinates c (innermost first, signed) covers the elements c + i, 0 <= i < box; elements
outside the tensor read as zero and are not written by stores. In shared memory the box is a
dense row-major array (innermost dimension contiguous), after which, with a swizzle of S bytes,
the 16-byte chunk at shared address a moves to a ^ (((a >> 7) mod S/16) << 4): the chunk index
within each 128-byte line XORed with the line's index, bits 7.. of the address. The pattern is a
function of the address itself, so it repeats every 8 lines (1024 bytes) of shared memory."""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from .errors import PtxLaunchError

MARKER = b"tw-tensor-map\0\0\0"  # the first 16 of the 128 parameter bytes; then the map's index
PARAM_BYTES = 128


@dataclass(frozen=True)
class TensorMapDesc:
    """The arguments of cuTensorMapEncodeTiled for one map (tiled mode, no interleave, element
    strides 1). `tensor` is the array whose first byte is the map's global address: when it is
    also a buffer argument of the launch (the same memory), the map addresses that buffer."""

    tensor: np.ndarray
    element_bytes: int
    dims: tuple[int, ...]  # globalDim, innermost first
    strides: tuple[int, ...]  # globalStrides: bytes between consecutive indices of dims[1:]
    box: tuple[int, ...]  # boxDim, innermost first
    swizzle: int = 0  # bytes of the swizzled row segment: 0, 32, 64 or 128
    oob_fill: str = "zero"

    def __post_init__(self):
        r = len(self.dims)
        if not 1 <= r <= 5 or len(self.box) != r or len(self.strides) != r - 1:
            raise PtxLaunchError(f"a tensor map has 1 to 5 dimensions, a box per dimension and a stride per "
                                 f"dimension but the first: dims={self.dims}, strides={self.strides}, box={self.box}")
        if self.swizzle not in (0, 32, 64, 128):
            raise PtxLaunchError(f"tensor map swizzle {self.swizzle}: one of 0, 32, 64, 128 bytes")
        if self.oob_fill != "zero":
            raise PtxLaunchError(f"tensor map out-of-bounds fill {self.oob_fill!r}: only 'zero' is supported")
        if any(not 1 <= b <= 256 for b in self.box):
            raise PtxLaunchError(f"tensor map box {self.box}: every extent is 1 to 256")
        inner = self.box[0] * self.element_bytes
        if inner % 16:
            raise PtxLaunchError(f"tensor map box rows of {inner} bytes: a multiple of 16")
        if self.swizzle and inner > self.swizzle:
            raise PtxLaunchError(f"tensor map box rows of {inner} bytes exceed the {self.swizzle}-byte swizzle")
        if any(s % 16 for s in self.strides):
            raise PtxLaunchError(f"tensor map strides {self.strides}: multiples of 16 bytes")

    @property
    def rank(self) -> int:
        return len(self.dims)

    @property
    def box_bytes(self) -> int:
        return math.prod(self.box) * self.element_bytes

    @property
    def byte_strides(self) -> tuple[int, ...]:
        return (self.element_bytes, *self.strides)


def encode_param(index: int) -> bytes:
    """The 128 parameter bytes standing for map number `index` of a launch."""
    return MARKER + struct.pack("<I", index) + bytes(PARAM_BYTES - len(MARKER) - 4)


def decode_param(raw: bytes) -> int | None:
    """The map index in 128 parameter bytes, or None if they are not a tensor map of ours."""
    if len(raw) < len(MARKER) + 4 or raw[: len(MARKER)] != MARKER:
        return None
    return struct.unpack("<I", raw[len(MARKER) : len(MARKER) + 4])[0]


def box_elements(desc: TensorMapDesc):
    """(index per dimension, innermost first) of every box element in shared-memory order:
    a list of int64 arrays of length prod(box)."""
    grids = np.indices(desc.box[::-1]).reshape(desc.rank, -1)  # outermost first, row-major
    return [grids[desc.rank - 1 - d].astype(np.int64) for d in range(desc.rank)]


def global_offsets(desc: TensorMapDesc, coords) -> tuple[np.ndarray, np.ndarray]:
    """(byte offset from the global address, in bounds) of every box element at `coords`."""
    idx = box_elements(desc)
    off = np.zeros(len(idx[0]), dtype=np.int64)
    ok = np.ones(len(idx[0]), dtype=bool)
    for d, (c, n, s) in enumerate(zip(coords, desc.dims, desc.byte_strides)):
        g = idx[d] + int(c)
        ok &= (g >= 0) & (g < n)
        off += g * s
    return off, ok


def swizzle(addr: np.ndarray, s: int) -> np.ndarray:
    """Shared addresses after an S-byte swizzle (see the module doc); identity for S = 0."""
    if not s:
        return addr
    return addr ^ (((addr >> 7) & (s // 16 - 1)) << 4)


def shared_offsets(desc: TensorMapDesc, base: int) -> np.ndarray:
    """(elements, element_bytes) shared addresses of every byte of the box landing at `base`."""
    e = desc.element_bytes
    n = math.prod(desc.box)
    dense = base + np.arange(n * e, dtype=np.int64)
    return swizzle(dense, desc.swizzle).reshape(n, e)
