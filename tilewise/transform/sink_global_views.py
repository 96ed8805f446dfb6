"""CUDA: views of global tensors declared before `with T.Kernel` (T.reshape / T.view at function
level) move into every kernel that follows, since a kernel is the only place device code runs."""
from __future__ import annotations

from ..ir.stmt import Allocate, Kernel, PrimFunc, SeqStmt, seq


def sink_global_views(func: PrimFunc) -> PrimFunc:
    stmts = func.body.stmts if isinstance(func.body, SeqStmt) else [func.body]
    if not any(isinstance(s, Allocate) for s in stmts):
        return func
    views: list[Allocate] = []
    out = []
    for s in stmts:
        if isinstance(s, Allocate):
            views.append(s)
        elif isinstance(s, Kernel) and views:
            out.append(s.with_fields(body=seq(list(views) + [s.body])))
        else:
            out.append(s)
    return func.with_body(seq(out))
