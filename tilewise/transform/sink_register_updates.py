"""Compute a fragment's last element-wise update where the value is consumed (thread IR).

A kernel often ends with an element-wise update of a register fragment followed by the copy
that writes it out: softmax's `x[v] = x[v] / row_sum[0]` over the 64 elements of a thread, then
eight 16-byte stores of `cast(x[8 * vo + k])`. Rendered as two loops, ptxas sees 64 IEEE
divisions (each a branch around an out-of-line slow path, which it does not schedule across)
before the first conversion and store, and on sm_90a allocates 95 registers where the same
divisions placed next to their stores need 80 (TileLang's two loops get 80 too; what else in our
code tips ptxas to 95 was not found: not the shape of the cross-warp round, the reduction order,
the barriers or the launch bounds, docs/PERFORMANCE.md). This pass removes the update loop and
computes each element's new value at the place the next statement reads it:

    for v in T.unroll(64): x[v] = f(x[v], v)          ->  (removed)
    for vo in T.unroll(8): store(..., x[8*vo + k])     ->  store(..., f(x[8*vo + k], 8*vo + k))

The result is the same bit for bit: every element gets the same operations on the same
operands (the pass runs after contract_fma, so no multiply-add is fused anew), only at another
place. It applies when

- the update is a loop with constant bounds whose body is one store `x[v] = f` into a 1-D local
  buffer `x`, and `f` reads `x` only at `[v]`, other local buffers (not written by the
  consumer) and no memory, and calls only pure math functions;
- the consumer is the next statement: loops with constant bounds around stores, vector loads
  and stores, register allocations and lets (no branches, barriers or other intrinsics), which reads `x` only by plain loads whose
  index is a constant in every iteration, each element at most once (so no `f` is computed
  twice), and never writes `x` or takes its address;
- `x` is dead afterwards: not referenced later in the kernel, nor elsewhere in an enclosing loop
  (which would read it in its next iteration), and no other buffer aliases it."""
from __future__ import annotations

import itertools

from ..ir.expr import MATH_BINARY, MATH_UNARY, BufferLoad, Call, Const, Expr, cast
from ..ir.simplify import simplify
from ..ir.stmt import Allocate, BufferStore, Evaluate, For, IfThenElse, LetStmt, PrimFunc, SeqStmt, Stmt, While
from ..ir.visitor import Mutator, Visitor, substitute

_PURE = frozenset(MATH_UNARY) | frozenset(MATH_BINARY) | {"fma", "reinterpret", "tf32_round"}
_CONSUMER_CALLS = frozenset({"store_vec", "copy_vec", "address_of"}) | _PURE
_LOOP_KINDS = ("serial", "unroll", "vectorized")
MAX_ITERATIONS = 4096  # consumers whose iteration space is enumerated to check the loads of x


class _Refs(Visitor):
    """Root uids of the buffers a statement references, those it writes (stores and any buffer
    whose address a call takes), and whether it holds something other than plain math."""

    def __init__(self):
        self.read: set[int] = set()
        self.written: set[int] = set()
        self.calls: set[str] = set()

    def visit_BufferLoad(self, e: BufferLoad):
        self.read.add(e.buffer.root.uid)
        self.generic_visit(e)

    def visit_BufferStore(self, s: BufferStore):
        self.written.add(s.buffer.root.uid)
        self.generic_visit(s)

    def visit_Allocate(self, s: Allocate):
        self.written.add(s.buffer.root.uid)
        self.generic_visit(s)

    def visit_Call(self, e: Call):
        self.calls.add(e.name)
        if e.name == "address_of":
            for a in e.args:
                if isinstance(a, BufferLoad):
                    self.written.add(a.buffer.root.uid)
        self.generic_visit(e)


def _refs(node) -> _Refs:
    r = _Refs()
    r.visit(node)
    return r


def _touched(node) -> set[int]:
    r = _refs(node)
    return r.read | r.written


def _const(e) -> int | None:
    return int(e.value) if isinstance(e, Const) else None


def _update(s: Stmt):
    """(loop var, x, f, extent) of an update loop `for v: x[v] = f`, else None."""
    if not (isinstance(s, For) and s.kind in _LOOP_KINDS and _const(s.start) == 0 and _const(s.extent)):
        return None
    st = s.body
    if not isinstance(st, BufferStore):
        return None
    x = st.buffer
    if x.scope not in ("local", "local.var") or x.base is not None or len(x.shape) != 1 or st.indices[0] is not s.var:
        return None
    ok = True

    class _Check(Visitor):
        def visit_BufferLoad(self, e: BufferLoad):
            nonlocal ok
            if e.buffer is x:
                ok &= len(e.indices) == 1 and e.indices[0] is s.var
            elif e.buffer.scope not in ("local", "local.var"):
                ok = False  # memory might be written by the consumer (or another thread)
            self.generic_visit(e)

        def visit_Call(self, e: Call):
            nonlocal ok
            ok &= e.name in _PURE
            self.generic_visit(e)

    _Check().visit(st.value)
    return (s.var, x, st.value, _const(s.extent)) if ok else None


def _loads_of(x, consumer: Stmt) -> list[tuple[int, ...]] | None:
    """The constant index of every load of x in every iteration of `consumer`, or None when
    the consumer is not of the accepted shape."""
    found: list[tuple[int, ...]] = []
    ok = True

    def walk_stmt(s, loops: list[For]):
        nonlocal ok
        if not ok:
            return
        if isinstance(s, SeqStmt):
            for c in s.stmts:
                walk_stmt(c, loops)
        elif isinstance(s, For):
            if s.kind not in _LOOP_KINDS or _const(s.start) is None or _const(s.extent) is None:
                ok = False
                return
            walk_stmt(s.body, loops + [s])
        elif isinstance(s, Allocate):
            if s.buffer is x or s.init is not None and _touched(s.init) & {x.root.uid}:
                ok = False
        elif isinstance(s, (BufferStore, Evaluate, LetStmt)):
            if isinstance(s, BufferStore) and s.buffer is x:
                ok = False
                return
            exprs = [s.value] + (list(s.indices) if isinstance(s, BufferStore) else [])
            for e in exprs:
                walk_expr(e, loops, in_address=False)
        else:
            ok = False

    def walk_expr(e, loops, in_address: bool):
        nonlocal ok
        if not ok or not isinstance(e, Expr):
            return
        if isinstance(e, Call):
            if e.name not in _CONSUMER_CALLS:
                ok = False
                return
            for a in e.args:
                walk_expr(a, loops, in_address or e.name == "address_of")
            return
        if isinstance(e, BufferLoad) and e.buffer is x:
            if in_address or len(e.indices) != 1:
                ok = False
                return
            idx = e.indices[0]
            if _touched(idx) & {x.root.uid}:
                ok = False
                return
            space = 1
            for lp in loops:
                space *= _const(lp.extent)
            if space > MAX_ITERATIONS:
                ok = False
                return
            ranges = [range(_const(lp.start), _const(lp.start) + _const(lp.extent)) for lp in loops]
            for point in itertools.product(*ranges):
                v = simplify(substitute(idx, {lp.var: Const(p, lp.var.dtype) for lp, p in zip(loops, point)}))
                if not isinstance(v, Const):
                    ok = False
                    return
                found.append(int(v.value))
            return
        for c in e.children():
            walk_expr(c, loops, in_address)

    walk_stmt(consumer, [])
    return found if ok else None


def _fuse(update: Stmt, consumer: Stmt) -> Stmt | None:
    u = _update(update)
    if u is None:
        return None
    var, x, f, extent = u
    loads = _loads_of(x, consumer)
    if loads is None or len(set(loads)) != len(loads) or any(not 0 <= i < extent for i in loads):
        return None
    crefs = _refs(consumer)
    if _refs(f).read & crefs.written:
        return None  # the consumer writes a register the update reads
    value = f if f.dtype == x.dtype else cast(f, x.dtype)

    class _Inline(Mutator):
        def visit_BufferLoad(self, e: BufferLoad):
            if e.buffer is x:
                idx = e.indices[0]
                return substitute(value, {var: idx})
            return self.generic_visit(e)

    return _Inline().visit(consumer)


def _aliased(body) -> set[int]:
    """Buffers some other buffer is a view of."""
    out: set[int] = set()

    class _V(Visitor):
        def _note(self, b):
            if b.base is not None:
                out.add(b.root.uid)

        def visit_BufferLoad(self, e):
            self._note(e.buffer)
            self.generic_visit(e)

        def visit_BufferStore(self, s):
            self._note(s.buffer)
            self.generic_visit(s)

        def visit_Allocate(self, s):
            self._note(s.buffer)
            self.generic_visit(s)

    _V().visit(body)
    return out


class _Sink(Mutator):
    """Walks statements knowing which buffers are referenced after them (`self.live`)."""

    def __init__(self, aliased: set[int]):
        self.aliased = aliased
        self.live: set[int] = set()

    def _loop(self, s, body_field: str):
        outer = self.live
        self.live = outer | _touched(getattr(s, body_field))  # read again in the next iteration
        try:
            return self.generic_visit(s)
        finally:
            self.live = outer

    def visit_For(self, s: For):
        return self._loop(s, "body")

    def visit_While(self, s: While):
        return self._loop(s, "body")

    def visit_IfThenElse(self, s: IfThenElse):
        return self.generic_visit(s)

    def visit_SeqStmt(self, s: SeqStmt):
        outer = self.live
        stmts = list(s.stmts)
        after = [set() for _ in stmts]  # what the statements after position i reference
        acc: set[int] = set()
        for i in range(len(stmts) - 1, -1, -1):
            after[i] = set(acc)
            acc |= _touched(stmts[i])
        out: list[Stmt] = []
        for i, c in enumerate(stmts):
            self.live = outer | after[i]
            c = self.visit(c)
            # fold the updates just before c into it while they are dead after c
            while out:
                u = _update(out[-1])
                if u is None or u[1].root.uid in self.live or u[1].root.uid in self.aliased:
                    break
                fused = _fuse(out[-1], c)
                if fused is None:
                    break
                out.pop()
                c = fused
            out.append(c)
        self.live = outer
        return s.with_fields(stmts=out) if len(out) != len(stmts) or any(a is not b for a, b in zip(out, stmts)) else s


def sink_register_updates(func: PrimFunc) -> PrimFunc:
    return func.with_body(_Sink(_aliased(func.body)).visit(func.body))



