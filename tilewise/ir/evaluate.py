"""Evaluates expressions on numpy arrays (element-wise over broadcast variables), with the IR's
one scalar semantics (ir/scalar_ops.py): used for layout tables, grid extents and property tests."""
from __future__ import annotations

import numpy as np

from ..errors import InternalError
from . import scalar_ops
from .dtype import DataType, int64
from .expr import BinOp, BufferLoad, Call, Cast, Compare, Const, Select, UnaryOp, Var


def evaluate(e, env: dict, loads=None, int_dtype: DataType | None = int64):
    """Value of `e` with Vars bound by `env` (Var -> array or scalar). `loads(load)` resolves
    BufferLoads when given.

    Integer arithmetic is done in `int_dtype`, int64 by default: layout tables and grid extents
    are index arithmetic that must not wrap at an IR type's width (casts between integer types
    are then no-ops). With int_dtype=None every expression is computed in its own type, wrapping
    exactly as a kernel does."""
    if isinstance(e, (int, float, bool)):
        return e
    with np.errstate(all="ignore"):
        return _Evaluator(env, loads, int_dtype).eval(e)


class _Evaluator:
    # one method on purpose: layout inference evaluates thousands of small index expressions per
    # kernel, and every extra Python call per node shows in the compile time
    def __init__(self, env: dict, loads, int_dtype: DataType | None):
        self.env = env
        self.loads = loads
        self.int_dtype = int_dtype

    def _fma(self, e: BinOp, dt: DataType):
        """A float32/float64 multiply-add in one expression, rounded once (transform/contract_fma.py)."""
        a, b = e.a, e.b
        if type(a) is BinOp and a.op == "mul" and a.dtype == dt:
            x, y, c = self.eval(a.a), self.eval(a.b), self.eval(b)
            if e.op == "sub":
                c = -c
        elif type(b) is BinOp and b.op == "mul" and b.dtype == dt:
            x, y, c = self.eval(b.a), self.eval(b.b), self.eval(a)
            if e.op == "sub":
                x = -x
        else:
            return None
        if dt.name == "float32":
            return scalar_ops.fma32(x, y, c)
        r = np.vectorize(lambda p, q, s: scalar_ops.fold_fma(dt, p, q, s), otypes=[np.float64])(x, y, c)
        return r if np.ndim(r) else np.float64(r)

    def eval(self, e):
        """e's value, as a numpy value of the type e is computed in (int_dtype for integers)."""
        if isinstance(e, (int, float, bool)):
            return e
        dt = e.dtype
        wide = self.int_dtype
        if wide is not None and dt.is_int:
            dt = wide
        t = type(e)
        if t is BinOp:
            if e.op in ("add", "sub") and dt.name in ("float32", "float64"):
                r = self._fma(e, dt)
                if r is not None:
                    return r
            return scalar_ops.binary(e.op, dt)(self.eval(e.a), self.eval(e.b))
        if t is Const:
            if dt is int64 and -(2**63) <= e.value < 2**63:
                return np.int64(e.value)
            return scalar_ops.value(e.value, dt)
        if t is Var:
            try:
                v = self.env[e]
            except KeyError:
                raise InternalError(f"evaluate: unbound variable {e.name}") from None
            return scalar_ops.as_type(v, scalar_ops.numpy_dtype(dt))
        if t is Compare or t is UnaryOp or t is Cast:
            src = e.value.dtype if t is Cast else e.a.dtype
            if wide is not None and src.is_int:
                src = wide
            if t is Compare:
                return scalar_ops.compare(e.op, src)(self.eval(e.a), self.eval(e.b))
            if t is UnaryOp:
                return scalar_ops.unary(e.op, src)(self.eval(e.a))
            return scalar_ops.cast(src, dt)(self.eval(e.value))
        if t is Select:
            return np.where(self.eval(e.cond), self.eval(e.a), self.eval(e.b))
        if t is Call:
            fn = scalar_ops.math_call(e.name, dt, len(e.args))
            if fn is not None:
                return fn(*[self.eval(a) for a in e.args])
        if t is BufferLoad and self.loads is not None:
            return self.loads(e, [self.eval(i) for i in e.indices])
        raise InternalError(f"evaluate: unsupported expression {e!r}")
