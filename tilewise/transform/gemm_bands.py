"""CPU: the blocks of a canonical GEMM kernel run in bands, BLAS-style, so that each K step's B
tile is copied once for many row blocks and each A tile once for many column blocks (CPU loop
passes, last).

A GEMM kernel over a (N / bn, M / bm) grid has every block copy, for each K step, an A tile that
depends on (by, k) and a B tile that depends on (bx, k), then run T.gemm into its C accumulator.
Run as written, every block copies its own B tile: at 4096³ with 128 x 128 tiles that is 32
copies of B (2 GiB), and the copies cost 12-16 % of the kernel (docs/PERFORMANCE.md). A band is
R x G blocks (G consecutive bx, R consecutive by); one CPU thread runs a band's blocks together,
K in chunks of KC steps:

    clear the R x G accumulators               (per-block statements, each block in turn)
    for each chunk of KC K steps:
        for each of the G columns, each step:   (column statements: B's copies)
            run them on the column's running tile; with KC > 1 copy it into the step's slot
        for each of the R rows, each step:
            the row's statements, once          (row statements: A's copies)
            for each of the G columns: T.gemm   (compute statements, per block)
    the R x G epilogues                         (per-block statements)

Each block still runs its own statements in its own order and sees the same tile contents at
every step (a column tile's history depends on bx and k only, a row tile's on by and k only,
and each has its own copy per column / row of the band), so every C element is accumulated in
the same order and the results are bit-identical to the blocks run one by one. The renderer
(backend/cpu/codegen.py) lays out the copies; this pass decides whether the kernel qualifies
and classifies its statements, and records a GemmBands plan on the Kernel (attrs[ATTR]).

Qualify (from the IR; otherwise the kernel runs as written): a 2-D grid (bx, by); the body is a
flat sequence of tile allocations (no views, static shapes), per-block statements and K loops
(serial, bounds free of bx / by) containing a T.gemm; a K loop's body is copy statements followed
by compute statements (those with a T.gemm or using both bx and by); a copy statement using bx
and not by is a column statement, any other a row statement; row, column and block tiles are
disjoint (row / column statements read only their own kind of tile and tensors, compute and
per-block statements write only block tiles and tensors, per-block statements touch no row or
column tile); no tensor that the kernel writes is read anywhere; no atomics, barriers, prints,
external calls, while loops, scalar variables or tiles allocated below the top level; a LetStmt
only inside a loop that stays whole (an epilogue's per-element temporary)."""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.expr import BufferLoad, Call, Const
from ..ir.stmt import Allocate, BufferStore, Evaluate, For, IfThenElse, Kernel, LetStmt, PrimFunc, SeqStmt, Stmt
from ..ir.visitor import Mutator, collect_loads, uses_var, walk

ATTR = "gemm_bands"
# Calls whose effect depends on when they run, or that may touch memory the plan cannot see.
_ORDERED = ("atomic", "print", "assert", "extern", "sync", "wait", "barrier", "fence", "packed", "rng", "rand")
# Band shape limits: the G column tiles of a K step should stay in L2 (512 KiB on Zen3) while the
# band's R rows use them, and the R x G accumulators in the L3 share of one thread.
BAND_COLS = 4
BAND_ROWS = 4
CHUNK_STEPS = 1  # K steps per chunk; more copy each step into a panel slot (measured no better, docs/PERFORMANCE.md)
MIN_BANDS = 4  # two per core


@dataclass
class KLoop:
    cols: list  # column statements (use bx, not by), run once per band column
    rows: list  # row statements, run once per band row
    compute: list  # per-block statements, after the copies


@dataclass
class GemmBands:
    cols: int  # G: column blocks per band
    rows: int  # R: row blocks per band
    steps: int  # KC: K steps per chunk (the panel holds KC steps' column tiles of the G columns)
    col_tiles: list  # Buffers: one copy per band column
    row_tiles: list  # Buffers: one copy per band row
    block_tiles: list  # Buffers: one copy per block of the band
    loops: dict  # id(For) of a top-level K loop -> KLoop


DISABLE_KEY = "tw.cpu.disable_gemm_bands"  # pass_config.py
SHAPE_KEY = "tw.cpu.gemm_band_shape"


def gemm_bands(func: PrimFunc, pass_configs: dict | None = None) -> PrimFunc:
    configs = pass_configs or {}
    if configs.get(DISABLE_KEY):  # the program as written
        return func
    shape = configs.get(SHAPE_KEY)
    return func.with_body(_Kernels(tuple(shape) if shape else None).visit(func.body))


class _Kernels(Mutator):
    def __init__(self, shape: tuple | None):
        self.shape = shape

    def visit_Kernel(self, k: Kernel):
        if k.attrs.get("uses_thread_binding") or k.attrs.get("private_atomics") is not None:
            return k
        p = plan(k, self.shape)
        if p is None:
            return k
        attrs = dict(k.attrs)
        attrs[ATTR] = p
        return k.with_fields(attrs=attrs)


def _seq(s) -> list:
    return list(s.stmts) if isinstance(s, SeqStmt) else [s]


def _has_gemm(s) -> bool:
    found = []
    walk(s, lambda n: found.append(n) if isinstance(n, Call) and n.name == "gemm" else None)
    return bool(found)


def _address(a) -> BufferLoad | None:
    if isinstance(a, Call) and a.name == "address_of" and a.args and isinstance(a.args[0], BufferLoad):
        return a.args[0]
    return None


def _writes(s) -> set:
    """Buffers a statement may write: stores, T.gemm's C, copy_transposed's destination, and
    any buffer whose address another call is given."""
    out = set()

    def f(n):
        if isinstance(n, BufferStore):
            out.add(n.buffer)
        elif isinstance(n, Call) and n.name == "gemm":
            out.add(_address(n.args[2]).buffer)
        elif isinstance(n, Call) and n.name == "copy_transposed":
            out.add(_address(n.args[2]).buffer)  # (src, lds, dst, ...): tileop/copy_transposed.py
        elif isinstance(n, Call) and n.name != "address_of":
            out.update(ld.buffer for ld in map(_address, n.args) if ld is not None)

    walk(s, f)
    return out


def _reads(s) -> set:
    return {ld.buffer for ld in collect_loads(s)}


def _lets_are_local(body, top: list) -> bool:
    """Whether every LetStmt binds inside a loop that the plan keeps whole: a per-element
    temporary of an epilogue or copy loop (`x = C[i, j] + bias[j]` in a T.Parallel). A binding
    at the top of the kernel (rasterisation's bx / by) or of a K loop's body would be cut from
    its uses when the renderer splits those sequences into per-block, row and column parts."""
    lets, local = set(), set()

    def mark(n):
        if isinstance(n, LetStmt):
            lets.add(id(n))
        elif isinstance(n, For) and not (any(n is t for t in top) and _has_gemm(n.body)):
            walk(n.body, lambda m: local.add(id(m)) if isinstance(m, LetStmt) else None)

    walk(body, mark)
    return lets <= local


def _band_shape(k: Kernel, forced: tuple | None) -> tuple[int, int, int] | None:
    """(G, R, KC): BAND_COLS x BAND_ROWS blocks and CHUNK_STEPS K steps per chunk, fewer rows
    (then columns) where the grid would otherwise make fewer than MIN_BANDS bands."""
    if forced is not None:
        g, r, kc = (int(x) for x in (*forced, CHUNK_STEPS)[:3])
        return (g, r, kc) if min(g, r, kc) >= 1 else None
    g, r = BAND_COLS, BAND_ROWS
    if isinstance(k.grid[0], Const) and isinstance(k.grid[1], Const):
        gx, gy = k.grid[0].value, k.grid[1].value
        g, r = min(g, gx), min(r, gy)
        while -(-gx // g) * -(-gy // r) < MIN_BANDS and (g > 1 or r > 1):
            if r >= g:
                r = (r + 1) // 2
            else:
                g = (g + 1) // 2
    return (g, r, CHUNK_STEPS) if g * r > 1 else None


def plan(k: Kernel, shape: tuple | None = None) -> GemmBands | None:
    if len(k.grid) != 2 or len(k.block_vars) != 2:
        return None
    bx, by = k.block_vars
    bad = []

    def check(n):
        if isinstance(n, Allocate) and (n.buffer.base is not None or n.init is not None
                                        or n.buffer.static_shape() is None or n.buffer.is_var):
            bad.append(n)
        elif isinstance(n, Call) and n.name != "gemm" and (
                n.name == "call_extern" or any(w in n.name for w in _ORDERED)):
            bad.append(n)
        elif isinstance(n, Stmt) and not isinstance(n, (Allocate, BufferStore, Evaluate, For, IfThenElse, SeqStmt,
                                                         LetStmt)):
            bad.append(n)  # While, annotations, nested kernels

    walk(k.body, check)
    if bad:
        return None
    top = _seq(k.body)
    if not _lets_are_local(k.body, top):
        return None
    nested = []
    for s in top:
        if not isinstance(s, Allocate):
            walk(s, lambda n: nested.append(n) if isinstance(n, Allocate) else None)
    if nested:
        return None  # every tile must be one of the band's (the renderer places them all)
    # tensors the kernel writes are never read (blocks exchange nothing through memory)
    written = {b for b in _writes(k.body) if b.is_global}
    if written & _reads(k.body):
        return None
    loops: dict = {}
    per_block: list = []
    allocated: list = []
    for s in top:
        if isinstance(s, Allocate):
            allocated.append(s.buffer)
        elif isinstance(s, For) and s.kind in ("serial", "pipelined") and _has_gemm(s.body) \
                and not any(uses_var(e, v) for e in (s.start, s.extent) for v in (bx, by)):
            body = _seq(s.body)
            is_compute = [_has_gemm(t) or (uses_var(t, bx) and uses_var(t, by)) for t in body]
            first = is_compute.index(True)
            if not all(is_compute[first:]) or any(isinstance(t, Allocate) for t in body):
                return None
            copies = body[:first]
            cols = [t for t in copies if uses_var(t, bx) and not uses_var(t, by)]
            rows = [t for t in copies if not (uses_var(t, bx) and not uses_var(t, by))]
            loops[id(s)] = KLoop(cols, rows, body[first:])
        else:
            per_block.append(s)
    if not loops:
        return None
    local = {b for b in allocated}
    col_tiles = set().union(*(_writes(t) for lp in loops.values() for t in lp.cols))
    row_tiles = set().union(*(_writes(t) for lp in loops.values() for t in lp.rows))
    if any(b not in local for b in (col_tiles | row_tiles) if not b.is_global):
        return None
    col_tiles = {b for b in col_tiles if not b.is_global}
    row_tiles = {b for b in row_tiles if not b.is_global}
    if (col_tiles | row_tiles) != set().union(*(_writes(t) for lp in loops.values() for t in lp.cols + lp.rows)):
        return None  # a copy statement that writes a tensor
    if col_tiles & row_tiles:
        return None
    # tiles nothing names but their allocation (the pipeline's unmerged K step when K divides
    # evenly) take no room
    named = _writes(k.body) | _reads(k.body)
    block_tiles = {b for b in local - col_tiles - row_tiles if b in named}
    for lp in loops.values():
        for t in lp.cols:
            if any(not b.is_global and b not in col_tiles for b in _reads(t)):
                return None
        for t in lp.rows:
            if any(not b.is_global and b not in row_tiles for b in _reads(t)):
                return None
        for t in lp.compute:
            if any(not b.is_global and b not in block_tiles for b in _writes(t)):
                return None
    for s in per_block:
        if any(b in col_tiles or b in row_tiles for b in _writes(s) | _reads(s)):
            return None
    if not block_tiles:
        return None
    shape = _band_shape(k, shape)
    if shape is None:
        return None
    order = {b: i for i, b in enumerate(allocated)}

    def ordered(bs):
        return sorted(bs, key=order.__getitem__)

    return GemmBands(shape[0], shape[1], shape[2], ordered(col_tiles), ordered(row_tiles), ordered(block_tiles),
                     loops)
