"""Shapes of a kernel's outputs computed from its inputs' sizes, for torch's fake tensors.

Under `torch.compile` the sizes of the inputs may be SymInts: the expressions of a kernel's
dynamic dimensions (T.dynamic / T.symbolic and arithmetic on them) are evaluated with Python
operators, so an output of shape (n * 2, ceildiv(m, 4)) gets SymInt sizes that stay symbolic."""
from __future__ import annotations

import torch

from ..ir.expr import BinOp, Call, Cast, Const, Expr, Select, Var


class ShapeError(ValueError):
    """An input does not fit the kernel's parameter (raised at trace time, before any run)."""


def evaluate(e, env: dict):
    """The value of an integer shape expression, with Vars taken from `env` (ints or SymInts).
    Raises KeyError (the Var) when a variable is not bound."""
    if isinstance(e, int):
        return e
    if isinstance(e, Const):
        return e.value
    if isinstance(e, Var):
        if e not in env:
            raise KeyError(e)
        return env[e]
    if isinstance(e, Cast):
        return evaluate(e.value, env)
    if isinstance(e, BinOp):
        a, b = evaluate(e.a, env), evaluate(e.b, env)
        op = e.op
        if op == "add":
            return a + b
        if op == "sub":
            return a - b
        if op == "mul":
            return a * b
        if op in ("floordiv", "div") and e.dtype.is_int:
            return a // b
        if op == "floormod":
            return a % b
        if op == "min":
            return torch.sym_min(a, b)
        if op == "max":
            return torch.sym_max(a, b)
    if isinstance(e, Call) and e.name in ("min", "max") and len(e.args) == 2:
        a, b = (evaluate(x, env) for x in e.args)
        return torch.sym_min(a, b) if e.name == "min" else torch.sym_max(a, b)
    if isinstance(e, Select):
        raise ShapeError(f"the shape expression {e} (a conditional) cannot be computed for torch's fake tensors")
    raise ShapeError(f"the shape expression {e} cannot be computed for torch's fake tensors")


def bind_inputs(params, in_idx, args) -> dict:
    """Var -> size for every dynamic dimension the input tensors (and scalar arguments) give;
    checks static dimensions, dimension counts and dtypes like the kernel's own binder."""
    from ..ir.buffer import Buffer
    from ..ir.dtype import as_dtype

    env: dict = {}
    deferred = []
    for i, a in zip(in_idx, args):
        p = params[i]
        if isinstance(p, Var):
            if p.dtype.is_int:
                if p in env:
                    torch._check(env[p] == a, lambda p=p: f"argument {p.name} disagrees with a tensor's shape")
                env[p] = a
            continue
        if not isinstance(p, Buffer):
            continue
        if not isinstance(a, torch.Tensor):
            raise TypeError(f"argument {p.name}: expected a tensor, found {type(a).__name__}")
        if as_dtype(a.dtype) != p.dtype:
            raise TypeError(f"argument {p.name}: expected dtype {p.dtype}, found {as_dtype(a.dtype)}")
        if a.dim() != len(p.shape):
            raise ShapeError(f"argument {p.name}: expected {len(p.shape)} dimensions, found shape {tuple(a.shape)}")
        for k, (want, got) in enumerate(zip(p.shape, a.shape)):
            if isinstance(want, int) or isinstance(want, Const):
                w = want if isinstance(want, int) else want.value
                torch._check(got == w, lambda p=p, k=k, w=w, a=a: (
                    f"argument {p.name}: dimension {k} should be {w}, found shape {tuple(a.shape)}"))
            elif isinstance(want, Var):
                if want in env:
                    torch._check(env[want] == got, lambda p=p, k=k, want=want: (
                        f"argument {p.name}: dimension {k} ({want.name}) differs from an earlier argument's"))
                else:
                    env[want] = got
            else:
                deferred.append((p, k, want, got))
    for p, k, want, got in deferred:
        try:
            v = evaluate(want, env)
        except KeyError:
            raise ShapeError(f"argument {p.name}: dimension {k} is {want}, which no argument's shape determines") \
                from None
        torch._check(v == got, lambda p=p, k=k, want=want: f"argument {p.name}: dimension {k} should be {want}")
    return env


def output_shape(p, env: dict) -> list:
    """The sizes of output parameter `p` (ints or SymInts)."""
    out = []
    for d in p.shape:
        try:
            out.append(evaluate(d, env))
        except KeyError as e:
            raise ShapeError(f"output {p.name}: its dimension {d} is not determined by the inputs "
                             f"({e.args[0].name} is unbound)") from None
    return out


def check_expressible(params, in_idx, out_idx) -> None:
    """At registration: every output dimension must be computable from the inputs, so the fake
    implementation never fails for a reason the kernel itself would not."""
    from ..ir.buffer import Buffer
    from ..ir.visitor import collect_vars

    bound: set = set()
    for i in in_idx:
        p = params[i]
        if isinstance(p, Var):
            bound.add(p.uid)
        elif isinstance(p, Buffer):
            for d in p.shape:
                if isinstance(d, Var):
                    bound.add(d.uid)
    for i in out_idx:
        p = params[i]
        for d in p.shape:
            if isinstance(d, Expr):
                for v in collect_vars(d):
                    if v.uid not in bound:
                        raise ShapeError(f"output {p.name}: its dimension {d} uses {v.name}, which no input's shape or "
                                         "scalar argument gives; torch needs output sizes from the inputs")
                evaluate_probe(d, p)


def evaluate_probe(d, p) -> None:
    """Reject (at registration) expression kinds the fake implementation cannot evaluate."""
    from ..ir.visitor import collect_vars

    env = {v: 7 for v in collect_vars(d)}
    try:
        evaluate(d, env)
    except ZeroDivisionError:
        pass
    except ShapeError as e:
        raise ShapeError(f"output {p.name}: {e}") from None
