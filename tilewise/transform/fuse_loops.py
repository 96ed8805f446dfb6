"""Fuse consecutive element-wise loop nests over the same tile (CPU).

A GPU-style kernel moves every tile through registers in separate steps: T.copy into a
fragment, a T.Parallel loop over it, T.copy out. On the CPU each step is a pass over the
tile, and the copies in and out stall on memory while nothing computes; one loop that loads,
computes and stores element by element keeps the memory system busy (an element-wise add of
two 4096 x 4096 tiles in 8 x 256 blocks: 24 ms -> 13 ms on one core).

Two loop nests fuse when they have the same constant extents level by level, their innermost
loops are element-wise (T.Parallel or vectorised), and each buffer that one writes and the other
touches is accessed everywhere, in both, at the same element: the same index tuple (in terms of
the loop indices), in which every loop index of extent > 1 is one whole index. Then iteration
i of the second nest only depends on iteration i of the first. Nests holding calls, inner loops
or buffer addresses (a row reduction's argument), or touching buffer views, are left alone.

Nests that only store into T.gemm operand tiles (tiles the kernel reads through no other way than
a `gemm` call's address) do not fuse either: the GEMM reads the whole tile after them, so one loop
saves nothing, and two copies fused into one (a K loop's A and B tiles of equal shape: the NT and
TN GEMMs) would keep block_groups (backend/cpu) from running the A copy once per group of blocks:
fp32 NT at 2048^3 went from 66 to 70 GFLOP/s on one core when they stayed apart."""
from __future__ import annotations

from ..ir.expr import BufferLoad, Call, Const, Var
from ..ir.simplify import structural_equal
from ..ir.span import at
from ..ir.stmt import BufferStore, For, PrimFunc, SeqStmt, seq
from ..ir.visitor import Mutator, Visitor, substitute

_ELEMENTWISE = ("parallel", "vectorized")
_PLAIN = ("serial", "parallel", "vectorized")


def _nest(s) -> tuple[list[For], object] | None:
    """The loops of a perfect nest (outermost first) and the innermost body; loops of extent 1
    are left out, their index replaced by 0 (`for i in T.Parallel(1)` next to a 1-D copy)."""
    loops = []
    single = {}
    while isinstance(s, For):
        if s.kind not in _PLAIN or not isinstance(s.extent, Const) or not (isinstance(s.start, Const) and s.start.value == 0):
            return None
        if s.extent.value == 1:
            single[s.var] = s.start
        else:
            loops.append(s)
        s = s.body
    if not loops or loops[-1].kind not in _ELEMENTWISE:
        return None
    return loops, substitute(s, single) if single else s


class _Accesses(Visitor):
    def __init__(self):
        self.acc: list[tuple] = []  # (buffer, indices, is_write)
        self.opaque: set = set()  # buffers whose elements are reached through an address
        self.ok = True

    def visit_BufferStore(self, s: BufferStore):
        self.acc.append((s.buffer, tuple(s.indices), True))
        self.generic_visit(s)

    def visit_BufferLoad(self, e: BufferLoad):
        self.acc.append((e.buffer, tuple(e.indices), False))
        self.generic_visit(e)

    def visit_Call(self, e: Call):
        if e.name == "address_of":
            for a in e.args:
                if isinstance(a, BufferLoad):
                    self.opaque.add(a.buffer)
        self.generic_visit(e)

    def _stop(self, _):
        self.ok = False

    visit_For = visit_While = visit_Break = visit_Evaluate = visit_Allocate = _stop


def element_accesses(body) -> _Accesses | None:
    """The buffer accesses of a loop body without inner loops, calls or views, else None."""
    a = _Accesses()
    a.visit(body)
    if not a.ok or any(b.base is not None for b, _, _ in a.acc) or any(b.base is not None for b in a.opaque):
        return None
    return a


def same_element(indices, loop_vars) -> bool:
    """Each loop index of extent > 1 is a whole index, and no two indices are the same one."""
    whole = [i for i in indices if isinstance(i, Var)]
    if len({v.uid for v in whole}) != len(whole):
        return False
    present = {v.uid for v in whole}
    return all(v.uid in present for v in loop_vars)


def _fusable(n1, n2):
    (l1, b1), (l2, b2) = n1, n2
    if len(l1) != len(l2) or any(a.extent.value != b.extent.value for a, b in zip(l1, l2)):
        return None
    a1, a2 = element_accesses(b1), element_accesses(b2)
    if a1 is None or a2 is None:
        return None
    rename = {b.var: a.var for a, b in zip(l1, l2)}
    acc2 = [(buf, tuple(substitute(i, rename) for i in idx), w) for buf, idx, w in a2.acc]
    written1 = {b for b, _, w in a1.acc if w}
    written2 = {b for b, _, w in acc2 if w}
    touched1 = {b for b, _, _ in a1.acc} | a1.opaque
    touched2 = {b for b, _, _ in acc2} | a2.opaque
    shared = (written1 & touched2) | (written2 & touched1)
    if shared & (a1.opaque | a2.opaque):
        return None
    varying = [a.var for a in l1 if a.extent.value > 1]
    for buf in shared:
        idx = [i for b, i, _ in a1.acc + acc2 if b is buf]
        first = idx[0]
        if not same_element(first, varying):
            return None
        if any(len(i) != len(first) or not all(structural_equal(x, y) for x, y in zip(i, first)) for i in idx[1:]):
            return None
    return rename


def _fuse(n1, n2, rename) -> For:
    (l1, b1), (l2, b2) = n1, n2
    with at(l1[-1].span):
        body = seq([b1, substitute(b2, rename)])
    for depth in range(len(l1) - 1, -1, -1):
        a, b = l1[depth], l2[depth]
        kind = a.kind if a.kind == b.kind else ("parallel" if depth == len(l1) - 1 else "serial")
        with at(a.span):
            body = For(a.var, a.start, a.extent, kind, body, a.annotations)
    return body


class _GemmOperands(Visitor):
    """Buffers passed to a `gemm` call, and buffers read any other way (loads, other calls)."""

    def __init__(self):
        self.operands: set = set()
        self.other: set = set()

    def visit_Call(self, e: Call):
        if e.name == "gemm":
            for a in e.args:
                if isinstance(a, Call) and a.name == "address_of" and a.args and isinstance(a.args[0], BufferLoad):
                    self.operands.add(a.args[0].buffer)
                    for i in a.args[0].indices:
                        self.visit(i)
                else:
                    self.visit(a)
            return
        self.generic_visit(e)

    def visit_BufferLoad(self, e: BufferLoad):
        self.other.add(e.buffer)
        self.generic_visit(e)


def _stores_only_into(nest, bufs: set) -> bool:
    a = element_accesses(nest[1])
    if a is None:
        return False
    written = {b for b, _, w in a.acc if w}
    return bool(written) and written <= bufs


class _Fuse(Mutator):
    def __init__(self, gemm_tiles: set):
        self.gemm_tiles = gemm_tiles

    def visit_SeqStmt(self, s: SeqStmt):
        stmts = [self.visit(x) for x in s.stmts]
        out = []
        for st in stmts:
            if out:
                n1, n2 = _nest(out[-1]), _nest(st)
                if n1 is not None and n2 is not None and not (
                        _stores_only_into(n1, self.gemm_tiles) and _stores_only_into(n2, self.gemm_tiles)):
                    rename = _fusable(n1, n2)
                    if rename is not None:
                        out[-1] = _fuse(n1, n2, rename)
                        continue
            out.append(st)
        if len(out) == 1:
            return out[0]
        with at(s.span):
            return SeqStmt(out)


def fuse_loops(func: PrimFunc) -> PrimFunc:
    g = _GemmOperands()
    g.visit(func.body)
    return func.with_body(_Fuse(g.operands - g.other).visit(func.body))
