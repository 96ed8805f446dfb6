"""Load a register fragment from read-only global memory after the barriers that precede its
first use, not before them (thread IR).

RMSNorm copies its weight row into registers (`T.copy(W, w)`, 32 floats per thread) next to the
input row, but reads it only when it scales the result, after the row sum's shared-memory round:
loaded first, the 32 weights are live across the whole reduction and its barriers (63 registers
on sm_80; 56 when the copy sits before the scaling loop, TileLang 62). This pass moves such a
load to just before the first statement that reads what it loaded, when the statements it moves
across contain a barrier. The values are the same: the memory read is never written by the
kernel (no store, atomic or address of it other than as a copy source) and the kernel's tensors
do not alias (`__restrict__`; kernels with T.pdl_sync, whose parameters may alias, are left
alone). What changes is when the load is issued: later, so its latency is no longer hidden
behind the reduction; registers are what the side-by-side table with TileLang measures.

The moved statement is a loop nest that stores only into local buffers, reads only those, loop
and thread indices and read-only global tensors (plain loads or vector copies `copy_vec`), and
calls nothing else than pure math."""
from __future__ import annotations

from ..ir.expr import MATH_BINARY, MATH_UNARY, BufferLoad, Call
from ..ir.stmt import Allocate, BufferStore, For, PrimFunc, SeqStmt, Stmt
from ..ir.visitor import Mutator, Visitor

_PURE = frozenset(MATH_UNARY) | frozenset(MATH_BINARY) | {"fma", "reinterpret", "address_of"}
_LOCAL = ("local", "local.var")
_BARRIERS = ("syncthreads", "named_barrier", "named_barrier_arrive", "mbarrier_wait")


class _GlobalUse(Visitor):
    """Root uids of global buffers that something other than a plain load or a copy source touches."""

    def __init__(self):
        self.unsafe: set[int] = set()
        self.pdl = False
        self._sources: set[int] = set()  # ids of the address_of calls that are copy sources

    def visit_BufferStore(self, s: BufferStore):
        self.unsafe.add(s.buffer.root.uid)
        self.generic_visit(s)

    def visit_Call(self, e: Call):
        if e.name.startswith("pdl_"):
            self.pdl = True
        if e.name == "copy_vec" and len(e.args) > 1:
            self._sources.add(id(e.args[1]))
        if e.name == "address_of" and id(e) not in self._sources:  # any other address may be written
            for b in e.args:
                if isinstance(b, BufferLoad):
                    self.unsafe.add(b.buffer.root.uid)
        self.generic_visit(e)


class _Load(Visitor):
    """Whether a statement only loads registers from read-only global memory; what it fills."""

    def __init__(self, unsafe: set[int]):
        self.unsafe = unsafe
        self.ok = True
        self.filled: set[int] = set()  # local buffers it writes that exist outside it
        self.inner: set[int] = set()  # local buffers it allocates itself
        self.read_local: set[int] = set()

    def _stop(self, _):
        self.ok = False

    def visit_Allocate(self, s: Allocate):
        if s.buffer.scope not in _LOCAL:
            self.ok = False
        self.inner.add(s.buffer.root.uid)
        self.generic_visit(s)

    def visit_BufferStore(self, s: BufferStore):
        if s.buffer.scope not in _LOCAL or s.buffer.base is not None:
            self.ok = False
        elif s.buffer.root.uid not in self.inner:
            self.filled.add(s.buffer.root.uid)
        self.generic_visit(s)

    def visit_BufferLoad(self, e: BufferLoad):
        b = e.buffer
        if b.scope in _LOCAL:
            self.read_local.add(b.root.uid)
        elif not (b.root.is_global and b.root.uid not in self.unsafe):
            self.ok = False
        self.generic_visit(e)

    def visit_Call(self, e: Call):
        if e.name == "copy_vec":
            dst = e.args[0]
            if isinstance(dst, Call) and dst.args and isinstance(dst.args[0], BufferLoad):
                b = dst.args[0].buffer
                if b.scope not in _LOCAL:
                    self.ok = False
                elif b.root.uid not in self.inner:
                    self.filled.add(b.root.uid)
        elif e.name not in _PURE:
            self.ok = False
        self.generic_visit(e)

    visit_While = visit_Break = visit_IfThenElse = visit_Kernel = _stop


def _register_load(s: Stmt, unsafe: set[int]) -> _Load | None:
    if not isinstance(s, For):
        return None
    v = _Load(unsafe)
    v.visit(s)
    if not v.ok or not v.filled or (v.read_local - v.inner):
        return None
    return v


class _Touch(Visitor):
    def __init__(self):
        self.bufs: set[int] = set()
        self.barrier = False

    def visit_BufferLoad(self, e):
        self.bufs.add(e.buffer.root.uid)
        self.generic_visit(e)

    def visit_BufferStore(self, s):
        self.bufs.add(s.buffer.root.uid)
        self.generic_visit(s)

    def visit_Allocate(self, s):
        self.bufs.add(s.buffer.root.uid)
        self.generic_visit(s)

    def visit_Call(self, e: Call):
        self.barrier |= e.name in _BARRIERS
        self.generic_visit(e)


def _touch(s) -> _Touch:
    t = _Touch()
    t.visit(s)
    return t


class _Sink(Mutator):
    def __init__(self, unsafe: set[int]):
        self.unsafe = unsafe

    def visit_SeqStmt(self, s: SeqStmt):
        stmts = [self.visit(c) for c in s.stmts]
        touches = [_touch(c) for c in stmts]
        i = 0
        changed = False
        while i < len(stmts):
            load = _register_load(stmts[i], self.unsafe)
            if load is None:
                i += 1
                continue
            j = i + 1
            barrier = False
            while j < len(stmts) and not (touches[j].bufs & load.filled):
                barrier |= touches[j].barrier
                j += 1
            if j == len(stmts) or not barrier:
                i += 1
                continue
            # move stmts[i] to just before stmts[j]
            stmts.insert(j - 1, stmts.pop(i))
            touches.insert(j - 1, touches.pop(i))
            changed = True  # stmts[i] is now the next statement: look at it
        changed |= any(a is not b for a, b in zip(stmts, s.stmts))
        return s.with_fields(stmts=stmts) if changed else s


def sink_register_loads(func: PrimFunc) -> PrimFunc:
    use = _GlobalUse()
    use.visit(func.body)
    if use.pdl:
        return func
    return func.with_body(_Sink(use.unsafe).visit(func.body))

