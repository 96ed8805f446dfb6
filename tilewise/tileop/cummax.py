"""T.cummax(src, dst=None, dim=0, reverse=False): inclusive running maximum of a shared or
fragment tile along one dimension (a running maximum from the end with reverse=True), as
TileLang's scan operator. The scan is T.cumsum's (tileop/cumsum.py) with max as its operator,
which ignores a NaN operand like T.max."""
from __future__ import annotations

from ..ir.builder import emit
from ..ir.expr import Const, Expr, binary
from .cumsum import CumSum, scan_operands
from .reduce import init_value


class CumMax(CumSum):
    op_name = "cummax"

    def combine(self, running: Expr, x: Expr) -> Expr:
        return binary("max", running, x)

    def identity(self, dt) -> Const:
        return init_value("max", dt)


def cummax(src, dst=None, dim: int = 0, reverse: bool = False) -> None:
    """Inclusive running maximum of src along dim into dst (src itself when dst is None)."""
    emit(scan_operands(CumMax, "T.cummax", src, dst, dim, reverse))
