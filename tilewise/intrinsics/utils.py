"""TileLang's tilelang.intrinsics.utils: the ldmatrix row offsets, the accumulator store map and
the mma micro-tile sizes."""
from __future__ import annotations

from ..ir.dtype import as_dtype
from .mma_layout import (
    get_swizzle_layout,
    ldmatrix_32x4_to_shared_16x8_layout_a,
    ldmatrix_32x4_to_shared_16x8_layout_b,
    ldmatrix_32x8_to_shared_16x16_layout,
    ldmatrix_32x16_to_shared_16x32_layout_a,
    ldmatrix_32x16_to_shared_16x32_layout_b,
    ldmatrix_trans_32x8_to_shared_16x16_layout,
    make_mma_swizzle_layout,
    mma_store_32x2_to_shared_8x8_layout_fp64,
    mma_store_32x8_to_shared_16x16_layout,
)


def get_ldmatrix_offset(matrix: str, row_idx, col_idx, stride, dtype="float16", transposed: bool = False):
    """(row, col) inside the operand tile where lane `row_idx`'s ldmatrix row starts (`col_idx`
    is the element within it; `stride` is accepted for TileLang's signature and unused). 16-bit
    operands either way round; 8-bit and 32-bit ones only as A (M x K) or B (N x K)."""
    if matrix not in ("A", "B"):
        raise ValueError(f"get_ldmatrix_offset: matrix must be 'A' or 'B', got {matrix!r}")
    bits = as_dtype(dtype).bits
    if bits == 16:
        f = ldmatrix_trans_32x8_to_shared_16x16_layout if transposed else ldmatrix_32x8_to_shared_16x16_layout
        return f(row_idx, col_idx)
    k_major = (matrix == "A" and not transposed) or (matrix == "B" and transposed)
    if not k_major:
        raise ValueError(f"ldmatrix delivers {bits}-bit {matrix} only stored with K contiguous "
                         f"(A as M x K, B as N x K); got transposed={transposed}")
    if bits == 32:
        f = ldmatrix_32x4_to_shared_16x8_layout_a if matrix == "A" else ldmatrix_32x4_to_shared_16x8_layout_b
        return f(row_idx, col_idx)
    if bits <= 8:
        f = ldmatrix_32x16_to_shared_16x32_layout_a if matrix == "A" else ldmatrix_32x16_to_shared_16x32_layout_b
        row, col = f(row_idx, col_idx)
        return row, col * (8 // bits)
    raise ValueError(f"get_ldmatrix_offset: unsupported dtype {dtype}")


def mma_store_index_map(thread_id, local_id):
    return mma_store_32x8_to_shared_16x16_layout(thread_id, local_id)


def mma_store_index_map_fp64(thread_id, local_id):
    return mma_store_32x2_to_shared_8x8_layout_fp64(thread_id, local_id)


def get_mma_micro_size(dtype="float16"):
    """(micro_size_x, micro_size_y, micro_size_k) of one mma tile: 16 x 16 x 16, k = 32 for
    8-bit operands."""
    k = 32 if as_dtype(dtype).bits == 8 else 16
    return 16, 16, k


__all__ = ["get_ldmatrix_offset", "get_mma_micro_size", "get_swizzle_layout", "make_mma_swizzle_layout",
           "mma_store_index_map", "mma_store_index_map_fp64"]
