"""Expressions. Python operators on them build IR, so user code such as `A[i, j] * 2 + 1`
parses by plain evaluation."""
from __future__ import annotations

import itertools

from ..errors import CompileError
from . import dtype as _dt
from .dtype import DataType, as_dtype
from .scalar_ops import fold_cast
from .span import current_span

_ids = itertools.count()


class Expr:
    """Base class. Subclasses are immutable after construction."""

    __slots__ = ("dtype", "span")
    _fields: tuple[str, ...] = ()

    def _init(self, dtype: DataType, span=None):
        self.dtype = dtype
        self.span = span if span is not None else current_span()

    # identity hashing: structural equality is `structural_equal`, `==` builds a comparison
    __hash__ = object.__hash__

    def __bool__(self):
        raise CompileError(
            f"the device value `{self}` cannot be used as a Python bool; "
            "use `if` on it directly inside the kernel, T.if_then_else, or `&` / `|`"
        )

    def __repr__(self) -> str:
        # the printer walks expressions: it imports this module
        from .printer import expr_str

        return expr_str(self)

    # arithmetic
    def __add__(self, o):
        return binary("add", self, o)

    def __radd__(self, o):
        return binary("add", o, self)

    def __sub__(self, o):
        return binary("sub", self, o)

    def __rsub__(self, o):
        return binary("sub", o, self)

    def __mul__(self, o):
        return binary("mul", self, o)

    def __rmul__(self, o):
        return binary("mul", o, self)

    def __truediv__(self, o):
        return binary("div", self, o)

    def __rtruediv__(self, o):
        return binary("div", o, self)

    def __floordiv__(self, o):
        return binary("floordiv", self, o)

    def __rfloordiv__(self, o):
        return binary("floordiv", o, self)

    def __mod__(self, o):
        return binary("floormod", self, o)

    def __rmod__(self, o):
        return binary("floormod", o, self)

    def __pow__(self, o):
        return call("pow", self, o)

    def __neg__(self):
        return unary("neg", self)

    def __pos__(self):
        return self

    def __abs__(self):
        return call("abs", self)

    def __invert__(self):
        return unary("not" if self.dtype.is_bool else "bitnot", self)

    def __and__(self, o):
        return binary("bitand", self, o)

    def __rand__(self, o):
        return binary("bitand", o, self)

    def __or__(self, o):
        return binary("bitor", self, o)

    def __ror__(self, o):
        return binary("bitor", o, self)

    def __xor__(self, o):
        return binary("bitxor", self, o)

    def __rxor__(self, o):
        return binary("bitxor", o, self)

    def __lshift__(self, o):
        return binary("shl", self, o)

    def __rlshift__(self, o):
        return binary("shl", o, self)

    def __rshift__(self, o):
        return binary("shr", self, o)

    def __rrshift__(self, o):
        return binary("shr", o, self)

    def __lt__(self, o):
        return compare("lt", self, o)

    def __le__(self, o):
        return compare("le", self, o)

    def __gt__(self, o):
        return compare("gt", self, o)

    def __ge__(self, o):
        return compare("ge", self, o)

    def __eq__(self, o):  # type: ignore[override]
        return compare("eq", self, o)

    def __ne__(self, o):  # type: ignore[override]
        return compare("ne", self, o)

    def astype(self, dtype) -> Expr:
        return cast(self, dtype)

    def children(self) -> tuple[Expr, ...]:
        return tuple(getattr(self, f) for f in self._fields)


class Const(Expr):
    __slots__ = ("value",)

    def __init__(self, value, dtype: DataType):
        self._init(dtype)
        if dtype.is_bool:
            value = bool(value)
        elif dtype.is_int:
            value = _wrap_int(int(value), dtype)
        else:
            value = float(value)
        self.value = value


def _wrap_int(v: int, dtype: DataType) -> int:
    """Two's-complement wrap into the type's range, as a C cast does."""
    bits = dtype.bits
    v &= (1 << bits) - 1
    if dtype.is_signed and v >= 1 << (bits - 1):
        v -= 1 << bits
    return v


class Var(Expr):
    """A scalar variable: loop index, block index, dynamic dimension, let-bound name."""

    __slots__ = ("name", "uid")

    def __init__(self, name: str, dtype: DataType = _dt.int32):
        self._init(as_dtype(dtype))
        self.name = name
        self.uid = next(_ids)


class AnnotatedVar(Var, _dt.ScalarAnnotation):
    """What `T.int32()` makes: a scalar variable (`a = T.int32(); a & 0xff`) that also reads as a
    scalar annotation where a signature expects one."""

    def __init__(self, dtype: DataType):
        Var.__init__(self, "v", dtype)


# visitors, printers and the emulator dispatch on the class name: this is a Var to all of them
AnnotatedVar.__name__ = "Var"


class BinOp(Expr):
    __slots__ = ("op", "a", "b")
    _fields = ("a", "b")

    def __init__(self, op: str, a: Expr, b: Expr, dtype: DataType):
        self._init(dtype)
        self.op = op
        self.a = a
        self.b = b


class Compare(Expr):
    __slots__ = ("op", "a", "b")
    _fields = ("a", "b")

    def __init__(self, op: str, a: Expr, b: Expr):
        self._init(_dt.bool_)
        self.op = op
        self.a = a
        self.b = b

    def __bool__(self):
        # Python containers compare keys with ==; keep that working for identical nodes.
        if self.op == "eq" and self.a is self.b:
            return True
        if self.op == "ne" and self.a is self.b:
            return False
        if self.op in ("eq", "ne") and isinstance(self.a, Var) and isinstance(self.b, Var):
            return (self.a is self.b) == (self.op == "eq")
        return Expr.__bool__(self)


class UnaryOp(Expr):
    __slots__ = ("op", "a")
    _fields = ("a",)

    def __init__(self, op: str, a: Expr):
        self._init(_dt.bool_ if op == "not" else a.dtype)
        self.op = op
        self.a = a


class Cast(Expr):
    __slots__ = ("value",)
    _fields = ("value",)

    def __init__(self, value: Expr, dtype: DataType):
        self._init(dtype)
        self.value = value


class Select(Expr):
    """`cond ? a : b`, evaluating only the chosen side (TileLang's if_then_else)."""

    __slots__ = ("cond", "a", "b")
    _fields = ("cond", "a", "b")

    def __init__(self, cond: Expr, a: Expr, b: Expr):
        self._init(a.dtype)
        self.cond = cond
        self.a = a
        self.b = b


class Call(Expr):
    """A call of a named intrinsic: math functions, reinterpret, dp4a, thread index..."""

    __slots__ = ("name", "args", "attrs")

    def __init__(self, name: str, args, dtype: DataType, attrs: dict | None = None):
        self._init(dtype)
        self.name = name
        self.args = tuple(args)
        self.attrs = attrs or {}

    def children(self):
        return self.args


class BufferLoad(Expr):
    __slots__ = ("buffer", "indices")

    def __init__(self, buffer, indices, span=None):
        self._init(buffer.dtype, span)
        self.buffer = buffer
        self.indices = tuple(indices)

    def children(self):
        return self.indices


# ---------------------------------------------------------------------------- construction


def const(value, dtype=None) -> Const:
    if dtype is None:
        if isinstance(value, bool):
            dtype = _dt.bool_
        elif isinstance(value, int):
            dtype = _dt.int32 if -(2**31) <= value < 2**31 else _dt.int64
        else:
            dtype = _dt.float32
    return Const(value, as_dtype(dtype))


def as_expr(value, like: DataType | None = None) -> Expr:
    """Turn a Python scalar into a constant (of `like`'s type when given)."""
    if isinstance(value, Expr):
        return value
    # buffers are built from expressions: buffer.py imports this module
    from .buffer import Buffer

    if isinstance(value, Buffer):
        if value.is_var:
            return value.load_var()
        raise CompileError(f"buffer {value.name} used where a scalar value is expected; index it")
    if isinstance(value, DataType):
        raise CompileError(f"dtype {value} used where a value is expected")
    if hasattr(value, "item") and not isinstance(value, (list, tuple)):  # numpy scalar
        value = value.item()
    if isinstance(value, (bool, int, float)):
        if like is not None:
            if like.is_float or (like.is_int and isinstance(value, int)) or like.is_bool:
                return Const(value, like)
            if like.is_int and isinstance(value, float):
                return const(value, _dt.float32)
        return const(value)

    if getattr(value, "is_vector_value", False) is True:
        raise CompileError(f"the {value.type_name} vector value {value!r} is used where a scalar is expected; take "
                           "one lane with T.extract_lane(v, k), or store it with a vector index (A[T.Ramp(i, 1, n)] = v)")
    raise CompileError(f"cannot use {type(value).__name__} value {value!r} in a kernel expression")


def promote(a: DataType, b: DataType) -> DataType:
    if a == b:
        return a
    if a.is_float or b.is_float:
        fa = a if a.is_float else None
        fb = b if b.is_float else None
        if fa is None:
            return fb
        if fb is None:
            return fa
        if fa.bits == fb.bits:  # float16 with bfloat16, or float8 kinds
            return _dt.float32
        return fa if fa.bits > fb.bits else fb
    if a.is_bool:
        return b
    if b.is_bool:
        return a
    if a.bits != b.bits:
        return a if a.bits > b.bits else b
    return a if a.is_signed else b


def _literal_like(value, like: DataType) -> Expr:
    """A Python literal next to an operand of type `like`, typed as TVM types it (TileLang's
    BinaryOpMatchTypes): an int is an int32 (int64 when it needs it) and a float a float32, then the
    usual promotion applies. So `int8_x + 100` and `uint8_x - 1` compute in int32 (C's integer
    promotion), `half_x * 1.5` in float32, while `int64_x + 1`, `uint32_x + 1`, `double_x * 0.5`
    and `half_x + 1` (an int next to a float: the float's type) keep the operand's type. A literal
    that does not fit the type it is given widens too (`int32_x + 2**40` is int64). Squeezing a
    literal into a narrower operand's type would compute with another value (300 as int8 is 44,
    1e6 as half is inf) or another arithmetic (int8 wrap-around) than TileLang's."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or like.is_bool:
        return as_expr(value, like)
    if isinstance(value, int) and like.is_int and like.bits < 32:
        return as_expr(value)  # int32: the operation widens to it
    if isinstance(value, float) and like.is_float and like.bits < 32:
        return as_expr(value)  # float32
    from .literal_range import check_literal

    try:
        check_literal(value, like)
    except CompileError:
        return as_expr(value)
    return as_expr(value, like)


def _operands(a, b) -> tuple[Expr, Expr]:
    if isinstance(a, Expr) and not isinstance(b, Expr):
        b = _literal_like(b, a.dtype)
    elif isinstance(b, Expr) and not isinstance(a, Expr):
        a = _literal_like(a, b.dtype)
    else:
        a, b = as_expr(a), as_expr(b)
    dt = promote(a.dtype, b.dtype)
    if a.dtype != dt:
        a = cast(a, dt)
    if b.dtype != dt:
        b = cast(b, dt)
    return a, b


_INT_ONLY = {"bitand", "bitor", "bitxor", "shl", "shr", "floormod_int"}


def _has_vector(a, b) -> bool:
    """A vector value (ir/vector.py) as an operand: the operation applies lane by lane."""
    return getattr(a, "is_vector_value", False) is True or getattr(b, "is_vector_value", False) is True


def binary(op: str, a, b) -> Expr:
    if _has_vector(a, b):
        from .vector import lanewise_binary

        return lanewise_binary(op, a, b)
    a, b = _operands(a, b)
    dt = a.dtype
    if op in ("bitand", "bitor", "bitxor", "shl", "shr") and dt.is_float:
        raise CompileError(f"bitwise operator on floating-point values ({dt}): {a} {op} {b}")
    if op == "floordiv" and dt.is_float:
        return call("floor", BinOp("div", a, b, dt))
    return BinOp(op, a, b, dt)


def compare(op: str, a, b) -> Compare:
    if _has_vector(a, b):
        from .vector import lanewise_compare

        return lanewise_compare(op, a, b)
    a, b = _operands(a, b)
    return Compare(op, a, b)


def unary(op: str, a) -> Expr:
    a = as_expr(a)
    return UnaryOp(op, a)


def logical_and(a, b) -> Expr:
    a, b = as_expr(a), as_expr(b)
    return BinOp("and", _to_bool(a), _to_bool(b), _dt.bool_)


def logical_or(a, b) -> Expr:
    a, b = as_expr(a), as_expr(b)
    return BinOp("or", _to_bool(a), _to_bool(b), _dt.bool_)


def logical_not(a) -> Expr:
    return UnaryOp("not", _to_bool(as_expr(a)))


def _to_bool(a: Expr) -> Expr:
    return a if a.dtype.is_bool else Compare("ne", a, Const(0, a.dtype))


def cast(value, dtype) -> Expr:
    dtype = as_dtype(dtype)
    if not isinstance(value, Expr):
        return as_expr(value, dtype) if isinstance(value, (int, float, bool)) else as_expr(value)
    if value.dtype == dtype:
        return value
    if isinstance(value, Const) and dtype.kind != "handle" and value.dtype.kind != "handle":
        return Const(fold_cast(value.dtype, dtype, value.value), dtype)
    return Cast(value, dtype)


# Result dtypes of intrinsics: "same" as the first argument, or a fixed type.
MATH_UNARY = (
    "exp", "exp2", "exp10", "log", "log2", "log10", "log1p", "expm1", "sqrt", "rsqrt", "tanh",
    "sigmoid", "erf", "floor", "ceil", "round", "trunc", "sin", "cos", "tan", "asin", "acos",
    "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "abs", "nearbyint", "rcp",
)  # fmt: skip
MATH_BINARY = ("pow", "max", "min", "fmod", "atan2", "hypot", "copysign")


def call(name: str, *args, dtype=None) -> Expr:
    args = [as_expr(a) for a in args]
    if name in MATH_BINARY and len(args) == 2:
        a, b = _operands(args[0], args[1])
        args = [a, b]
    if dtype is None:
        dtype = args[0].dtype if args else _dt.int32
        if name in MATH_UNARY and dtype.is_int and name not in ("abs",):
            args = [cast(args[0], _dt.float32)] + args[1:]
            dtype = _dt.float32
    return Call(name, args, as_dtype(dtype))


def const_value(e):
    """The Python value of a constant expression, or None."""
    if isinstance(e, (int, float, bool)):
        return e
    if isinstance(e, Expr):
        # the simplifier rewrites expressions: it imports this module
        from .simplify import simplify

        s = simplify(e)
        if isinstance(s, Const):
            return s.value
    return None
