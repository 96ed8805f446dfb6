"""Operands of tile operators: buffers, elements (a corner) and slices, normalised to regions."""
from __future__ import annotations

from ..errors import CompileError
from ..ir.buffer import Buffer, BufferRegion
from ..ir.expr import BufferLoad, Const, Expr, Select, as_expr, cast, const_value, logical_and
from ..ir.printer import shape_str
from ..ir.simplify import prove, simplify, structural_equal
from ..ir.stmt import BufferStore, For, IfThenElse, Stmt


def as_region(x, what: str, allow_corner: bool = True):
    """A BufferRegion, or a BufferLoad (a corner whose extents come from the other operand)."""
    if isinstance(x, BufferRegion):
        return x
    if isinstance(x, Buffer):
        return BufferRegion.full(x)
    if isinstance(x, BufferLoad):
        if not allow_corner:
            return BufferRegion(x.buffer, [(i, 1) for i in x.indices])
        return x
    raise CompileError(f"{what}: expected a buffer, an element or a slice, got {type(x).__name__} {x!r}")


def corner_to_region(corner: BufferLoad, extents) -> BufferRegion:
    """Right-align the other operand's extents onto the corner's dimensions."""
    nd = len(corner.indices)
    ext = list(extents)
    if len(ext) > nd:
        # drop leading unit extents of the other side
        while len(ext) > nd and _is_one(ext[0]):
            ext.pop(0)
        if len(ext) > nd:
            raise CompileError(
                f"cannot place a tile of shape {tuple(extents)} at {corner.buffer.name}{list(corner.indices)}: "
                f"{corner.buffer.name} has only {nd} dimensions"
            )
    full = [1] * (nd - len(ext)) + ext
    return BufferRegion(corner.buffer, list(zip(corner.indices, full)))


def _is_one(e) -> bool:
    return e == 1 if isinstance(e, int) else (isinstance(e, Const) and e.value == 1)


def squeezed(region: BufferRegion) -> list:
    """Extents without unit dimensions (the tile's logical shape)."""
    return [e for e in region.extents if not _is_one(e)]


def extents_equal(a, b) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, int) and isinstance(y, int):
            if x != y:
                return False
            continue
        if not structural_equal(simplify(as_expr(x)), simplify(as_expr(y))):
            d = const_value(simplify(as_expr(x) - as_expr(y)))
            if d != 0:
                return False
    return True


def _scope_level(b: Buffer) -> int:
    # TileLang's copy iterates over the extents of the side nearest the threads
    return 2 if (b.is_fragment or b.is_local) else 1 if b.is_shared else 0


def _with_extents(region: BufferRegion, extents: list) -> BufferRegion:
    """The region with its non-unit extents replaced, in order, by `extents`."""
    it = iter(extents)
    return BufferRegion(region.buffer, [(s, e if _is_one(e) else next(it)) for s, e in region.region])


def _copy_extents(src: BufferRegion, dst: BufferRegion, what: str):
    """TileLang's T.copy between regions with as many non-unit dimensions but different extents
    (`T.copy(A[0:n], S)` with a run-time n into a (1024,) tile): the copy covers the extents of
    the side nearest the threads (fragment, then shared, then global; the source on a tie),
    reading zeros outside the source tensor and writing nothing outside the destination's.
    Refused when that side is provably smaller than the source. Only a global other side is
    resized (its accesses are guarded by the tensor's bounds); otherwise the regions are left
    as they are and the caller reports the mismatch."""
    se, de = squeezed(src), squeezed(dst)
    base_is_src = _scope_level(src.buffer) >= _scope_level(dst.buffer)
    base = se if base_is_src else de
    if not (dst if base_is_src else src).buffer.is_global:
        return src, dst
    if not base_is_src:
        for b, x in zip(base, se):
            if prove(as_expr(b) < as_expr(x)):
                raise CompileError(
                    f"{what}: the destination {dst.buffer.name} region has shape {shape_str(de)}, smaller than the "
                    f"source {src.buffer.name} region's {shape_str(se)}")
    return (src, _with_extents(dst, base)) if base_is_src else (_with_extents(src, base), dst)


def pair_regions(src, dst, what: str, copy_extents: bool = False):
    """Normalise (src, dst) to regions whose squeezed extents agree. `copy_extents`: T.copy's
    rule for extents that differ (_copy_extents) instead of an error."""
    src = as_region(src, f"{what} source")
    dst = as_region(dst, f"{what} destination")
    if isinstance(src, BufferLoad) and isinstance(dst, BufferLoad):
        src = BufferRegion(src.buffer, [(i, 1) for i in src.indices])
        dst = BufferRegion(dst.buffer, [(i, 1) for i in dst.indices])
    elif isinstance(src, BufferLoad):
        src = corner_to_region(src, dst.extents)
    elif isinstance(dst, BufferLoad):
        dst = corner_to_region(dst, src.extents)
    se, de = squeezed(src), squeezed(dst)
    if copy_extents and len(se) == len(de) and not extents_equal(se, de):
        src, dst = _copy_extents(src, dst, what)
        se, de = squeezed(src), squeezed(dst)
    if not extents_equal(se, de):
        raise CompileError(
            f"{what}: the source {src.buffer.name} region has shape {shape_str(se)} but the destination "
            f"{dst.buffer.name} region has shape {shape_str(de)}"
        )
    return src, dst


def region_indices(region: BufferRegion, loop_vars) -> list[Expr]:
    """Buffer indices of the element at tile position `loop_vars` (one per non-unit dim)."""
    out = []
    k = 0
    for start, ext in region.region:
        if _is_one(ext):
            out.append(as_expr(start))
        else:
            out.append(simplify(as_expr(start) + loop_vars[k]))
            k += 1
    assert k == len(loop_vars), (k, len(loop_vars))
    return out


def corresponding_dim(old: BufferRegion, new: BufferRegion, dim: int) -> int:
    """The dimension of region `new` that plays the role of dimension `dim` of `old`, when `new`
    holds the same tile (a multi-buffered slot, or the tile placed inside a larger tensor): the
    tile's non-unit dimensions correspond in order; a unit one counts from the last dimension."""
    old_tile = [i for i, e in enumerate(old.extents) if not _is_one(e)]
    new_tile = [i for i, e in enumerate(new.extents) if not _is_one(e)]
    if dim in old_tile and len(old_tile) == len(new_tile):
        return new_tile[old_tile.index(dim)]
    return dim + len(new.region) - len(old.region)


def check_static_region(region: BufferRegion, what: str) -> None:
    for _, e in region.region:
        if not isinstance(e, int):
            raise CompileError(f"{what}: the extent {e} of {region.buffer.name} must be a compile-time constant")


def in_bounds(region_idx, buffer: Buffer, ranges) -> Expr | None:
    """The guard that keeps indices inside a global buffer, or None when provably inside."""
    cond = None
    for idx, dim in zip(region_idx, buffer.shape):
        for c in (idx < dim, idx >= 0):
            if prove(c, ranges) is True:
                continue
            cond = c if cond is None else logical_and(cond, c)
    return cond


def guarded_load(region: BufferRegion, idx, ranges, pad: Const | None = None) -> Expr:
    """Load an element, reading zero outside a global tensor (T.copy's rule for tile edges), or
    `pad` (T.annotate_safe_value's value for the tensor, in its type)."""
    val = BufferLoad(region.buffer, idx)
    if region.buffer.is_global:
        g = in_bounds(idx, region.buffer, ranges)
        if g is not None:
            val = Select(g, val, pad if pad is not None else Const(0, region.buffer.dtype))
    return val


def guarded(region: BufferRegion, idx, stmt: Stmt, ranges) -> Stmt:
    """`stmt` (which writes region's element idx) only where idx is inside a global tensor."""
    if region.buffer.is_global:
        g = in_bounds(idx, region.buffer, ranges)
        if g is not None:
            return IfThenElse(g, stmt)
    return stmt


def guarded_store(region: BufferRegion, idx, value: Expr, ranges) -> Stmt:
    """Store an element (cast to the buffer's type), not at all outside a global tensor."""
    if value.dtype != region.buffer.dtype:
        value = cast(value, region.buffer.dtype)
    return guarded(region, idx, BufferStore(region.buffer, idx, value), ranges)


def tile_loops(ctx, region: BufferRegion, make_body) -> Stmt:
    """One loop per non-unit dimension of the tile, the innermost parallel (vectorisable):
    make_body(loop_vars, ranges) with the loops' value ranges added to the context's."""
    ext = squeezed(region)
    loop_vars = [ctx.fresh("i") for _ in ext]
    ranges = dict(ctx.ranges)
    for v, e in zip(loop_vars, ext):
        if isinstance(e, int):
            ranges[v] = (0, e - 1)
    body = make_body(loop_vars, ranges)
    for i, (v, e) in enumerate(reversed(list(zip(loop_vars, ext)))):
        body = For(v, 0, e, "parallel" if i == 0 else "serial", body)
    return body
