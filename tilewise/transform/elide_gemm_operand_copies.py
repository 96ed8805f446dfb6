"""CPU: a T.gemm operand tile that is a whole copy of another tile of its type, which nothing
changes before the GEMM reads it, is not copied: the GEMM reads the source tile (CPU loop passes,
after fuse_gemm_producers).

    for i, j in ...: P[i, j] = S[i, j]        (S not written from here to the gemm)
    ...                                  ->   ...
    gemm(P, V, O)                             gemm(S, V, O)

FlashAttention's `T.copy(acc_s, acc_s_cast)` is that copy once fuse_gemm_producers has kept the
float16 tile in float32 (the GEMM's packing rounds it): a 128 x 64 float tile stored and packed
again every step, and a tile per block of the lock-step group (backend/cpu/block_groups.py) that
halves the group on the stack. The GEMM reads the same values either way, so the result is the
same bit for bit.

Qualify: P is named only by its allocation, one store and one GEMM operand (A or B); the store
is `P[v0, v1, ...] = S[v0, v1, ...]` under loops over exactly P's extents (every element copied,
unconditionally), in a statement that runs before the GEMM in the same sequence; S has P's
shape and type, is no view and has none, and neither that statement nor any statement between
it and the GEMM stores into S or passes its address to a call; S is not the GEMM's C."""
from __future__ import annotations

from ..ir.buffer import Buffer
from ..ir.expr import BufferLoad, Call, Const, Var
from ..ir.stmt import Allocate, BufferStore, Evaluate, For, Kernel, PrimFunc, SeqStmt, Stmt
from ..ir.visitor import Mutator, Visitor


def elide_gemm_operand_copies(func: PrimFunc) -> PrimFunc:
    return func.with_body(_PerKernel().visit(func.body))


def _address(a) -> BufferLoad | None:
    if isinstance(a, Call) and a.name == "address_of" and len(a.args) == 1 and isinstance(a.args[0], BufferLoad):
        return a.args[0]
    return None


class _Refs(Visitor):
    """How often each buffer is named (loads, stores, regions, allocations; the load inside an
    address_of counts once), which buffers views alias, and which are written or have their
    address taken in a statement."""

    def __init__(self):
        self.count: dict = {}
        self.viewed: set = set()
        self.written: set = set()

    def _add(self, b: Buffer):
        self.count[b] = self.count.get(b, 0) + 1

    def visit_Allocate(self, s: Allocate):
        self._add(s.buffer)
        b = s.buffer.base
        while b is not None:
            self.viewed.add(b)
            b = b.base
        self.generic_visit(s)

    def visit_BufferLoad(self, e):
        self._add(e.buffer)
        self.generic_visit(e)

    def visit_BufferStore(self, s):
        self._add(s.buffer)
        self.written.add(s.buffer)
        self.generic_visit(s)

    def visit_BufferRegion(self, r):
        self._add(r.buffer)
        self.written.add(r.buffer)
        self.generic_visit(r)

    def visit_Call(self, e: Call):
        for a in e.args:
            x = _address(a)
            if x is not None:
                self.written.add(x.buffer)
        self.generic_visit(e)


def _written(stmts) -> set:
    r = _Refs()
    for s in stmts:
        r.visit(s)
    return r.written


def _copy_store(stmt: Stmt, target: Buffer) -> BufferStore | None:
    """The store `target[v...] = S[v...]` when stmt is a loop nest over all of target's extents
    whose only path to it is loops and sequences."""
    loops: list[For] = []

    def find(s):
        if isinstance(s, BufferStore):
            return s if s.buffer is target else None
        if isinstance(s, SeqStmt):
            hits = [h for h in (find(x) for x in s.stmts) if h is not None]
            return hits[0] if len(hits) == 1 else None
        if isinstance(s, For):
            loops.append(s)
            h = find(s.body)
            if h is None:
                loops.pop()
            return h
        return None

    st = find(stmt)
    if st is None or not isinstance(st.value, BufferLoad):
        return None
    src = st.value
    # (identity: Expr's == builds a comparison)
    if len(st.indices) != len(target.shape) or len(src.indices) != len(st.indices) or \
            not all(a is b for a, b in zip(src.indices, st.indices)):
        return None
    by_var = {id(f.var): f for f in loops}
    for idx, ext in zip(st.indices, target.shape):
        f = by_var.get(id(idx)) if isinstance(idx, Var) else None
        if f is None or not (isinstance(f.start, Const) and f.start.value == 0 and isinstance(f.extent, Const)
                             and f.extent.value == ext):
            return None
    if len(set(map(id, st.indices))) != len(st.indices):
        return None
    return st


def _copy_sees_final(stmt: Stmt, st: BufferStore) -> bool:
    """Nothing in the copy's loop nest changes an element of the source after it is copied: the
    source's only stores there come before the copy in its own loop body, at the same element
    (loop fusion puts `S[i, j] = f(S[i, j])` and `P[i, j] = S[i, j]` in one body), and no call
    gets its address."""
    src = st.value.buffer
    ok = True

    class _Check(Visitor):
        def __init__(self):
            self.body_ok: set = set()

        def visit_SeqStmt(self, s: SeqStmt):
            if any(x is st for x in s.stmts):
                k = next(n for n, x in enumerate(s.stmts) if x is st)
                for x in s.stmts[:k]:
                    if isinstance(x, BufferStore) and x.buffer is src and len(x.indices) == len(st.indices) \
                            and all(a is b for a, b in zip(x.indices, st.indices)):
                        self.body_ok.add(id(x))
            self.generic_visit(s)

        def visit_BufferStore(self, s: BufferStore):
            nonlocal ok
            if s.buffer is src and id(s) not in self.body_ok:
                ok = False
            self.generic_visit(s)

        def visit_Call(self, e: Call):
            nonlocal ok
            if any((x := _address(a)) is not None and x.buffer is src for a in e.args):
                ok = False
            self.generic_visit(e)

    _Check().visit(stmt)
    return ok


class _Drop(Mutator):
    def __init__(self, store: BufferStore):
        self.store = store

    def visit_SeqStmt(self, s: SeqStmt):
        out = [self.visit(x) for x in s.stmts if x is not self.store]
        return SeqStmt([x for x in out if not (isinstance(x, SeqStmt) and not x.stmts)], span=s.span)

    def visit_For(self, f: For):
        if f.body is self.store:
            return SeqStmt([])
        f = self.generic_visit(f)
        return SeqStmt([]) if isinstance(f.body, SeqStmt) and not f.body.stmts else f


class _PerKernel(Mutator):
    def visit_Kernel(self, k: Kernel):
        self.refs = _Refs()
        self.refs.visit(k.body)
        self.dead: set = set()
        body = self.visit(k.body)
        if not self.dead:
            return k
        body = _DropAllocs(self.dead).visit(body)
        return k.with_fields(body=body)

    def visit_SeqStmt(self, s: SeqStmt):
        s = self.generic_visit(s)
        if not hasattr(self, "refs"):
            return s
        stmts = list(s.stmts)
        changed = False
        for j, g in enumerate(stmts):
            if not (isinstance(g, Evaluate) and isinstance(g.value, Call) and g.value.name == "gemm"):
                continue
            call = g.value
            for pos in (0, 1):
                op = _address(call.args[pos])
                if op is None:
                    continue
                p = op.buffer
                if self.refs.count.get(p, 0) != 3 or p in self.refs.viewed or p.base is not None:
                    continue
                if not all(isinstance(z, Const) and z.value == 0 for z in op.indices):
                    continue
                for i in range(j - 1, -1, -1):
                    st = _copy_store(stmts[i], p)
                    if st is None:
                        continue
                    src = st.value.buffer
                    c = _address(call.args[2])
                    if (src.shape != p.shape or src.dtype != p.dtype or src.is_global or src.base is not None
                            or src in self.refs.viewed or (c is not None and c.buffer is src)):
                        break
                    if src in _written(stmts[i + 1:j]) or not _copy_sees_final(stmts[i], st):
                        break
                    args = list(call.args)
                    args[pos] = Call("address_of", [BufferLoad(src, op.indices)], args[pos].dtype)
                    call = Call(call.name, args, call.dtype, call.attrs)
                    stmts[i] = _Drop(st).visit(stmts[i])
                    self.dead.add(p)
                    changed = True
                    break
            if call is not g.value:
                stmts[j] = Evaluate(call, span=g.span)
        return SeqStmt(stmts, span=s.span) if changed else s


class _DropAllocs(Mutator):
    def __init__(self, dead: set):
        self.dead = dead

    def visit_SeqStmt(self, s: SeqStmt):
        s = self.generic_visit(s)
        out = [x for x in s.stmts if not (isinstance(x, Allocate) and x.buffer in self.dead)]
        return SeqStmt(out, span=s.span) if len(out) != len(s.stmts) else s

