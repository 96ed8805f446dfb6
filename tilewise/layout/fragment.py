"""Fragment: how a register tile is distributed over a block's threads:
logical index -> (thread, local register index), with `replicate` copies of each element."""
from __future__ import annotations

import numpy as np

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.evaluate import evaluate
from ..ir.expr import Var, as_expr
from ..ir.printer import expr_str
from ..ir.simplify import simplify
from ..ir.visitor import substitute
from .layout import Layout, _as_list, call_with_vars


class Fragment(Layout):
    """`T.Fragment(shape, forward_thread_fn=lambda i, j: ..., forward_index_fn=lambda i, j: ...,
    replicate=1)`. With replicate > 1 the thread function takes an extra replica index."""

    def __init__(self, shape, forward_thread_fn=None, forward_index_fn=None, replicate: int = 1,
                 *, forward_thread=None, forward_index=None, vars_=None, rep_var=None, forward_fn=None):
        if forward_fn is not None and forward_thread_fn is None:
            # TileLang's combined form: forward_fn returns (thread, index...)
            forward_thread_fn = forward_fn
        super().__init__(shape, forward_index_fn, forward_index=forward_index, vars_=vars_)
        if not isinstance(replicate, int) or replicate < 1:
            raise CompileError(f"T.Fragment: replicate must be a positive int, got {replicate!r}")
        self.replicate = replicate
        self.rep_var = rep_var if rep_var is not None else Var("_rep", _dt.int32)
        if forward_thread is None:
            if forward_thread_fn is None:
                raise CompileError("T.Fragment needs forward_thread_fn")
            import inspect

            try:
                nparams = len(inspect.signature(forward_thread_fn).parameters)
            except (TypeError, ValueError):
                nparams = len(self.vars)
            takes_rep = replicate > 1 or nparams == len(self.vars) + 1
            args = self.vars + ([self.rep_var] if takes_rep else [])
            out = call_with_vars(forward_thread_fn, args)
            out = _as_list(out)
            forward_thread = out[0]
            if forward_index_fn is None and forward_index is None and len(out) > 1:
                self.forward_index = [simplify(as_expr(e), self.ranges()) for e in out[1:]]
        r = self.ranges()
        if replicate > 1:
            r[self.rep_var] = (0, replicate - 1)
        self.forward_thread = simplify(as_expr(forward_thread), r)

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

    def __repr__(self) -> str:
        args = ", ".join(v.name for v in self.vars)
        rep = f", replicate={self.replicate}" if self.replicate > 1 else ""
        outs = ", ".join(expr_str(e) for e in self.forward_index)
        return f"Fragment(shape={list(self.shape)}, ({args}) -> thread {expr_str(self.forward_thread)}, local ({outs}){rep})"
