"""Statements. Every node lists its child fields in `_fields` so that visitors and mutators
can walk any node, including the tile operators defined in `tilewise.tileop`."""
from __future__ import annotations

import copy

from .buffer import Buffer
from .expr import Expr, Var, as_expr
from .span import current_span


class Stmt:
    _fields: tuple[str, ...] = ()

    def _init(self, span=None):
        """Every statement remembers the user's line it came from: `span` when given, else the
        line being parsed or lowered (ir/span.py)."""
        self.span = span if span is not None else current_span()

    def with_fields(self, **updates) -> Stmt:
        """A copy with the given child fields replaced (how mutators rebuild a node)."""
        out = copy.copy(self)
        for f, v in updates.items():
            setattr(out, f, v)
        return out

    def __repr__(self) -> str:
        # the printer walks statements: it imports this module
        from .printer import stmt_str

        return stmt_str(self)


class SeqStmt(Stmt):
    _fields = ("stmts",)

    def __init__(self, stmts, span=None):
        self._init(span)
        self.stmts = list(stmts)


class Evaluate(Stmt):
    _fields = ("value",)

    def __init__(self, value: Expr, span=None):
        self._init(span)
        self.value = value


class BufferStore(Stmt):
    _fields = ("indices", "value")

    def __init__(self, buffer: Buffer, indices, value: Expr, span=None):
        self._init(span)
        self.buffer = buffer
        self.indices = tuple(indices)
        self.value = value


class LetStmt(Stmt):
    """Binds `var = value` for the rest of the enclosing sequence."""

    _fields = ("value",)

    def __init__(self, var: Var, value: Expr, value_range: tuple | None = None, span=None):
        self._init(span)
        self.var = var
        self.value = value
        self.value_range = value_range  # known inclusive (lo, hi) when analysis cannot derive it


class Allocate(Stmt):
    """Declares a buffer (shared, fragment, local, var) for the rest of the enclosing sequence."""

    _fields = ("init",)

    def __init__(self, buffer: Buffer, init: Expr | None = None, span=None):
        self._init(span)
        self.buffer = buffer
        self.init = init


LOOP_KINDS = ("serial", "parallel", "unroll", "vectorized", "pipelined", "thread")


class For(Stmt):
    """`for var in range(start, start + extent)`. kind says who runs it: serial, parallel
    (T.Parallel: element-wise over a tile), unroll, vectorized, pipelined, thread (bound)."""

    _fields = ("start", "extent", "body")

    def __init__(self, var: Var, start, extent, kind: str, body: Stmt, annotations=None, span=None):
        self._init(span)
        assert kind in LOOP_KINDS, kind
        self.var = var
        self.start = as_expr(start)
        self.extent = as_expr(extent)
        self.kind = kind
        self.body = body
        self.annotations = dict(annotations or {})


class IfThenElse(Stmt):
    _fields = ("cond", "then_body", "else_body")

    def __init__(self, cond: Expr, then_body: Stmt, else_body: Stmt | None = None, span=None):
        self._init(span)
        self.cond = cond
        self.then_body = then_body
        self.else_body = else_body


class While(Stmt):
    _fields = ("cond", "body")

    def __init__(self, cond: Expr, body: Stmt, span=None):
        self._init(span)
        self.cond = cond
        self.body = body


class Break(Stmt):
    def __init__(self, span=None):
        self._init(span)


class Kernel(Stmt):
    """`with T.Kernel(*grid, threads=...) as (bx, ...)`: the body runs once per block."""

    _fields = ("grid", "threads", "body")

    def __init__(self, block_vars, grid, threads, thread_vars, body: Stmt, attrs=None, span=None):
        self._init(span)
        self.block_vars = list(block_vars)
        self.grid = [as_expr(g) for g in grid]
        self.threads = [int(t) for t in threads]
        self.thread_vars = list(thread_vars)
        self.body = body
        self.attrs = dict(attrs or {})


class Annotation(Stmt):
    """A scheduling hint with no effect on values: layouts, block rasterisation."""

    def __init__(self, kind: str, payload, span=None):
        self._init(span)
        self.kind = kind
        self.payload = payload


def seq(stmts) -> Stmt:
    flat = []
    for s in stmts:
        if s is None:
            continue
        if isinstance(s, SeqStmt):
            flat.extend(s.stmts)
        else:
            flat.append(s)
    if len(flat) == 1:
        return flat[0]
    return SeqStmt(flat)


class PrimFunc:
    """A kernel: its parameters (global buffers and scalars) and body."""

    def __init__(self, name: str, params, body: Stmt, attrs=None, span=None):
        self.name = name
        self.params = list(params)  # Buffer (global) or Var (scalar argument)
        self.body = body
        self.attrs = dict(attrs or {})
        self.span = span

    def with_body(self, body: Stmt) -> PrimFunc:
        return PrimFunc(self.name, self.params, body, self.attrs, self.span)

    def dynamic_vars(self) -> list[Var]:
        """Symbolic dimensions in parameter shapes (and T.StridedTensor strides), in order of first
        appearance."""
        # the visitor walks statements: it imports this module
        from .visitor import collect_vars

        seen: dict[int, Var] = {}
        scalars = {p.uid for p in self.params if isinstance(p, Var)}  # dimensions passed as arguments
        for p in self.params:
            if isinstance(p, Buffer):
                for d in (*p.shape, *(p.explicit_strides or ())):
                    if isinstance(d, Expr):
                        for v in collect_vars(d):
                            if v.uid not in scalars:
                                seen.setdefault(v.uid, v)
        return list(seen.values())

    def __repr__(self) -> str:
        # the printer walks statements: it imports this module
        from .printer import func_str

        return func_str(self)

    def script(self) -> str:
        return repr(self)
