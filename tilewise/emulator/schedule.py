"""Warp scheduling: executing warp-specialised thread IR, whose warps do not run in lockstep.

**When.** A kernel runs in lockstep (every thread of a batch of blocks executes each statement
together, runner.py) unless `plan` finds that it needs scheduling:
`Kernel.attrs["warp_specialized"]` is True, or a synchronising statement (`syncthreads`,
`mbarrier_wait`, `named_barrier`, `named_barrier_arrive`) is control-dependent on a value that
may differ between the threads of a block. The scan is static and conservative: a value is
thread-dependent if it reads a thread index, a variable bound to a thread-dependent value, a
register (`local`) buffer written with a thread-dependent value or index, under
thread-dependent control or by an intrinsic, a load at a thread-dependent index, or an
intrinsic call other than pure arithmetic (`elect_one`, shuffles, atomics); a statement is
control-dependent on it inside an `if` or `while` on such a condition, a loop with such bounds,
or a loop that such a condition can `break` out of. Lockstep execution of any other kernel is
exact: every thread of a block reaches each of its barriers and waits together.

**Units.** A scheduled kernel runs as units: each warpgroup (128 threads) when the block is a
multiple of 128 threads and the kernel executes warpgroup-wide instructions (wgmma_*,
setmaxnreg), each warp otherwise. A unit spans that warp(group) of every block of the batch (its
lanes stay vectorised over the blocks) and runs the compiled body on its own shallow copy of the
Batch: its own variable slots, active mask (initially its lanes) and loop state; storage, race
shadows, cp.async queues and mbarrier / TMA / wgmma / named-barrier state are shared. Threads of
a unit execute in lockstep, so a wait that only another thread of the same unit could satisfy
later in program order is reported as a deadlock (with warp units that is the hardware's own
rule for `.aligned` barriers; with warpgroup units it is a restriction). A kernel whose blocks
have a single unit runs in lockstep.

**Running.** Each unit is a Python thread, but only the holder of the baton runs: a unit runs
until it blocks or finishes, then hands the baton to the next runnable unit in round-robin order
(the units' own threads decide, the caller's thread waits for the end). The last unit runs first
(a warp-specialised kernel's producer warpgroup is the last one). A unit blocks on
- `mbarrier_wait` whose phase has not completed for some of its lanes (TMA transfers in flight
  on the barrier land first, mbarrier.py),
- `syncthreads` / `named_barrier` (bar.sync) until the barrier's count of threads has arrived
  (named_barriers.py),
- `setmaxnreg.inc` until the block's register file has room (registers.py);
`wgmma_wait` and `tma_store_wait` never block (their operations complete when waited on).
The blocking condition is re-evaluated whenever the baton is handed on. When no unit can run
and some have not finished, the run stops with a report naming, for each blocked unit, the
statement and line, the barrier (its phase and parity, or id and count), the waiting threads
and what the barrier lacks; it is a DivergenceError when a barrier misses threads that finished
or wait at another `__syncthreads`, a RegisterBudgetError when a unit waits for registers, a
DeadlockError otherwise. Blocks of one batch progress together, so a unit can be held up by one
block while another could proceed; when a stall involves such a unit the batch is run again one
block at a time (global memory is restored from a snapshot first) and only a stall there is
reported. An exception in a unit (or in the scheduler) stops every unit thread and reaches the
caller of `run`; no unit thread outlives the batch."""
from __future__ import annotations

import copy
import threading

import numpy as np

from ..ir.expr import BufferLoad, Call, Expr, Var
from ..ir.stmt import Allocate, Break, BufferStore, Evaluate, For, IfThenElse, Kernel, LetStmt, SeqStmt, Stmt, While
from . import arith
from .access import LOCAL_SCOPES
from .errors import DeadlockError, DivergenceError, RegisterBudgetError, where

SYNC_CALLS = ("syncthreads", "mbarrier_wait", "named_barrier", "named_barrier_arrive")
WARPGROUP_CALLS = ("wgmma_fence", "wgmma", "wgmma_commit", "wgmma_wait", "setmaxnreg")
PURE_CALLS = ("reinterpret", "dp4a", "tf32_round", "fma", "address_of", "wgmma_desc")
WARP, WARPGROUP = 32, 128


# ------------------------------------------------------------------------------ static plan


class Plan:
    """How a kernel runs: `reason` is None for lockstep, else why warps are scheduled;
    `unit` the threads per unit (32 or 128)."""

    def __init__(self, reason: str | None, warpgroup_ops: bool, threads: int, warp: int = WARP):
        self.reason = reason
        self.unit = WARPGROUP if warpgroup_ops and threads % WARPGROUP == 0 else warp
        n_units = -(-threads // self.unit)
        self.scheduled = reason is not None and n_units > 1


def plan(k: Kernel) -> Plan:
    T = 1
    for t in k.threads:
        T *= int(t)
    scan = _Scan(k)
    while True:
        scan.changed = False
        scan.found = None
        scan.stmt(k.body, False)
        if not scan.changed:
            break
    reason = None
    if k.attrs.get("warp_specialized"):
        reason = "Kernel.attrs['warp_specialized'] is set"
    elif scan.found is not None:
        name, span = scan.found
        reason = f"the {name} at {where(span)} is reached under a condition that differs between threads"
    return Plan(reason, scan.warpgroup_ops, T, int(k.attrs.get("warp_size", WARP)))


def _is_local(buf) -> bool:
    return buf.root.scope in LOCAL_SCOPES


class _Scan:
    """Thread-dependence of values and control (see the module docstring), to a fixed point."""

    def __init__(self, k: Kernel):
        self.vars = {id(v) for v in k.thread_vars}
        self.bufs: set[int] = set()  # local roots holding thread-dependent values
        self.changed = False
        self.found = None
        self.warpgroup_ops = False

    def _taint_var(self, v: Var):
        if id(v) not in self.vars:
            self.vars.add(id(v))
            self.changed = True

    def _taint_buf(self, buf):
        if _is_local(buf) and id(buf.root) not in self.bufs:
            self.bufs.add(id(buf.root))
            self.changed = True

    def dep(self, e) -> bool:
        if isinstance(e, Var):
            return id(e) in self.vars
        if isinstance(e, BufferLoad):
            if _is_local(e.buffer) and id(e.buffer.root) in self.bufs:
                return True
            return any(self.dep(i) for i in e.indices)
        if isinstance(e, Call):
            if e.name in PURE_CALLS or arith.math_fn(e.name, e.dtype, len(e.args)) is not None:
                return any(self.dep(a) for a in e.args)
            return True
        if isinstance(e, Expr):
            return any(self.dep(c) for c in e.children())
        return False

    def _calls(self, e):
        """Registers written by intrinsics: any local buffer whose address an intrinsic takes."""
        if isinstance(e, Call):
            if e.name == "address_of":
                return
            if e.name in WARPGROUP_CALLS:
                self.warpgroup_ops = True
            for a in e.args:
                if isinstance(a, Call) and a.name == "address_of" and a.args and isinstance(a.args[0], BufferLoad):
                    self._taint_buf(a.args[0].buffer)
                else:
                    self._calls(a)
        elif isinstance(e, Expr):
            for c in e.children():
                self._calls(c)

    def stmt(self, s: Stmt | None, div: bool):
        if s is None:
            return
        if isinstance(s, SeqStmt):
            for x in s.stmts:
                self.stmt(x, div)
        elif isinstance(s, LetStmt):
            self._calls(s.value)
            if self.dep(s.value):
                self._taint_var(s.var)
        elif isinstance(s, BufferStore):
            self._calls(s.value)
            if div or self.dep(s.value) or any(self.dep(i) for i in s.indices):
                self._taint_buf(s.buffer)
        elif isinstance(s, Allocate):
            if s.init is not None and (div or self.dep(s.init)):
                self._taint_buf(s.buffer)
        elif isinstance(s, Evaluate):
            e = s.value
            self._calls(e)
            if isinstance(e, Call) and e.name in SYNC_CALLS and div and self.found is None:
                self.found = (e.name, s.span)
        elif isinstance(s, For):
            bounds = self.dep(s.start) or self.dep(s.extent)
            if bounds:
                self._taint_var(s.var)
            self.stmt(s.body, div or bounds or self._divergent_break(s.body))
        elif isinstance(s, While):
            self.stmt(s.body, div or self.dep(s.cond) or self._divergent_break(s.body))
        elif isinstance(s, IfThenElse):
            d = div or self.dep(s.cond)
            self.stmt(s.then_body, d)
            self.stmt(s.else_body, d)

    def _divergent_break(self, s, under: bool = False) -> bool:
        """A `break` of this loop under a thread-dependent condition (nested loops excluded)."""
        if isinstance(s, Break):
            return under
        if isinstance(s, SeqStmt):
            return any(self._divergent_break(x, under) for x in s.stmts)
        if isinstance(s, IfThenElse):
            u = under or self.dep(s.cond)
            return self._divergent_break(s.then_body, u) or self._divergent_break(s.else_body, u)
        return False


# ------------------------------------------------------------------------------ units


class _Abort(BaseException):
    """Unwinds a unit's thread when the batch stops (not an Exception: nothing catches it)."""


class SplitBatch(Exception):
    """The units stalled while one of them was held up by some blocks of the batch only: the
    runner runs the batch again one block at a time."""


class Blocker:
    """Why a unit cannot go on. Subclasses (in the intrinsics' modules) implement `ready` (may
    change state: TMA transfers land), `ready_blocks` (bool over the batch's blocks the unit
    waits for, or None) and `describe`; `kind` is "mbarrier", "barrier" or "registers"."""

    kind = "?"
    span = None

    def ready(self) -> bool:
        raise NotImplementedError

    def ready_blocks(self):
        return None

    def describe(self, sched: Scheduler) -> str:
        raise NotImplementedError


class Unit:
    def __init__(self, index: int, lo: int, hi: int, size: int, st):
        self.index = index
        self.lo, self.hi = lo, hi  # threads lo .. hi - 1 of every block
        self.size = size
        self.st = st
        self.sem = threading.Semaphore(0)
        self.state = "new"  # new | running | blocked | done | failed
        self.blocker: Blocker | None = None

    @property
    def name(self) -> str:
        kind = "warpgroup" if self.size == WARPGROUP else "warp"
        return f"{kind} {self.index} (threads {self.lo}-{self.hi - 1})"


def wait(st, blocker: Blocker):
    """Block the unit running on `st` until blocker.ready() (the caller checked it is not)."""
    st.sched.block(st.unit, blocker)


class Scheduler:
    def __init__(self, batch, body, size: int, reason: str):
        self.batch = batch
        self.body = body
        self.size = size
        self.reason = reason
        self.units: list[Unit] = []
        self.main = threading.Semaphore(0)
        self.abort = False
        self.error: BaseException | None = None
        T = batch.T
        for i, lo in enumerate(range(0, T, size)):
            hi = min(T, lo + size)
            ust = copy.copy(batch)
            ust.vals = list(batch.vals)
            ust.mask = (batch.lane_tid >= lo) & (batch.lane_tid < hi)
            ust.loop_exit = None
            u = Unit(i, lo, hi, size, ust)
            ust.unit = u
            ust.sched = self
            self.units.append(u)
        batch.sched = self

    # ------------------------------------------------------------------ the caller's thread
    def run(self):
        threads = [threading.Thread(target=self._unit_main, args=(u,), name=f"tilewise-emulator {u.name}", daemon=True)
                   for u in self.units]
        for t in threads:
            t.start()
        try:
            self._hand_on(None)
            self.main.acquire()
        finally:
            self.abort = True
            for u in self.units:
                u.sem.release()
            for t in threads:
                t.join()
            # the units' copies of the batch refer back to the scheduler: free them now
            self.batch.sched = None
            for u in self.units:
                u.st = None
        if self.error is not None:
            err, self.error = self.error, None
            raise err

    # ------------------------------------------------------------------ unit threads
    def _unit_main(self, u: Unit):
        u.sem.acquire()
        if self.abort:
            return
        u.state = "running"
        try:
            with np.errstate(all="ignore"):
                self.body(u.st)
        except _Abort:
            return
        except BaseException as e:  # noqa: BLE001 - everything reaches the caller of run
            u.state = "failed"
            self._stop(e)
            return
        u.state = "done"
        self._hand_on(u)

    def block(self, u: Unit, blocker: Blocker):
        u.state = "blocked"
        u.blocker = blocker
        self._hand_on(u)
        u.sem.acquire()
        if self.abort:
            raise _Abort
        u.state = "running"
        u.blocker = None

    def _stop(self, e: BaseException):
        if self.error is None:
            self.error = e
        self.main.release()

    def _hand_on(self, cur: Unit | None):
        """The baton holder (a unit that blocked or finished, or the caller at the start) picks
        the next unit to run, or ends the run."""
        if self.abort:
            return
        try:
            # the first turn goes to the last unit (the warp-specialisation pass puts the producer
            # warpgroup last): a consumer that reads before waiting then meets the producer's data
            nxt = self._pick(len(self.units) - 2 if cur is None else cur.index)
            if nxt is None:
                if all(u.state == "done" for u in self.units):
                    self.main.release()
                    return
                raise self._stalled()
        except BaseException as e:  # noqa: BLE001
            self._stop(e)
            return
        nxt.sem.release()

    def _pick(self, after: int) -> Unit | None:
        n = len(self.units)
        for k in range(1, n + 1):
            u = self.units[(after + k) % n]
            if u.state == "new":
                return u
            if u.state == "blocked" and u.blocker.ready():
                return u
        return None

    # ------------------------------------------------------------------ stalls
    def _stalled(self) -> Exception:
        blocked = [u for u in self.units if u.state == "blocked"]
        if self.batch.nb > 1:
            for u in blocked:
                rb = u.blocker.ready_blocks()
                if rb is not None and rb.any() and not rb.all():
                    return SplitBatch()
        kinds = {u.blocker.kind for u in blocked}
        lines = [f"  - {u.name}: {u.blocker.describe(self)}" for u in blocked]
        done = [u.name for u in self.units if u.state == "done"]
        if done:
            lines.append(f"  - finished: {', '.join(done)}")
        blocks = self.batch.nb
        head = (f"every unit of the {'block' if blocks == 1 else f'{blocks} blocks'} "
                f"({', '.join(block_list(self.batch))}) is blocked or finished; warps are scheduled "
                f"because {self.reason}:\n")
        body = "\n".join(lines)
        if "registers" in kinds:
            return RegisterBudgetError("setmaxnreg: " + head + body)
        if any(u.blocker.kind == "barrier" and u.blocker.divergent(self) for u in blocked):
            return DivergenceError("divergent barrier: " + head + body)
        return DeadlockError("deadlock: " + head + body)

    def unit_states(self, block: int, tids: np.ndarray) -> str:
        """Where the units of threads `tids` of a block are: finished, or blocked at a line."""
        out = []
        for u in self.units:
            mine = tids[(tids >= u.lo) & (tids < u.hi)]
            if mine.size == 0:
                continue
            if u.state == "done":
                what = "finished"
            elif u.state == "blocked":
                what = f"blocked at {where(u.blocker.span)}"
            else:
                what = u.state
            out.append(f"{u.name} {what}")
        return "; ".join(out)


def block_list(st) -> list[str]:
    from .hopper import block_name

    names = [block_name(st, b) for b in range(min(st.nb, 4))]
    if st.nb > 4:
        names.append("...")
    return names


def run_units(batch, body, plan_: Plan):
    """Run a batch with its warps scheduled."""
    Scheduler(batch, body, plan_.unit, plan_.reason).run()
