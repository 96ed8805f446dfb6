"""TileLang's `tilelang.transform.simplify_prim_func` / `apply_simplify`, which run its Simplify
pass with `simplify_arguments=True` on a prim_func. tilewise simplifies index expressions in its
own pass lists when compiling (simplify_indices); what these do here is the other half of
TileLang's pass: tensor parameters the body never touches are dropped from the signature (the
kernel is then called without them: TileLang's SIMT GEMV passes `A, B, C` to a kernel declared
with `A, B, Bias, C` when built without bias). Scalar parameters stay, as in TileLang, and so does
a tensor whose shape is the only one to declare a symbolic dimension the rest of the function
uses (TileLang keeps buffers whose variables other definitions use)."""
from __future__ import annotations

import functools
from collections.abc import Callable

from ..ir.buffer import Buffer
from ..ir.expr import Expr
from ..ir.stmt import PrimFunc
from ..ir.visitor import collect_vars
from .written_globals import accessed_globals


def simplify_prim_func(func: Callable) -> Callable:
    """Decorates a prim_func factory: the function it returns goes through apply_simplify."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return apply_simplify(func(*args, **kwargs))

    return wrapper


def apply_simplify(func, inline_let: bool = False):
    """The prim_func without the tensor parameters its body never touches (see the module doc)."""
    if not isinstance(func, PrimFunc):
        return func
    n_ws = int(func.attrs.get("tilewise_workspaces", 0))  # T.alloc_global buffers: always last, kept
    declared = func.params[:len(func.params) - n_ws]
    touched = {id(b) for b in accessed_globals(func)}
    keep = {id(p) for p in declared if not isinstance(p, Buffer) or id(p) in touched}

    def dims(params) -> set[int]:
        out = set()
        for p in params:
            if isinstance(p, Buffer):
                for d in (*p.shape, *(p.explicit_strides or ())):
                    if isinstance(d, Expr):
                        out.update(v.uid for v in collect_vars(d))
            else:
                out.add(p.uid)
        return out

    needed = dims(declared) & {v.uid for v in collect_vars(func.body)}
    kept = dims([p for p in declared if id(p) in keep])
    for p in declared:
        if id(p) not in keep and (dims([p]) & needed) - kept:
            keep.add(id(p))
            kept |= dims([p])
    if len(keep) == len(declared):
        return func
    params = [p for p in declared if id(p) in keep] + list(func.params[len(declared):])
    return PrimFunc(func.name, params, func.body, func.attrs, func.span)
