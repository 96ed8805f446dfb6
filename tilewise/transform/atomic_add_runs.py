"""CPU: a loop of float atomic adds into consecutive elements becomes one `tw::atomic_add_run`
(the last loop pass, after privatise_atomics).

    for j in range(s, s + n):                          lo = max(s, bounds), hi = min(s + n, bounds)
        if c and j + o < b:                  ->        if c: atomic_add_run(&T[.., e(lo)], &V[.., f(lo)], hi - lo)
            atomic_add(&T[.., e(j)], V[.., f(j)])

Why: x86 has no float atomic add, so `tw::atomic_add` on a float is a compare-and-swap loop per
element, which also keeps the loop scalar; a stream-K GEMM adds its shared output tiles that way
(examples/gemm_streamk: 7 % of a one-thread run). `atomic_add_run` adds 16 bytes at a time (four
floats, two doubles) with one `lock cmpxchg16b` each. Every element still gets exactly one atomic
read-modify-write adding its own value, so the result is what the per-element atomics give (the
order of adds from different blocks was never fixed), and the 16-byte exchanges stay atomic
against per-element atomics on the same memory elsewhere: x86 locks the cache line either way.

Qualify: an innermost loop whose body is only `atomic_add(address_of(T[idx]), V[vidx])`, the
value unused, T float32 or float64 with a contiguous last axis, V of the same type, j in the
last index of each with coefficient 1 and in no other index, and guards that either do not use j
(tested once) or bound it (`j + o < b` and the like: they narrow the run). Integer atomic adds
are one `lock xadd` already; float16 / bfloat16 keep theirs (a 16-bit add rounds, and the
32-bit word swap that does it is per element anyway)."""
from __future__ import annotations

from ..ir import dtype as _dt
from ..ir.expr import BinOp, BufferLoad, Call, Cast, Expr, Var, logical_and
from ..ir.simplify import linear_form, simplify
from ..ir.stmt import Evaluate, For, IfThenElse, PrimFunc, Stmt
from ..ir.visitor import Mutator, substitute, uses_var
from .split_guarded_loops import _bound, _conjuncts  # the bound forms that pass already reads

_TYPES = ("float32", "float64")


def atomic_add_runs(func: PrimFunc) -> PrimFunc:
    body = _Runs().visit(func.body)
    return func if body is func.body else func.with_body(body)


def _coefficient(e: Expr, var: Var) -> int | None:
    """The constant c with e = c * var + (terms free of var), else None."""
    lin = linear_form(e)
    c = 0
    for atom, k in lin.terms.values():
        if atom is var:
            c += k
        elif isinstance(atom, Cast) and atom.dtype.is_int and atom.value.dtype.is_int and uses_var(atom, var):
            # widen_indices' (int64_t)(i + o): an address computation that does not overflow
            inner = _coefficient(atom.value, var)
            if inner is None:
                return None
            c += k * inner
        elif uses_var(atom, var):
            return None
    return c


def _contiguous(load: BufferLoad, var: Var) -> bool:
    b = load.buffer
    idx = load.indices
    if not idx or b.strides()[-1] != 1:
        return False
    if any(uses_var(i, var) for i in idx[:-1]):
        return False
    if len(idx) > 1 and not all(isinstance(d, int) for d in b.shape[1:]):
        # a symbolic inner extent is fine for the address, but keep the common static case
        return False
    return _coefficient(idx[-1], var) == 1


def _atomic(s: Stmt) -> tuple[BufferLoad, BufferLoad] | None:
    if not isinstance(s, Evaluate):
        return None
    c = s.value
    if not (isinstance(c, Call) and c.name == "atomic_add" and len(c.args) == 2 and not c.attrs):
        return None
    a, v = c.args
    if not (isinstance(a, Call) and a.name == "address_of" and len(a.args) == 1 and isinstance(a.args[0], BufferLoad)):
        return None
    dst = a.args[0]
    if dst.buffer.dtype.name not in _TYPES or not isinstance(v, BufferLoad) or v.buffer.dtype != dst.buffer.dtype:
        return None
    return dst, v


class _Runs(Mutator):
    def visit_For(self, f: For):
        f = self.generic_visit(f)
        out = _run(f)
        return out if out is not None else f


def _run(f: For) -> Stmt | None:
    body, conds = f.body, []
    if isinstance(body, IfThenElse) and body.else_body is None:
        conds, body = _conjuncts(body.cond), body.then_body
    found = _atomic(body)
    if found is None:
        return None
    dst, val = found
    var = f.var
    if not (_contiguous(dst, var) and _contiguous(val, var)):
        return None
    free, lo, hi = [], [f.start], [f.start + f.extent]
    for c in conds:
        if not uses_var(c, var):
            free.append(c)
            continue
        b = _bound(c, var)
        if b is None:
            return None
        (lo if b[0] == "lo" else hi).append(b[1])
    start = lo[0]
    for x in lo[1:]:
        start = BinOp("max", start, x, start.dtype)
    end = hi[0]
    for x in hi[1:]:
        end = BinOp("min", end, x, end.dtype)
    start, end = simplify(start), simplify(end)
    at = {var: start}
    d = BufferLoad(dst.buffer, [simplify(substitute(i, at)) for i in dst.indices])
    v = BufferLoad(val.buffer, [simplify(substitute(i, at)) for i in val.indices])
    n = simplify(end - start)
    call = Evaluate(Call("atomic_add_run", [Call("address_of", [d], _dt.handle), Call("address_of", [v], _dt.handle),
                                            n], _dt.handle), span=f.span)
    if not free:
        return call
    cond = free[0]
    for c in free[1:]:
        cond = logical_and(cond, c)
    return IfThenElse(cond, call, span=f.span)
