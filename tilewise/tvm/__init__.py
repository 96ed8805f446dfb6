"""A stand-in for the parts of TVM that TileLang programs reach through `from tilelang import tvm`
(then `from tvm import DataType, tir`): dtypes, `tir.const` and the expression helpers kernels
call while being parsed, `te.var`, and `target.Target`. It is tilewise's own IR underneath, not
TVM; TVM's compiler APIs (IRModule, transforms, arith) are not here.

When no real TVM is installed, importing tilewise registers this module as `tvm` (and
`tvm.tir`, `tvm.te`, `tvm.target`, `tvm.testing`), as importing TileLang puts its bundled TVM on the path; an
installed TVM is left alone."""
from __future__ import annotations

import importlib.util
import sys

from ..ir.dtype import DataType as _DataType
from ..ir.dtype import as_dtype
from . import target, te, testing, tir  # noqa: F401 - tvm.target, tvm.te, tvm.testing, tvm.tir


class _DataTypeMeta(type):
    def __instancecheck__(cls, obj) -> bool:
        return isinstance(obj, _DataType)


class DataType(metaclass=_DataTypeMeta):
    """TVM's DataType("float16"): tilewise's dtype object (`.bits`, `.lanes`, `str()`)."""

    def __new__(cls, dtype):
        return as_dtype(dtype)


class TVMError(RuntimeError):
    pass


def _register() -> None:
    if "tvm" in sys.modules:
        return
    try:
        if importlib.util.find_spec("tvm") is not None:
            return  # a real TVM is installed
    except (ImportError, ValueError):
        pass
    me = sys.modules[__name__]
    sys.modules["tvm"] = me
    for name in ("tir", "te", "target", "testing"):
        sys.modules[f"tvm.{name}"] = getattr(me, name)


_register()
