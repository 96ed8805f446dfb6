"""CPU: atomic adds into a tensor that the kernel only ever atomically adds into go to a private
copy per worker thread, reduced into the tensor after the blocks have run.

x86 has no float atomic add: `tw::atomic_add` on a float is a compare-and-swap loop, a locked
instruction per element that also stops vectorisation (FlashAttention's backward pass adds every
block's share of dQ with atomics: a fifth of its time). When the kernel neither reads the tensor
nor writes it any other way (no loads, stores, tile operators, views, external calls, and no
atomic whose previous value is used), nothing inside the kernel can observe the partial sums, so
each worker thread may accumulate into its own zero-initialised copy with plain, vectorisable
adds, and the copies be added into the tensor once the blocks are done. The result is the sum of
the same terms; only the order of the float additions differs, which atomics do not fix either
(integers wrap alike in any order).

The pass proves that precondition per kernel and tensor (float32, float64 and integer types: the
narrow floats round on every add, and keep their atomics), and rewrites each such atomic as

    if (private_ok) B_private[i] += v;  else  atomic_add(&B[i], v);

around the largest loop nest that does nothing else, so that the private branch is a plain loop.
The renderer (backend/cpu/codegen.py) allocates the copies per thread when the kernel starts and
reduces them at its end; a thread whose copy would not pay off or does not fit the memory budget
(private_atomics_worthwhile in tw_cpu.h: threads x size against the number of updates the kernel
can make, which this pass bounds from the loop extents) or cannot be allocated keeps
`private_ok` false and the atomics, which stay correct alongside the other threads' copies.
"""
from __future__ import annotations

from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferData, BufferRegion
from ..ir.expr import BufferLoad, Call, Expr, Var
from ..ir.simplify import bound
from ..ir.stmt import BufferStore, Evaluate, For, IfThenElse, Kernel, LetStmt, PrimFunc, SeqStmt, Stmt, While
from ..ir.visitor import Mutator
from .ranges import RangeMutator

ATTR = "private_atomics"


class PrivateAtomics:
    """What the renderer needs: the tensors and their private copies, the flag the rewritten
    statements test, and a bound on the number of atomic updates (None: unbounded)."""

    def __init__(self, pairs: list[tuple[Buffer, Buffer]], ok: Var, updates: int | None):
        self.pairs = pairs
        self.ok = ok
        self.updates = updates


def _atomic_target(s) -> Buffer | None:
    """B when s is `Evaluate(atomic_add(address_of(B[...]), v))` (the value unused)."""
    if not isinstance(s, Evaluate):
        return None
    c = s.value
    if not (isinstance(c, Call) and c.name == "atomic_add" and len(c.args) == 2):
        return None
    a = c.args[0]
    if isinstance(a, Call) and a.name == "address_of" and len(a.args) == 1 and isinstance(a.args[0], BufferLoad):
        return a.args[0].buffer
    return None


def _references(node, found: set[int], skip_atomics: bool) -> None:
    """Adds the uid of every buffer `node` refers to in any way (and of the buffers views alias),
    except, with skip_atomics, as the target of an unused atomic add."""
    seen: set[int] = set()

    def buf(b: Buffer):
        while b is not None:
            found.add(b.uid)
            b = b.base

    def visit(x):
        if isinstance(x, (Expr, Stmt, BufferRegion)):
            if id(x) in seen:
                return
            seen.add(id(x))
        if isinstance(x, Buffer):
            buf(x)
            for d in (*x.shape, *(x.explicit_strides or ())):
                visit(d)
            return
        if isinstance(x, BufferData):
            buf(x.buffer)
            return
        if skip_atomics and _atomic_target(x) is not None:
            c = x.value
            visit(c.args[0].args[0].indices)
            visit(c.args[1])
            return
        if isinstance(x, (list, tuple)):
            for y in x:
                visit(y)
            return
        if isinstance(x, dict):
            for y in x.values():
                visit(y)
            return
        d = getattr(x, "__dict__", None)
        slots = [s for cls in type(x).__mro__ for s in getattr(cls, "__slots__", ())]
        values = list(d.values()) if d else []
        values += [getattr(x, s) for s in slots if hasattr(x, s)]
        for v in values:
            if isinstance(v, (Expr, Stmt, BufferRegion, Buffer, BufferData, list, tuple, dict)):
                visit(v)

    visit(node)


def _eligible(func: PrimFunc, k: Kernel) -> list[Buffer]:
    targets: dict[int, Buffer] = {}

    class _T(Mutator):
        def visit_Evaluate(self, s):
            b = _atomic_target(s)
            if b is not None:
                targets.setdefault(b.uid, b)
            return s

    _T().visit(k.body)
    if not targets:
        return []
    others: set[int] = set()
    _references(k.body, others, skip_atomics=True)
    params = {p.uid for p in func.params if isinstance(p, Buffer)}
    out = []
    for b in targets.values():
        dt = b.dtype
        if b.uid not in params or b.uid in others or b.base is not None or b.explicit_strides is not None \
                or b.pointer is not None:
            continue
        if not ((dt.is_float and dt.bits in (32, 64)) or (dt.is_int and dt.bits in (8, 16, 32, 64))):
            continue
        out.append(b)
    return out


class _Rewrite(RangeMutator):
    def __init__(self, pairs: dict[int, Buffer], ok: Var, kernel: Kernel):
        super().__init__()
        self.pairs = pairs
        self.ok = ok
        self.kernel = kernel
        self.trips: list[int | None] = []  # enclosing loops' trip-count bounds
        self.updates: int | None = 0

    def _only_private(self, s) -> bool:
        if isinstance(s, Evaluate):
            b = _atomic_target(s)
            return b is not None and b.uid in self.pairs
        if isinstance(s, SeqStmt):
            return all(self._only_private(x) for x in s.stmts)
        if isinstance(s, For):
            return self._only_private(s.body)
        if isinstance(s, IfThenElse):
            return self._only_private(s.then_body) and (s.else_body is None or self._only_private(s.else_body))
        return isinstance(s, LetStmt)

    def _private(self, s):
        """s with its atomic adds as plain adds into the private copies."""
        pairs = self.pairs

        class _P(Mutator):
            def visit_Evaluate(self, e):
                b = _atomic_target(e)
                if b is None or b.uid not in pairs:
                    return e
                c = e.value
                idx = c.args[0].args[0].indices
                p = pairs[b.uid]
                return BufferStore(p, idx, BufferLoad(p, idx) + c.args[1], span=e.span)

        return _P().visit(s)

    def _count(self, s):
        """Adds s's updates (per block) times the enclosing trip counts to self.updates."""
        n = 0

        def per(x, mult):
            nonlocal n
            if n is None:
                return
            if isinstance(x, Evaluate) and _atomic_target(x) is not None:
                n = None if mult is None else n + mult
            elif isinstance(x, SeqStmt):
                for y in x.stmts:
                    per(y, mult)
            elif isinstance(x, IfThenElse):
                per(x.then_body, mult)
                if x.else_body is not None:
                    per(x.else_body, mult)
            elif isinstance(x, For):
                _, hi = bound(x.extent, self.ranges)
                per(x.body, None if mult is None or hi is None else mult * max(hi, 0))

        mult = 1
        for t in self.trips:
            mult = None if mult is None or t is None else mult * t
        per(s, mult)
        if self.updates is not None:
            self.updates = None if n is None else self.updates + n

    def _wrap(self, s):
        self._count(s)
        return IfThenElse(self.ok, self._private(s), s, span=s.span)

    def enter_for(self, f: For):
        if self._only_private(f):
            return self._wrap(f)
        _, hi = bound(f.extent, self.ranges)
        self.trips.append(None if hi is None else max(hi, 0))
        try:
            return self.generic_visit(f)
        finally:
            self.trips.pop()

    def visit_While(self, w: While):
        self.trips.append(None)
        try:
            return self.generic_visit(w)
        finally:
            self.trips.pop()

    def visit_Evaluate(self, s: Evaluate):
        b = _atomic_target(s)
        if b is not None and b.uid in self.pairs:
            return self._wrap(s)
        return s


class _Kernels(Mutator):
    def __init__(self, func: PrimFunc):
        self.func = func

    def visit_Kernel(self, k: Kernel):
        if k.attrs.get("uses_thread_binding"):
            return k
        bufs = _eligible(self.func, k)
        if not bufs:
            return k
        pairs = {b.uid: Buffer(b.name + "_private", b.shape, b.dtype, scope="global", span=b.span) for b in bufs}
        ok = Var("tw_private_ok", _dt.bool_)
        rw = _Rewrite(pairs, ok, k)
        body = rw.visit(k)
        blocks = 1
        for g in k.grid:
            _, hi = bound(g, {})
            blocks = None if blocks is None or hi is None else blocks * hi
        updates = None if rw.updates is None or blocks is None else rw.updates * blocks
        attrs = dict(body.attrs)
        attrs[ATTR] = PrivateAtomics([(b, pairs[b.uid]) for b in bufs], ok, updates)
        return body.with_fields(attrs=attrs) if body is not k else k.with_fields(attrs=attrs)


def privatise_atomics(func: PrimFunc) -> PrimFunc:
    body = _Kernels(func).visit(func.body)
    return func if body is func.body else func.with_body(body)

