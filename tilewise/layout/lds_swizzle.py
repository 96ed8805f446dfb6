"""The LDS layout of T.gemm's shared operands on AMD CDNA3 (gfx942): a 16-byte XOR swizzle whose
phase also moves with every 8th row (group of rows), so that both ways MFMA operands are read
are free of bank conflicts.

gfx942's LDS has 32 banks of 4 bytes (one 128-byte line) and serves a wavefront's request in
phases of 128 bytes: 8 lanes of a 16-byte read, 32 lanes of a 2-byte or 4-byte read
(emulator/banks.py). Two reads matter:

- K-innermost operands (A stored M x K, B stored N x K): each lane reads a 16-byte run of K from
  its own row; the 8 lanes of a phase read 8 consecutive rows at the same column. The 16-byte XOR
  swizzle of layout/swizzle.py (chunk c of row r at c ^ phase(r)) gives those 8 rows 8 different
  chunks of the line.
- B stored K x N (the canonical GEMM): each lane reads 2-byte (int8: 1-byte) items along K; the 32
  lanes of a phase read 16 consecutive columns of row k and 16 of row k + 8 (16x16 MFMAs with
  k_pack 2; rows k and k + 16 for int8, k and k + 4 with k_pack 1). With 128-byte or longer rows
  both rows have the same swizzle phase, so both pairs of chunks land on the same banks: 2-way.

So phase(r) = (r // rows_per_phase) ^ (2 * (r // (8 * rows_per_phase))), modulo the chunks per
line: within 8 consecutive rows it is the usual phase XOR a constant (still 8 distinct chunks),
and rows 8 or 16 apart differ by 2 or 4, which moves the 2-chunk (32-byte) runs of the second
row off the first's. Chunks stay whole, so copies into the tile still store 16 bytes per lane."""
from __future__ import annotations

from .layout import Layout
from .swizzle import make_padded_layout


def make_mfma_swizzled_layout(buffer, row_groups: bool = True) -> Layout:
    """The LDS layout of a T.gemm operand tile on AMD GPUs (padding by 16 bytes when rows are not
    a multiple of 32 bytes or of 16-byte chunks, as make_swizzled_layout does). Without
    `row_groups` the phase is the plain one (layout/swizzle.py's): for tiles only read along rows
    (K innermost) or by 32x32 MFMAs, whose 32 lanes of a phase read one row, the extra term buys
    nothing and costs address arithmetic."""
    shape = buffer.static_shape()
    bits = buffer.dtype.bits
    cols = shape[-1]
    vec = 128 // bits
    row_bytes = cols * bits // 8
    if len(shape) < 2 or cols % vec or row_bytes % 32:
        return make_padded_layout(buffer)
    chunks = min(row_bytes, 128) // 16  # chunks per 128-byte line: 2, 4 or 8
    group = chunks * vec
    rows_per_phase = 8 // chunks

    def fwd(*idx):
        *lead, c = idx
        r = lead[-1]
        chunk = (c % group) // vec
        step = r // rows_per_phase
        phase = ((step ^ (step // 8 * 2)) if row_groups else step) % chunks
        return (*lead, (c // group) * group + (chunk ^ phase) * vec + c % vec)

    layout = Layout(tuple(shape), fwd)
    layout.element_bits = bits
    return layout
