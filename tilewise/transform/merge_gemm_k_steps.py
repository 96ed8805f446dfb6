"""CPU: a K loop that copies one K step of A and of B into tiles and multiplies them with T.gemm
runs several K steps per T.gemm call, the copies of consecutive steps landing side by side in
tiles that many steps wide.

    for ko in range(n):                       for ko2 in range(n // F):
        T.copy(A[.., ko*bk], A_s)      ->         T.copy(A[.., (ko2*F + f)*bk], A_F[:, f*bk:(f+1)*bk])  (f < F)
        T.copy(B[ko*bk, ..], B_s)                 T.copy(B[(ko2*F + f)*bk, ..], B_F[f*bk:(f+1)*bk, :])
        T.gemm(A_s, B_s, C)                       T.gemm(A_F, B_F, C)
                                              for ko in range(n // F * F, n): (the original body)

Why: the CPU micro-kernel (tw_gemm.h) keeps a block of C in registers for the K of one call and
loads and stores it around that; a 128 x 128 fp32 accumulator (64 KiB) does not fit L1, so with
block_K = 32 every call streams it through L2 once per 32 products per element. F steps per call
divide that traffic by F, and each copied row of A becomes F times longer (fewer, longer runs for
the hardware prefetcher).

The result is bit-identical: the micro-kernel sums each element of C in one chain over k in
order, and a call of F steps performs the same fused multiply-adds in the same order as F calls
(C passes through memory between calls unchanged, its type being the accumulator's). So only an
accumulator of the summation type qualifies (float32, float64, int32: a float16 C is rounded at
the end of every call), without clear_accum, and only tiles that the loop alone uses."""
from __future__ import annotations

from ..ir.buffer import Buffer, BufferRegion
from ..ir.expr import Const, Var, as_expr
from ..ir.stmt import Allocate, For, Kernel, PrimFunc, SeqStmt, seq
from ..ir.visitor import Mutator, Visitor, substitute
from ..tileop.copy import Copy
from ..tileop.gemm import Gemm

# K elements per merged call: 64 keeps a 128 x 128 x 32 GEMM's group of four blocks on the
# thread's stack (codegen.py STACK_TILE_BYTES) and measured best at 2048^3 and 4096^3 (2 steps;
# 4 and 8 steps gave no more, their tiles leave L2 for the grouped blocks' B and C tiles)
K_TARGET = 64
_ACCUMULATORS = ("float32", "float64", "int32")


def merge_gemm_k_steps(func: PrimFunc) -> PrimFunc:
    return func.with_body(_Merge().visit(func.body))


class _Refs(Visitor):
    """How often each buffer is named anywhere (loads, stores, regions, allocations)."""

    def __init__(self):
        self.count: dict = {}

    def _add(self, b):
        self.count[b] = self.count.get(b, 0) + 1

    def visit_BufferLoad(self, e):
        self._add(e.buffer)
        self.generic_visit(e)

    def visit_BufferStore(self, s):
        self._add(s.buffer)
        self.generic_visit(s)

    def visit_BufferRegion(self, r):
        self._add(r.buffer)
        self.generic_visit(r)


class _Merge(Mutator):
    def visit_Kernel(self, k: Kernel):
        refs = _Refs()
        refs.visit(k.body)
        self.refs = refs.count
        return self.generic_visit(k)

    def visit_SeqStmt(self, s: SeqStmt):
        out = []
        dead: set = set()
        changed = False
        for st in s.stmts:
            new = self.visit(st)
            if isinstance(st, For) and getattr(self, "refs", None) is not None:
                merged = _merge(st, self.refs)
                if merged is not None:
                    stmts, unused = merged
                    out.extend(stmts)
                    dead.update(unused)
                    changed = True
                    continue
            changed |= new is not st
            out.append(new)
        # the step-sized tiles of a loop merged without a tail are not used any more
        out = [st for st in out if not (isinstance(st, Allocate) and st.buffer in dead)]
        return SeqStmt(out, span=s.span) if changed else s


def _stmts(s) -> list:
    return list(s.stmts) if isinstance(s, SeqStmt) else [s]


def _whole(r: BufferRegion) -> bool:
    return all(isinstance(st, Const) and st.value == 0 and e == d
               for (st, e), d in zip(r.region, r.buffer.shape))


def _merge(loop: For, refs: dict) -> list | None:
    # a pipelined loop without an order= schedule is a plain loop on the CPU (inject_pipeline_cpu)
    if loop.kind not in ("serial", "pipelined") or set(loop.annotations or ()) - {"num_stages"}:
        return None
    if not (isinstance(loop.start, Const) and isinstance(loop.extent, Const)):
        return None
    body = _stmts(loop.body)
    if len(body) < 2 or not isinstance(body[-1], Gemm):
        return None
    g = body[-1]
    if g.clear_accum or g.C.buffer.dtype.name not in _ACCUMULATORS:
        return None
    a, b = g.A.buffer, g.B.buffer
    if a is b or not (_whole(g.A) and _whole(g.B)) or len(a.shape) != 2 or len(b.shape) != 2:
        return None
    if a.is_global or b.is_global or a.base is not None or b.base is not None:
        return None
    if not all(isinstance(d, int) for d in a.shape + b.shape):
        return None
    copies = body[:-1]
    if not all(isinstance(c, Copy) and c.mechanism is None and c.barrier is None for c in copies):
        return None
    # each operand tile written whole by exactly one copy, from anything but the operands and C
    if sorted(c.dst.buffer.uid for c in copies) != sorted((a.uid, b.uid)):
        return None
    for c in copies:
        if not _whole(c.dst) or c.src.buffer in (a, b, g.C.buffer):
            return None
    # the tiles are named nowhere but here: their allocation, the copy and the gemm
    if refs.get(a, 0) != 2 or refs.get(b, 0) != 2:
        return None
    bk = a.shape[0] if g.trans_A else a.shape[1]
    f = K_TARGET // bk
    n = loop.extent.value
    if f < 2 or n < f:
        return None
    # the operands F steps wide along K: A is M x K (or K x M transposed), B K x N (N x K)
    k_axis = {a: 0 if g.trans_A else 1, b: 1 if g.trans_B else 0}
    wide = {}
    for t, ax in k_axis.items():
        shape = list(t.shape)
        shape[ax] *= f
        w = Buffer(t.name + "_k", shape, t.dtype, t.scope, span=t.span)
        wide[t] = w
    outer = Var(loop.var.name + "_k", loop.var.dtype)
    steps = []
    # each operand's steps one after another: A's copies (shared by a group of blocks,
    # block_groups.py) then run together
    for c in copies:
        for i in range(f):
            ko = outer * f + (loop.start.value + i)
            t = c.dst.buffer
            ax = k_axis[t]
            region = [(i * t.shape[ax] if d == ax else 0, t.shape[d]) for d in range(2)]
            steps.append(substitute(c, {loop.var: ko}).with_fields(dst=BufferRegion(wide[t], region)))
    steps.append(g.with_fields(A=BufferRegion.full(wide[a]), B=BufferRegion.full(wide[b])))
    out = [Allocate(wide[a], span=loop.span), Allocate(wide[b], span=loop.span),
           For(outer, 0, n // f, "serial", seq(steps), span=loop.span)]
    if n % f:
        tail = loop.with_fields(start=as_expr(loop.start.value + n // f * f), extent=as_expr(n % f))
        return out + [tail], set()
    return out, {a, b}
