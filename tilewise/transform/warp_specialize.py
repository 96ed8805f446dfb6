"""Hopper: give the producer loop of a warp-specialised pipeline its own warpgroup.

inject_pipeline plans warp specialisation for a kernel's TMA pipeline (Kernel.attrs
["warp_specialize"]): it emits a producer loop (waits for a slot to be released on its "empty"
mbarrier, announces the bytes on "full", issues the TMA copies) followed by a consumer loop
(waits on "full", computes, arrives on "empty"). Run one after the other by the same threads
that program deadlocks as soon as the producer needs a slot back, so this pass, on the thread
IR, turns it into two roles (docs/THREAD_IR.md, "Warp specialisation"):

    <statements before the producer loop, in order>        every thread; all but allocations,
                                                           lets and __syncthreads under tx < T_c
    if tx >= T_c:                                          the producer warpgroup
        setmaxnreg.dec 40;  <producer loop, with tx read as tx - T_c>
    else:                                                  the T_c consumer threads
        setmaxnreg.inc R;   <the consumer loop and the rest of the kernel>

Keeping the statements before the loops in their order matters: plan_shared_memory lets tiles
with disjoint lifetimes share bytes (a single-shot TMA load's mbarrier and the pipeline's), and
the __syncthreads that separate those uses stay where they were, over the whole grown block.
The block grows by 128 threads. Every __syncthreads left in the consumers' code becomes
`bar.sync 1, T_c` (the producer never reaches it); one in the producer's code `bar.sync 2, 128`.
Register budgets follow from the register file (65536 per block at one block per SM): the
producer keeps 40 (it only issues TMA), the consumers take what is left, at most 240, rounded
down to a multiple of 8 — the totals never exceed what the block was given at launch.
T.disable_warp_group_reg_alloc() (or the pass config tl.disable_warp_group_reg_alloc) leaves the
budgets alone."""
from __future__ import annotations

from ..errors import InternalError
from ..ir import dtype as _dt
from ..ir.expr import Call, Const, Var
from ..ir.stmt import Allocate, Evaluate, For, IfThenElse, Kernel, LetStmt, PrimFunc, SeqStmt, Stmt, seq
from ..ir.visitor import Mutator, substitute, uses_var

PRODUCER_THREADS = 128
PRODUCER_REGS = 40
MAX_CONSUMER_REGS = 240
REGISTER_FILE = 65536


def register_budgets(consumer_threads: int) -> tuple[int, int]:
    """(producer, consumer) registers per thread after setmaxnreg, for one block per SM."""
    total = consumer_threads + PRODUCER_THREADS
    per_thread = min(256, REGISTER_FILE // total // 8 * 8)  # what every thread gets at launch
    pool = per_thread * total
    consumer = (pool - PRODUCER_THREADS * PRODUCER_REGS) // consumer_threads // 8 * 8
    return PRODUCER_REGS, min(MAX_CONSUMER_REGS, consumer)


def warp_specialize(func: PrimFunc) -> PrimFunc:
    return func.with_body(_Split().visit(func.body))


class _Split(Mutator):
    def visit_Kernel(self, k: Kernel):
        plan = k.attrs.get("warp_specialize")
        if plan is None:
            return k
        T_c = int(plan["consumer_threads"])
        if k.threads[0] != T_c or len(k.thread_vars) != 1:
            raise InternalError(f"warp specialisation planned for {T_c} threads of a block of {k.threads}")
        tx = k.thread_vars[0]
        stmts = list(k.body.stmts) if isinstance(k.body, SeqStmt) else [k.body]
        p = _role_index(stmts, "producer")
        c = _role_index(stmts, "consumer")
        if p is None or c is None or c < p:
            raise InternalError("warp specialisation planned, but the producer and consumer loops are not at the "
                                "top of the kernel body")
        shared, rebound = _prefix(stmts[:p], tx, T_c)
        producer = _Barriers(2, PRODUCER_THREADS).visit(_producer(stmts[p], tx, T_c, rebound))
        consumer = _Barriers(1, T_c).visit(seq(stmts[p + 1:]))
        attrs = {key: v for key, v in k.attrs.items() if key != "warp_specialize"}
        attrs["warp_specialized"] = True
        if plan.get("reg_alloc", True):
            dec, inc = register_budgets(T_c)
            producer = seq([_setmaxnreg(False, dec), producer])
            consumer = seq([_setmaxnreg(True, inc), consumer])
            attrs["register_budgets"] = {"producer": dec, "consumer": inc}
        split = IfThenElse(tx >= T_c, producer, consumer, span=stmts[p].span)
        threads = [T_c + PRODUCER_THREADS, *k.threads[1:]]
        return k.with_fields(body=seq(shared + [split]), threads=threads, attrs=attrs)


def _producer(loop: Stmt, tx: Var, T_c: int, rebound: dict) -> Stmt:
    """The producer loop reading its thread index as tx - T_c, lets of tx included."""
    mapping: dict = {tx: tx - T_c}
    lets = []
    for v, let in rebound.items():
        if uses_var(loop, v):
            nv = Var(v.name + "_p", v.dtype)
            lets.append(LetStmt(nv, substitute(let.value, mapping), span=let.span))
            mapping[v] = nv
    return seq(lets + [substitute(loop, mapping)])


def _role_index(stmts: list[Stmt], role: str) -> int | None:
    for i, s in enumerate(stmts):
        if isinstance(s, For) and s.annotations.get("ws_role") == role:
            return i
    return None


def _prefix(pre: list[Stmt], tx: Var, T_c: int) -> tuple[list[Stmt], dict]:
    """The statements before the producer loop, still run by every thread in their order (so that
    shared bytes reused between tiles stay ordered by their __syncthreads, now over the grown
    block): allocations, lets and barriers as they are, everything else under `tx < T_c`. Also
    the lets that read the thread index, re-bound for the producer (which reads tx - T_c)."""
    out, run, rebound = [], [], {}

    def flush():
        if run:
            out.append(IfThenElse(tx < T_c, seq(list(run)), span=run[0].span))
            run.clear()

    for s in pre:
        if isinstance(s, (Allocate, LetStmt)) or _is_syncthreads(s):
            flush()
            out.append(s)
            if isinstance(s, LetStmt) and uses_var(s.value, tx):
                rebound[s.var] = s
        else:
            run.append(s)
    flush()
    return out, rebound


def _is_syncthreads(s: Stmt) -> bool:
    return isinstance(s, Evaluate) and isinstance(s.value, Call) and s.value.name == "syncthreads"


def _setmaxnreg(inc: bool, count: int) -> Stmt:
    return Evaluate(Call("setmaxnreg", [], _dt.handle, {"inc": inc, "count": count}))


class _Barriers(Mutator):
    """__syncthreads of one role becomes a named barrier over that role's threads."""

    def __init__(self, bar_id: int, count: int):
        self.bar_id, self.count = bar_id, count

    def visit_Evaluate(self, s: Evaluate):
        if _is_syncthreads(s):
            return Evaluate(Call("named_barrier", [Const(self.bar_id, _dt.int32), Const(self.count, _dt.int32)],
                                 _dt.handle), span=s.span)
        return s
