"""TVM's TIR expression node classes TileLang re-exports in `T` (`T.IntImm`, `T.Add`, `T.Call`,
`T.BufferLoad`, ...), as views of tilewise's expression classes (ir/expr.py), so that user code's
`isinstance(x, T.IntImm)` and `T.IntImm("int32", 4)` work:

| T name | isinstance holds for | constructing |
| --- | --- | --- |
| IntImm / FloatImm | an integer / floating-point Const | `(dtype, value)`: the Const |
| StringImm | a Python str | `(value)`: the str (tilewise passes strings as attributes) |
| Add, Sub, Mul, Div, FloorDiv, FloorMod | the BinOp of that operator | `(a, b)`: the expression |
| Mod | (TVM's truncated remainder is no single node here: never) | `(a, b)`: T.truncmod |
| Min, Max | the BinOp `min` / `max` | `(a, b)`: the expression |
| EQ, NE, LT, LE, GT, GE | the Compare of that operator | `(a, b)` |
| Call, BufferLoad, PrimFunc | tilewise's Call / BufferLoad / PrimFunc | (tilewise's constructors) |
| SizeVar | a Var | `(name, dtype)`: a Var (a dimension bound at call time, as T.dynamic) |
| Range | (never) | `(begin, end)`: a Python range when both are constants |

Ramp and Broadcast are the vector values of language/vector_values.py (constructing one builds it,
isinstance holds for one). The other TVM node classes TileLang exports (Shuffle, Reduce, ProducerLoad, Any,
IterVar, CommReducer, AnyDType, ...) name constructs tilewise's IR does not have: isinstance is
false for everything, constructing one is a CompileError."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.expr import BinOp, Call, Compare, Const, Var, as_expr, binary, compare
from ..ir.expr import BufferLoad as BufferLoad  # noqa: PLC0414 - re-exported under TVM's name
from ..ir.stmt import PrimFunc as PrimFunc  # noqa: PLC0414
from .loops import py_scalar
from .vector_values import Broadcast as Broadcast  # noqa: PLC0414 - TVM's node classes, as vector values
from .vector_values import Ramp as Ramp  # noqa: PLC0414


class _NodeView(type):
    """A class whose isinstance test is a predicate on tilewise's nodes, and whose call builds one."""

    def __instancecheck__(cls, x) -> bool:
        return bool(cls._test(x))

    def __call__(cls, *args, **kwargs):
        return cls._make(*args, **kwargs)


def _node(name: str, test, make) -> type:
    return _NodeView(name, (), {"_test": staticmethod(test), "_make": staticmethod(make),
                                "__doc__": f"TVM's {name}, as a view of tilewise's expression classes (tir_nodes.py)."})


def _ex(v):
    return as_expr(py_scalar(v))


def _binop(op: str):
    return lambda x: isinstance(x, BinOp) and x.op == op


def _imm(dtype, value, span=None):
    return Const(value, _dt.as_dtype(dtype))


IntImm = _node("IntImm", lambda x: isinstance(x, Const) and x.dtype.is_int, _imm)
FloatImm = _node("FloatImm", lambda x: isinstance(x, Const) and x.dtype.is_float, _imm)
StringImm = _node("StringImm", lambda x: isinstance(x, str), lambda value, span=None: str(value))
Add = _node("Add", _binop("add"), lambda a, b, span=None: binary("add", _ex(a), _ex(b)))
Sub = _node("Sub", _binop("sub"), lambda a, b, span=None: binary("sub", _ex(a), _ex(b)))
Mul = _node("Mul", _binop("mul"), lambda a, b, span=None: binary("mul", _ex(a), _ex(b)))
Div = _node("Div", _binop("div"), lambda a, b, span=None: binary("div", _ex(a), _ex(b)))
FloorDiv = _node("FloorDiv", _binop("floordiv"), lambda a, b, span=None: binary("floordiv", _ex(a), _ex(b)))
FloorMod = _node("FloorMod", _binop("floormod"), lambda a, b, span=None: binary("floormod", _ex(a), _ex(b)))


def _truncmod(a, b, span=None):
    a, b = _ex(a), _ex(b)
    return a - binary("div", a, b) * b


Mod = _node("Mod", lambda x: False, _truncmod)
Min = _node("Min", _binop("min"), lambda a, b, span=None: binary("min", _ex(a), _ex(b)))
Max = _node("Max", _binop("max"), lambda a, b, span=None: binary("max", _ex(a), _ex(b)))


def _cmp(op: str) -> type:
    return _node(op.upper(), lambda x: isinstance(x, Compare) and x.op == op,
                 lambda a, b, span=None: compare(op, _ex(a), _ex(b)))


EQ, NE, LT, LE, GT, GE = (_cmp(op) for op in ("eq", "ne", "lt", "le", "gt", "ge"))
SizeVar = _node("SizeVar", lambda x: isinstance(x, Var),
                lambda name, dtype="int32", span=None: Var(str(name), _dt.as_dtype(dtype)))


def _range(begin, end=None, span=None):
    b, e = (0, py_scalar(begin)) if end is None else (py_scalar(begin), py_scalar(end))
    if not (isinstance(b, int) and isinstance(e, int)):
        raise CompileError("T.Range: tilewise takes loop extents directly (T.serial(n), T.Parallel(n)); a Range of "
                           "non-constant bounds is not supported")
    return range(b, e)


Range = _node("Range", lambda x: False, _range)


def _absent(name: str, why: str) -> type:
    def make(*args, **kwargs):
        raise CompileError(f"T.{name}: {why}")

    return _node(name, lambda x: False, make)


_LANES = "a vector shuffle is not supported: tilewise's vector values (T.Ramp, T.Broadcast, language/" \
         "vector_values.py) are lanes of scalars; take lanes with T.extract_lane and build a vector from them " \
         "(T.float32x4(a, b, c, d))"
Shuffle = _absent("Shuffle", _LANES)
Reduce = _absent("Reduce", "TVM's reduction node belongs to its schedulable blocks; use T.reduce_* or T.comm_reducer")
ProducerLoad = _absent("ProducerLoad", "TVM's tensor-expression loads are not part of tilewise's IR")
Any = _absent("Any", "TVM's `Any` dimension is not supported; a dimension bound at call time is T.dynamic(name)")
IterVar = _absent("IterVar", "loops bind their own variables (T.serial, T.Parallel, T.Kernel); IterVars are "
                              "TVM's")
CommReducer = _absent("CommReducer", "the commutative reducer is T.comm_reducer(combiner, identity)")
AnyDType = _absent("AnyDType", "a dtype wildcard is a type-checking helper of TileLang's, not a value in a kernel")

__all__ = ["Add", "Any", "AnyDType", "Broadcast", "BufferLoad", "Call", "CommReducer", "Div", "EQ", "FloatImm",
           "FloorDiv", "FloorMod", "GE", "GT", "IntImm", "IterVar", "LE", "LT", "Max", "Min", "Mod", "Mul", "NE",
           "PrimFunc", "ProducerLoad", "Ramp", "Range", "Reduce", "Shuffle", "SizeVar", "StringImm", "Sub"]
