"""Index maps between the registers of one warp and the elements of an mma.sync operand tile,
under TileLang's names (tilelang.intrinsics.mma_layout), for kernels written at the thread level.

Each `..._to_shared_...(thread_id, local_id)` gives the (row, col) of the tile element that lane
`thread_id` holds in its `local_id`-th element; `shared_..._to_mma_...(i, j)` goes the other way.
They are plain arithmetic, so they work on Python ints and on index expressions alike. The
tables are the PTX ISA's ("Matrix Fragments for mma.m16n8k16 / k32", ldmatrix's row addresses);
the emulator checks kernels built on them against its own copy of those tables."""
from __future__ import annotations

from ..ir.dtype import as_dtype

# ---------------------------------------------------------------------------- ldmatrix row addresses
# ldmatrix.x4: lane t supplies the address of one row of one of four 8x8 matrices; these give the
# element that row starts at (plus local_id along the row) inside the 16 x 16 (16-bit) tile.


def ldmatrix_32x8_to_shared_16x16_layout(thread_id, local_id):
    """Non-transposed x4 over a 16x16 tile: lanes 0-15 rows 0-15 of columns 0-7, lanes 16-31 of 8-15."""
    return thread_id % 16, 8 * (thread_id // 16) + local_id % 8


def ldmatrix_trans_32x8_to_shared_16x16_layout(thread_id, local_id):
    """The x4 order for a tile stored the other way round (rows are the mma's columns)."""
    return 8 * (thread_id // 16) + thread_id % 8, 8 * ((thread_id % 16) // 8) + local_id % 8


def ldmatrix_32x4_to_shared_16x8_layout_a(thread_id, local_id):
    return thread_id % 16, 4 * (thread_id // 16) + local_id % 4


def ldmatrix_32x4_to_shared_16x8_layout_b(thread_id, local_id):
    return 8 * (thread_id // 16) + thread_id % 8, 4 * ((thread_id % 16) // 8) + local_id % 4


def ldmatrix_32x16_to_shared_16x32_layout_a(thread_id, local_id):
    """8-bit A (16 x 32): a row of 16 bytes per lane."""
    return thread_id % 16, 16 * (thread_id // 16) + local_id


def ldmatrix_32x16_to_shared_16x32_layout_b(thread_id, local_id):
    """8-bit B stored N x K (16 x 32)."""
    return 8 * (thread_id // 16) + thread_id % 8, 16 * ((thread_id % 16) // 8) + local_id


# ---------------------------------------------------------------------------- mma fragments


def mma_store_32x8_to_shared_16x16_layout(thread_id, local_id):
    """The accumulator of two m16n8 tiles side by side (16 x 16): c0,c1 at row g, c2,c3 at g + 8,
    local ids 4-7 the same in columns 8-15 (g = lane / 4, columns 2 * (lane % 4) + {0, 1})."""
    row = 8 * ((local_id % 4) // 2) + thread_id // 4
    col = 8 * (local_id // 4) + 2 * (thread_id % 4) + local_id % 2
    return row, col


mma_32x8_to_shared_16x16_layout = mma_store_32x8_to_shared_16x16_layout


def mma_store_32x2_to_shared_8x8_layout_fp64(thread_id, local_id):
    return thread_id // 4, 2 * (thread_id % 4) + local_id


def mma_load_a_32x8_to_shared_16x16_layout(thread_id, local_id):
    """A of m16n8k16 (16-bit): a0,a1 row g, a2,a3 row g + 8, a4-a7 the same 8 columns on."""
    row = thread_id // 4 + 8 * ((local_id % 4) // 2)
    col = 2 * (thread_id % 4) + local_id % 2 + 8 * (local_id // 4)
    return row, col


def mma_load_b_32x8_to_shared_16x16_layout(thread_id, local_id):
    """B of two n8 tiles (16-bit), as (n, k): b0,b1 k = 2 * (lane % 4) + {0, 1}, b2,b3 k + 8,
    local ids 4-7 the next 8 columns n."""
    row = thread_id // 4 + 8 * (local_id // 4)
    col = 2 * (thread_id % 4) + (local_id % 4) % 2 + 8 * ((local_id % 4) // 2)
    return row, col


def mma_load_a_32x16_to_shared_16x32_layout(thread_id, local_id):
    """A of m16n8k32 (8-bit): four consecutive k per register."""
    row = 8 * ((local_id % 8) // 4) + thread_id // 4
    col = 16 * (local_id // 8) + 4 * (thread_id % 4) + local_id % 4
    return row, col


def mma_load_b_32x16_to_shared_16x32_layout(thread_id, local_id):
    """B of two n8 tiles of m16n8k32 (8-bit), as (n, k)."""
    row = 8 * (local_id // 8) + thread_id // 4
    col = 16 * ((local_id % 8) // 4) + 4 * (thread_id % 4) + local_id % 4
    return row, col


def mma_load_a_32x4_to_shared_16x8_layout(thread_id, local_id):
    """A of m16n8k8 (tf32)."""
    return 8 * (local_id % 2) + thread_id // 4, 4 * (local_id // 2) + thread_id % 4


def mma_load_b_32x4_to_shared_16x8_layout(thread_id, local_id):
    """B of two n8 tiles of m16n8k8 (tf32), as (n, k)."""
    return 8 * (local_id // 2) + thread_id // 4, 4 * (local_id % 2) + thread_id % 4


# (lane, local id) of an operand element, "sr" = (spatial, reduction) indices: A as (m, k), B as
# (n, k) over two n8 tiles; "rs" takes them the other way round. From the PTX fragment tables:
# lane 4 * g + q holds row g (+ 8) of A and column g of B, at k = q-based offsets.


def shared_16x8_to_mma_a_32x4_layout(i, j):
    """tf32 A (16 x 8): a0 (g, q), a1 (g + 8, q), a2 (g, q + 4), a3 (g + 8, q + 4)."""
    return 4 * (i % 8) + j % 4, i // 8 + 2 * (j // 4)


def shared_16x8_to_mma_b_32x4_layout(i, j):
    """tf32 B as (n, k) over two n8 tiles: b0 k = q, b1 k = q + 4; local ids 2, 3 the second tile."""
    return 4 * (i % 8) + j % 4, 2 * (i // 8) + j // 4


def shared_16x16_to_mma_b_32x8_layout(i, j):
    """16-bit B as (n, k) over two n8 tiles: b0,b1 k = 2q + {0, 1}, b2,b3 k + 8; local ids 4-7 the
    second tile."""
    return 4 * (i % 8) + (j % 8) // 2, 4 * (i // 8) + 2 * (j // 8) + j % 2


def shared_16x32_to_mma_a_32x16_layout(i, j):
    """8-bit A (16 x 32): four consecutive k per register, rows g / g + 8, k halves 0-15 / 16-31."""
    return 4 * (i % 8) + (j % 16) // 4, 8 * (j // 16) + 4 * (i // 8) + j % 4


def shared_16x32_to_mma_b_32x16_layout(i, j):
    """8-bit B as (n, k) over two n8 tiles."""
    return 4 * (i % 8) + (j % 16) // 4, 8 * (i // 8) + 4 * (j // 16) + j % 4


def _swapped(f):
    def g(i, j):
        return f(j, i)

    g.__name__ = f.__name__ + "_trans"
    g.__doc__ = f"{f.__name__} with its two indices swapped (the tile stored the other way round)."
    return g


shared_16x8_to_mma_a_32x4_layout_trans = _swapped(shared_16x8_to_mma_a_32x4_layout)
shared_16x8_to_mma_b_32x4_layout_trans = _swapped(shared_16x8_to_mma_b_32x4_layout)
shared_16x16_to_mma_b_32x8_layout_trans = _swapped(shared_16x16_to_mma_b_32x8_layout)
shared_32x16_to_mma_a_32x16_layout_trans = _swapped(shared_16x32_to_mma_a_32x16_layout)
shared_32x16_to_mma_b_32x16_layout_trans = _swapped(shared_16x32_to_mma_b_32x16_layout)


def shared_16x16_to_mma_32x8_layout(i, j):
    """(lane, local id) holding element (i, j) of a 16-bit A tile (inverse of mma_load_a_32x8...)."""
    return 4 * (i % 8) + (j % 8) // 2, 4 * (j // 8) + 2 * (i // 8) + j % 2


def shared_16x32_to_mma_32x16_layout(i, j):
    return 4 * (i % 8) + (j % 16) // 4, 8 * (j // 16) + 4 * (i // 8) + j % 4


def shared_32x16_to_mma_32x16_layout(i, j):
    return (i % 16) // 4 + 4 * (j % 8), 8 * (j // 8) + 4 * (i // 16) + i % 4


shared_16x16_to_mma_a_32x8_layout = shared_16x16_to_mma_32x8_layout
shared_16x16_to_mma_a_32x8_layout_trans = _swapped(shared_16x16_to_mma_32x8_layout)

shared_16x8_to_mma_32x4_layout_sr_a = shared_16x8_to_mma_a_32x4_layout
shared_16x8_to_mma_32x4_layout_sr_b = shared_16x8_to_mma_b_32x4_layout
shared_16x8_to_mma_32x4_layout_rs_a = shared_16x8_to_mma_a_32x4_layout_trans
shared_16x8_to_mma_32x4_layout_rs_b = shared_16x8_to_mma_b_32x4_layout_trans
shared_16x16_to_mma_32x8_layout_sr_a = shared_16x16_to_mma_a_32x8_layout
shared_16x16_to_mma_32x8_layout_sr_b = shared_16x16_to_mma_b_32x8_layout
shared_16x16_to_mma_32x8_layout_rs_a = shared_16x16_to_mma_a_32x8_layout_trans
shared_16x16_to_mma_32x8_layout_rs_b = shared_16x16_to_mma_b_32x8_layout_trans
shared_16x32_to_mma_32x16_layout_sr_a = shared_16x32_to_mma_a_32x16_layout
shared_16x32_to_mma_32x16_layout_sr_b = shared_16x32_to_mma_b_32x16_layout
shared_16x32_to_mma_32x16_layout_rs_a = shared_32x16_to_mma_a_32x16_layout_trans
shared_16x32_to_mma_32x16_layout_rs_b = shared_32x16_to_mma_b_32x16_layout_trans


# ---------------------------------------------------------------------------- swizzles


def get_swizzle_layout(row_idx, col_idx, row_size: int, dtype="float16", swizzle_bytes=None):
    """(row, col) of element (row_idx, col_idx) of a shared tile with `row_size` columns of
    `dtype`, under the XOR swizzle of 16-byte chunks that tilewise uses for T.gemm operands
    (`tilewise.layout.make_swizzled_layout`). Rows that cannot be swizzled (not a multiple of
    32 bytes) keep their order. Works on ints and on index expressions. `swizzle_bytes` (32, 64
    or 128) narrows the pattern to rows of that many bytes."""
    bits = as_dtype(dtype).bits
    vec = 128 // bits
    row_bytes = int(row_size) * bits // 8
    if int(row_size) % vec or row_bytes % 32:
        return row_idx, col_idx
    span = min(row_bytes, 128) if swizzle_bytes is None else min(int(swizzle_bytes), row_bytes)
    if span not in (32, 64, 128):
        raise ValueError(f"get_swizzle_layout: swizzle_bytes must be 32, 64 or 128, got {swizzle_bytes}")
    chunks = span // 16
    group = chunks * vec
    rows_per_phase = 8 // chunks
    chunk = (col_idx % group) // vec
    phase = (row_idx // rows_per_phase) % chunks
    return row_idx, (col_idx // group) * group + (chunk ^ phase) * vec + col_idx % vec


def make_mma_swizzle_layout(shared_buf, is_smooth: bool = False):
    """A T.Layout for a shared operand tile: its last two dimensions swizzled by
    get_swizzle_layout when a row is a multiple of 64 bytes, else (or with is_smooth) the identity."""
    from ..layout import Layout

    dtype = shared_buf.dtype
    shape = list(shared_buf.shape)
    if is_smooth or (int(shape[-1]) * as_dtype(dtype).bits) % 512:
        return Layout(shape, lambda *args: list(args))

    def swizzled(*args):
        i, j = args[-2:]
        return [*args[:-2], *get_swizzle_layout(i, j, int(shape[-1]), dtype)]

    return Layout(shape, swizzled)
