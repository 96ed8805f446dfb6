"""The emulator's scalar arithmetic: the IR's one definition of every scalar operator
(ir/scalar_ops.py), applied to numpy values holding one value per lane (or a 0-d value shared by
every lane), plus the few emulator-only helpers (constants, dp4a)."""
from __future__ import annotations

import numpy as np

from ..ir import scalar_ops
from ..ir.dtype import DataType

np_dtype = scalar_ops.numpy_dtype
astype = scalar_ops.as_type
binary_fn = scalar_ops.binary  # KeyError: the operator is not defined on the type
compare_fn = scalar_ops.compare
unary_fn = scalar_ops.unary
cast_fn = scalar_ops.cast
math_fn = scalar_ops.math_call


def const(value, dt: DataType):
    """The 0-d numpy value of a constant or scalar argument of type dt: a float rounds once, as
    the folder rounds it; an integer out of dt's range is an error (Const values are in range)."""
    if dt.is_int or dt.kind == "handle":
        return np.asarray(value, np_dtype(dt))[()]
    return scalar_ops.value(value, dt)


def dp4a(a, b, c):
    """__dp4a(a, b, c) on int32 values: c plus the dot product of the four signed bytes of a and b."""
    acc = np.asarray(c, dtype=np.int64)
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    for k in range(4):
        ak = ((a >> (8 * k)) & 0xFF).astype(np.int64)
        bk = ((b >> (8 * k)) & 0xFF).astype(np.int64)
        ak = np.where(ak >= 128, ak - 256, ak)
        bk = np.where(bk >= 128, bk - 256, bk)
        acc = acc + ak * bk
    return astype(acc, np.dtype(np.int32))



def fma(a, b, c, npdt: np.dtype):
    """a * b + c rounded once to npdt (float32 or float64), per lane (ir/scalar_ops.py)."""
    if npdt == np.float64:
        return scalar_ops.fma64(a, b, c)
    return scalar_ops.fma32(a, b, c)
