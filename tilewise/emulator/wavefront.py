"""Shuffles on an AMD wavefront of 64 lanes: the source lane of HIP's `__shfl_xor`, `__shfl_down`,
`__shfl_up` and `__shfl(var, src, width)` (HIP's device functions, which move the value with
ds_bpermute_b32). They are CUDA's definitions with the warp size 64: lanes form segments of
`width` (a power of two); a lane whose source falls outside the range CUDA allows keeps its own
value:

    xor  src = lane ^ b, kept when src >= the end of the lane's segment
    down src = lane + b, kept when (lane mod width) + b >= width
    up   src = lane - b, kept when src < the start of the lane's segment
    idx  src = the segment's start + (b mod width)

ds_bpermute_b32 reads lane (address / 4) mod 64, hence the final `mod 64`."""
from __future__ import annotations

import numpy as np


def shfl_source(name: str, lane, b, width: int, warp: int = 64):
    """The lane each of `lane` reads (int arrays) for the shuffle `name` ("shfl_xor", ...)."""
    if width < 1 or width > warp or width & (width - 1):
        raise ValueError(f"{name}: the width must be a power of two up to {warp}, got {width}")
    lane = np.asarray(lane, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    start = lane & ~(width - 1)
    if name == "shfl_xor":
        src = lane ^ b
        src = np.where(src >= start + width, lane, src)
    elif name == "shfl_down":
        src = np.where((lane & (width - 1)) + b >= width, lane, lane + b)
    elif name == "shfl_up":
        src = np.where(lane - b < start, lane, lane - b)
    elif name == "shfl_idx":
        src = start + (b & (width - 1))
    else:
        raise ValueError(f"unknown shuffle {name}")
    return src & (warp - 1)
