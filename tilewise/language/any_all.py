"""T.any_of(buf) / T.all_of(buf): whether any / every element of a small tile, or of a slice of a
global tensor (`T.any_of(Mask[by, bx, k, :])`), is true (non-zero), as a bool expression usable in
`if` and T.if_then_else."""
from __future__ import annotations

import itertools

from ..errors import CompileError
from ..ir.buffer import Buffer, BufferRegion
from ..ir.expr import BufferLoad, Expr, logical_and, logical_or
from ..tileop.region import check_static_region, region_indices, squeezed

MAX_ELEMENTS = 4096  # the test unrolls into one expression; larger tiles want T.reduce


def any_of(buffer) -> Expr:
    """True when at least one element of the tile is non-zero."""
    return _fold(buffer, "T.any_of", logical_or)


def all_of(buffer) -> Expr:
    """True when every element of the tile is non-zero."""
    return _fold(buffer, "T.all_of", logical_and)


def _fold(buffer, what: str, op) -> Expr:
    if isinstance(buffer, Buffer) and buffer.is_var:
        return _as_bool(buffer.load_var())
    if isinstance(buffer, Buffer):
        region = BufferRegion.full(buffer)
    elif isinstance(buffer, BufferRegion):
        region = buffer
    else:
        raise CompileError(f"{what}: expected a buffer or a slice of one, got {type(buffer).__name__} {buffer!r}")
    b = region.buffer
    check_static_region(region, what)
    ext = squeezed(region)
    n = 1
    for e in ext:
        n *= e
    if n > MAX_ELEMENTS:
        raise CompileError(f"{what}: {b.name} has {n} elements; at most {MAX_ELEMENTS} are supported")
    terms = [BufferLoad(b, region_indices(region, list(p))) for p in itertools.product(*(range(e) for e in ext))]
    # a balanced tree keeps the expression shallow (the IR walkers recurse)
    while len(terms) > 1:
        terms = [op(terms[i], terms[i + 1]) if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return _as_bool(terms[0])


def _as_bool(e: Expr) -> Expr:
    return e if e.dtype.is_bool else e != 0
