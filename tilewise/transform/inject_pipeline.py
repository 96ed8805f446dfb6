"""CUDA: software pipelining of `T.Pipelined(n, num_stages=S)` loops.

Copies from global into shared memory form stage 0 and become cp.async; everything else runs
S-1 iterations later (stage S-1). The shared tiles those copies fill get S buffers, indexed by
iteration modulo S. The loop runs n + S - 1 times: iteration `it` issues the copies of k = it
(while it < n), commits one group (always, so group counting stays regular), waits until the
group of k = it - (S-1) has landed, and computes that k (once it >= S-1). Barriers are placed
afterwards by insert_barriers, which sees the copies as writes of the buffered tiles.

`stage=`, `order=` and `group=` (TileLang's schedule; pipeline_schedule.py makes it one stage
and order per statement and checks it) override the default stage assignment and the order
statements are issued in within an iteration. The CPU (inject_pipeline_cpu) runs the same
rewrite, synchronously, for loops that have a schedule.

A machine without cp.async but with the feature "register_staging" (AMD GPUs) splits each copy
in two instead (TileOp.as_staged, tileop/staged_copy.py): the global loads of k = it into
registers first in the iteration, the loop body for k = it - 1, then the registers' stores into
shared memory, two buffers per tile (_staged)."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.expr import BufferLoad, Call, Const, Select, Var, binary
from ..ir.machine import Machine
from ..ir.simplify import bound, simplify
from ..ir.stmt import (
    Allocate,
    Annotation,
    BufferStore,
    Evaluate,
    For,
    IfThenElse,
    Kernel,
    PrimFunc,
    SeqStmt,
    seq,
)
from ..ir.visitor import Mutator, Visitor, collect_vars, substitute, walk
from ..layout.layout import Layout
from ..tileop.base import TileOp
from .pipeline_async_copy import absorb_async_copies
from .pipeline_schedule import check_dependences, has_producer_form, resolve_schedule


def _is_producer(s) -> bool:
    """An operator that can be issued asynchronously (a global -> shared copy: cp.async)."""
    return isinstance(s, TileOp) and s.as_async() is not None


def _writes_only_shared(s) -> bool:
    """A statement that may run in stage 0 without cp.async (a T.Parallel loop filling a shared
    tile, say): it writes nothing but shared tiles, which get one buffer per stage."""
    w = _uses(s).writes
    return bool(w) and all(b.is_shared for b in w)


class _Uses(Visitor):
    def __init__(self):
        self.buffers: set = set()
        self.writes: set = set()

    def visit_BufferLoad(self, e):
        self.buffers.add(e.buffer)
        self.generic_visit(e)

    def visit_BufferStore(self, s):
        self.buffers.add(s.buffer)
        self.writes.add(s.buffer)
        self.generic_visit(s)

    def visit_BufferRegion(self, r: BufferRegion):
        self.buffers.add(r.buffer)
        self.generic_visit(r)

    def generic_visit(self, node):
        if isinstance(node, TileOp):
            self.buffers.update(node.buffers())
            self.writes.update(r.buffer for r in node.writes())
        return super().generic_visit(node)


def _uses(node) -> _Uses:
    u = _Uses()
    u.visit(node)
    return u


class _Multibuffer(Mutator):
    """Give accesses to the buffered tiles their slot index."""

    def __init__(self, mapping: dict, slot):
        self.mapping = mapping  # Buffer -> multi-buffered Buffer
        self.slot = slot

    def visit_BufferRegion(self, r: BufferRegion):
        r = self.generic_visit(r)
        new = self.mapping.get(r.buffer)
        if new is None:
            return r
        return BufferRegion(new, [(self.slot, 1)] + list(r.region))

    def visit_BufferLoad(self, e: BufferLoad):
        e = self.generic_visit(e)
        new = self.mapping.get(e.buffer)
        if new is None:
            return e
        out = BufferLoad(new, [self.slot] + list(e.indices), span=e.span)
        return out

    def visit_BufferStore(self, s: BufferStore):
        s = self.generic_visit(s)
        new = self.mapping.get(s.buffer)
        if new is None:
            return s
        out = BufferStore(new, [self.slot] + list(s.indices), s.value, span=s.span)
        return out


def _call(name: str, **attrs) -> Evaluate:
    return Evaluate(Call(name, [], _dt.handle, attrs))


def _call_name(s) -> str | None:
    return s.value.name if isinstance(s, Evaluate) and isinstance(s.value, Call) else None


def _drop_implied_waits(stmts: list) -> list:
    """Drops each cp_async_wait<n> that an earlier wait<m <= n> of the sequence already implies
    (no group committed in between: groups only ever land, so `at most m pending` still holds).
    Every stage-1 statement of an iteration asks for its wait; in flash decoding that made runs
    of eight identical waits, each a DEPBAR in the SASS."""
    out, last = [], None
    for s in stmts:
        name = _call_name(s)
        if name == "cp_async_wait":
            n = int(s.value.attrs["n"])
            if last is not None and last <= n:
                continue
            last = n
        elif name == "cp_async_commit":
            last = None
        else:
            commits = []
            walk(s, lambda x: commits.append(x) if isinstance(x, Call) and x.name == "cp_async_commit" else None)
            if commits:
                last = None
        out.append(s)
    return out


class _Pipeline(Mutator):
    def __init__(self, machine: Machine | None, pass_configs: dict, cpu: bool = False):
        self.cpu = cpu  # a block is one thread: only loops with a schedule are rewritten, synchronously
        # copies run synchronously (multi-buffered, issued stages ahead) where there is no cp.async:
        # on the CPU, and on AMD GPUs (global -> LDS goes through registers there)
        # (or where the program asks for it: TileLang's pass config "tir.use_async_copy": False)
        configs = pass_configs or {}
        use_async = bool(configs.get("tir.use_async_copy", True)) and bool(configs.get("tl.enable_async_copy", True))
        self.sync_copies = cpu or not use_async or (machine is not None and not machine.has("cp_async"))
        # ...and where the machine says so, split in two around the compute (_staged)
        self.register_staging = (not cpu and use_async and machine is not None
                                 and machine.has("register_staging"))
        self.narrowed = 0  # depth of `if`s on the thread index around the statement being visited
        self.notes: list[str] = []  # lowering decisions for kernel.lowering_notes()
        self.buffers: dict = {}  # original shared Buffer -> multi-buffered Buffer
        self.machine = machine
        self.pass_configs = pass_configs
        self.first_thread = None  # the condition `thread index == 0` of the kernel being visited
        self.ws_loop_var = None  # the loop var of the one pipelined loop that may be warp-specialised
        self.ws_done = None  # its plan, once made: the kernel is marked for warp_specialize

    def visit_Kernel(self, k: Kernel):
        self.buffers = {}
        self.notes = []
        cond = None
        for v in k.thread_vars:
            cond = (v == 0) if cond is None else cond & (v == 0)
        self.first_thread = cond
        self.ws_loop_var, self.ws_done = self._ws_candidate(k), None
        marks = []
        walk(k.body, lambda n: marks.append(n) if isinstance(n, Annotation) and n.kind == "disable_warp_group_reg_alloc"
             else None)
        self.reg_alloc = not marks and not self.pass_configs.get("tl.disable_warp_group_reg_alloc")
        self.threads = k.threads
        self.thread_var_ids = {id(v) for v in k.thread_vars}
        # what the block and thread indices range over: a trip count written with them (flash
        # decoding's ceildiv(min(start + len, seq) - start, block_N), start = split * len) may
        # be a constant, which the unrolled steady state and the unguarded copies need
        self.index_ranges = {}
        for v, g in zip(k.block_vars, k.grid):
            hi = bound(g, self.index_ranges)[1]
            self.index_ranges[v] = (0, hi - 1 if hi is not None else None)
        for v, t in zip(k.thread_vars, k.threads):
            self.index_ranges[v] = (0, t - 1)
        body = self.visit(k.body)
        if self.buffers:
            body = _ReplaceAllocs(self.buffers).visit(body)
        out = k.with_fields(body=body)
        if self.notes:
            out = out.with_fields(attrs={**out.attrs,
                                         "lowering_notes": list(out.attrs.get("lowering_notes", [])) + self.notes})
        if self.ws_done is not None:
            out = out.with_fields(attrs={**out.attrs, "warp_specialize": self.ws_done})
        return out

    def _ws_candidate(self, k: Kernel):
        """The loop var of the kernel's only pipelined loop, when that loop is a top-level
        statement of a 1-D block of whole warpgroups on a machine with wgmma, and warp
        specialisation is not turned off."""
        if self.machine is None or not self.machine.has("wgmma") or self.pass_configs.get("tl.disable_warp_specialized"):
            return None
        if any(t != 1 for t in k.threads[1:]) or k.threads[0] % 128:
            return None
        if self.machine.max_threads and k.threads[0] + 128 > self.machine.max_threads:
            return None  # no room for the producer warpgroup
        loops = []
        walk(k.body, lambda n: loops.append(n) if isinstance(n, For) and n.kind == "pipelined" else None)
        top = k.body.stmts if isinstance(k.body, SeqStmt) else [k.body]
        if len(loops) != 1 or loops[0] not in top:
            return None
        f = loops[0]
        if (f.annotations.get("stage") is not None or f.annotations.get("order") is not None) \
                and not has_producer_form(f):
            # a schedule of the whole body leaves no statements to a producer warpgroup; TileLang's
            # form marks the copies the producer issues with -1
            where = f"{f.span}: " if f.span is not None else ""
            self.notes.append(f"{where}T.Pipelined: no warp specialisation for this loop: its order=/stage= schedule "
                              "gives every statement to the same threads (TileLang's warp-specialised form marks the "
                              "copies -1 in both, for a producer warpgroup)")
            return None
        return f.var

    def visit_IfThenElse(self, s: IfThenElse):
        narrowing = any(id(v) in self.thread_var_ids for v in collect_vars(s.cond))
        self.narrowed += narrowing
        try:
            return self.generic_visit(s)
        finally:
            self.narrowed -= narrowing

    def visit_For(self, f: For):
        f = self.generic_visit(f)
        if f.kind != "pipelined":
            return f
        if not isinstance(f.extent, Const):
            n = simplify(f.extent, getattr(self, "index_ranges", {}))
            if isinstance(n, Const):
                f = For(f.var, f.start, n, f.kind, f.body, f.annotations, span=f.span)
        return self.pipeline(f)

    def serial(self, f: For) -> For:
        out = For(f.var, f.start, f.extent, "serial", f.body, f.annotations, span=f.span)
        return out

    def pipeline(self, f: For):
        S = int(f.annotations.get("num_stages", 0))
        stmts = list(f.body.stmts) if isinstance(f.body, SeqStmt) else [f.body]
        if not self.sync_copies:
            # T.async_copy + T.ptx_wait_group(0): the pipeline's cp.async producers (pipeline_async_copy.py)
            absorbed, why = absorb_async_copies(f, stmts)
            if why is not None:
                self.notes.append(f"{f.span}: {why}" if f.span is not None else why)
            elif absorbed is not stmts:
                stmts = absorbed
                f = For(f.var, f.start, f.extent, f.kind, seq(stmts), f.annotations, span=f.span)
        n_stmts = len(stmts)
        sched = resolve_schedule(f, stmts, lambda s: _is_producer(s) or _writes_only_shared(s))
        stage = sched.stage if sched is not None else None
        order = sched.order if sched is not None else None
        if self.cpu and sched is None:
            return f  # the CPU runs a loop without a schedule as written
        single = False  # num_stages=1: pipelined only when warp-specialised (one slot, async producer)
        if stage is None:
            if not any(_is_producer(s) for s in stmts):
                return self.serial(f)
            if S == 1 and f.var is self.ws_loop_var:
                single, S = True, 2
            elif S <= 1:
                return self.serial(f)
            stage = [0 if _is_producer(s) else S - 1 for s in stmts]
            if single:
                S = 1
        else:
            S = max(S, max(stage) + 1)
        if max(stage) == 0:
            return self.serial(f)
        producers = [i for i, s in enumerate(stmts) if stage[i] == 0]
        for i in producers:
            if not (_is_producer(stmts[i]) or _writes_only_shared(stmts[i])):
                raise CompileError(
                    "T.Pipelined: a stage-0 statement may only fill shared tiles (T.copy from global memory, which "
                    "becomes cp.async, or a loop storing into shared memory); this one writes "
                    + ", ".join(sorted(b.name for b in _uses(stmts[i]).writes)) + " too", stmts[i].span or f.span)
        # the tiles the producers fill; nothing else in the loop may write them
        filled = []
        for i in producers:
            for b in sorted(_uses(stmts[i]).writes, key=lambda b: b.name):
                if b not in filled:
                    filled.append(b)
        for i, s in enumerate(stmts):
            if i in producers:
                continue
            clash = _uses(s).writes & set(filled)
            if clash and sched is not None:
                raise CompileError(
                    f"T.Pipelined: statement {i} writes {sorted(b.name for b in clash)[0]}, which a stage-0 copy "
                    "fills (one buffer per stage); the stage=/order= schedule cannot keep both", s.span or f.span)
            if clash:
                return self.serial(f)
        if sched is not None:
            check_dependences(f, stmts, stage, order, lambda s: (_uses(s).buffers - _uses(s).writes, _uses(s).writes),
                              set(filled))
        depth = max(stage)
        tma_bytes = self._tma_bytes([stmts[i] for i in producers])
        consumer_stages = sorted({stage[i] for i in range(n_stmts) if i not in producers})
        ws = (tma_bytes is not None and f.var is self.ws_loop_var
              and (len(consumer_stages) == 1 or (sched is not None and sched.producer_form)))
        if single and not ws:
            return self.serial(f)
        if ws and len(consumer_stages) > 1:
            # the producer warpgroup runs ahead by as many slots as are free: the consumers hold a
            # slot from their first read of it to their last, consumer_stages apart
            S = max(int(f.annotations.get("num_stages", 0)), consumer_stages[-1] - consumer_stages[0] + 1)
        if any(b.static_shape() is None for b in filled):
            return self.serial(f)
        staging: list = []  # the register arrays of copies split in two (_staged)
        if self.register_staging and sched is None and not ws and tma_bytes is None:
            split = self._staged(f, stmts, producers)
            if split is not None:
                stmts, stage, staging = split
                n_stmts, S, depth, order = len(stmts), 2, 1, None
                producers = [i for i in range(n_stmts) if stage[i] == 0]
        # The producer's slot it % S is carried in a register from one iteration to the next
        # (a modulo per iteration would cost more than the loop body's address arithmetic).
        slot_var = Buffer(f.var.name + "_slot", (1,), _dt.int32, "local.var")
        cur = BufferLoad(slot_var, [Const(0, _dt.int32)])
        n = f.extent
        keyed = sorted(range(n_stmts), key=lambda i: (order[i] if order is not None else i, i))
        if sched is not None and sched.producer_form and not ws and int(f.annotations.get("num_stages", 0)) <= depth:
            # TileLang leaves where the -1 copies go to the producer. Issued right after the last
            # statement of the deepest stage that reads their tiles, they may refill the slot
            # that statement has just read: num_stages buffers suffice where the copies issued
            # first would need one more
            S = depth
            rest = [i for i in keyed if i not in producers]
            deepest = [p for p, i in enumerate(rest) if stage[i] == depth and _uses(stmts[i]).buffers & set(filled)]
            at = deepest[-1] + 1 if deepest else 0
            keyed = rest[:at] + [i for i in keyed if i in producers] + rest[at:]
        last_producer = max(keyed.index(i) for i in producers)
        for b in filled:
            if b not in self.buffers:
                self.buffers[b] = Buffer(b.name, (S,) + b.shape, b.dtype, b.scope, span=b.span)
        if ws:
            return self._ws_pipeline(f, stmts, [i for i in keyed if i in producers],
                                     [i for i in keyed if i not in producers], S, tma_bytes, stage, set(filled))
        if tma_bytes is not None:
            return self._mbarrier_pipeline(f, stmts, stage, keyed, S, depth, tma_bytes)

        def iteration(it, slot0=None):
            """One pipelined iteration: stage-s statements work on k = it - s, when 0 <= k < n.
            slot0: the producers' slot when it is known at compile time (a steady-state
            iteration unrolled by S, which also needs no guards: depth <= it < n there)."""
            out = []
            committed = False
            for pos, i in enumerate(keyed):
                s = stmts[i]
                st = stage[i]
                k = it - st if st else it
                if slot0 is not None:
                    slot = Const((slot0 - st) % S, _dt.int32)
                else:
                    slot = cur if st == 0 else Select(cur >= st, cur - st, cur + (S - st))
                body = substitute(s, {f.var: f.start + k})
                body = _Multibuffer(self.buffers, slot).visit(body)
                if st == 0:
                    if _is_producer(body) and not self.sync_copies:
                        body = body.as_async()
                    if slot0 is None:
                        body = IfThenElse(it < n, body)
                else:
                    # groups newer than the one this statement needs: those of the iterations
                    # after k, minus this iteration's if it is not committed yet
                    if not self.sync_copies:
                        out.append(_call("cp_async_wait", n=st if committed else st - 1))
                    guard = it >= st
                    if st < depth:
                        guard = guard & (it - st < n)
                    if slot0 is None:
                        body = IfThenElse(guard, body)
                out.append(body)
                if pos == last_producer and not committed and not self.sync_copies:
                    out.append(_call("cp_async_commit"))
                    committed = True
            if slot0 is None:
                out.append(BufferStore(slot_var, [Const(0, _dt.int32)],
                                       Select(cur == S - 1, Const(0, _dt.int32), cur + 1)))
            return seq(_drop_implied_waits(out))

        # prologue (filling the pipeline), steady state, epilogue (draining it): the guards of
        # each part are decided by its index range, so the steady-state loop has none
        parts = []
        # with fewer iterations than stages (a dynamic extent) the steady state is empty and the
        # epilogue starts where the prologue ends
        drain = binary("max", n, depth)
        for name, start, extent in (("prologue", 0, depth), ("steady", depth, n - depth),
                                    ("epilogue", drain, binary("min", n, depth))):
            if name == "steady" and not self.cpu and isinstance(n, Const) and _gains_from_unrolling(f.body):
                # only with a static trip count: the split-K example (a trip count per block, 20
                # narrow clamped copies per thread) spilled 16 bytes at 255 registers unrolled,
                # with 224 rolled. Only loops whose operators ask for it (T.gemm: constant slots in
                # its operand addresses); the cumsum example spilled unrolled. A body that declares
                # (a fragment allocated in the loop, a let) stays rolled: its copies side by side
                # would declare the same name twice
                parts += self._unrolled_steady(f, iteration, S, depth, n)
                continue
            it = Var(f"{f.var.name}_{name}", _dt.int32)
            loop = For(it, start, extent, "serial", iteration(it), {"pipelined_stages": S, "part": name}, span=f.span)
            parts.append(loop)
        init = Allocate(slot_var, Const(0, _dt.int32))
        if self.sync_copies:  # the copies ran synchronously
            return seq([init, *[Allocate(r) for r in staging], *parts])
        return seq([init, *parts, _call("cp_async_wait", n=0)])

    def _staged(self, f: For, stmts, producers):
        """Register staging (machines with "register_staging" and no cp.async): every stage-0 copy
        becomes a load into registers (issued first in the iteration, for k = it) and a store of
        those registers into shared memory (issued last, after the compute of k = it - 1), so
        the global loads are in flight while the compute runs. The filled tiles get two buffers
        (the compute reads one while the stores fill the other: one barrier per iteration where
        the slots are constants), whatever num_stages says: one stage of registers in flight
        needs no more, and more would cost LDS (occupancy) and registers for nothing.
        Returns (statements, their stages, the register arrays), or None when a producer cannot
        be split or the loop runs on part of the block (the arrays are sized for every thread)."""
        if self.narrowed:
            return None
        threads = 1
        for t in self.threads:
            threads *= t
        halves = [stmts[i].as_staged(threads) if isinstance(stmts[i], TileOp) else None for i in producers]
        if any(h is None for h in halves):
            return None
        consumers = [s for i, s in enumerate(stmts) if i not in producers]
        loads, stores = [h[1] for h in halves], [h[2] for h in halves]
        where = f"{f.span}: " if f.span is not None else ""
        asked = int(f.annotations.get("num_stages", 0))
        self.notes.append(
            f"{where}T.Pipelined(num_stages={asked}): no asynchronous copy on {self.machine.name}; the "
            f"{len(loads)} global -> shared copies are staged through registers (the next tile's global loads "
            "before the compute, their shared-memory stores after it), 2 shared buffers per tile"
            + (f" (num_stages={asked} would add buffers without hiding more latency)" if asked > 2 else ""))
        new = loads + consumers + stores
        stage = [0] * len(loads) + [1] * len(consumers) + [0] * len(stores)
        return new, stage, [h[0] for h in halves]

    def _unrolled_steady(self, f: For, iteration, S: int, depth: int, n) -> list:
        """The steady state as S iterations per trip, then the iterations left over one by one.
        In an unrolled trip every slot is a constant ((depth + u) mod S for the u-th
        iteration: the prologue leaves the slot at depth mod S and a trip brings it back), so
        each shared-memory address is a per-thread base plus an immediate, and nothing
        carries the slot from one iteration to the next; the left-over loop keeps the slot
        register, which the epilogue goes on from."""
        steady = binary("max", n - depth, Const(0, _dt.int32))
        trips = binary("floordiv", steady, Const(S, _dt.int32))
        j = Var(f"{f.var.name}_steady", _dt.int32)
        body = seq([iteration(depth + j * S + u, slot0=(depth + u) % S) for u in range(S)])
        ann = {"pipelined_stages": S, "part": "steady", "unrolled_stages": S}
        out = [For(j, 0, trips, "serial", body, ann, span=f.span)]
        left = steady - trips * S
        if not (isinstance(n, Const) and (int(n.value) - depth) % S == 0) and not (
                isinstance(n, Const) and int(n.value) <= depth):
            it = Var(f"{f.var.name}_steady_rest", _dt.int32)
            out.append(For(it, depth + trips * S, left, "serial", iteration(it),
                           {"pipelined_stages": S, "part": "steady_rest"}, span=f.span))
        return out

    # ------------------------------------------------------------------ Hopper: warp specialisation
    def _ws_pipeline(self, f: For, stmts, producers, consumers, S: int, stage_bytes: int, stage, filled):
        """Producer and consumer loops for warp specialisation (transform/warp_specialize.py
        gives the producer its own warpgroup afterwards; until then the two loops stand one after
        the other, which only that pass makes runnable). Slot k % S: the producer waits until the
        consumers have released the slot's previous use ("empty", one arrival per consumer
        thread), announces the bytes on "full" and issues the TMA copies; the consumers wait on
        "full", compute, and release the slot."""
        consumers_n = self.threads[0]
        full = Buffer(f.var.name + "_full", (S,), _dt.uint64, "shared.dyn", span=f.span)
        empty = Buffer(f.var.name + "_empty", (S,), _dt.uint64, "shared.dyn", span=f.span)
        n, first = f.extent, self.first_thread

        def bar(b, slot):
            return Call("address_of", [BufferLoad(b, [slot])], _dt.handle)

        def loop(role: str, make):
            k = Var(f"{f.var.name}_{role}", _dt.int32)
            if S == 1:  # one slot: every use of it is a new phase
                slot, parity = Const(0, _dt.int32), binary("floormod", k, 2)
            else:
                slot, parity = binary("floormod", k, S), binary("floormod", binary("floordiv", k, S), 2)
            body = make(k, slot, parity)
            return For(k, 0, n, "serial", body, {"ws_role": role, "pipelined_stages": S}, span=f.span)

        def produce(k, slot, parity):
            out = [IfThenElse(k >= S, Evaluate(Call("mbarrier_wait", [bar(empty, slot), 1 - parity], _dt.handle)))]
            out.append(IfThenElse(first, Evaluate(Call("mbarrier_arrive_expect_tx",
                                                        [bar(full, slot), Const(stage_bytes, _dt.int32)], _dt.handle))))
            for i in producers:
                body = _Multibuffer(self.buffers, slot).visit(substitute(stmts[i], {f.var: f.start + k}))
                out.append(body.as_async("tma", BufferRegion(full, [(slot, 1)])))
            return seq(out)

        def consume(k, slot, parity):
            out = [Evaluate(Call("mbarrier_wait", [bar(full, slot), parity], _dt.handle))]
            for i in consumers:
                out.append(_Multibuffer(self.buffers, slot).visit(substitute(stmts[i], {f.var: f.start + k})))
            out.append(Evaluate(Call("mbarrier_arrive", [bar(empty, slot)], _dt.handle)))
            return seq(out)

        for i in producers:  # the tiles they fill get one buffer per stage
            b = stmts[i].dst.buffer
            if b not in self.buffers:
                self.buffers[b] = Buffer(b.name, (S,) + b.shape, b.dtype, b.scope, span=b.span)
        inits = [Evaluate(Call("mbarrier_init", [bar(full, Const(s, _dt.int32)), Const(1, _dt.int32)], _dt.handle))
                 for s in range(S)]
        inits += [Evaluate(Call("mbarrier_init", [bar(empty, Const(s, _dt.int32)), Const(consumers_n, _dt.int32)],
                                _dt.handle)) for s in range(S)]
        setup = seq([Allocate(full), Allocate(empty), IfThenElse(first, seq(inits + [_call("fence_barrier_init")])),
                     _call("syncthreads")])
        self.ws_done = {"consumer_threads": consumers_n, "stages": S, "reg_alloc": self.reg_alloc}
        if len({stage[i] for i in consumers}) > 1:
            return seq([setup, loop("producer", produce),
                        *self._ws_consumer_pipeline(f, stmts, consumers, stage, filled, S, full, empty)])
        return seq([setup, loop("producer", produce), loop("consumer", consume)])

    def _ws_consumer_pipeline(self, f: For, stmts, consumers, stage, filled, S: int, full: Buffer, empty: Buffer):
        """The consumers' own software pipeline (a user schedule with consumer stages 0..D, in
        TileLang's -1 form): pipelined iteration `it` runs each consumer statement on k = it - its
        stage, in the order given. The slot of k is waited for ("full") before the first
        statement, in schedule order, that reads a tile the producer fills, and released
        ("empty") after the last one: the producer refills it only then."""
        base = min(stage[i] for i in consumers)
        cst = {i: stage[i] - base for i in consumers}
        depth = max(cst.values())
        n = f.extent
        readers = [i for i in consumers if _uses(stmts[i]).buffers & filled] or list(consumers)
        # consumers is in issue order, so (stage, position) orders a k's statements in time
        first = min(readers, key=lambda i: (cst[i], consumers.index(i)))
        last = max(readers, key=lambda i: (cst[i], consumers.index(i)))

        def bar(b, slot):
            return Call("address_of", [BufferLoad(b, [slot])], _dt.handle)

        def iteration(it: Var):
            out = []
            for i in consumers:
                st = cst[i]
                k = it - st if st else it
                slot = binary("floormod", k, S)
                parity = binary("floormod", binary("floordiv", k, S), 2)
                body = [_Multibuffer(self.buffers, slot).visit(substitute(stmts[i], {f.var: f.start + k}))]
                if i == first:
                    body.insert(0, Evaluate(Call("mbarrier_wait", [bar(full, slot), parity], _dt.handle)))
                if i == last:
                    body.append(Evaluate(Call("mbarrier_arrive", [bar(empty, slot)], _dt.handle)))
                guard = None
                if st > 0:
                    guard = it >= st
                if st < depth:
                    guard = (it < n) if guard is None else guard & (it - st < n)
                out.append(IfThenElse(guard, seq(body)) if guard is not None else seq(body))
            return seq(out)

        parts = []
        drain = binary("max", n, depth)
        for name, start, extent in (("prologue", 0, depth), ("steady", depth, n - depth),
                                    ("epilogue", drain, binary("min", n, depth))):
            it = Var(f"{f.var.name}_consumer_{name}", _dt.int32)
            ann = {"pipelined_stages": S, "part": name}
            if name == "prologue":
                ann["ws_role"] = "consumer"  # warp_specialize: the consumers' code starts here
            parts.append(For(it, start, extent, "serial", iteration(it), ann, span=f.span))
        return parts

    # ------------------------------------------------------------------ Hopper: TMA + mbarriers
    def _tma_bytes(self, producers) -> int | None:
        """Bytes one stage's copies move when every producer can run on TMA, else None."""
        if self.machine is None or not self.machine.has("tma") or self.sync_copies:
            return None
        total = 0
        for s in producers:
            nbytes = s.tma_bytes(self.machine, self.pass_configs) if isinstance(s, TileOp) else None
            if nbytes is None:
                return None
            total += nbytes
        return total

    def _mbarrier_pipeline(self, f: For, stmts, stage, keyed, S: int, depth: int, stage_bytes: int):
        """The same schedule with the copy engine: stage 0 is one thread announcing the stage's
        bytes on the slot's "full" mbarrier and issuing the TMA copies; a later stage waits for
        the phase of that barrier its iteration needs (the slot's use count, mod 2). The wait
        makes the data visible to every waiting thread, so no __syncthreads follows it; one
        before the copies (insert_barriers) keeps a slot from being refilled while it is read."""
        full = Buffer(f.var.name + "_full", (S,), _dt.uint64, "shared.dyn", span=f.span)
        slot_var = Buffer(f.var.name + "_slot", (1,), _dt.int32, "local.var")
        cur = BufferLoad(slot_var, [Const(0, _dt.int32)])
        n = f.extent
        first = self.first_thread

        def bar(slot):
            return Call("address_of", [BufferLoad(full, [slot])], _dt.handle)

        def iteration(it: Var):
            out = []
            announced = False
            for i in keyed:
                s, st = stmts[i], stage[i]
                k = it - st if st else it
                slot = cur if st == 0 else Select(cur >= st, cur - st, cur + (S - st))
                body = substitute(s, {f.var: f.start + k})
                body = _Multibuffer(self.buffers, slot).visit(body)
                if st == 0:
                    body = body.as_async("tma", BufferRegion(full, [(cur, 1)]))
                    if not announced:
                        expect = Evaluate(Call("mbarrier_arrive_expect_tx", [bar(cur), Const(stage_bytes, _dt.int32)],
                                               _dt.handle))
                        body = seq([IfThenElse(first, expect), body])
                        announced = True
                    out.append(IfThenElse(it < n, body))
                    continue
                parity = binary("floormod", binary("floordiv", k, S), 2)
                wait = Evaluate(Call("mbarrier_wait", [bar(slot), parity], _dt.handle))
                guard = it >= st
                if st < depth:
                    guard = guard & (it - st < n)
                out.append(IfThenElse(guard, seq([wait, body])))
            out.append(BufferStore(slot_var, [Const(0, _dt.int32)],
                                   Select(cur == S - 1, Const(0, _dt.int32), cur + 1)))
            return seq(out)

        parts = []
        drain = binary("max", n, depth)
        for name, start, extent in (("prologue", 0, depth), ("steady", depth, n - depth),
                                    ("epilogue", drain, binary("min", n, depth))):
            it = Var(f"{f.var.name}_{name}", _dt.int32)
            parts.append(For(it, start, extent, "serial", iteration(it), {"pipelined_stages": S, "part": name},
                             span=f.span))
        inits = [Evaluate(Call("mbarrier_init", [bar(Const(s, _dt.int32)), Const(1, _dt.int32)], _dt.handle))
                 for s in range(S)]
        # (re)initialised each time the loop starts: the barrier before keeps threads still waiting
        # on the previous run's last phase from seeing a reset barrier
        setup = [Allocate(full), _call("syncthreads"), IfThenElse(first, seq(inits + [_call("fence_barrier_init")])),
                 _call("syncthreads")]
        return seq([*setup, Allocate(slot_var, Const(0, _dt.int32)), *parts])


class _ReplaceAllocs(Mutator):
    def __init__(self, mapping):
        self.mapping = mapping

    def visit_Allocate(self, s: Allocate):
        new = self.mapping.get(s.buffer)
        if new is None:
            return s
        out = Allocate(new, s.init, span=s.span)
        return out

    def visit_Annotation(self, s: Annotation):
        # T.annotate_layout names the tile the program allocated; the layout now applies to
        # each stage of its multi-buffered replacement (dropping it would silently re-layout it)
        if s.kind != "layout" or not any(b in self.mapping for b in s.payload):
            return s
        payload = {}
        for b, lay in s.payload.items():
            new = self.mapping.get(b)
            payload[new if new is not None else b] = lay if new is None or not isinstance(lay, Layout) \
                else _per_stage(lay, int(new.shape[0]))
        return Annotation(s.kind, payload, span=s.span)

    # inside the pipelined loop every access was given its slot (_Multibuffer): one to the old
    # buffer that is left is outside the loop, where no slot says which stage's data it means
    def _outside(self, b: Buffer, span):
        if b in self.mapping:
            raise CompileError(f"{b.name} is filled inside a pipelined loop and also used outside it; "
                               "give the other use its own buffer", span)

    def visit_BufferRegion(self, r: BufferRegion):
        self._outside(r.buffer, None)
        return self.generic_visit(r)

    def visit_BufferLoad(self, e: BufferLoad):
        self._outside(e.buffer, e.span)
        return self.generic_visit(e)

    def visit_BufferStore(self, s: BufferStore):
        self._outside(s.buffer, s.span)
        return self.generic_visit(s)


def _per_stage(lay: Layout, stages: int) -> Layout:
    """`lay` applied to every stage of a [stages, ...] buffer, the stage index kept."""
    stage = Var("_stage", _dt.int32)
    out = Layout((stages, *lay.shape), forward_index=[stage, *lay.forward_index], vars_=[stage, *lay.vars],
                 output_shape=(stages, *lay.output_shape()))
    out.base_align = lay.base_align
    return out


def inject_pipeline(func: PrimFunc, machine: Machine | None = None, pass_configs: dict | None = None) -> PrimFunc:
    return func.with_body(_Pipeline(machine, dict(pass_configs or {})).visit(func.body))


def inject_pipeline_cpu(func: PrimFunc) -> PrimFunc:
    """The CPU: a pipelined loop with an order=/stage=/group= schedule runs in that schedule (its
    statements reordered across iterations, the producers' shared tiles one buffer per stage),
    synchronously; one without runs as written. Either way the numbers are the loop's."""
    return func.with_body(_Pipeline(None, {}, cpu=True).visit(func.body))


def _gains_from_unrolling(body) -> bool:
    """Whether an operator in the loop asks for an unrolled steady state (TileOp.unroll_pipeline)
    and the body declares no name (an allocation or a let) that unrolled copies would repeat side
    by side. Names declared inside a nested loop (`nibble = ...` in a T.Parallel dequantising a
    tile) live in that loop's own scope, so its copies do not clash."""
    asks = []
    walk(body, lambda n: asks.append(n) if isinstance(n, TileOp) and n.unroll_pipeline else None)
    return bool(asks) and not _declares_at_top(body)


def _declares_at_top(body) -> bool:
    found = []

    class _Top(Visitor):
        def visit_Allocate(self, n):
            found.append(n)

        def visit_LetStmt(self, n):
            found.append(n)

        def visit_For(self, n):
            pass  # the loop's body is a scope of its own

    _Top().visit(body)
    return bool(found)
