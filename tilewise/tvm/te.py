"""tvm.te names TileLang programs use."""
from __future__ import annotations

from ..ir.dtype import as_dtype
from ..ir.expr import Var
from ..language.math import max, min  # noqa: A004, F401


def var(name: str = "v", dtype="int32") -> Var:
    """A symbolic integer (a dynamic dimension, like T.dynamic)."""
    return Var(name, as_dtype(dtype))
