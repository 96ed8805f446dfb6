"""tilelang.intrinsics: helpers for writing thread-level (expert) kernels. For now the swizzle
that user-written `T.Layout`s apply to shared tiles; the mma emitter comes later."""
from __future__ import annotations

from ..ir.dtype import as_dtype


def get_swizzle_layout(row_idx, col_idx, row_size: int, dtype="float16"):
    """(row, col) of element (row_idx, col_idx) of a shared tile with `row_size` columns of
    `dtype`, under the XOR swizzle of 16-byte chunks that tilewise uses for T.gemm operands
    (`tilewise.layout.make_swizzled_layout`). Rows that cannot be swizzled (not a multiple of
    32 bytes) keep their order. Works on ints and on index expressions."""
    bits = as_dtype(dtype).bits
    vec = 128 // bits
    row_bytes = int(row_size) * bits // 8
    if int(row_size) % vec or row_bytes % 32:
        return row_idx, col_idx
    chunks = min(row_bytes, 128) // 16
    group = chunks * vec
    rows_per_phase = 8 // chunks
    chunk = (col_idx % group) // vec
    phase = (row_idx // rows_per_phase) % chunks
    return row_idx, (col_idx // group) * group + (chunk ^ phase) * vec + col_idx % vec


__all__ = ["get_swizzle_layout"]
