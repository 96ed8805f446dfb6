"""Evaluates expressions on numpy arrays (element-wise over broadcast variables): used for layout
tables, property tests and, later, the emulator."""
from __future__ import annotations

import numpy as np

from ..errors import InternalError
from .expr import BinOp, BufferLoad, Call, Cast, Compare, Const, Expr, Select, UnaryOp, Var

_NP_BIN = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "bitand": np.bitwise_and,
    "bitor": np.bitwise_or, "bitxor": np.bitwise_xor, "shl": np.left_shift, "shr": np.right_shift,
    "min": np.minimum, "max": np.maximum, "and": np.logical_and, "or": np.logical_or,
}  # fmt: skip
_NP_CMP = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
           "eq": np.equal, "ne": np.not_equal}  # fmt: skip
_NP_CALL = {
    "exp": np.exp, "exp2": np.exp2, "log": np.log, "log2": np.log2, "log10": np.log10, "sqrt": np.sqrt,
    "tanh": np.tanh, "floor": np.floor, "ceil": np.ceil, "trunc": np.trunc, "abs": np.abs, "sin": np.sin,
    "cos": np.cos, "pow": np.power, "max": np.maximum, "min": np.minimum,
}  # fmt: skip


def evaluate(e, env: dict, loads=None):
    """Value of `e` with Vars bound by `env` (Var -> array or scalar). `loads(load)` resolves
    BufferLoads when given. Integer arithmetic is done in int64."""
    if isinstance(e, (int, float, bool)):
        return e
    if isinstance(e, Const):
        return e.value
    if isinstance(e, Var):
        try:
            return env[e]
        except KeyError:
            raise InternalError(f"evaluate: unbound variable {e.name}") from None
    if isinstance(e, BinOp):
        a = _arr(evaluate(e.a, env, loads), e.a)
        b = _arr(evaluate(e.b, env, loads), e.b)
        if e.op in _NP_BIN:
            return _NP_BIN[e.op](a, b)
        if e.op == "floordiv":
            return np.floor_divide(a, b)
        if e.op == "floormod":
            return np.mod(a, b)
        if e.op == "div":
            if e.dtype.is_int:
                q = np.floor_divide(np.abs(a), np.abs(b))
                return np.where((a < 0) != (b < 0), -q, q)
            return np.true_divide(a, b)
        if e.op == "truncmod":
            return np.fmod(a, b)
    if isinstance(e, Compare):
        return _NP_CMP[e.op](evaluate(e.a, env, loads), evaluate(e.b, env, loads))
    if isinstance(e, UnaryOp):
        a = evaluate(e.a, env, loads)
        if e.op == "neg":
            return np.negative(a)
        if e.op == "not":
            return np.logical_not(a)
        return np.invert(_arr(a, e.a))
    if isinstance(e, Cast):
        v = evaluate(e.value, env, loads)
        if e.dtype.is_int and e.value.dtype.is_float:
            v = np.trunc(v)
        return np.asarray(v).astype(np.int64 if e.dtype.is_int else e.dtype.numpy)
    if isinstance(e, Select):
        c = evaluate(e.cond, env, loads)
        return np.where(c, evaluate(e.a, env, loads), evaluate(e.b, env, loads))
    if isinstance(e, Call) and e.name in _NP_CALL:
        return _NP_CALL[e.name](*[evaluate(a, env, loads) for a in e.args])
    if isinstance(e, BufferLoad) and loads is not None:
        return loads(e, [evaluate(i, env, loads) for i in e.indices])
    raise InternalError(f"evaluate: unsupported expression {e!r}")


def _arr(v, e: Expr):
    if e.dtype.is_int and not isinstance(v, np.ndarray):
        return np.int64(v)
    return v
