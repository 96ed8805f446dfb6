"""Insert __syncthreads between tile-level statements where one may read shared memory that
another wrote (or overwrite what another read), including across loop iterations.

Runs on tile-level IR, where each statement is a whole tile operator or T.Parallel nest whose
threads may touch any element of its shared operands; barriers an operator needs inside itself
(a cross-warp reduction, say) are its own business.

Accesses are compared per root buffer, except that accesses to distinct constant indices along
the first dimension of a buffer that is not a view do not conflict: in a pipeline's unrolled
steady state the slots of a multi-buffered tile are constants, so the stores filling one slot
need no barrier after the reads of another (register staging: one barrier per iteration).
cp.async data landing at a wait counts for the whole buffer (see `leaf`): the TileOps' and the
program's own (T.ptx_cp_async, whose shared destination counts as written when issued, too).

Every access is recorded with the threads that make it: the block, or the range of threads an
`if` on the thread index keeps (`with T.ws(1):`, `if tx < 128:`). A barrier placed inside such an
`if` synchronises only its threads (range_barriers.py turns it into a named barrier), so it
settles hazards among accesses of those threads only; an access by threads outside the range
that conflicts with the branch gets its barrier before the `if`, where all of them run. Branches
keeping ranges that are not whole warps (or no contiguous range) take no barrier inside (that
would deadlock or need a named barrier of part of a warp); the barrier goes before the `if`.

In a kernel that synchronises its threads itself (`Kernel.attrs["explicit_sync"]`: it waits on
mbarriers or named barriers, e.g. a warp-specialised producer and consumer), ordering accesses of
disjoint thread ranges is the program's business: only hazards within one range, or between a
range and threads containing it, get barriers."""
from __future__ import annotations

from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.expr import BufferLoad, Call, Const
from ..ir.stmt import Allocate, Evaluate, For, IfThenElse, Kernel, PrimFunc, SeqStmt, Stmt, While, seq
from ..ir.visitor import Mutator, Visitor, collect_vars
from ..tileop.base import TileOp
from .thread_range import INEXACT, branch_threads

WARP = 32


def syncthreads(span=None) -> Evaluate:
    return Evaluate(Call("syncthreads", [], _dt.handle), span=span)


def is_sync(s) -> bool:
    return isinstance(s, Evaluate) and isinstance(s.value, Call) and s.value.name == "syncthreads"


def _root(b: Buffer) -> Buffer:
    return b.root


def _part(b: Buffer, indices) -> tuple:
    """What an access touches: (root buffer, index along its first dimension) when the access
    (one index per dimension) is to one constant index there of a buffer that is not a view
    (distinct such indices are distinct bytes: the slots of a multi-buffered tile in an unrolled
    pipeline), else (root, None), which overlaps every part of the root."""
    if b.base is None and b.ndim > 1 and len(indices) == b.ndim and isinstance(indices[0], Const):
        return (b, int(indices[0].value))
    return (_root(b), None)


def _region_part(r: BufferRegion) -> tuple:
    start, ext = r.region[0] if r.region else (None, None)
    first = start if isinstance(ext, int) and ext == 1 else None
    return _part(r.buffer, [first] + [None] * (len(r.region) - 1))


def _overlaps(a: tuple, parts) -> bool:
    return any(a[0] == b[0] and (a[1] is None or b[1] is None or a[1] == b[1]) for b in parts)


class _Access(Visitor):
    def __init__(self):
        self.reads: set = set()
        self.writes: set = set()
        self.async_writes: set = set()  # cp.async destinations: they land at a later wait
        self.synced_writes: set = set()  # TMA destinations: an mbarrier wait makes them visible

    def visit_BufferLoad(self, e):
        if e.buffer.is_shared:
            self.reads.add(_part(e.buffer, e.indices))
        self.generic_visit(e)

    def visit_BufferStore(self, s):
        if s.buffer.is_shared:
            self.writes.add(_part(s.buffer, s.indices))
        self.generic_visit(s)

    def visit_Call(self, e):
        # an element atomic (T.atomic_add(s[i], v)) writes the element its address names
        if e.name.startswith("atomic_") and e.args and isinstance(e.args[0], Call) and e.args[0].name == "address_of":
            target = e.args[0].args[0]
            if isinstance(target, BufferLoad) and target.buffer.is_shared:
                self.writes.add(_part(target.buffer, target.indices))
        # a program's own cp.async (T.ptx_cp_async): its shared destination is written (no
        # reader may still need those bytes) and lands at a later wait, like a TileOp's async copy
        if e.name == "cp_async" and isinstance(e.args[0], Call) and e.args[0].name == "address_of":
            target = e.args[0].args[0]
            if isinstance(target, BufferLoad) and target.buffer.is_shared:
                part = _part(target.buffer, target.indices)
                self.writes.add(part)
                self.async_writes.add(part)
                for a in e.args[1:]:
                    self.visit(a)
                return
        self.generic_visit(e)

    def generic_visit(self, node):
        if isinstance(node, TileOp):
            # what the operator declares it touches (tileop/base.py); any of its threads may
            # touch any element of those regions
            self.reads |= _shared_roots(node.reads())
            self.writes |= _shared_roots(node.writes())
            self.async_writes |= _shared_roots(node.async_writes())
            self.synced_writes |= _shared_roots(node.synced_writes())
            return
        return super().generic_visit(node)


def _shared_roots(regions: list[BufferRegion]) -> set:
    return {_region_part(r) for r in regions if r.buffer.is_shared}


def accesses(stmt) -> tuple[set, set]:
    a = _Access()
    a.visit(stmt)
    return a.reads, a.writes


def synced_writes(stmt) -> set:
    a = _Access()
    a.visit(stmt)
    return a.synced_writes


def async_writes(stmt) -> set:
    a = _Access()
    a.visit(stmt)
    return a.async_writes


def _wait_count(s) -> int | None:
    """n of a `cp.async.wait_group n` statement, else None."""
    if isinstance(s, Evaluate) and isinstance(s.value, Call) and s.value.name == "cp_async_wait":
        return int(s.value.attrs.get("n", 0))
    return None


def _inside(a: tuple, b: tuple) -> bool:
    return b[0] <= a[0] and a[1] <= b[1]


def _disjoint(a: tuple, b: tuple) -> bool:
    return a[1] < b[0] or b[1] < a[0]


class _State:
    """Shared tiles read / written since the last barrier, as ((root buffer, part), thread range) pairs,
    and cp.async destinations still in flight (a barrier does not complete them; their data
    lands at a wait, which is where they count as written)."""

    def __init__(self, reads=None, writes=None, pending=None):
        self.reads = set(reads or ())
        self.writes = set(writes or ())
        self.pending = set(pending or ())

    def copy(self):
        return _State(self.reads, self.writes, self.pending)

    def conflicts(self, reads, writes, rng, ignore_disjoint: bool) -> list:
        """Thread ranges of the recorded accesses that accesses (reads, writes) by the threads
        `rng` conflict with."""
        out = [r for b, r in self.writes if _overlaps(b, reads) or _overlaps(b, writes)]
        out += [r for b, r in self.reads if _overlaps(b, writes)]
        if ignore_disjoint:
            out = [r for r in out if not _disjoint(r, rng)]
        return out

    def add(self, reads, writes, rng):
        self.reads |= {(b, rng) for b in reads}
        self.writes |= {(b, rng) for b in writes}

    def clear(self, rng):
        """A barrier among the threads `rng`: their accesses are settled."""
        self.reads = {x for x in self.reads if not _inside(x[1], rng)}
        self.writes = {x for x in self.writes if not _inside(x[1], rng)}

    def key(self):
        return (frozenset(self.reads), frozenset(self.writes), frozenset(self.pending))

    def merge(self, other):
        self.reads |= other.reads
        self.writes |= other.writes
        self.pending |= other.pending


class _Inserter:
    def __init__(self, k: Kernel):
        self.k = k
        self.thread_vars = set(id(v) for v in k.thread_vars)
        n = 1
        for t in k.threads:
            n *= t
        self.level = (0, n - 1)  # the threads running the statements being placed
        self.explicit = bool(k.attrs.get("explicit_sync"))

    def uniform(self, cond) -> bool:
        return not any(id(v) in self.thread_vars for v in collect_vars(cond))

    def stmt(self, s: Stmt, st: _State) -> Stmt:
        """Process `s` with the state at its start; returns the new statement, updates st."""
        if isinstance(s, SeqStmt):
            out = []
            for x in s.stmts:
                y = self.stmt(x, st)
                if isinstance(y, SeqStmt):
                    out.extend(y.stmts)
                else:
                    out.append(y)
            return SeqStmt(out) if len(out) != 1 else out[0]
        if is_sync(s):
            st.clear(self.level)
            return s
        if isinstance(s, For) and s.kind == "parallel":
            return self.leaf(s, st)
        if isinstance(s, (For, While)):
            return self.loop(s, st)
        if isinstance(s, IfThenElse):
            return self.branch(s, st)
        if isinstance(s, Kernel):
            return s
        return self.leaf(s, st)

    def leaf(self, s: Stmt, st: _State) -> Stmt:
        if isinstance(s, Allocate):
            return s
        n = _wait_count(s)
        if n is not None:
            # the copies these threads issued land here; other threads' land at their own wait,
            # so a reader after the wait needs a barrier
            mine = {x for x in st.pending if _inside(x[1], self.level)}
            st.writes |= mine
            if n == 0:
                st.pending -= mine
            return s
        reads, writes = accesses(s)
        out = s
        if st.conflicts(reads, writes, self.level, self.explicit):
            st.clear(self.level)
            out = seq([syncthreads(s.span), s])
        # a TMA write needs the barrier before it (nobody may still read the tile), but not one
        # after: its readers wait on its mbarrier, which makes the data visible to each of them
        st.add(reads, writes - synced_writes(s), self.level)
        # in flight, cp.async destinations count whole (their part forgotten): the state does not
        # follow commit groups (a wait lands every pending copy here, even one not yet committed),
        # which only a conservative, buffer-wide landing keeps sound
        st.pending |= {((b[0], None), self.level) for b in async_writes(s)}
        return out

    def loop(self, s, st: _State) -> Stmt:
        reads, writes = accesses(s.body)
        if not reads and not writes:
            return s
        # An iteration starts with what the code before the loop or the previous iteration left
        # behind: iterate to the fixpoint of that entry state, then place barriers for it.
        entry = st.copy()
        while True:
            end = entry.copy()
            body = self.stmt(s.body, end)
            grown = entry.copy()
            grown.merge(end)
            if grown.key() == entry.key():
                break
            entry = grown
        st.reads, st.writes, st.pending = entry.reads | end.reads, entry.writes | end.writes, entry.pending | end.pending
        return _rebuild_loop(s, body)

    def branch(self, s: IfThenElse, st: _State) -> Stmt:
        reads, writes = accesses(s)
        if not reads and not writes:
            return s
        level = self.level
        arms = [(s.then_body, level), (s.else_body, level)]
        if not self.uniform(s.cond):
            arms = [(body, branch_threads(s.cond, truth, self.k, level))
                    for body, truth in ((s.then_body, True), (s.else_body, False))]
            for body, rng in arms:
                if body is not None and (rng == INEXACT or rng[0] % WARP or (rng[1] + 1) % WARP):
                    return self.leaf(s, st)
        pre = None
        for body, rng in arms:
            if body is None:
                continue
            r, w = accesses(body)
            if rng == level:
                bad = st.conflicts(r, w, rng, self.explicit)
            else:
                # a barrier inside the branch would not reach the threads outside its range
                bad = [x for x in st.conflicts(r, w, rng, self.explicit) if not _inside(x, rng)]
            if bad:
                pre = syncthreads(s.span)
        if pre is not None:
            # one barrier before the branch serves both paths (placed inside, the path that skips
            # it would carry the old state on and force another barrier later)
            st.clear(level)
        out_bodies, states = [], []
        for body, rng in arms:
            a = st.copy()
            if body is not None:
                self.level = rng
                try:
                    body = self.stmt(body, a)
                finally:
                    self.level = level
            out_bodies.append(body)
            states.append(a)
        a, b = states
        a.merge(b)
        st.reads, st.writes, st.pending = a.reads, a.writes, a.pending
        out = IfThenElse(s.cond, out_bodies[0], out_bodies[1], span=s.span)
        return seq([pre, out]) if pre is not None else out


def _rebuild_loop(s, body):
    return s.with_fields(body=body)


class _Kernels(Mutator):
    def visit_Kernel(self, k: Kernel):
        ins = _Inserter(k)
        body = ins.stmt(k.body, _State())
        return k.with_fields(body=body)


def insert_barriers(func: PrimFunc, pass_configs=None) -> PrimFunc:
    if (pass_configs or {}).get("tl.disable_thread_storage_sync"):
        return func
    return func.with_body(_Kernels().visit(func.body))
