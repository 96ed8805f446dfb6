"""What every tile operator shares: the statement base class, the registry, and the lowering
context handed to each operator's `lower_cpu` (and, later, `lower_cuda`)."""
from __future__ import annotations

from ..errors import CompileError
from ..ir.buffer import Buffer, BufferRegion
from ..ir.expr import Expr, Var
from ..ir.printer import expr_str
from ..ir.stmt import Stmt

REGISTRY: dict[str, type] = {}


def register(cls):
    REGISTRY[cls.op_name] = cls
    return cls


class TileOp(Stmt):
    """A tile-level statement. Subclasses set `op_name`, `_fields` (their IR children) and
    implement `lower_cpu`."""

    op_name = "tileop"

    def script(self) -> str:
        parts = []
        for f in self._fields:
            parts.append(f"{f}={_arg_str(getattr(self, f))}")
        for k, v in sorted(self.attrs().items()):
            parts.append(f"{k}={v!r}")
        return f"T.{self.op_name}({', '.join(parts)})"

    def attrs(self) -> dict:
        """Non-IR arguments (flags, kinds), included in printing and cache keys."""
        return {}

    def buffers(self) -> list[Buffer]:
        out = []
        for f in self._fields:
            v = getattr(self, f)
            if isinstance(v, BufferRegion):
                out.append(v.buffer)
        return out

    def lower_cpu(self, ctx: LowerContext) -> Stmt:
        raise CompileError(f"T.{self.op_name} has no CPU lowering yet", self.span)


def _arg_str(v) -> str:
    if isinstance(v, (Expr, BufferRegion)):
        return expr_str(v)
    if isinstance(v, Buffer):
        return v.name
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_arg_str(x) for x in v) + "]"
    return repr(v)


class LowerContext:
    """What an operator's lowering may ask: the target, value ranges of enclosing indices
    (to prove guards away), and fresh variables."""

    def __init__(self, target: str, ranges: dict | None = None):
        self.target = target
        self.ranges: dict = ranges if ranges is not None else {}
        self._n = 0

    def fresh(self, name: str = "i") -> Var:
        self._n += 1
        return Var(f"{name}{self._n}")
