"""CUDA: 128-bit global accesses for element-wise T.Parallel nests.

After lower_parallel_cuda a nest is `for v in unroll(P): store(f(loads))`, one element per v.
Where a thread's consecutive values v are consecutive elements of a global tensor's row (the
layouts of element-wise nests give each thread runs of 4 or 8), the loop is cut into runs of W
(W elements = 16 bytes at most): each global load that walks the run becomes one `copy_vec`
into a W-element register array before the run, the arithmetic runs per element, and the global
store becomes one `store_vec` of the W values (packed into the vector by their bits: an
addressable register array would land in local memory for 16- and 8-bit types). LDG.E.128 /
STG.E.128 instead of four scalar accesses. A computed value stored into shared memory (a
dequantised weight tile, say) is packed the same way into one STS.64/STS.128 per run: besides
the stores saved, the run's shared loads then all precede its one store, so ptxas can merge the
loads the elements share (the scalar stores might alias them). `let` bindings of the iteration
are folded into the stored value for this. A run is vectorised only when it is provably
contiguous (every index but the last independent of the position in the run, the last one
advancing by 1) and aligned (its first element a multiple of W, and the row length too; tensor
arguments must start 16-byte aligned on CUDA targets, which the argument binder checks). Loads under a condition (`if_then_else`, bounds guards) stay scalar, and
a guarded store keeps the whole loop scalar."""
from __future__ import annotations

from ..ir import dtype as _dt
from ..ir.buffer import Buffer
from ..ir.expr import BufferLoad, Call, Const, Expr, Select, Var, cast
from ..ir.simplify import prove, simplify
from ..ir.stmt import Allocate, BufferStore, Evaluate, For, LetStmt, SeqStmt, Stmt, seq
from ..ir.visitor import Mutator, substitute

VECTOR_BYTES = 16


def vectorize_global(loop: For, ranges: dict) -> Stmt:
    """The loop with its global accesses (and computed shared stores) in W-element vectors, or
    the loop itself."""
    body = _folded_lets(loop.body)
    start = loop.start.value if isinstance(loop.start, Const) else loop.start
    if not isinstance(body, BufferStore) or not (isinstance(start, int) and start == 0):
        return loop
    n = loop.extent.value if isinstance(loop.extent, Const) else loop.extent
    if not isinstance(n, int):
        return loop
    loads = _plain_global_loads(body.value)
    store_global = body.buffer.root.is_global
    store_shared = body.buffer.root.is_shared and not _reads(body.value, body.buffer.root)
    if not loads and not store_global and not store_shared:
        return loop
    if body.buffer.root.address is not None or any(ld.buffer.root.address is not None for ld in loads):
        return loop  # a tensor at a run-time address (a pointer table's): its alignment is unknown
    elem = max([ld.buffer.dtype.bytes for ld in loads] +
               ([body.buffer.dtype.bytes] if store_global or store_shared else []))
    W = VECTOR_BYTES // elem
    while W > 1:
        if n % W == 0:
            plan = _plan(loop, body, loads, store_global, store_shared, W, ranges)
            if plan is not None:
                return plan
        W //= 2
    return loop


def _folded_lets(body: Stmt) -> Stmt:
    """`let x = e; store(..x..)` as `store(..e..)` (the bindings are pure values of the iteration)."""
    if not (isinstance(body, SeqStmt) and body.stmts and isinstance(body.stmts[-1], BufferStore)
            and all(isinstance(s, LetStmt) for s in body.stmts[:-1])):
        return body
    bound: dict = {}
    for let in body.stmts[:-1]:
        bound[let.var] = substitute(let.value, bound)
    st = body.stmts[-1]
    return BufferStore(st.buffer, [substitute(i, bound) for i in st.indices], substitute(st.value, bound),
                       span=st.span)


def _reads(e: Expr, root: Buffer) -> bool:
    """Whether `e` loads from `root` (a run's store may not feed its own loads)."""
    if isinstance(e, BufferLoad) and e.buffer.root is root:
        return True
    return any(_reads(c, root) for c in e.children() if isinstance(c, Expr))


def _plain_global_loads(e: Expr) -> list[BufferLoad]:
    """Global loads evaluated unconditionally (not under a Select or an if_then_else)."""
    out: list[BufferLoad] = []

    def walk(x):
        if isinstance(x, BufferLoad):
            if x.buffer.root.is_global and not any(x is o for o in out):
                out.append(x)
            for i in x.indices:
                walk(i)
            return
        if isinstance(x, Select) or (isinstance(x, Call) and x.name == "if_then_else"):
            return
        for c in x.children():
            if isinstance(c, Expr):
                walk(c)

    walk(e)
    return out


def _run_ok(buf: Buffer, indices, v: Var, vo: Var, vi: Var, W: int, ranges: dict) -> bool:
    """indices(v = vo*W + vi) advance by vi along the last axis only, from a W-aligned start."""
    if not indices or not isinstance(buf.shape[-1], int) or buf.shape[-1] % W:
        return False
    at = [simplify(substitute(i, {v: vo * W + vi}), ranges) for i in indices]
    start = [simplify(substitute(i, {vi: Const(0, _dt.int32)}), ranges) for i in at]
    for k, (a, s) in enumerate(zip(at, start)):
        want = vi if k == len(at) - 1 else Const(0, a.dtype)
        if prove(simplify(a - s, ranges) == want, ranges) is not True:
            return False
    return prove(simplify(start[-1] % W, ranges) == 0, ranges) is True


def _plan(loop: For, body: BufferStore, loads, store_global: bool, store_shared: bool, W: int,
          ranges: dict) -> Stmt | None:
    v = loop.var
    vo, vi = Var(v.name + "o", _dt.int32), Var(v.name + "i", _dt.int32)
    r = dict(ranges)
    r[vo] = (0, loop.extent.value // W - 1)
    r[vi] = (0, W - 1)
    vec_loads = [ld for ld in loads if _run_ok(ld.buffer, ld.indices, v, vo, vi, W, r)]
    # store_vec packs 1-, 2- and 4-byte values (8-byte ones, float64, keep scalar stores)
    store_vec = ((store_global or store_shared) and body.buffer.dtype.bytes <= 4
                 and _run_ok(body.buffer, body.indices, v, vo, vi, W, r))
    if store_global and not store_vec:
        return None  # the store would stay scalar: the loads alone gain little, keep it simple
    if not vec_loads and not store_vec:
        return None
    pre: list[Stmt] = []
    regs: dict = {}
    for k, ld in enumerate(vec_loads):
        reg = Buffer(f"{ld.buffer.name}_v{k}", (W,), ld.buffer.dtype, "local")
        regs[id(ld)] = reg
        first = [simplify(substitute(i, {v: vo * W}), r) for i in ld.indices]
        pre += [Allocate(reg), _copy_vec(reg, [Const(0, _dt.int32)], ld.buffer, first, W)]

    class _Use(Mutator):
        def visit_BufferLoad(self, e: BufferLoad):
            reg = regs.get(id(e))
            if reg is not None:
                return BufferLoad(reg, [vi])
            return self.generic_visit(e)

    value = simplify(substitute(_Use().visit(body.value), {v: vo * W + vi}), r)
    if store_vec:
        # the W values packed straight into the vector store (an addressable register array
        # would end up in local memory for 16- and 8-bit types)
        first = [simplify(substitute(i, {v: vo * W}), r) for i in body.indices]
        vals = [cast(simplify(substitute(value, {vi: Const(k, _dt.int32)}), r), body.buffer.dtype) for k in range(W)]
        store = Evaluate(Call("store_vec", [_addr(body.buffer, first), *vals], _dt.handle), span=body.span)
        steps = pre + [store]
    else:
        idx = [simplify(substitute(i, {v: vo * W + vi}), r) for i in body.indices]
        steps = pre + [For(vi, 0, W, "unroll", BufferStore(body.buffer, idx, value, span=body.span))]
    return For(vo, 0, loop.extent.value // W, "unroll", seq(steps), span=loop.span)


def _addr(b: Buffer, idx) -> Call:
    return Call("address_of", [BufferLoad(b, idx)], _dt.handle)


def _copy_vec(dst: Buffer, d_idx, src: Buffer, s_idx, W: int) -> Stmt:
    return Evaluate(Call("copy_vec", [_addr(dst, d_idx), _addr(src, s_idx)], _dt.handle,
                         {"bytes": W * src.dtype.bytes}))
