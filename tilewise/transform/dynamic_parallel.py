"""T.Parallel nests whose extent is known only at run time (CUDA-like targets).

Layout inference spreads a T.Parallel nest over the block's threads by its constant extents. A
nest such as `for i in T.Parallel(T.min(valid_len, 512))` (TileLang accepts it: its loop
partitioner strides the iterations over the threads) becomes a serial loop over chunks of one
iteration per thread:

    for c in T.serial(ceildiv(E, threads)):
        for t in T.Parallel(threads):
            if c * threads + t < E:
                body with the nest's variables taken apart from c * threads + t (+ starts)

where E is the product of the nest's extents. The inner nest has a constant extent, so the rest
of the pipeline treats it like any other. Fragments indexed by such a nest's variables have no
layout to take from it (a fragment's layout is a fixed map of its constant shape onto threads):
such a nest is a CompileError naming the fragment.

Its iterations fall on other threads than those of a constant-extent nest over the same
elements (`for i in T.Parallel(512): B[i] = 0` gives each thread a vector of four), so a global
element written before by one thread would be written or read here by another with nothing
ordering the two (the emulator reports the race). insert_barriers orders shared memory only;
for global memory the rewritten nest is bracketed by __syncthreads where every thread of the
block reaches it (not inside an `if` or `while`, whose condition may differ between threads)."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.expr import Const, Var, binary, cast, compare
from ..ir.stmt import For, IfThenElse, Kernel, PrimFunc, While, seq
from ..ir.visitor import Mutator, Visitor, substitute
from ..tileop.base import TileOp
from .insert_barriers import syncthreads


def dynamic_parallel(func: PrimFunc) -> PrimFunc:
    body = _Rewrite().visit(func.body)
    return func if body is func.body else func.with_body(body)


def _constant(e) -> bool:
    return isinstance(e, Const)


class _Scopes(Visitor):
    def __init__(self):
        self.touched = {}  # scope -> first buffer of it

    def visit_BufferLoad(self, e):
        self.touched.setdefault(e.buffer.scope, e.buffer)
        self.generic_visit(e)

    def visit_BufferStore(self, s):
        self.touched.setdefault(s.buffer.scope, s.buffer)
        self.generic_visit(s)

    def generic_visit(self, node):
        if isinstance(node, TileOp):
            for r in (*node.reads(), *node.writes()):
                self.touched.setdefault(r.buffer.scope, r.buffer)
            return None
        return super().generic_visit(node)


class _Fp4Stores(Visitor):
    def __init__(self):
        self.found = False

    def visit_BufferStore(self, s):
        b = s.buffer
        self.found = self.found or (b.dtype.kind == "float4" and (b.is_global or b.is_shared))
        self.generic_visit(s)


def _stores_fp4(stmt) -> bool:
    v = _Fp4Stores()
    v.visit(stmt)
    return v.found


def _scopes(stmt) -> dict:
    v = _Scopes()
    v.visit(stmt)
    return v.touched


class _Rewrite(Mutator):
    def __init__(self):
        self.threads = None
        self.branches = 0  # enclosing `if` / `while` statements: a barrier there may not be reached by all

    def visit_IfThenElse(self, s: IfThenElse):
        self.branches += 1
        try:
            return self.generic_visit(s)
        finally:
            self.branches -= 1

    def visit_While(self, s: While):
        self.branches += 1
        try:
            return self.generic_visit(s)
        finally:
            self.branches -= 1

    def visit_Kernel(self, k: Kernel):
        outer, self.threads = self.threads, 1
        for t in k.threads:
            self.threads *= t
        try:
            return self.generic_visit(k)
        finally:
            self.threads = outer

    def visit_For(self, f: For):
        if f.kind != "parallel" or self.threads is None:
            return self.generic_visit(f)
        nest = [f]
        while isinstance(nest[-1].body, For) and nest[-1].body.kind == "parallel":
            nest.append(nest[-1].body)
        body = self.visit(nest[-1].body)
        if all(_constant(g.extent) and _constant(g.start) and g.start.value == 0 for g in nest):
            if body is nest[-1].body:
                return f
            for g in reversed(nest):
                body = g.with_fields(body=body)
            return body
        return self._chunked(nest, body)

    def _chunked(self, nest: list[For], body):
        touched = _scopes(body)
        if "local.fragment" in touched:
            raise CompileError(
                f"a T.Parallel loop with a run-time extent cannot index the fragment {touched['local.fragment'].name}: "
                "a fragment's elements are spread over the threads by its constant shape; use a shared or local "
                "buffer, or loop over the fragment's whole extent with a condition inside", nest[0].span)
        idt = _dt.int64 if any(g.extent.dtype.bits > 32 or g.var.dtype.bits > 32 for g in nest) else _dt.int32
        total = None
        for g in nest:
            e = cast(g.extent, idt)
            total = e if total is None else binary("mul", total, e)
        # a nest storing packed fp4 (two values per byte, transform/pack_fp4.py) takes two
        # consecutive iterations per thread: one thread then writes both values of a byte where the
        # nest walks the buffer in order, instead of two threads racing on it
        per = 2 if _stores_fp4(body) else 1
        n = Const(self.threads * per, idt)
        chunks = binary("floordiv", binary("add", total, Const(self.threads * per - 1, idt)), n)
        c, t = Var("chunk", idt), Var("t", idt)
        flat = binary("add", binary("mul", c, n), t)
        mapping, rest = {}, flat
        for g in reversed(nest):  # the innermost variable varies fastest, as in the nest
            ext = cast(g.extent, idt)
            idx = binary("floormod", rest, ext) if g is not nest[0] else rest
            mapping[g.var] = cast(binary("add", cast(g.start, idt), idx), g.var.dtype)
            rest = binary("floordiv", rest, ext)
        guarded = IfThenElse(compare("lt", flat, total), substitute(body, mapping), span=nest[0].span)
        notes = dict(nest[-1].annotations)
        if per > 1:
            notes["min_vector"] = per  # layout inference: each thread takes `per` consecutive iterations
        inner = For(t, 0, self.threads * per, "parallel", guarded, notes, span=nest[0].span)
        loop = For(c, 0, chunks, "serial", inner, span=nest[0].span)
        if self.branches or "global" not in touched:
            return loop
        return seq([syncthreads(nest[0].span), loop, syncthreads(nest[0].span)])
