"""PTX semantics of the warp-level instructions the emulator executes: which lane and register
holds which element of each `mma` operand, which lane's row address feeds which register of
`ldmatrix`, and which lane a shuffle reads.

Everything here is written from the PTX ISA document (section names are cited at each table) and
deliberately does not import `tilewise.layout`: the compiler's own fragment layouts are checked
against these tables by the tests, so a wrong compiler layout produces a wrong result in the
emulator instead of agreeing with itself.

Conventions used by the PTX ISA fragment sections, for a lane of a warp:
    groupID           = %laneid >> 2
    threadID_in_group = %laneid % 4
Element `i` of a fragment is the i-th element "low to high" of the lane's register vector, i.e.
the i-th element in memory when the registers are stored consecutively (little-endian halves).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

WARP = 32


def _lane_ids():
    lane = np.arange(WARP)
    return lane >> 2, lane % 4  # groupID, threadID_in_group


@dataclass(frozen=True)
class MmaShape:
    """One `mma.sync.aligned.{shape}.row.col` variant: the warp computes D(m x n) = A(m x k) B(k x n) + C."""

    m: int
    n: int
    k: int


MMA_SHAPES = {
    "m16n8k16": MmaShape(16, 8, 16),
    "m16n8k8": MmaShape(16, 8, 8),
    "m16n8k32": MmaShape(16, 8, 32),
    "m16n8k64": MmaShape(16, 8, 64),
}

# Operand types each shape accepts (PTX ISA "Multiply-and-Accumulate Instruction: mma", syntax
# tables): A/B element types, and the accumulator types allowed with them.
MMA_OPERAND_TYPES = {
    "m16n8k16": ({"float16", "bfloat16"}, {"float32", "float16"}),
    "m16n8k8": ({"float16", "bfloat16", "tfloat32", "float32"}, {"float32", "float16"}),
    "m16n8k32": ({"int8", "uint8"}, {"int32"}),
    "m16n8k64": ({"int4", "uint4"}, {"int32"}),
}


_MMA_TYPE_ALIASES = {
    "f16": "float16", "fp16": "float16", "half": "float16", "bf16": "bfloat16", "tf32": "tfloat32",
    "f32": "float32", "fp32": "float32", "s8": "int8", "u8": "uint8", "s32": "int32",
    "s4": "int4", "u4": "uint4",
}  # fmt: skip


def mma_type(name) -> str:
    """Canonical name of an mma operand type given as a tilewise dtype or a PTX type name."""
    name = str(name).lstrip(".")
    return _MMA_TYPE_ALIASES.get(name, name)


@cache
def mma_a_coords(shape: str, a_dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of element a_i held by each lane: two int arrays of shape (32, elements)."""
    g, t = _lane_ids()
    g, t = g[:, None], t[:, None]
    if shape == "m16n8k16" and a_dtype in ("float16", "bfloat16"):
        # "Matrix Fragments for mma.m16n8k16 with floating point type", multiplicand A .f16/.bf16:
        # row = groupID for 0 <= i < 2 || 4 <= i < 6, groupID + 8 otherwise;
        # col = threadID_in_group * 2 + (i & 1), plus 8 for i >= 4.
        i = np.arange(8)[None, :]
        row = g + 8 * (((i >= 2) & (i < 4)) | (i >= 6))
        col = t * 2 + (i & 1) + 8 * (i >= 4)
        return _fix(row, col)
    if shape == "m16n8k8" and a_dtype in ("float16", "bfloat16"):
        # "Matrix Fragments for mma.m16n8k8", multiplicand A .f16/.bf16:
        # row = groupID for a0, a1 and groupID + 8 for a2, a3; col = threadID_in_group * 2 + (i & 1).
        i = np.arange(4)[None, :]
        return _fix(g + 8 * (i >= 2), t * 2 + (i & 1))
    if shape == "m16n8k8" and a_dtype in ("tfloat32", "float32"):
        # "Matrix Fragments for mma.m16n8k8", multiplicand A .tf32:
        # row = groupID for a0, a2 and groupID + 8 for a1, a3;
        # col = threadID_in_group for a0, a1 and threadID_in_group + 4 for a2, a3.
        i = np.arange(4)[None, :]
        return _fix(g + 8 * (i % 2), t + 4 * (i >= 2))
    if shape == "m16n8k32" and a_dtype in ("int8", "uint8"):
        # "Matrix Fragments for mma.m16n8k32", multiplicand A .s8/.u8:
        # row = groupID for 0 <= i < 4 || 8 <= i < 12, groupID + 8 otherwise;
        # col = threadID_in_group * 4 + (i & 3), plus 16 for i >= 8.
        i = np.arange(16)[None, :]
        row = g + 8 * (((i >= 4) & (i < 8)) | (i >= 12))
        col = t * 4 + (i & 3) + 16 * (i >= 8)
        return _fix(row, col)
    if shape == "m16n8k64" and a_dtype in ("int4", "uint4"):
        # "Matrix Fragments for mma.m16n8k64", multiplicand A .s4/.u4 (eight per register, the
        # lowest element in the lowest bits): row = groupID for 0 <= i < 8 || 16 <= i < 24,
        # groupID + 8 otherwise; col = threadID_in_group * 8 + (i & 7), plus 32 for i >= 16.
        i = np.arange(32)[None, :]
        row = g + 8 * (((i >= 8) & (i < 16)) | (i >= 24))
        col = t * 8 + (i & 7) + 32 * (i >= 16)
        return _fix(row, col)
    raise ValueError(f"no PTX A fragment for mma.{shape} with {a_dtype}")


@cache
def mma_b_coords(shape: str, b_dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) = (k, n) of element b_i held by each lane: int arrays of shape (32, elements)."""
    g, t = _lane_ids()
    g, t = g[:, None], t[:, None]
    if shape == "m16n8k16" and b_dtype in ("float16", "bfloat16"):
        # "Matrix Fragments for mma.m16n8k16 with floating point type", multiplicand B .f16/.bf16:
        # row = threadID_in_group * 2 + (i & 1), plus 8 for i >= 2; col = groupID.
        i = np.arange(4)[None, :]
        return _fix(t * 2 + (i & 1) + 8 * (i >= 2), g + 0 * i)
    if shape == "m16n8k8" and b_dtype in ("float16", "bfloat16"):
        # "Matrix Fragments for mma.m16n8k8", multiplicand B .f16/.bf16:
        # row = threadID_in_group * 2 + i for b0, b1; col = groupID.
        i = np.arange(2)[None, :]
        return _fix(t * 2 + i, g + 0 * i)
    if shape == "m16n8k8" and b_dtype in ("tfloat32", "float32"):
        # "Matrix Fragments for mma.m16n8k8", multiplicand B .tf32:
        # row = threadID_in_group for b0 and threadID_in_group + 4 for b1; col = groupID.
        i = np.arange(2)[None, :]
        return _fix(t + 4 * i, g + 0 * i)
    if shape == "m16n8k32" and b_dtype in ("int8", "uint8"):
        # "Matrix Fragments for mma.m16n8k32", multiplicand B .s8/.u8:
        # row = threadID_in_group * 4 + (i & 3), plus 16 for i >= 4; col = groupID.
        i = np.arange(8)[None, :]
        return _fix(t * 4 + (i & 3) + 16 * (i >= 4), g + 0 * i)
    if shape == "m16n8k64" and b_dtype in ("int4", "uint4"):
        # "Matrix Fragments for mma.m16n8k64", multiplicand B .s4/.u4:
        # row = threadID_in_group * 8 + (i & 7), plus 32 for i >= 8; col = groupID.
        i = np.arange(16)[None, :]
        return _fix(t * 8 + (i & 7) + 32 * (i >= 8), g + 0 * i)
    raise ValueError(f"no PTX B fragment for mma.{shape} with {b_dtype}")


@cache
def mma_c_coords(shape: str) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of accumulator element c_i held by each lane: int arrays of shape (32, 4).

    The same for every m16n8 shape and accumulator type: "Matrix Fragments for mma.m16n8k16 with
    floating point type", "... for mma.m16n8k8" and "... for mma.m16n8k32", accumulators C/D:
    row = groupID for c0, c1 and groupID + 8 for c2, c3; col = threadID_in_group * 2 + (i & 1)."""
    if shape not in MMA_SHAPES:
        raise ValueError(f"unknown mma shape {shape}")
    g, t = _lane_ids()
    i = np.arange(4)[None, :]
    return _fix(g[:, None] + 8 * (i >= 2), t[:, None] * 2 + (i & 1))


def _fix(row, col):
    row, col = np.broadcast_arrays(row, col)
    row = np.ascontiguousarray(row, dtype=np.intp)
    col = np.ascontiguousarray(col, dtype=np.intp)
    row.setflags(write=False)
    col.setflags(write=False)
    return row, col


# ---------------------------------------------------------------------------------- ldmatrix


@cache
def ldmatrix_sources(num: int, trans: bool) -> tuple[np.ndarray, np.ndarray]:
    """For `ldmatrix.sync.aligned.m8n8.x{num}{.trans}.b16`: which lane's row address, and which
    16-bit element of that row, each destination half-word comes from.

    Returns (src_lane, col), int arrays of shape (32, num, 2): register j of lane l holds in its
    low half (h = 0) and high half (h = 1) element `col[l, j, h]` of the 8-element row whose address
    lane `src_lane[l, j, h]` supplied.

    "Warp-level matrix load instruction: ldmatrix": threads 0-7 supply the row addresses of the
    first matrix, 8-15 of the second, 16-23 of the third, 24-31 of the fourth; register j holds a
    fragment of matrix j. In the fragment layout (Figure "ldmatrix fragment layout for one 8x8
    Matrix with 16-bit elements") a group of four consecutive threads loads one row: lane l gets
    row l // 4, columns 2 * (l % 4) and 2 * (l % 4) + 1. With `.trans` the matrix is read in
    column-major order, so lane l gets rows 2 * (l % 4) + h of column l // 4."""
    if num not in (1, 2, 4):
        raise ValueError(f"ldmatrix .num must be 1, 2 or 4, got {num}")
    lane = np.arange(WARP)[:, None, None]
    j = np.arange(num)[None, :, None]
    h = np.arange(2)[None, None, :]
    if trans:
        row = 2 * (lane % 4) + h
        col = lane // 4 + 0 * h
    else:
        row = lane // 4 + 0 * h
        col = 2 * (lane % 4) + h
    src = 8 * j + row
    return _fix(src, col)


# ---------------------------------------------------------------------------------- shuffles

SHFL_MODES = {"shfl_up": "up", "shfl_down": "down", "shfl_xor": "bfly", "shfl_idx": "idx"}


def cuda_shfl_c(mode: str, width: int) -> int:
    """The `c` operand (clamp value and segment mask) that CUDA's `__shfl_*_sync(mask, v, b, width)`
    passes to `shfl.sync`: segmask = warpSize - width in bits 12:8; the clamp is 0x1f except for
    `up`, whose clamp is 0 (CUDA's sm_30 intrinsics header)."""
    if width < 1 or width > WARP or width & (width - 1):
        raise ValueError(f"shuffle width must be a power of two in [1, 32], got {width}")
    c = (WARP - width) << 8
    return c if mode == "up" else c | 0x1F


def shfl_source(mode: str, lane, b, c: int):
    """Source lane j and predicate of `shfl.sync.{mode}.b32 d|p, a, b, c, membermask` for lanes
    `lane` (PTX ISA "Data Movement and Conversion Instructions: shfl.sync", pseudo-code):

        bval = b[4:0]; cval = c[4:0]; segmask = c[12:8]
        maxLane = (lane & segmask) | (cval & ~segmask);  minLane = lane & segmask
        up:   j = lane - bval, pval = j >= maxLane      down: j = lane + bval, pval = j <= maxLane
        bfly: j = lane ^ bval, pval = j <= maxLane      idx:  j = minLane | (bval & ~segmask), pval = j <= maxLane
        if !pval: j = lane   (the lane keeps its own value)

    `lane` and `b` are int arrays (or ints); returns (j, pval) as arrays."""
    lane = np.asarray(lane, dtype=np.int64)
    bval = np.asarray(b, dtype=np.int64) & 0x1F
    cval = c & 0x1F
    seg = (c >> 8) & 0x1F
    max_lane = (lane & seg) | (cval & ~seg & 0x1F)
    min_lane = lane & seg
    if mode == "up":
        j = lane - bval
        p = j >= max_lane
    elif mode == "down":
        j = lane + bval
        p = j <= max_lane
    elif mode == "bfly":
        j = lane ^ bval
        p = j <= max_lane
    elif mode == "idx":
        j = min_lane | (bval & ~seg & 0x1F)
        p = j <= max_lane
    else:
        raise ValueError(f"unknown shuffle mode {mode}")
    j = np.where(p, j, lane)
    return j, p


# ---------------------------------------------------------------------------------- tf32


def to_tf32(x: np.ndarray) -> np.ndarray:
    """The value an mma with `.tf32` operands uses for a 32-bit register: tf32 keeps the sign, the
    8-bit exponent and the top 10 mantissa bits of the .b32 pattern, so the 13 low mantissa bits
    are dropped (the kernel is expected to have rounded with `cvt.rna.tf32.f32` beforehand)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32) & np.uint32(0xFFFFE000)
    return bits.view(np.float32)


def round_tf32_rna(x) -> np.ndarray:
    """`cvt.rna.tf32.f32` (PTX ISA, cvt: "round to nearest, ties away from zero"): the .b32
    pattern of x rounded to 10 mantissa bits, the low 13 bits zero. Adding half an ulp of tf32
    (bit 12) to the magnitude bits and truncating rounds ties away from zero; a carry into the
    exponent is the correct next binade (up to infinity). NaN and infinity are kept."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    special = (b & np.uint32(0x7F800000)) == np.uint32(0x7F800000)
    r = np.where(special, b, (b + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).astype(np.uint32)
    return r if np.ndim(x) else r.reshape(())[()]
