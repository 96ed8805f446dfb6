"""The shared layout of the tiles a program moves with T.tma_load / T.tma_store (TileLang's raw
TMA primitives, language/tma_descriptor.py), fixed before layout inference chooses any other.

The copy engine writes (reads) a box as its dense row-major bytes, moved by the descriptor's
swizzle as a function of the shared address (docs/THREAD_IR.md, "Hopper"). So the tile's
elements sit where the descriptor puts them, not where an operator would like them:
- no swizzle: the tile is row-major (the box rows are the tile's rows when the box's inner
  extent is the tile's);
- swizzle S (32, 64 or 128 bytes): box rows of exactly S bytes land as the swizzled atoms of
  layout/wgmma.py (the layout T.copy's TMA boxes and wgmma use), column block after column block;
  the tile's rows must be a multiple of S bytes and its row count of 8.
A tile whose layout is already fixed otherwise (T.annotate_layout, another descriptor) must agree:
a mismatch would make every element read the wrong bytes, so it is a CompileError."""
from __future__ import annotations

from ..errors import CompileError
from ..ir.expr import BufferLoad, Call
from ..ir.stmt import Evaluate, Kernel
from ..ir.visitor import walk
from ..layout.layout import Layout
from ..layout.wgmma import OperandLayout

RAW = ("T.tma_load", "T.tma_store")


def raw_tma_uses(kernel: Kernel) -> list[tuple[Evaluate, object]]:
    """(statement, tensor map) of every T.tma_load / T.tma_store of the kernel."""
    maps = {m.name: m for m in kernel.attrs.get("tensor_maps", ())}
    out = []

    def f(n):
        if isinstance(n, Evaluate) and isinstance(n.value, Call) and n.value.attrs.get("primitive") in RAW:
            out.append((n, maps[n.value.attrs["map"]]))

    walk(kernel.body, f)
    return out


def _layout(buf, m, what: str, span) -> Layout:
    shape = tuple(buf.static_shape() or ())
    if not shape:
        raise CompileError(f"{what} into {buf.name}: the tile needs a static shape", span)
    S = m.swizzle
    if not S:
        return Layout(shape)
    eb = buf.dtype.bytes
    row = m.box[-1] * eb
    rows, cols = (shape[-2], shape[-1]) if len(shape) >= 2 else (1, shape[-1])
    if row != S or len(shape) < 2 or cols * eb % S or rows % 8:
        raise CompileError(
            f"{what} with a {S}-byte swizzle into {buf.name} {list(shape)}: tilewise stores a swizzled tile as "
            f"{S}-byte column blocks of 8-row atoms, which needs box rows of exactly {S} bytes (the box's are {row}), "
            f"tile rows that are a multiple of {S} bytes ({buf.name}'s are {cols * eb}) and a row count that is a "
            f"multiple of 8 ({rows}); use swizzle 0 or reshape the tile", span)
    return OperandLayout(rows, cols, eb, S).layout(shape)


def pin_raw_tma_layouts(kernel: Kernel, li) -> None:
    """Give every tile a raw TMA copy moves the layout the copy engine writes (module doc)."""
    for stmt, m in raw_tma_uses(kernel):
        c = stmt.value
        what = c.attrs["primitive"]
        load = c.args[0].args[0]
        assert isinstance(load, BufferLoad)
        buf = load.buffer
        lay = _layout(buf, m, what, stmt.span)
        have = li.map.shared.get(buf)
        li.map.raw_tma.add(buf)
        if have is None:
            li.set_shared(buf, lay)
        elif have.key() != lay.key():
            raise CompileError(
                f"{what} into {buf.name}: the descriptor's {m.swizzle or 'no'}{'-byte' if m.swizzle else ''} swizzle "
                f"puts the box's elements in another place than {buf.name}'s layout (from T.annotate_layout or "
                "another descriptor) says; make them agree", stmt.span)
