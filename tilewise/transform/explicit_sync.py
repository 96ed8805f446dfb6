"""CUDA: the explicit synchronisation primitives of a kernel (language/hopper.py: mbarriers,
named barriers, register budgets, proxy fences, T.tma_copy), before anything else touches it.

Runs first among the tile-level passes, so every such intrinsic it sees is the program's own:
- the barriers of T.alloc_barrier / T.create_list_of_mbarrier are initialised once, at the
  kernel's start: thread 0 runs every `mbarrier_init` and `fence_barrier_init`, then a
  __syncthreads (TileLang's LowerSharedBarrier); their shared bytes are never reused;
- primitives the target lacks are CompileErrors at their line (mbarriers and T.tma_copy need
  sm_90), or dropped with a lowering note where they cannot change a result (a register budget
  without setmaxnreg, a proxy fence without an asynchronous proxy, a wgmma wait without wgmma:
  tilewise's T.gemm completes its own wgmma groups);
- warpgroup-wide instructions (setmaxnreg, the wgmma fences) inside an `if` that does not keep
  whole warpgroups are CompileErrors;
- a T.Pipelined loop whose body synchronises itself (mbarrier waits or arrivals, named
  barriers, T.tma_copy) runs as written: the compiler neither multi-buffers its tiles nor adds
  its own copy pipeline (a lowering note says so); so does one inside an `if` that keeps part of
  the block on a TMA target (the compiler's TMA pipeline initialises and issues from thread 0);
- `Kernel.attrs`: "warp_specialized" (the program synchronises its warps itself: the emulator
  schedules warps), "explicit_sync" (it waits on mbarriers or named barriers, so ordering
  shared memory between disjoint thread ranges is its own business: insert_barriers), and
  "register_budgets" (it sets them: the renderer's launch bounds)."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer
from ..ir.expr import Call, logical_not
from ..ir.machine import Machine
from ..ir.stmt import Allocate, Evaluate, For, IfThenElse, Kernel, PrimFunc, SeqStmt, Stmt, seq
from ..ir.visitor import Mutator, Visitor, walk
from ..tileop.base import TileOp
from ..tileop.tma_copy import TmaCopy
from .raw_tma_layouts import raw_tma_uses
from .thread_range import INEXACT, branch_threads

# intrinsic -> the T.* primitives that emit it (for messages)
PRIMITIVES = {
    "mbarrier_init": "T.alloc_barrier / T.create_list_of_mbarrier",
    "mbarrier_wait": "T.mbarrier_wait_parity / T.barrier_wait",
    "mbarrier_arrive": "T.mbarrier_arrive / T.barrier_arrive",
    "mbarrier_expect_tx": "T.mbarrier_expect_tx",
    "mbarrier_arrive_expect_tx": "T.mbarrier_arrive_expect_tx",
    "cp_async_mbarrier_arrive": "T.cp_async_barrier_noinc / T.ptx_cp_async_barrier",
    "named_barrier": "T.sync_threads(barrier_id, ...)",
    "named_barrier_arrive": "T.named_barrier_arrive",
    "setmaxnreg": "T.set_max_nreg / T.inc_max_nreg / T.dec_max_nreg",
    "fence_proxy_async": "T.fence_proxy_async",
    "wgmma_wait": "T.wait_wgmma / T.warpgroup_wait",
    "wgmma_fence": "T.warpgroup_arrive",
    "wgmma_commit": "T.warpgroup_commit_batch",
    "tma_store_commit": "T.tma_store_arrive",
    "tma_store_wait": "T.tma_store_wait",
    "wgmma": "T.ptx_wgmma_ss / T.ptx_wgmma_rs",
}
MBARRIER = ("mbarrier_init", "mbarrier_wait", "mbarrier_arrive", "mbarrier_expect_tx", "mbarrier_arrive_expect_tx",
            "cp_async_mbarrier_arrive")
TX_COUNT = ("mbarrier_expect_tx", "mbarrier_arrive_expect_tx")  # sm_90 (with TMA); the rest of MBARRIER sm_80
NAMED = ("named_barrier", "named_barrier_arrive")
# primitives that synchronise threads with each other (a block run in lockstep cannot run them)
WARP_SYNC = MBARRIER + NAMED
# executed together by every thread of a warpgroup (.sync.aligned)
WARPGROUP_WIDE = ("setmaxnreg", "wgmma_wait", "wgmma_fence", "wgmma_commit")
# dropped where the machine lacks them: they cannot change a result there
DROPPABLE = {
    "setmaxnreg": ("wgmma", "register budgets need setmaxnreg (sm_90a)"),
    "fence_proxy_async": ("tma", "there is no asynchronous proxy before sm_90"),
    "fence_barrier_init": ("tma", "fence.mbarrier_init orders barrier inits before TMA completions (sm_90)"),
    "wgmma_wait": ("wgmma", "there is no wgmma before sm_90a (and T.gemm is synchronous there)"),
    "wgmma_fence": ("wgmma", "there is no wgmma before sm_90a"),
    "wgmma_commit": ("wgmma", "there is no wgmma before sm_90a"),
    "tma_store_commit": ("tma", "there are no TMA stores before sm_90"),
    "tma_store_wait": ("tma", "there are no TMA stores before sm_90"),
}


def _nothing() -> SeqStmt:
    return SeqStmt([])  # what a removed statement becomes (flattened away in sequences)


def _empty(s) -> bool:
    return isinstance(s, SeqStmt) and not s.stmts


def _call(s) -> Call | None:
    if isinstance(s, Evaluate) and isinstance(s.value, Call):
        return s.value
    return None


def warp_sync_uses(func: PrimFunc, names: tuple[str, ...] = WARP_SYNC) -> list[tuple[str, object]]:
    """(primitive, span) of every primitive in `func` (tile level, as parsed) that synchronises
    threads with each other: mbarriers, named barriers (or those of `names`), T.tma_copy."""
    out = []

    def f(n):
        c = _call(n)
        if c is not None and c.name in names:
            out.append((PRIMITIVES[c.name], n.span))
        elif isinstance(n, TmaCopy):
            out.append(("T.tma_copy", n.span))

    walk(func.body, f)
    return out


class _Uses(Visitor):
    def __init__(self):
        self.calls: set = set()
        self.tma_copy = False

    def visit_Call(self, e: Call):
        self.calls.add(e.name)
        self.generic_visit(e)

    def generic_visit(self, node):
        if isinstance(node, TmaCopy):
            self.tma_copy = True
        return super().generic_visit(node)


def _uses(stmt) -> _Uses:
    u = _Uses()
    u.visit(stmt)
    return u


class _Kernel(Mutator):
    def __init__(self, k: Kernel, machine: Machine):
        self.k = k
        self.machine = machine
        self.notes: list[str] = []
        self.barriers: list[Buffer] = []
        self.inits: list[Stmt] = []
        full = 1
        for t in k.threads:
            full *= t
        self.full = (0, full - 1)
        self.range = self.full  # the threads that run the statement being visited (or INEXACT)

    def note(self, span, text: str) -> None:
        self.notes.append(f"{span}: {text}" if span is not None else text)

    def visit_Allocate(self, s: Allocate):
        if getattr(s.buffer, "mbarrier_counts", None) is not None:
            if not self.machine.has("mbarrier"):
                raise CompileError(f"{PRIMITIVES['mbarrier_init']}: mbarriers need sm_80 or newer (the target is "
                                   f"{self.machine.name})", s.span)
            self.barriers.append(s.buffer)
            return _nothing()  # declared in the kernel's prologue
        return self.generic_visit(s)

    def visit_SeqStmt(self, s: SeqStmt):
        out = []
        for x in s.stmts:
            y = self.visit(x)
            out.extend(y.stmts if isinstance(y, SeqStmt) else [y])
        return seq(out) if out else _nothing()

    def visit_Evaluate(self, s: Evaluate):
        c = _call(s)
        if c is None:
            return s
        name = c.name
        what = PRIMITIVES.get(name, name)
        if name == "mbarrier_init":
            self.inits.append(s)
            return _nothing()
        if name == "wgmma" and not self.machine.has("wgmma"):  # the program's own (language/wgmma_intrinsics.py)
            raise CompileError(f"{what}: wgmma needs sm_90a; the target is {self.machine.name}", s.span)
        if name in MBARRIER and not self.machine.has("mbarrier"):
            raise CompileError(f"{what} needs mbarriers (sm_80 or newer); the target is {self.machine.name}", s.span)
        if name in TX_COUNT and not self.machine.has("tma"):
            raise CompileError(f"{what}: the mbarrier tx-count (expect_tx) needs sm_90 or newer; the target is "
                               f"{self.machine.name}", s.span)
        if name in DROPPABLE:
            feature, why = DROPPABLE[name]
            if not self.machine.has(feature):
                self.note(s.span, f"{what}: dropped on {self.machine.name}: {why}")
                return _nothing()
        if name in WARPGROUP_WIDE:
            r = self.range
            if r == INEXACT or r[0] % 128 or (r[1] + 1) % 128:
                where = "threads that are not whole warpgroups" if r == INEXACT else f"threads {r[0]}-{r[1]}"
                raise CompileError(f"{what} is executed by every thread of a warpgroup together, but here only {where} "
                                   "run it; use it inside `with T.ws(i):` or outside any `if` on the thread index",
                                   s.span)
        return s

    def visit_IfThenElse(self, s: IfThenElse):
        saved = self.range
        out = []
        for body, truth in ((s.then_body, True), (s.else_body, False)):
            if body is None:
                out.append(None)
                continue
            if saved != INEXACT:
                self.range = branch_threads(s.cond, truth, self.k, saved)
            try:
                b = self.visit(body)
                out.append(None if _empty(b) else b)
            finally:
                self.range = saved
        then_body, else_body = out
        if then_body is None and else_body is None:
            return _nothing()
        if then_body is None:
            return IfThenElse(logical_not(s.cond), else_body, span=s.span)
        return IfThenElse(s.cond, then_body, else_body, span=s.span)

    def visit_For(self, f: For):
        if f.kind == "pipelined":
            u = _uses(f.body)
            why = None
            if u.tma_copy or (u.calls & set(WARP_SYNC)):
                why = "the loop synchronises its threads itself (mbarriers, named barriers or T.tma_copy)"
            elif self.range != self.full and self.machine.has("tma"):
                # the compiler's TMA pipeline sets up its barriers and issues its copies from thread 0
                why = "it runs on part of the block's threads (an `if` on the thread index, such as T.ws)"
            if why is not None:
                self.note(f.span, f"T.Pipelined: {why}, so it runs as written, without the compiler's software "
                                  "pipeline")
                body = self.visit(f.body)
                return For(f.var, f.start, f.extent, "serial", body,
                           {k: v for k, v in f.annotations.items() if k not in ("num_stages", "order", "stage", "group")},
                           span=f.span)
        return self.generic_visit(f)

    def generic_visit(self, node):
        if isinstance(node, TmaCopy) and not self.machine.has("tma"):
            raise CompileError(f"T.tma_copy needs the copy engine (TMA) of sm_90; the target is {self.machine.name}: "
                               "use T.copy", node.span)
        if isinstance(node, TileOp):
            return node
        return super().generic_visit(node)

    def prologue(self) -> list[Stmt]:
        if not self.barriers:
            return []
        tid = self.k.thread_vars[0]
        first = tid == 0
        for v in self.k.thread_vars[1:]:
            first = first & (v == 0)
        inits = list(self.inits)
        if self.machine.has("tma"):  # fence.mbarrier_init (sm_90) makes them visible to TMA completions
            inits.append(Evaluate(Call("fence_barrier_init", [], _dt.handle)))
        return [Allocate(b) for b in self.barriers] + [
            IfThenElse(first, seq(inits)), Evaluate(Call("syncthreads", [], _dt.handle))]


class _Pass(Mutator):
    def __init__(self, machine: Machine):
        self.machine = machine

    def visit_Kernel(self, k: Kernel):
        if not self.machine.has("tma"):
            for s, _ in raw_tma_uses(k):  # before the barriers they complete on are refused
                raise CompileError(f"{s.value.attrs['primitive']} needs the copy engine (TMA) of sm_90 or newer; the "
                                   f"target is {self.machine.name} (T.copy moves tiles on every target)", s.span)
        u = _uses(k.body)
        m = _Kernel(k, self.machine)
        body = m.visit(k.body)
        body = seq(m.prologue() + ([] if _empty(body) else [body]))
        attrs = dict(k.attrs)
        if u.tma_copy or u.calls & set(WARP_SYNC + ("setmaxnreg",)):
            attrs["warp_specialized"] = True
        if u.calls & {"mbarrier_wait", "named_barrier", "named_barrier_arrive"}:
            attrs["explicit_sync"] = True
        if "setmaxnreg" in u.calls and self.machine.has("wgmma"):
            attrs["register_budgets"] = True
        if m.notes:
            attrs["lowering_notes"] = list(attrs.get("lowering_notes", [])) + m.notes
        return k.with_fields(body=body, attrs=attrs)


def explicit_sync(func: PrimFunc, machine: Machine, pass_configs: dict | None = None) -> PrimFunc:
    return func.with_body(_Pass(machine).visit(func.body))

