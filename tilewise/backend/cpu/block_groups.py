"""Blocks of one grid row run in lock-step groups on the CPU, sharing what they compute alike.

A GEMM block (128 x 128 tiles) copies a 128 x 32 tile of A and a 32 x 128 tile of B from the
tensors for every step of K. Neighbouring blocks of a grid row (same `by`, consecutive `bx`) copy
the very same A tiles (the grouped index is the fastest one the grid really varies): on a 4096-wide matrix those copies read 128-byte pieces of 128 rows 16 KiB
apart and cost about a sixth of the kernel. Blocks are independent, so a CPU thread may run up to
G of them interleaved, statement by statement, and then run a statement that is the same for all
of them (it uses no `bx`, touches nothing a block owns alone, and reads no tensor that the kernel
writes) once for the group.

The plan splits the block body, and the bodies of loops in it (the K loop), into statements of
two kinds, to a fixed point:
- per block: uses the grouped block index, stores to a tensor, reads a tensor the kernel writes,
  or touches a tile that a per-block statement writes; such tiles get one copy per block;
- shared: everything else, run once per group at its place in the sequence.
Each block then still runs its own statements in its own order and sees the shared statements'
effects exactly where it would have, so its results are bit-identical to running it alone.
Kernels with anything whose effect could depend on the order of blocks (atomics, spin loops,
printing, external calls, views, scalar variables shared by blocks) are not grouped."""
from __future__ import annotations

from dataclasses import dataclass, field

from ...ir.buffer import Buffer
from ...ir.expr import BufferLoad, Call, Const, Var
from ...ir.stmt import Allocate, BufferStore, Evaluate, For, IfThenElse, Kernel, SeqStmt, While
from ...ir.visitor import collect_loads, uses_var, walk
from ..c_style import is_scalar_var

GROUP = 4  # blocks per group; a 4096-wide GEMM measured 0.71x numpy with 2, 0.74x with 4 (1 thread)
# Calls whose effect depends on when they run, or that may touch memory the plan cannot see.
_ORDERED = ("atomic", "print", "assert", "extern", "sync", "wait", "barrier", "fence", "packed")


@dataclass
class Part:
    """One statement of a split sequence: run once per group (shared) or once per block."""
    stmt: object
    per_block: bool
    loop: For | None = None  # a loop run once whose body is split in turn
    parts: list = field(default_factory=list)


@dataclass
class BlockGroups:
    parts: list  # the block body's statements, split
    grouped: set  # uids of the tiles allocated once per block of a group
    axis: int  # the block index that the blocks of a group differ in


def plan(k: Kernel) -> BlockGroups | None:
    # the grouped index: the fastest one whose extent may be 2 or more (a convolution's grid is
    # one column of filter blocks wide; its blocks share the filter tiles down the column)
    axis = next((i for i, g in enumerate(k.grid) if not (isinstance(g, Const) and g.value < 2)), None)
    if axis is None or len(k.block_vars) != len(k.grid):
        return None
    bx = k.block_vars[axis]
    body = k.body
    bad = []

    def check(n):
        if isinstance(n, While):
            bad.append(n)
        elif isinstance(n, Allocate) and n.buffer.base is not None and not _root(n.buffer).is_global:
            bad.append(n)  # a view of a tile aliases it; views of tensors (T.reshape) are fine
        elif isinstance(n, Call) and (n.name in ("call_extern",) or any(w in n.name for w in _ORDERED)):
            bad.append(n)

    walk(body, check)
    if bad:
        return None
    written_tensors = set()

    def note_tensor_writes(n):
        if isinstance(n, (BufferStore, Call)):
            written_tensors.update(b for b in map(_root, _writes(n)) if b.is_global)

    walk(body, note_tensor_writes)
    seq = _seq(body)
    grouped: set = set()
    # fixed point: a statement is per block if it touches a grouped tile; a tile is grouped if a
    # per-block statement writes it
    while True:
        parts = _split(seq, bx, grouped, written_tensors, depth=0)
        if parts is None:
            return None
        new = set(grouped)
        for p in _leaves(parts):
            if p.per_block:
                new |= {b.uid for b in _writes(p.stmt) if not _root(b).is_global}
        if new == grouped:
            break
        grouped = new
    # worth it only if some real work is shared
    if not any(not p.per_block and not isinstance(p.stmt, Allocate) for p in _leaves(parts)):
        return None
    if not any(p.per_block for p in _leaves(parts)):
        return None
    for p in _leaves(parts):
        if isinstance(p.stmt, Allocate) and p.stmt.buffer.uid in grouped:
            if is_scalar_var(p.stmt.buffer) or p.stmt.init is not None or p.stmt.buffer.static_shape() is None:
                return None
    return BlockGroups(parts, grouped, axis)


def _seq(s) -> list:
    return list(s.stmts) if isinstance(s, SeqStmt) else [s]


def _leaves(parts: list) -> list:
    out = []
    for p in parts:
        if p.loop is not None:
            out.extend(_leaves(p.parts))
        else:
            out.append(p)
    return out


def _split(stmts: list, bx: Var, grouped: set, written_tensors: set, depth: int) -> list | None:
    parts = []
    for s in stmts:
        if isinstance(s, Allocate):
            parts.append(Part(s, s.buffer.uid in grouped))
            continue
        if not isinstance(s, (For, Evaluate, BufferStore, IfThenElse, SeqStmt)):
            return None  # LetStmt (rasterisation) and the rest: not grouped
        per = _per_block(s, bx, grouped, written_tensors)
        if per and depth == 0 and isinstance(s, For) and s.kind in ("serial", "pipelined") \
                and not uses_var(s.extent, bx) and not uses_var(s.start, bx):
            inner = _split(_seq(s.body), bx, grouped, written_tensors, depth + 1)
            if inner is None:
                return None
            if any(not p.per_block and not isinstance(p.stmt, Allocate) for p in inner):
                parts.append(Part(s, True, loop=s, parts=inner))
                continue
        parts.append(Part(s, per))
    return parts


def _per_block(s, bx: Var, grouped: set, written_tensors: set) -> bool:
    if uses_var(s, bx):
        return True
    writes = {_root(b) for b in _writes(s)}
    touched = writes | {_root(ld.buffer) for ld in collect_loads(s)}
    if any(b.is_global and (b in written_tensors or b in writes) for b in touched):
        return True
    return any(b.uid in grouped for b in touched)


def _is_address(e) -> bool:
    return isinstance(e, Call) and e.name == "address_of" and isinstance(e.args[0], BufferLoad)


def _root(b: Buffer) -> Buffer:
    while b.base is not None:
        b = b.base
    return b


def _writes(s) -> set[Buffer]:
    out = set()

    def f(n):
        if isinstance(n, BufferStore):
            out.add(n.buffer)
        elif isinstance(n, Call) and n.name == "gemm":
            out.add(n.args[2].args[0].buffer)  # T.gemm writes C only
        elif isinstance(n, Call) and n.name == "copy_transposed":
            out.add(n.args[2].args[0].buffer)  # (src, lds, dst, ...): tileop/copy_transposed.py
        elif isinstance(n, Call) and n.name.startswith("rows_") and _is_address(n.args[0]):
            out.add(n.args[0].args[0].buffer)  # tw::rows_<reduction>(dst, src, ...) (tileop/reduce.py)
        elif isinstance(n, Call):
            # any other call given an address may write through it (tw::rows_max(&m[0], &s[0]))
            out.update(a.args[0].buffer for a in n.args if _is_address(a))
        elif isinstance(n, Allocate):
            out.add(n.buffer)

    walk(s, f)
    return out
