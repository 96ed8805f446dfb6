"""CPU: a transposed T.gemm operand tile that T.copy fills from a tensor is stored transposed
instead, and the copy transposes on the way in:

    B_s = alloc_shared((bn, bk))                  B_t = alloc_shared((bk, bn))
    T.copy(B[bx*bn, ko*bk], B_s)          ->      copy_transposed(B[bx*bn:+bn, ko*bk:+bk], B_t)
    T.gemm(A_s, B_s, C, transpose_B=True)         T.gemm(A_s, B_t, C)

(and A stored K x M likewise). Why: the CPU micro-kernel (tw_gemm.h) reads B as rows of K x N and
broadcasts A's elements row by row. A transposed B tile is packed (transposed into a scratch
panel) inside every T.gemm call, after the copy has already moved it once; a transposed A tile is
read along strided columns. Here one pass does both, W x W blocks turned in registers
(tileop/copy_transposed.py, tw_pack.h), and the GEMM runs as NN. With fuse_loops's rule for
operand copies: fp32 2048^3 on one core, NT 0.71x -> 0.80x numpy, TN 0.75x -> 0.83x, TT 0.71x ->
0.81x (docs/PERFORMANCE.md, CPU).

The result is bit-identical: the same products summed in the same order; only where the operand
sits in memory changes. Only tiles whose dtype is the accumulator's (float32, float64: the
micro-kernel then uses them in place; other types are converted in the GEMM's packing anyway),
written by nothing but whole synchronous T.copy from a tensor whose last axis is contiguous, and
read by nothing but T.gemm calls that take them transposed; views of them keep them as written."""
from __future__ import annotations

from ..ir.buffer import Buffer, BufferRegion
from ..ir.span import at
from ..ir.stmt import PrimFunc
from ..ir.visitor import Mutator, Visitor
from ..tileop.copy import Copy
from ..tileop.copy_transposed import CopyTransposed
from ..tileop.gemm import Gemm

_DTYPES = ("float32", "float64")


def transpose_gemm_operands(func: PrimFunc) -> PrimFunc:
    uses = _Uses()
    uses.visit(func.body)
    mapping = {}
    for buf, n in uses.transposed.items():
        if _qualifies(buf, n, uses):
            t = Buffer(buf.name + "_t", [buf.shape[1], buf.shape[0]], buf.dtype, buf.scope, span=buf.span)
            mapping[buf] = t
    if not mapping:
        return func
    return func.with_body(_Rewrite(mapping).visit(func.body))


class _Uses(Visitor):
    def __init__(self):
        self.refs: dict = {}  # buffer -> references anywhere (loads, stores, regions)
        self.copies: dict = {}  # tile -> the T.copy ops writing it
        self.transposed: dict = {}  # tile -> how often a T.gemm takes it transposed
        self.bad: set = set()  # tiles used in a way the rewrite cannot follow
        self.viewed: set = set()

    def _ref(self, b):
        self.refs[b] = self.refs.get(b, 0) + 1
        if b.base is not None:
            self.viewed.add(b.base)

    def visit_BufferLoad(self, e):
        self._ref(e.buffer)
        self.generic_visit(e)

    def visit_BufferStore(self, s):
        self._ref(s.buffer)
        self.generic_visit(s)

    def visit_BufferRegion(self, r):
        self._ref(r.buffer)
        self.generic_visit(r)

    def visit_Allocate(self, s):
        if s.buffer.base is not None:
            self.viewed.add(s.buffer.base)
        self.generic_visit(s)

    def visit_Copy(self, c: Copy):
        self.copies.setdefault(c.dst.buffer, []).append(c)
        self.generic_visit(c)

    def visit_Gemm(self, g: Gemm):
        for r, flag in ((g.A, g.trans_A), (g.B, g.trans_B)):
            b = r.buffer
            if not flag or g.A.buffer is g.B.buffer or not _whole(r) or g.C.buffer.dtype != b.dtype:
                self.bad.add(b)
            else:
                self.transposed[b] = self.transposed.get(b, 0) + 1
        self.generic_visit(g)


def _whole(r: BufferRegion) -> bool:
    return all(isinstance(e, int) and e == d and _zero(s) for (s, e), d in zip(r.region, r.buffer.shape))


def _zero(e) -> bool:
    return getattr(e, "value", None) == 0


def _qualifies(buf: Buffer, n_gemm: int, uses: _Uses) -> bool:
    if buf in uses.bad or buf in uses.viewed or buf.is_global or buf.base is not None:
        return False
    if buf.ndim != 2 or not all(isinstance(d, int) for d in buf.shape) or buf.dtype.name not in _DTYPES:
        return False
    copies = uses.copies.get(buf, [])
    if not copies or uses.refs.get(buf, 0) != len(copies) + n_gemm:
        return False
    for c in copies:
        s = c.src
        if c.mechanism is not None or c.barrier is not None or not s.buffer.is_global or s.buffer.dtype != buf.dtype:
            return False
        if s.buffer.ndim < 2 or s.buffer.explicit_strides is not None:
            return False
        if any(not (isinstance(e, int) and e == 1) for e in s.extents[:-2]):
            return False
        if list(s.extents[-2:]) != list(c.dst.extents) or not all(isinstance(e, int) for e in c.dst.extents):
            return False
    return True


class _Rewrite(Mutator):
    def __init__(self, mapping: dict):
        self.mapping = mapping

    def visit_Allocate(self, s):
        t = self.mapping.get(s.buffer)
        return s.with_fields(buffer=t) if t is not None else self.generic_visit(s)

    def visit_Copy(self, c: Copy):
        t = self.mapping.get(c.dst.buffer)
        if t is None:
            return self.generic_visit(c)
        (r0, e0), (r1, e1) = c.dst.region
        with at(c.span):
            out = CopyTransposed(c.src, BufferRegion(t, [(r1, e1), (r0, e0)]))
        out.span = c.span
        return out

    def visit_Gemm(self, g: Gemm):
        updates = {}
        if g.A.buffer in self.mapping:
            updates.update(A=BufferRegion.full(self.mapping[g.A.buffer]), trans_A=False)
        if g.B.buffer in self.mapping:
            updates.update(B=BufferRegion.full(self.mapping[g.B.buffer]), trans_B=False)
        return g.with_fields(**updates) if updates else g
