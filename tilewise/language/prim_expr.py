"""`T.PrimExpr` for isinstance / issubclass checks: tilewise's expressions (ir.expr.Expr), vector
values (ir/vector.py: TVM's expressions of several lanes) and, as in TileLang, the name of a
`T.alloc_var` scalar, which a kernel uses as a value (`x + 1`,
`A[i] = x`) although tilewise keeps it as its one-element `local.var` buffer."""
from __future__ import annotations

from ..ir.buffer import Buffer
from ..ir.expr import Expr
from ..ir.vector import Vector


class _PrimExprType(type):
    def __instancecheck__(cls, x) -> bool:
        return isinstance(x, (Expr, Vector)) or (isinstance(x, Buffer) and x.is_var)

    def __subclasscheck__(cls, sub) -> bool:
        return isinstance(sub, type) and issubclass(sub, (Expr, Vector))


class PrimExpr(metaclass=_PrimExprType):
    """Not instantiated: a type to test values against (see the module doc)."""

    def __new__(cls, *args, **kwargs):
        raise TypeError("T.PrimExpr is a type to test values against; build expressions with operators and T.*")
