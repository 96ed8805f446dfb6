"""CUDA: a `__syncthreads` inside an `if` that keeps part of the block's threads (`with T.ws(1):`,
`if tx < 128:`) becomes a named barrier of those threads, `bar.sync id, count` (docs/THREAD_IR.md,
"Warp specialisation"): the other threads never reach it, so a block-wide barrier there would
wait for them forever. Such barriers come from insert_barriers (hazards among the threads of a
branch), from operators lowered inside the branch (a cross-warp reduction, a TMA store) and from
T.sync_threads() written there.

Each thread range gets its own barrier id, from 1 up, skipping the ids the kernel names itself
(T.sync_threads(id, count), T.named_barrier_arrive); barrier 0 is __syncthreads. A range that is
not whole warps, or a condition on the thread index that keeps no contiguous range, cannot have
a barrier inside: that is a CompileError at the barrier's line.

Proxy fences. Shared memory written by threads (stores, thread copies, cp.async) is visible to
the asynchronous proxy (wgmma operands, TMA stores) only after a `fence.proxy.async` by the
writing thread. A wgmma fences for its own threads, which suffices when every thread of the
block runs it; in a kernel whose warpgroups run different code (warp-specialised, or with
barriers among thread ranges) the writers may be other threads, which may never run that
wgmma. There, every thread fences before each point where it hands shared memory over to
others (a barrier, a named-barrier arrival, an mbarrier arrival), when the kernel writes shared
memory through the generic proxy and reads it through the asynchronous one."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.expr import BufferLoad, Call, Const
from ..ir.stmt import BufferStore, Evaluate, IfThenElse, Kernel, PrimFunc, seq
from ..ir.visitor import Mutator, collect_vars, walk
from .thread_range import INEXACT, branch_threads

MAX_ID = 16
WARP = 32


def _used_ids(body) -> set:
    ids: set = set()

    def f(n):
        if isinstance(n, Call) and n.name in ("named_barrier", "named_barrier_arrive") and isinstance(n.args[0], Const):
            ids.add(int(n.args[0].value))

    walk(body, f)
    return ids


class _Kernel(Mutator):
    def __init__(self, k: Kernel):
        self.k = k
        n = 1
        for t in k.threads:
            n *= t
        self.full = (0, n - 1)
        self.range = self.full
        self.taken = _used_ids(k.body)
        self.ids: dict = {}  # thread range -> barrier id

    def _id(self, rng, span) -> int:
        if rng not in self.ids:
            free = next((i for i in range(1, MAX_ID) if i not in self.taken and i not in self.ids.values()), None)
            if free is None:
                raise CompileError(f"a barrier among threads {rng[0]}-{rng[1]} needs a named barrier id, but all "
                                   f"{MAX_ID - 1} are in use (by the kernel or by other thread ranges)", span)
            self.ids[rng] = free
        return self.ids[rng]

    def visit_Evaluate(self, s: Evaluate):
        c = s.value
        if not (isinstance(c, Call) and c.name == "syncthreads") or self.range == self.full:
            return s
        if self.range == INEXACT:
            raise CompileError("a barrier among the threads of an `if` on the thread index that does not keep a "
                               "contiguous range of threads; write the condition as `tx < c`, `tx >= c` or both",
                               s.span)
        lo, hi = self.range
        if lo % WARP or (hi + 1) % WARP:
            raise CompileError(f"a barrier among threads {lo}-{hi}, which are not whole warps (a named barrier counts "
                               "whole warps); keep whole warps in the `if` on the thread index", s.span)
        args = [Const(self._id(self.range, s.span), _dt.int32), Const(hi - lo + 1, _dt.int32)]
        return Evaluate(Call("named_barrier", args, _dt.handle), span=s.span)

    def visit_IfThenElse(self, s: IfThenElse):
        tv = {id(v) for v in self.k.thread_vars}
        if not any(id(v) in tv for v in collect_vars(s.cond)):
            return self.generic_visit(s)
        saved = self.range
        bodies = []
        for body, truth in ((s.then_body, True), (s.else_body, False)):
            if body is None:
                bodies.append(None)
                continue
            self.range = INEXACT if saved == INEXACT else branch_threads(s.cond, truth, self.k, saved)
            try:
                bodies.append(self.visit(body))
            finally:
                self.range = saved
        if bodies[0] is s.then_body and bodies[1] is s.else_body:
            return s
        return IfThenElse(s.cond, bodies[0], bodies[1], span=s.span)


HANDOVERS = ("syncthreads", "named_barrier", "named_barrier_arrive", "mbarrier_arrive", "mbarrier_arrive_expect_tx")
_GENERIC_SHARED_WRITES = {"copy_vec": 0, "cp_async": 0}  # intrinsic -> its destination argument


class _Fences(Mutator):
    def visit_Evaluate(self, s: Evaluate):
        c = s.value
        if isinstance(c, Call) and c.name in HANDOVERS:
            return seq([Evaluate(Call("fence_proxy_async", [], _dt.handle), span=s.span), s])
        return s


def _needs_fences(k: Kernel, body) -> bool:
    async_reads = generic_writes = ranged = False

    def f(n):
        nonlocal async_reads, generic_writes, ranged
        if isinstance(n, Call):
            if n.name in ("wgmma", "tma_store"):
                async_reads = True
            elif n.name in ("named_barrier", "named_barrier_arrive"):
                ranged = True
            k2 = _GENERIC_SHARED_WRITES.get(n.name)
            if k2 is not None and _is_shared(n.args[k2]):
                generic_writes = True
            if n.name.startswith("atomic_") and n.args and _is_shared(n.args[0]):
                generic_writes = True
        elif isinstance(n, BufferStore) and n.buffer.is_shared:
            generic_writes = True

    walk(body, f)
    return async_reads and generic_writes and (ranged or bool(k.attrs.get("warp_specialized")))


def _is_shared(addr) -> bool:
    return (isinstance(addr, Call) and addr.name == "address_of" and isinstance(addr.args[0], BufferLoad)
            and addr.args[0].buffer.is_shared)


class _Pass(Mutator):
    def visit_Kernel(self, k: Kernel):
        m = _Kernel(k)
        body = m.visit(k.body)
        if _needs_fences(k, body):
            body = _Fences().visit(body)
        return k if body is k.body else k.with_fields(body=body)


def range_barriers(func: PrimFunc) -> PrimFunc:
    return func.with_body(_Pass().visit(func.body))
