"""Shared-memory layouts that avoid bank conflicts: an XOR swizzle of 16-byte chunks, or row
padding when the row length does not allow swizzling."""
from __future__ import annotations

from ..errors import CompileError
from ..ir.buffer import Buffer
from ..ir.dtype import as_dtype
from .layout import Layout


def _rows_cols(buffer_or_shape, dtype=None):
    if isinstance(buffer_or_shape, Buffer):
        shape, bits = buffer_or_shape.static_shape(), buffer_or_shape.dtype.bits
        if shape is None:
            raise CompileError(f"make_swizzled_layout: {buffer_or_shape.name} needs a static shape")
    else:
        shape, bits = tuple(buffer_or_shape), as_dtype(dtype or "float16").bits
    if len(shape) < 2:
        raise CompileError(f"make_swizzled_layout needs a 2-D (or higher) buffer, got shape {shape}")
    rows = 1
    for d in shape[:-1]:
        rows *= d
    return shape, rows, shape[-1], bits


def make_swizzled_layout(buffer, dtype=None, k_major: bool = True) -> Layout:
    """XOR swizzle: the 16-byte chunk c of row r moves to c ^ f(r), so that 8 consecutive rows
    read by ldmatrix hit 8 different bank groups. Falls back to padding when rows are shorter
    than 32 bytes or not a multiple of 32 bytes."""
    shape, rows, cols, bits = _rows_cols(buffer, dtype)
    vec = 128 // bits  # elements per 16-byte chunk
    row_bytes = cols * bits // 8
    if cols % vec or row_bytes % 32:
        return make_padded_layout(buffer, dtype)
    chunks = min(row_bytes, 128) // 16  # chunks per 128-byte swizzle group: 2, 4 or 8
    group = chunks * vec  # elements per swizzle group
    rows_per_phase = 8 // chunks  # rows sharing one XOR phase (1, 2 or 4)

    def fwd(*idx):
        *lead, c = idx
        r = lead[-1]
        chunk = (c % group) // vec
        phase = (r // rows_per_phase) % chunks
        return (*lead, (c // group) * group + (chunk ^ phase) * vec + c % vec)

    layout = Layout(shape, fwd)
    layout.element_bits = bits  # what plot_layout needs to show the banks
    return layout


def make_padded_layout(buffer, dtype=None, pad_bytes: int = 16) -> Layout:
    """Rows padded by 16 bytes, so consecutive rows start in different banks."""
    shape, rows, cols, bits = _rows_cols(buffer, dtype)
    pad = max(1, pad_bytes * 8 // bits)

    def fwd(*idx):
        *lead, c = idx
        flat = lead[0]
        for k, d in zip(lead[1:], shape[1:-1]):
            flat = flat * d + k
        return (flat, c)

    layout = Layout(shape, fwd, output_shape=(rows, cols + pad))
    layout.element_bits = bits
    return layout
