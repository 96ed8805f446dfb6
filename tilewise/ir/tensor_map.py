"""A TMA tensor map (Hopper): a box-shaped window of a global tensor that the copy engine moves
to or from shared memory. Kernels list theirs in `Kernel.attrs["tensor_maps"]`; each is one
kernel parameter (docs/THREAD_IR.md, "Hopper")."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .buffer import Buffer

SWIZZLES = (0, 32, 64, 128)  # bytes of the row segment a swizzle pattern repeats over


@dataclass(eq=False)
class TensorMap:
    name: str
    buffer: Buffer  # the global tensor (a kernel parameter)
    box: tuple[int, ...]  # elements per dimension, outermost first (like buffer.shape)
    swizzle: int = 0
    oob_fill: str = "zero"
    l2_promotion: str = "L2_128B"  # CU_TENSOR_MAP_L2_PROMOTION_* (a cache hint; T.create_tma_descriptor's)

    def __post_init__(self):
        self.box = tuple(int(b) for b in self.box)
        if len(self.box) != self.buffer.ndim:
            raise ValueError(f"tensor map {self.name}: a box of rank {len(self.box)} for the {self.buffer.ndim}-d "
                             f"tensor {self.buffer.name}")
        if self.swizzle not in SWIZZLES:
            raise ValueError(f"tensor map {self.name}: swizzle {self.swizzle} is not one of {SWIZZLES}")
        if self.swizzle and self.box[-1] * self.buffer.dtype.bytes > self.swizzle:
            raise ValueError(f"tensor map {self.name}: a {self.swizzle}-byte swizzle needs box rows of at most "
                             f"{self.swizzle} bytes, not {self.box[-1] * self.buffer.dtype.bytes}")

    @property
    def rank(self) -> int:
        return len(self.box)

    @property
    def box_bytes(self) -> int:
        return math.prod(self.box) * self.buffer.dtype.bytes

    def __repr__(self) -> str:
        return f"TensorMap({self.name}: {self.buffer.name} box={list(self.box)} swizzle={self.swizzle})"
