"""A stand-in for the parts of TVM that TileLang programs reach through `from tilelang import tvm`
(then `from tvm import DataType, tir`): dtypes, `tir.const` and the expression helpers kernels
call while being parsed, `te.var`, and `target.Target`. It is tilewise's own IR underneath, not
TVM; TVM's compiler APIs (IRModule, transforms, arith) are not here.

`tvm.tirx` (the newer TVM's name of `tvm.tir`) is the same module.

When no real TVM is installed, importing tilewise registers this module as `tvm` (and
`tvm.tir`, `tvm.tirx`, `tvm.te`, `tvm.target`, `tvm.testing`), as importing TileLang puts its bundled TVM on the path; an
installed TVM is left alone."""
from __future__ import annotations

import importlib.util
import sys

from ..ir.dtype import DataTypeFactory as DataType  # noqa: F401 - TVM's DataType("float16")
from . import target, te, testing, tir  # noqa: F401 - tvm.target, tvm.te, tvm.testing, tvm.tir

# TileLang's TVM (0.1.9 on) renamed `tvm.tir` to `tvm.tirx`; its examples import either
tirx = tir
sys.modules[f"{__name__}.tirx"] = tir


class TVMError(RuntimeError):
    pass


# TileLang 0.1.x read its source post-processing hooks from TVM's global function registry
# under these names; registering one of them registers the callback (engine/callback.py).
_CALLBACK_NAMES = {
    "tilelang_callback_cuda_postproc": "cuda",
    "tilelang_callback_hip_postproc": "hip",
    "tilelang_callback_c_postproc": "c",
}


def register_func(func_name, f=None, override: bool = False):
    """`@tvm.register_func("tilelang_callback_cuda_postproc", override=True)`: the 0.1.x way to
    register a source post-processing callback. Other names are TVM's FFI registry, which is not
    here: an error naming the function."""
    from ..engine import callback

    if callable(func_name) and f is None:
        func_name, f = func_name.__name__, func_name
    kind = _CALLBACK_NAMES.get(func_name)
    if kind is None:
        raise NotImplementedError(f"tvm.register_func({func_name!r}): tilewise has no TVM global function registry; "
                                  f"only the source callbacks {', '.join(sorted(_CALLBACK_NAMES))} are accepted")
    return callback._register(kind, f, override)


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
    for name in ("tir", "tirx", "te", "target", "testing"):
        sys.modules[f"tvm.{name}"] = getattr(me, name)


_register()
