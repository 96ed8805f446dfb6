"""Pieces the CUDA lowerings of several tile operators share: spreading a tile's elements over
the block's threads in 128-bit chunks, vector-width choice, addresses and guards."""
from __future__ import annotations

import numpy as np

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.expr import BufferLoad, Call, Const, Expr, Select, Var, logical_and
from ..ir.simplify import prove, simplify
from ..ir.stmt import BufferStore, Evaluate, For, IfThenElse, Stmt, seq
from ..ir.visitor import substitute
from .cuda_vectorize import vectorize_global
from .region import guarded_load, guarded_store, in_bounds, region_indices, squeezed

VECTOR_BYTES = 16


def address(buf: Buffer, indices) -> Call:
    return Call("address_of", [BufferLoad(buf, indices)], _dt.handle)


def unflatten(flat: Expr, extents) -> list[Expr]:
    """Row-major coordinates of a flat index inside `extents`."""
    out = []
    rest = flat
    for k, e in enumerate(extents):
        inner = 1
        for x in extents[k + 1:]:
            inner *= x
        if k == 0:
            out.append(rest // inner if inner > 1 else rest)
        else:
            out.append((rest // inner) % e if inner > 1 else rest % e)
    return out


def _contiguous_last(region: BufferRegion) -> bool:
    """The tile's innermost (non-unit) axis is the buffer's last axis."""
    ext = region.extents
    nonunit = [i for i, e in enumerate(ext) if e != 1]
    return bool(nonunit) and nonunit[-1] == region.buffer.ndim - 1


def vector_width(src: BufferRegion, dst: BufferRegion, ranges: dict, max_bytes: int = VECTOR_BYTES) -> int:
    """Elements per vector move: both sides contiguous along the last axis, aligned starts, row
    lengths that keep every chunk aligned, same dtype."""
    if src.buffer.dtype != dst.buffer.dtype:
        return 1
    if src.buffer.root.address is not None or dst.buffer.root.address is not None:
        return 1  # a tensor at a run-time address (a pointer table's): its alignment is unknown
    ext = squeezed(dst)
    if not ext or not isinstance(ext[-1], int):
        return 1
    if not (_contiguous_last(src) and _contiguous_last(dst)):
        return 1
    elem = src.buffer.dtype.bytes
    v = max(1, max_bytes // elem)
    while v > 1:
        ok = ext[-1] % v == 0
        for r in (src, dst):
            last = r.buffer.shape[-1]
            if not isinstance(last, int) or last % v:
                ok = False
            start = r.region[-1][0]
            if prove(simplify(start % v, ranges) == 0, ranges) is not True:
                ok = False
        if ok:
            return v
        v //= 2
    return 1


def chunk_loop(ctx, n_chunks: int, make_body) -> Stmt:
    """`for k: c = k * threads + tid; if c < n: make_body(c)`: chunk c goes to thread c % T."""
    T = ctx.threads
    tid = ctx.thread
    iters = -(-n_chunks // T)
    k = ctx.fresh("k")
    c = simplify(k * T + tid, {**ctx.ranges, k: (0, iters - 1)})
    body = make_body(c)
    if n_chunks % T:
        body = IfThenElse(c < n_chunks, body)
    if iters == 1:
        return substitute(body, {k: Const(0, _dt.int32)})
    return For(k, 0, iters, "unroll" if iters <= 16 else "serial", body)


def layout_run(ctx, r: BufferRegion, v: int) -> int:
    """The largest w <= v (a power of two) for which the shared layout of r's buffer keeps every
    aligned run of w elements along the last axis as w consecutive, w-aligned physical elements;
    v when the buffer has no layout. A vector move addresses its run through the layout of its
    first element only (transform/apply_shared_layouts.py), so a layout that moves smaller pieces
    (an annotated transpose, an 8-byte swizzle) limits the vector."""
    get = getattr(ctx, "shared_layout", None)
    lay = get(r.buffer) if get is not None and r.buffer.is_shared else None
    if lay is None or v == 1:
        return v
    phys = lay.flat_table()
    rows = phys.reshape(-1, phys.shape[-1]) if phys.ndim else phys.reshape(1, 1)
    while v > 1:
        if rows.shape[-1] % v == 0:
            runs = rows.reshape(rows.shape[0], -1, v)
            if (runs[..., 0] % v == 0).all() and (np.diff(runs, axis=-1) == 1).all():
                return v
        v //= 2
    return 1


def cooperative_copy(ctx, src: BufferRegion, dst: BufferRegion, async_copy: bool = False, pad=None) -> Stmt:
    """Copy between global and shared memory with every thread taking 128-bit chunks in turn.
    `pad` (T.annotate_safe_value's value) is read outside a global source instead of 0: element
    by element, as cp.async and the vector path fill zeros there."""
    ext = squeezed(dst)
    ranges = ctx.ranges
    v = vector_width(src, dst, ranges)
    v = min(v, layout_run(ctx, src, v), layout_run(ctx, dst, v))
    if pad is not None:
        v, async_copy = 1, False
    # fp4 is stored two values per byte (transform/pack_fp4.py): a cp.async moves at least 4 bytes,
    # and element copies go by pairs, one thread storing both values of a byte
    fp4 = dst.buffer.dtype.kind == "float4"
    if async_copy and v * src.buffer.dtype.bytes < (8 if fp4 else 4):
        async_copy = False
    per = 2 if fp4 and v == 1 and ext and isinstance(ext[-1], int) and ext[-1] % 2 == 0 else v
    total = 1
    for e in ext:
        total *= e
    n_chunks = total // per
    chunk_ext = list(ext[:-1]) + [ext[-1] // per]

    def body(c: Expr) -> Stmt:
        local_ranges = dict(ranges)
        pos = unflatten(c, chunk_ext)
        pos[-1] = pos[-1] * per
        pos = [simplify(p, local_ranges) for p in pos]
        s_idx = region_indices(src, pos)
        d_idx = region_indices(dst, pos)
        if v == 1:
            stores = []
            for k in range(per):
                at = [*pos[:-1], simplify(pos[-1] + k, local_ranges)]
                stores.append(guarded_store(dst, region_indices(dst, at),
                                            guarded_load(src, region_indices(src, at), local_ranges, pad), local_ranges))
            return seq(stores)
        nbytes = v * src.buffer.dtype.bytes
        src_guard = in_bounds(s_idx, src.buffer, local_ranges) if src.buffer.is_global else None
        dst_guard = in_bounds(d_idx, dst.buffer, local_ranges) if dst.buffer.is_global else None
        if async_copy:
            # rows past the end read as zero through cp.async's src-size operand; a chunk is either
            # fully inside or fully outside because rows are multiples of the vector length
            src_bytes: Expr = Const(nbytes, _dt.int32)
            if src_guard is not None:
                src_bytes = Select(src_guard, Const(nbytes, _dt.int32), Const(0, _dt.int32))
            # a zero-byte copy still names a source address, which must be aligned to the copy's
            # size: the tensor's first element (a clamped index would not be, at an odd row end)
            safe = [Select(src_guard, i, Const(0, i.dtype)) for i in s_idx] if src_guard is not None else s_idx
            return Evaluate(Call("cp_async", [address(dst.buffer, d_idx), address(src.buffer, safe), src_bytes],
                                 _dt.handle, {"bytes": nbytes}))
        move = Evaluate(Call("copy_vec", [address(dst.buffer, d_idx), address(src.buffer, s_idx)], _dt.handle,
                             {"bytes": nbytes}))
        if src_guard is not None:
            zero = zero_vector(dst.buffer, d_idx, v)
            return IfThenElse(src_guard, move if dst_guard is None else IfThenElse(dst_guard, move), zero)
        if dst_guard is not None:
            return IfThenElse(dst_guard, move)
        return move

    return chunk_loop(ctx, n_chunks, body)


def zero_vector(buf: Buffer, idx, v: int) -> Stmt:
    """Zeros into the v elements from idx (aligned to the vector): one vector store when
    store_vec can make it (elements of 1, 2 or 4 bytes), else element by element. Scalar stores
    of a vector's elements by a warp hit the same banks several times (a 4-way conflict for the
    16-byte chunks of a swizzled fp16 tile), a vector store does not."""
    nbytes = v * buf.dtype.bytes
    if v > 1 and (buf.dtype.is_float or buf.dtype.is_int) and buf.dtype.bytes <= 4 and nbytes in (2, 4, 8, 16):
        return Evaluate(Call("store_vec", [address(buf, idx)] + [Const(0, buf.dtype)] * v, _dt.handle))
    stores = []
    for k in range(v):
        j = list(idx)
        j[-1] = j[-1] + k
        stores.append(BufferStore(buf, j, Const(0, buf.dtype)))
    return seq(stores)


def cooperative_fill(ctx, dst: BufferRegion, value: Expr) -> Stmt:
    ext = squeezed(dst)
    total = 1
    for e in ext:
        total *= e

    # fp4 is stored two values per byte (transform/pack_fp4.py): one thread fills both of a byte
    per = 2 if dst.buffer.dtype.kind == "float4" and ext and isinstance(ext[-1], int) and ext[-1] % 2 == 0 else 1

    def body(c: Expr) -> Stmt:
        stores = []
        for k in range(per):
            pos = [simplify(p, ctx.ranges) for p in unflatten(c * per + k, ext)]
            stores.append(guarded_store(dst, region_indices(dst, pos), value, ctx.ranges))
        return seq(stores)

    return chunk_loop(ctx, total // per, body)


def per_thread_loops(region: BufferRegion, ctx, make_body) -> Stmt:
    """Every thread walks the whole tile (for thread-private local buffers)."""
    ext = squeezed(region)
    vars_ = [ctx.fresh("i") for _ in ext]
    body = make_body(region_indices(region, vars_))
    for v, e in reversed(list(zip(vars_, ext))):
        body = For(v, 0, e, "serial", body)
    return body


def all_of(conds) -> Expr | None:
    out = None
    for c in conds:
        if c is None:
            continue
        out = c if out is None else logical_and(out, c)
    return out


__all__ = [
    "Var", "address", "all_of", "chunk_loop", "cooperative_copy", "cooperative_fill", "guarded_load", "guarded_store",
    "per_thread_loops", "unflatten", "vector_width",
]  # fmt: skip


def whole_fragment(region: BufferRegion, what: str) -> None:
    for (start, ext), dim in zip(region.region, region.buffer.shape):
        if not (isinstance(start, Const) and start.value == 0 and ext == dim):
            raise CompileError(
                f"{what}: on the CUDA target a fragment operand must be the whole fragment "
                f"{region.buffer.name}, not a part of it"
            )


def fragment_loop(ctx, frag: Buffer, make_body, writes_memory: bool, region: BufferRegion | None = None) -> Stmt:
    """`for v in unroll(registers)`: make_body(v, coords) for each register of this thread,
    coords being the element's logical position in the fragment. When the body writes shared
    or global memory, only replica 0 of a replicated fragment runs it."""
    lay = ctx.fragment_layout(frag)
    v = Var("v", _dt.int32)
    ranges = dict(ctx.ranges)
    ranges[v] = (0, lay.num_values - 1)
    coords = [simplify(c, ranges) for c in lay.inverse(ctx.thread, v)]
    saved = ctx.ranges
    ctx.ranges = ranges
    try:
        body = make_body(v, coords)
    finally:
        ctx.ranges = saved
    if region is not None:
        # a slice of the fragment: registers outside it do nothing
        conds = []
        for c, (start, ext), dim in zip(coords, region.region, frag.shape):
            if isinstance(start, Const) and start.value == 0 and ext == dim:
                continue
            conds.append(c >= start)
            conds.append(c < start + ext)
        g = all_of([simplify(x, ranges) for x in conds])
        if g is not None:
            body = IfThenElse(g, body)
    if writes_memory and lay.replicate > 1:
        rep = simplify(lay.replica_index(ctx.thread), ctx.ranges)
        body = IfThenElse(rep == 0, body)
    loop = For(v, 0, lay.num_values, "unroll", body)
    if getattr(ctx, "pass_configs", {}).get("tir.disable_vectorize"):
        return loop
    return vectorize_global(loop, ranges)  # fragment <-> global copies in 128-bit pieces


def squeeze_coords(region: BufferRegion, coords) -> list[Expr]:
    """Tile coordinates (relative to the region's start) along its non-unit dimensions."""
    return [simplify(c - s) for c, (s, e) in zip(coords, region.region) if e != 1]
