"""CUDA: partition each T.Parallel nest over threads by its inferred layout, and replace every
fragment by the register array of the current thread.

A nest with layout P becomes `for v in unroll(P.num_values)`, the loop variables become P's
inverse map of (thread, v), and a fragment access F[idx] becomes F_regs[F.local_of(idx)], which
the simplifier reduces to a constant after unrolling for compatible layouts."""
from __future__ import annotations

from ..errors import InternalError
from ..ir import dtype as _dt
from ..ir.expr import BufferLoad, Call, Expr, Var
from ..ir.machine import Machine
from ..ir.simplify import prove, simplify
from ..ir.stmt import Allocate, BufferStore, Evaluate, For, IfThenElse, Kernel, PrimFunc, seq
from ..ir.visitor import substitute
from ..tileop.cuda_common import all_of
from ..tileop.cuda_vectorize import vectorize_global
from .cuda_context import CudaLowerContext
from .ranges import RangeMutator


class _FragmentAccess(RangeMutator):
    """Rewrites fragment loads/stores to register-array accesses."""

    def __init__(self, ctx: CudaLowerContext, ranges: dict, direct: dict | None = None):
        super().__init__()
        self.ctx = ctx
        self.ranges = ranges
        self.direct = direct or {}  # Buffer -> index expression known to be the register index

    def _index(self, buf, indices):
        d = self.direct.get(buf)
        if d is not None and all(a is b for a, b in zip(indices, d[0])):
            return d[1]
        lay = self.ctx.fragment_layout(buf)
        return simplify(lay.local_of(list(indices)), self.ranges)

    def visit_BufferLoad(self, e: BufferLoad):
        e = self.generic_visit(e)
        if e.buffer.is_fragment:
            return BufferLoad(self.ctx.local_buffer(e.buffer), [self._index(e.buffer, e.indices)])
        return e

    def visit_BufferStore(self, s: BufferStore):
        s = self.generic_visit(s)
        if s.buffer.is_fragment:
            out = BufferStore(self.ctx.local_buffer(s.buffer), [self._index(s.buffer, s.indices)], s.value, span=s.span)
            return out
        return s


class _LowerParallel(RangeMutator):
    def __init__(self, func: PrimFunc, machine: Machine, pass_configs):
        super().__init__()
        self.func = func
        self.machine = machine
        self.pass_configs = pass_configs
        self.ctx: CudaLowerContext | None = None

    def enter_kernel(self, k: Kernel):
        layouts = k.attrs["layouts"]
        self.ctx = CudaLowerContext(k, layouts, self.ranges, self.machine, self.pass_configs)
        body = self.visit(k.body)
        return k.with_fields(body=body)

    def visit_Allocate(self, s: Allocate):
        if s.buffer.is_fragment and s.buffer.base is not None:
            # a T.reshape of a fragment names its root's registers (layout_inference.view_layout)
            self.ctx.local_buffer(s.buffer)
            return seq([])
        if s.buffer.is_fragment:
            out = Allocate(self.ctx.local_buffer(s.buffer), s.init, span=s.span)
            return out
        return s

    def visit_For(self, f: For):
        if f.kind != "parallel":
            return super().visit_For(f)
        loops = [f]
        body = f.body
        while isinstance(body, For) and body.kind == "parallel":
            loops.append(body)
            body = body.body
        ctx = self.ctx
        lay = f.annotations.get("layout")
        if lay is None:
            raise InternalError("a T.Parallel loop without a layout", f.span)
        v = Var("v", _dt.int32)
        tid = ctx.thread
        lo = f.annotations.get("thread_lo", 0)
        if lo:
            tid = tid - lo  # only threads lo.. run it (an enclosing `if` on the thread index)
        ranges = dict(self.ranges)
        ranges[v] = (0, lay.num_values - 1)
        coords = lay.inverse(tid, v)
        mapping = {lp.var: simplify(c, ranges) for lp, c in zip(loops, coords)}
        # a loop shorter than the fragment layout it follows (T.Parallel(2, 14) over a (2, 64)
        # fragment) takes that layout whole: registers past the loop's extent are no iteration
        beyond = [mapping[lp.var] < lp.extent for lp in loops if prove(mapping[lp.var] < lp.extent, ranges) is not True]
        new_body = substitute(body, mapping)
        if beyond:
            new_body = IfThenElse(all_of(beyond), new_body, span=f.span)
        # fragments laid out exactly like the loop are indexed by the register number itself
        direct = {}
        for buf, lay_b in ctx.layouts.fragments.items():
            if lay_b.same_as(lay):
                direct[buf] = ([mapping[lp.var] for lp in loops], v)
        new_body = _FragmentAccess(ctx, ranges, direct).visit(new_body)
        new_body = self._guard_replicated_stores(new_body, lay, tid, ranges)
        outer, self.ranges = self.ranges, ranges
        try:
            new_body = self.visit(new_body)
        finally:
            self.ranges = outer  # the register index `v` is this loop's alone
        out = For(v, 0, lay.num_values, "unroll", new_body, span=f.span)
        if not self.pass_configs.get("tir.disable_vectorize"):
            out = vectorize_global(out, ranges)
        return out

    def _guard_replicated_stores(self, body, lay, tid, ranges):
        """In a replicated partition several threads compute the same element; only replica 0
        stores it to shared or global memory (or performs its atomic update)."""
        if lay.replicate == 1:
            return body
        rep = simplify(lay.replica_index(tid), ranges)

        class _G(RangeMutator):
            def visit_BufferStore(self, s: BufferStore):
                if s.buffer.is_local:
                    return s
                g = IfThenElse(rep == 0, s, span=s.span)
                return g

            def visit_Evaluate(self, s: Evaluate):
                # atomics and prints are effects too: one replica performs them
                v = s.value
                if isinstance(v, Call) and (v.name.startswith("atomic_") or v.name == "print"):
                    g = IfThenElse(rep == 0, s, span=s.span)
                    return g
                return s

        return _G().visit(body)

    def generic_visit(self, node):
        if isinstance(node, Expr) and self.ctx is not None:
            return _FragmentAccess(self.ctx, self.ranges).visit(node)
        if isinstance(node, BufferStore) and self.ctx is not None and node.buffer.is_fragment:
            return _FragmentAccess(self.ctx, self.ranges).visit(node)
        return super().generic_visit(node)


def lower_parallel_cuda(func: PrimFunc, machine: Machine, pass_configs=None) -> PrimFunc:
    out = func.with_body(_LowerParallel(func, machine, pass_configs).visit(func.body))
    return out
