"""Building hand-written thread IR for the emulator tests."""
from __future__ import annotations

import sys

from tilewise.ir import BufferLoad, Call, Evaluate, Kernel, PrimFunc, Span, Var, seq
from tilewise.ir import dtype as dt


def located(stmt):
    """stmt with the caller's line as its source position (nested statements inherit it)."""
    f = sys._getframe(1)
    stmt.span = Span(f.f_code.co_filename, f.f_lineno)
    return stmt


def addr(buf, *idx):
    return Call("address_of", [BufferLoad(buf, idx)], dt.handle)


def intrin(name, *args, **attrs):
    return Evaluate(Call(name, list(args), dt.handle, attrs))


def call(name, dtype, *args, **attrs):
    return Call(name, list(args), dt.as_dtype(dtype), attrs)


def kernel(params, grid, threads, build, name="k") -> PrimFunc:
    """A function with one kernel; build(block_vars, thread_vars) returns the body statements."""
    bvars = [Var(f"b{'xyz'[d]}") for d in range(len(grid))]
    tvars = [Var(f"t{'xyz'[d]}") for d in range(len(threads))]
    body = build(bvars, tvars)
    if isinstance(body, (list, tuple)):
        body = seq(body)
    return PrimFunc(name, params, Kernel(bvars, grid, threads, tvars, body))
