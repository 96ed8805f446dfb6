"""Shared-memory layouts that avoid bank conflicts: an XOR swizzle of 16-byte chunks, or row
padding when the row length does not allow swizzling."""
from __future__ import annotations

from ..errors import CompileError
from ..ir.buffer import Buffer
from ..ir.dtype import as_dtype
from .fragment import Fragment
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


def make_swizzled_layout(buffer, k_major: bool = True, allow_pad: bool = True, *, dtype=None) -> Layout:
    """XOR swizzle: the 16-byte chunk c of row r moves to c ^ f(r), so that 8 consecutive rows
    read by ldmatrix hit 8 different bank groups. Falls back to padding when rows are shorter
    than 32 bytes or not a multiple of 32 bytes (to the plain row-major layout when
    `allow_pad=False`). `buffer` may be a shape, with `dtype`. The layout serves both operand
    orientations, so `k_major` changes nothing."""
    shape, rows, cols, bits = _rows_cols(buffer, dtype)
    vec = 128 // bits  # elements per 16-byte chunk
    row_bytes = cols * bits // 8
    if cols % vec or row_bytes % 32:
        return make_padded_layout(buffer, dtype) if allow_pad else make_linear_layout(shape)
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


def swizzled_or_none(buffer) -> Layout | None:
    """make_swizzled_layout(buffer) when it swizzles (rows a multiple of 32 bytes and of 16-byte
    chunks), None when it would pad instead."""
    shape = buffer.static_shape()
    if shape is None or len(shape) < 2:
        return None
    bits = buffer.dtype.bits
    if bits > 128 or shape[-1] % (128 // bits) or (shape[-1] * bits // 8) % 32:
        return None
    return make_swizzled_layout(buffer)


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


def _bank_swizzle(buffer, dtype, chunks: int, name: str) -> Layout:
    """TileLang's make_{full,half,quarter}_bank_swizzled_layout: rows in groups of 8, columns in
    groups of `chunks` 16-byte chunks; inside a group, chunk c of row s moves to
    c ^ (s // (8 // chunks)). Outputs (*leading, column group, row group, offset in group)."""
    shape, rows, cols, bits = _rows_cols(buffer, dtype)
    vec = 128 // bits
    stride = shape[-2]
    if not (stride == 4 or stride % 8 == 0) or cols % (vec * chunks):
        raise CompileError(f"{name}: needs rows in multiples of 8 and rows of {vec * chunks} {bits}-bit elements "
                           f"({chunks * 16} bytes) multiples, got shape {list(shape)}")
    lead = list(shape[:-2])
    per = 8 // chunks

    def fwd(*idx):
        *outer, i, j = idx
        s = i % 8
        c = (j // vec) % chunks
        index = j % vec + ((c ^ (s // per)) + s * chunks) * vec
        return (*outer, (j // vec) // chunks, i // 8, index)

    out = (*lead, cols // (vec * chunks), max(1, stride // 8), 8 * chunks * vec if stride % 8 == 0 else 4 * chunks * vec)
    return Layout(shape, fwd, output_shape=out)


def make_full_bank_swizzled_layout(buffer, dtype=None) -> Layout:
    """128-byte swizzle (3 XOR bits): rows of at least 128 bytes."""
    return _bank_swizzle(buffer, dtype, 8, "make_full_bank_swizzled_layout")


def make_half_bank_swizzled_layout(buffer, dtype=None) -> Layout:
    """64-byte swizzle (2 XOR bits)."""
    return _bank_swizzle(buffer, dtype, 4, "make_half_bank_swizzled_layout")


def make_quarter_bank_swizzled_layout(buffer, dtype=None) -> Layout:
    """32-byte swizzle (1 XOR bit)."""
    return _bank_swizzle(buffer, dtype, 2, "make_quarter_bank_swizzled_layout")


def _shape_of(buffer) -> tuple[int, ...]:
    if isinstance(buffer, Buffer):
        shape = buffer.static_shape()
        if shape is None:
            raise CompileError(f"{buffer.name} needs a static shape for a layout")
        return tuple(shape)
    return tuple(buffer)


def make_linear_layout(buffer) -> Layout:
    """The row-major layout of a buffer (or shape): every index maps to itself."""
    return Layout(_shape_of(buffer))


def make_gemm_fragment_8x8() -> Fragment:
    """The 8x8 tile of ldmatrix / stmatrix and the mma accumulators: lane = row * 4 + col // 2,
    two consecutive columns per lane."""
    return Fragment([8, 8], forward_thread_fn=lambda i, j: j // 2 + 4 * i, forward_index_fn=lambda i, j: j % 2)


def make_gemm_fragment_8x8_transposed() -> Fragment:
    """make_gemm_fragment_8x8 with rows and columns exchanged."""
    return Fragment([8, 8], forward_thread_fn=lambda i, j: i // 2 + 4 * j, forward_index_fn=lambda i, j: i % 2)


def make_fully_replicated_layout_fragment(buffer, threads: int) -> Fragment:
    """Every one of `threads` threads holds the whole buffer (row-major in its registers)."""
    shape = _shape_of(buffer)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise CompileError(f"make_fully_replicated_layout_fragment: threads must be a positive int, got {threads!r}")

    def index(*idx):
        flat = 0
        for x, d in zip(idx, shape):
            flat = flat * d + x
        return flat

    return Fragment(shape, forward_thread_fn=lambda *a: a[-1], forward_index_fn=index, replicate=threads)


def make_wgmma_swizzled_layout(buffer, continuity: int | None = None, k_major: bool = True, *, dtype=None) -> Layout:
    """The swizzled shared layout wgmma and TMA read (128, 64 or 32-byte swizzle chosen from the
    row length, as T.gemm picks it on sm_90a). `continuity` other than the row length (TileLang
    swizzles a wider row in narrower atoms) is a CompileError; `k_major` changes nothing."""
    from .wgmma import operand_layout

    shape, _, cols, _ = _rows_cols(buffer, dtype)
    if continuity is not None and continuity != cols:
        raise CompileError(f"make_wgmma_swizzled_layout: continuity={continuity} differs from the row length {cols}; "
                           "only whole-row swizzles are supported")
    dt = buffer.dtype if isinstance(buffer, Buffer) else as_dtype(dtype or "float16")
    op = operand_layout(shape, dt)
    if op is None:
        raise CompileError(f"make_wgmma_swizzled_layout: no wgmma swizzle fits a {list(shape)} {dt} tile (rows in "
                           "multiples of 8, rows of 32 or 64 bytes or a multiple of 128)")
    return op.layout(shape)
