"""Fragment: how a register tile is distributed over a block's threads:
logical index -> (thread, local register index), with `replicate` copies of each element.

The constructor and methods follow TileLang's `tilelang.layout.Fragment` (0.1.15):
`Fragment(shape, forward_fn=None, forward_thread_fn=None, replicate=1, forward_index_fn=None)`,
`repeat`, `replicate`, `inverse`, `get_thread_size`, `map_forward_thread` and the Layout API."""
from __future__ import annotations

import inspect

import numpy as np

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.evaluate import evaluate
from ..ir.expr import Expr, Var, as_expr
from ..ir.printer import expr_str
from ..ir.simplify import simplify
from ..ir.visitor import substitute
from .layout import Layout, _as_list, _static_shape, call_with_vars


class _Replicate(int):
    """`frag.replicate` is both the replication count (an int, as tilewise's passes read it) and
    TileLang's method `frag.replicate(n)` returning a fragment replicated n times more."""

    def __new__(cls, value: int, frag: Fragment):
        obj = super().__new__(cls, value)
        obj._frag = frag
        return obj

    def __call__(self, repeats: int) -> Fragment:
        return self._frag._replicated(repeats)

    def __repr__(self) -> str:
        return int.__repr__(self)


def _takes_extra(fn, n: int) -> bool:
    """Whether a user lambda takes one argument more than the layout has dimensions."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return False
    return len(params) == n + 1


class Fragment(Layout):
    """`T.Fragment(shape, forward_fn=lambda i, j: (thread, index), replicate=1)` or
    `T.Fragment(shape, forward_thread_fn=lambda i, j: ..., forward_index_fn=lambda i, j: ...)`.
    With replicate > 1 the thread function takes an extra replica index. Without an index
    function the register index is what the thread map leaves unused, in row-major order (as in
    TileLang: `forward_thread_fn=lambda i, j: i` on [M, N] keeps row i in thread i, index j)."""

    def __init__(self, shape, forward_fn=None, forward_thread_fn=None, replicate: int = 1, forward_index_fn=None,
                 *, forward_thread=None, forward_index=None, vars_=None, rep_var=None):
        self.shape = _static_shape(shape, "T.Fragment")
        self._output_shape = None
        self.base_align = 16
        self.vars = list(vars_) if vars_ is not None else [Var(f"_i{k}", _dt.int32) for k in range(len(self.shape))]
        if isinstance(replicate, bool) or not isinstance(replicate, int) or replicate < 1:
            raise CompileError(f"T.Fragment: replicate must be a positive int, got {replicate!r}")
        self.replicate = replicate
        self.rep_var = rep_var if rep_var is not None else Var("_rep", _dt.int32)
        index = forward_index
        if forward_thread is None:
            fn = forward_fn if forward_fn is not None else forward_thread_fn
            if fn is None:
                raise CompileError("T.Fragment needs forward_fn or forward_thread_fn")
            takes_rep = replicate > 1 or _takes_extra(fn, len(self.vars))
            args = self.vars + ([self.rep_var] if takes_rep else [])
            out = call_with_vars(fn, args) if not takes_rep else fn(*args)
            if forward_fn is not None:
                out = _as_list(out)
                if len(out) < 2:
                    raise CompileError("T.Fragment: forward_fn must return (thread, index)")
                forward_thread = out[0]
                if index is None:
                    index = out[1] if len(out) == 2 else out[1:]
            else:
                forward_thread = out
        if index is None and forward_index_fn is not None:
            index = call_with_vars(forward_index_fn, self.vars)
        r = self.ranges()
        if self.replicate > 1:
            r[self.rep_var] = (0, self.replicate - 1)
        self.forward_thread = simplify(as_expr(forward_thread), r)
        if index is None:
            index = [self._unused_index()]
        self.forward_index = [simplify(as_expr(e), self.ranges()) for e in _as_list(index)]

    # the replication count; reading it gives an int that is also callable (see _Replicate)
    @property
    def replicate(self):
        return _Replicate(self._replicate, self)

    @replicate.setter
    def replicate(self, value: int) -> None:
        self._replicate = int(value)

    def _unused_index(self) -> Expr:
        """The register index TileLang derives from the thread map alone: the digits of the
        logical indices the thread map does not use, flattened row-major."""
        from .digits import digits_of, row_major_unused

        digits = digits_of(self.thread_table()[0])
        if digits is None:
            raise CompileError(f"T.Fragment: cannot derive the register index from the thread map "
                               f"{expr_str(self.forward_thread)}; give forward_index_fn")
        out = as_expr(0)
        for g in row_major_unused(digits):
            x = self.vars[g.dim] // g.stride if g.stride > 1 else self.vars[g.dim]
            if g.stride * g.radix < self.shape[g.dim]:
                x = x % g.radix
            out = out + x * g.place
        return out

    # ------------------------------------------------------------------ maps and tables
    def thread_of(self, indices, rep=0):
        m = {v: as_expr(i) for v, i in zip(self.vars, indices)}
        m[self.rep_var] = as_expr(rep)
        return substitute(self.forward_thread, m)

    def thread_table(self) -> np.ndarray:
        """(replicate, *shape) array of the thread owning each element."""
        out = []
        for r in range(self.replicate):
            env = self.grid()
            env[self.rep_var] = np.int64(r)
            v = evaluate(self.forward_thread, env)
            out.append(np.broadcast_to(np.asarray(v, dtype=np.int64), self.shape))
        return np.stack(out)

    def num_threads(self) -> int:
        return int(self.thread_table().max()) + 1

    def locals_per_thread(self) -> int:
        return int(np.prod(self.output_shape()))

    def covers_exactly_once(self, threads: int | None = None) -> bool:
        """Each (thread, local) slot holds at most one element, and every element is held by
        exactly `replicate` distinct threads."""
        tt = self.thread_table()
        loc = self.flat_table()
        n_threads = threads if threads is not None else int(tt.max()) + 1
        if tt.min() < 0 or tt.max() >= n_threads:
            return False
        slots = tt * int(loc.max() + 1) + loc[None]
        if np.unique(slots).size != slots.size:
            return False
        for r in range(1, self.replicate):
            if np.any(tt[r] == tt[0]):
                return False
        return True

    # ------------------------------------------------------------------ TileLang's Fragment API
    @property
    def thread(self) -> Expr:
        return self.forward_thread

    def get_thread_size(self) -> int:
        """Threads the fragment spans: one more than the largest thread index, over every replica."""
        return int(self.thread_table().max()) + 1

    def get_forward_vars(self) -> list[Var]:
        return ([self.rep_var] if self.replicate > 1 else []) + list(self.vars)

    def map_forward_thread(self, indices, rep=None) -> Expr:
        """The thread holding `indices`; for a replicated fragment the replica comes first in
        `indices` (as TileLang's forward vars have it) or as `rep`."""
        indices = list(indices)
        if len(indices) == len(self.vars) + 1:
            rep, indices = indices[0], indices[1:]
        if len(indices) != len(self.vars):
            raise CompileError(f"map_forward_thread: a {len(self.vars)}-d fragment applied to {len(indices)} indices")
        return simplify(self.thread_of(indices, 0 if rep is None else rep))

    def _thread_extent(self) -> int:
        return self.get_thread_size()

    def repeat(self, repeats, repeat_on_thread: bool = False, lower_dim_first: bool = True) -> Fragment:
        """TileLang's `Fragment.repeat`: a tile `repeats[d]` times larger along each dimension
        d made of copies of this one; copy number c goes to new threads (`repeat_on_thread`:
        thread + c * thread count) or to new registers (index + c * registers per thread). The
        copy number counts the last dimension fastest when `lower_dim_first`."""
        if isinstance(repeats, int) and not isinstance(repeats, bool):
            repeats = [repeats] if self.ndim == 1 else None
        if repeats is None or len(repeats) != self.ndim or any(
                isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in repeats):
            raise CompileError(f"Fragment.repeat: repeats must be {self.ndim} positive ints (one per dimension)")
        shape = [d * k for d, k in zip(self.shape, repeats)]
        vars_ = [Var(f"_i{k}", _dt.int32) for k in range(len(shape))]
        sub = {v: nv % d for v, nv, d in zip(self.vars, vars_, self.shape)}
        order = range(self.ndim - 1, -1, -1) if lower_dim_first else range(self.ndim)
        copy, stride = as_expr(0), 1
        for k in order:
            copy = copy + (vars_[k] // self.shape[k]) * stride
            stride *= repeats[k]
        thread = substitute(self.forward_thread, sub)
        index = [substitute(e, sub) for e in self.forward_index]
        if repeat_on_thread:
            thread = thread + copy * self._thread_extent()
        else:
            if len(index) != 1:
                raise CompileError("Fragment.repeat on registers needs a fragment with a 1-d register index")
            index = [index[0] + copy * self.output_shape()[0]]
        return Fragment(shape, forward_thread=thread, forward_index=index, replicate=int(self.replicate),
                        vars_=vars_, rep_var=self.rep_var)

    def _replicated(self, repeats: int) -> Fragment:
        """`frag.replicate(n)`: n times as many replicas, the new ones on new threads (replica r
        of the result is replica r % R of this fragment, shifted by (r // R) * thread count)."""
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise CompileError(f"Fragment.replicate: the factor must be a positive int, got {repeats!r}")
        R = int(self.replicate)
        rep = Var("_rep", _dt.int32)
        thread = substitute(self.forward_thread, {self.rep_var: rep % R}) + (rep // R) * self._thread_extent()
        return Fragment(self.shape, forward_thread=thread, forward_index=list(self.forward_index),
                        replicate=R * repeats, vars_=list(self.vars), rep_var=rep)

    def inverse(self) -> Layout:
        """TileLang's `Fragment.inverse()`: the layout from (*register index, thread) back to
        (*logical index, replica)."""
        n = len(self.vars)
        rep_in = Var(f"_i{n}", _dt.int32)
        thread = substitute(self.forward_thread, {self.rep_var: rep_in})
        lay = Layout([*self.shape, int(self.replicate)], forward_index=[*self.forward_index, thread],
                     vars_=[*self.vars, rep_in])
        return lay.inverse()

    _partial = False  # PartialFragment's replicas are addends: never equal to a plain Fragment's copies

    def is_equal(self, other) -> bool:
        return (isinstance(other, Fragment) and self._partial == other._partial
                and tuple(self.shape) == tuple(other.shape)
                and int(self.replicate) == int(other.replicate)
                and np.array_equal(self.thread_table(), other.thread_table())
                and np.array_equal(self.table(), other.table()))

    def __repr__(self) -> str:
        args = ", ".join(v.name for v in self.vars)
        rep = f", replicate={int(self.replicate)}" if self.replicate > 1 else ""
        outs = ", ".join(expr_str(e) for e in self.forward_index)
        return f"Fragment(shape={list(self.shape)}, ({args}) -> thread {expr_str(self.forward_thread)}, local ({outs}){rep})"
