"""Generic traversal. Nodes declare their child fields; a visitor or mutator only overrides the
node types it cares about (`visit_For`, `visit_BufferLoad`, ...)."""
from __future__ import annotations

import copy

from .buffer import BufferRegion
from .expr import BufferLoad, Call, Expr, Var
from .stmt import Stmt


def _expr_fields(e: Expr):
    if isinstance(e, Call):
        return ("args",)
    if isinstance(e, BufferLoad):
        return ("indices",)
    return e._fields


class Visitor:
    """Walks statements and expressions in order. Override `visit_<Class>`; call
    `self.generic_visit(node)` to continue into children."""

    def visit(self, node):
        if node is None:
            return
        m = getattr(self, "visit_" + type(node).__name__, None)
        if m is not None:
            return m(node)
        return self.generic_visit(node)

    def generic_visit(self, node):
        if isinstance(node, Expr):
            for f in _expr_fields(node):
                self._visit_value(getattr(node, f))
        elif isinstance(node, Stmt):
            for f in node._fields:
                self._visit_value(getattr(node, f))
        elif isinstance(node, BufferRegion):
            for s, e in node.region:
                self.visit(s)
                if isinstance(e, Expr):
                    self.visit(e)

    def _visit_value(self, v):
        if isinstance(v, (Expr, Stmt, BufferRegion)):
            self.visit(v)
        elif isinstance(v, (list, tuple)):
            for x in v:
                self._visit_value(x)
        elif isinstance(v, dict):
            for x in v.values():
                self._visit_value(x)


class Mutator:
    """Rebuilds nodes whose children changed; unchanged subtrees are shared."""

    def visit(self, node):
        if node is None:
            return None
        m = getattr(self, "visit_" + type(node).__name__, None)
        if m is not None:
            return m(node)
        return self.generic_visit(node)

    def generic_visit(self, node):
        if isinstance(node, BufferRegion):
            changed = False
            region = []
            for s, e in node.region:
                s2 = self.visit(s)
                e2 = self.visit(e) if isinstance(e, Expr) else e
                changed |= s2 is not s or e2 is not e
                region.append((s2, e2))
            return BufferRegion(node.buffer, region) if changed else node
        fields = _expr_fields(node) if isinstance(node, Expr) else node._fields
        updates = {}
        for f in fields:
            old = getattr(node, f)
            new = self._mutate_value(old)
            if new is not old:
                updates[f] = new
        if not updates:
            return node
        if isinstance(node, Stmt):
            return node.with_fields(**updates)
        out = copy.copy(node)
        for f, v in updates.items():
            setattr(out, f, v)
        return out

    def _mutate_value(self, v):
        if isinstance(v, (Expr, Stmt, BufferRegion)):
            return self.visit(v)
        if isinstance(v, (list, tuple)):
            new = [self._mutate_value(x) for x in v]
            if all(a is b for a, b in zip(new, v)):
                return v
            return type(v)(new) if isinstance(v, tuple) else new
        if isinstance(v, dict):
            new = {k: self._mutate_value(x) for k, x in v.items()}
            if all(new[k] is v[k] for k in v):
                return v
            return new
        return v


class Substituter(Mutator):
    def __init__(self, mapping: dict):
        self.mapping = mapping  # Var -> Expr (keyed by the Var object)

    def visit_Var(self, v: Var):
        return self.mapping.get(v, v)


def substitute(node, mapping: dict):
    if not mapping:
        return node
    return Substituter(mapping).visit(node)


class _VarCollector(Visitor):
    def __init__(self):
        self.vars: dict[int, Var] = {}

    def visit_Var(self, v: Var):
        self.vars.setdefault(v.uid, v)


def collect_vars(node) -> list[Var]:
    c = _VarCollector()
    c.visit(node)
    return list(c.vars.values())


def uses_var(node, var: Var) -> bool:
    return any(v is var for v in collect_vars(node))


class _LoadCollector(Visitor):
    def __init__(self):
        self.loads = []

    def visit_BufferLoad(self, e):
        self.loads.append(e)
        self.generic_visit(e)


def collect_loads(node) -> list[BufferLoad]:
    c = _LoadCollector()
    c.visit(node)
    return c.loads


def walk(node, fn):
    """Call fn on every statement and expression under node (pre-order)."""

    class _W(Visitor):
        def visit(self, n):
            if n is None:
                return
            fn(n)
            m = getattr(self, "visit_" + type(n).__name__, None)
            if m is not None:
                return m(n)
            return self.generic_visit(n)

    _W().visit(node)
