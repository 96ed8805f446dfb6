"""Vector values: TVM's expressions of `lanes` > 1 (TileLang's `T.Broadcast`, `T.Ramp`,
`A[T.Ramp(i, 1, 4)]`, `T.float16x2(a, b)`, the results of `T.atomic_addx2(..., return_prev=True)`).

tilewise's IR stays scalar: a vector value is a Python-level tuple of per-lane scalar
expressions of one element type (docs/THREAD_IR.md, "Vector values"). Operators apply lane by
lane, a scalar operand is broadcast to every lane, and lanes that differ in number are a
CompileError naming both. Loading with a vector index gives one load per lane; storing with one
(language/vector_values.py) one store per lane. So every backend (CPU C++, emulator, CUDA, PTX
interpreter) sees ordinary scalar code and nothing below the front end knows about lanes."""
from __future__ import annotations

from ..errors import CompileError
from . import dtype as _dt
from .expr import Compare, Expr, as_expr, binary, cast, compare, const_value, promote


class Vector:
    """A vector value: `values[k]` is lane k (a scalar Expr); all lanes have `dtype`."""

    is_vector_value = True  # recognised by ir/expr.py's binary / compare without an import cycle
    effects = False  # lanes that update memory (an atomic's previous values): see settled()
    stable = False  # lanes that never change (fresh registers): nothing to snapshot
    is_ramp = False  # T.Ramp's lanes: negative lanes of unknown sign wrap at run time (wrap_lane_index)
    __hash__ = object.__hash__

    def __init__(self, values, dtype: _dt.DataType | None = None):
        values = [as_expr(v, dtype) for v in values]
        if len(values) < 2:
            raise CompileError(f"a vector value needs at least 2 lanes, got {len(values)}")
        dt = dtype if dtype is not None else values[0].dtype
        self.values = tuple(v if v.dtype == dt else cast(v, dt) for v in values)
        self.dtype = dt

    @property
    def lanes(self) -> int:
        return len(self.values)

    @property
    def bits(self) -> int:
        return self.dtype.bits * self.lanes

    @property
    def type_name(self) -> str:
        """TVM's name of the vector type, e.g. float32x4."""
        return f"{self.dtype.name}x{self.lanes}"

    def __getitem__(self, k):
        c = k if isinstance(k, int) else const_value(as_expr(k))
        if not isinstance(c, int) or not 0 <= c < self.lanes:
            raise CompileError(f"lane {k!r} of a {self.type_name} value: lanes are constants in [0, {self.lanes})")
        return settled(self).values[c]

    def __len__(self) -> int:
        return self.lanes

    def __iter__(self):  # `a, b = v`: its lanes
        return iter(settled(self).values)

    def __bool__(self):
        raise CompileError(f"the {self.type_name} vector value {self!r} cannot be used as a Python bool or a "
                           "condition; compare lanes with T.extract_lane")

    def __repr__(self) -> str:
        return f"{self.type_name}({', '.join(repr(v) for v in self.values)})"

    def astype(self, dtype) -> Vector:
        return cast_vector(self, dtype)

    # lane-wise operators
    def _bin(op):  # noqa: N805 - builds methods
        return lambda self, o: lanewise_binary(op, self, o)

    def _rbin(op):  # noqa: N805
        return lambda self, o: lanewise_binary(op, o, self)

    def _cmp(op):  # noqa: N805
        return lambda self, o: lanewise_compare(op, self, o)

    __add__, __radd__ = _bin("add"), _rbin("add")
    __sub__, __rsub__ = _bin("sub"), _rbin("sub")
    __mul__, __rmul__ = _bin("mul"), _rbin("mul")
    __truediv__, __rtruediv__ = _bin("div"), _rbin("div")
    __floordiv__, __rfloordiv__ = _bin("floordiv"), _rbin("floordiv")
    __mod__, __rmod__ = _bin("floormod"), _rbin("floormod")
    __and__, __rand__ = _bin("bitand"), _rbin("bitand")
    __or__, __ror__ = _bin("bitor"), _rbin("bitor")
    __xor__, __rxor__ = _bin("bitxor"), _rbin("bitxor")
    __lshift__, __rlshift__ = _bin("shl"), _rbin("shl")
    __rshift__, __rrshift__ = _bin("shr"), _rbin("shr")
    __lt__, __le__, __gt__, __ge__ = _cmp("lt"), _cmp("le"), _cmp("gt"), _cmp("ge")
    __eq__, __ne__ = _cmp("eq"), _cmp("ne")  # type: ignore[assignment]
    del _bin, _rbin, _cmp

    def __neg__(self) -> Vector:
        return Vector([-v for v in settled(self).values], self.dtype)

    def __pos__(self) -> Vector:
        return self

    def __invert__(self) -> Vector:
        return Vector([~v for v in settled(self).values])

    def __abs__(self) -> Vector:
        return Vector([abs(v) for v in settled(self).values], self.dtype)


def is_vector(x) -> bool:
    return getattr(x, "is_vector_value", False) is True


def _lanes_of(a, b, what: str) -> int:
    la = a.lanes if is_vector(a) else None
    lb = b.lanes if is_vector(b) else None
    if la is not None and lb is not None and la != lb:
        raise CompileError(f"{what}: lanes mismatch between {a.type_name} ({a!r}) and {b.type_name} ({b!r}); both "
                           "operands must have the same number of lanes (or one be a scalar, which is broadcast)")
    return la if la is not None else lb


def _lane(x, k: int):
    return x.values[k] if is_vector(x) else x


def _operand_dtype(x):
    if is_vector(x):
        return x.dtype
    return x.dtype if isinstance(x, Expr) else None


def lanewise_binary(op: str, a, b) -> Vector:
    """`a op b` lane by lane; a scalar operand is broadcast (its type promoted with the lanes')."""
    a, b = settled(a), settled(b)
    n = _lanes_of(a, b, f"vector operator {op}")
    da, db = _operand_dtype(a), _operand_dtype(b)
    if da is not None and db is not None:
        dt = promote(da, db)
    else:
        dt = da or db
    out = []
    for k in range(n):
        x, y = _lane(a, k), _lane(b, k)
        x = as_expr(x, dt) if not isinstance(x, Expr) else x
        y = as_expr(y, dt) if not isinstance(y, Expr) else y
        out.append(binary(op, x, y))
    return Vector(out)


def lanewise_compare(op: str, a, b) -> Vector:
    """A boolean vector: `a op b` lane by lane."""
    a, b = settled(a), settled(b)
    n = _lanes_of(a, b, f"vector comparison {op}")
    da, db = _operand_dtype(a), _operand_dtype(b)
    dt = promote(da, db) if da is not None and db is not None else (da or db)
    out: list[Compare] = []
    for k in range(n):
        x, y = _lane(a, k), _lane(b, k)
        x = as_expr(x, dt) if not isinstance(x, Expr) else x
        y = as_expr(y, dt) if not isinstance(y, Expr) else y
        out.append(compare(op, x, y))
    return Vector(out, _dt.bool_)


def split_vector_dtype(dtype) -> tuple[_dt.DataType, int | None]:
    """(element type, lanes) of a dtype: a scalar one has lanes None; "float32x4" / T.float32x4 4."""
    if is_vector_dtype(dtype):
        return dtype.element, dtype.lanes
    if isinstance(dtype, str) and "x" in dtype:
        head, _, tail = dtype.rpartition("x")
        if tail.isdigit() and head:
            try:
                return _dt.as_dtype(head), int(tail)
            except (TypeError, ValueError):
                pass
    return _dt.as_dtype(dtype), None


def is_vector_dtype(dtype) -> bool:
    return hasattr(dtype, "element") and hasattr(dtype, "lanes") and not isinstance(dtype, _dt.DataType)


def cast_vector(v: Vector, dtype) -> Vector:
    """Each lane converted to `dtype`: a vector dtype of the same lanes, or its element type alone
    (as TVM's cast of a vector to a scalar type: per lane)."""
    elem, lanes = split_vector_dtype(dtype)
    v = settled(v)
    if lanes is not None and lanes != v.lanes:
        raise CompileError(f"cast of a {v.type_name} value to {dtype}: lanes mismatch ({v.lanes} vs {lanes}); a "
                           "cast between vector types keeps the number of lanes")
    return Vector([cast(x, elem) for x in v.values], elem)


def broadcast(value, lanes: int) -> Vector:
    """`T.Broadcast(value, lanes)`: every lane is `value`."""
    n = _const_lanes(lanes, "T.Broadcast")
    if is_vector(value):
        raise CompileError(f"T.Broadcast: the value must be a scalar, got the vector {value!r}")
    v = as_expr(value)
    return Vector([v] * n, v.dtype)


def ramp(base, stride, lanes: int) -> Vector:
    """`T.Ramp(base, stride, lanes)`: lane k is base + k * stride (in the promoted type of both;
    an index must be an integer one)."""
    n = _const_lanes(lanes, "T.Ramp")
    if is_vector(base) or is_vector(stride):
        raise CompileError("T.Ramp: base and stride must be scalars")
    b = as_expr(base)
    s = as_expr(stride, b.dtype)
    if b.dtype.is_bool or s.dtype.is_bool or not (b.dtype.is_int or b.dtype.is_float) \
            or not (s.dtype.is_int or s.dtype.is_float):
        raise CompileError(f"T.Ramp: base and stride must be numbers, got {b.dtype} and {s.dtype}")
    if s.dtype != b.dtype:
        dt = promote(b.dtype, s.dtype)
        b, s = cast(b, dt), cast(s, dt)
    out = Vector([b if k == 0 else b + s * k for k in range(n)], b.dtype)
    out.is_ramp = True
    return out


def _const_lanes(lanes, what: str) -> int:
    n = lanes if isinstance(lanes, int) else const_value(as_expr(lanes)) if isinstance(lanes, Expr) else None
    if isinstance(n, bool) or not isinstance(n, int):
        raise CompileError(f"{what}: lanes must be a constant integer, got {lanes!r}")
    if n < 2:
        raise CompileError(f"{what}: lanes must be at least 2, got {n}")
    return n


def vector_indices(buffer, key) -> tuple[int, list[list]]:
    """For `buffer[key]` with at least one vector index: (lanes, per-lane scalar index lists)."""
    n = None
    for k in key:
        if is_vector(k):
            if n is not None and k.lanes != n:
                raise CompileError(f"indexing {buffer.name}: the vector indices have different lanes ({n} and "
                                   f"{k.lanes})")
            n = k.lanes
            if not k.dtype.is_int:
                raise CompileError(f"indexing {buffer.name} with a {k.type_name} vector: indices must be integers")
    return n, [[k.values[lane] if is_vector(k) else k for k in key] for lane in range(n)]


def wrap_lane_index(idx: Expr, dim, runtime: bool) -> Expr:
    """A lane of a vector index that is negative counts from the end of its dimension, as
    TileLang's LegalizeNegativeIndex does: provably negative lanes are shifted; with `runtime`
    (the lanes of a T.Ramp) a lane of unknown sign is chosen at run time (`i < 0 ? i + n : i`)."""
    from .expr import Select
    from .simplify import bound

    lo, hi = bound(idx, _kernel_index_ranges())
    if lo is not None and lo >= 0:
        return idx
    if hi is not None and hi < 0:
        return as_expr(dim) + idx
    if not runtime:
        return idx
    return Select(compare("lt", idx, 0), as_expr(dim) + idx, idx)


def _kernel_index_ranges() -> dict:
    """The block and thread indices of the kernel being built are non-negative; its loop variables
    have the ranges the parser recorded."""
    from .builder import current

    b = current()
    out: dict = dict(b.index_ranges) if b is not None else {}
    for k in (b.kernels if b is not None else []):
        for v in [*(k.block_vars or []), *(k.thread_vars or [])]:
            if isinstance(v, Expr) and v.dtype.is_int:
                out[v] = (0, None)
    return out


def _impure(e: Expr) -> bool:
    """Reads memory or calls something: its value depends on when it is evaluated."""
    from .expr import BufferLoad, Call
    from .visitor import walk

    found = []
    walk(e, lambda n: found.append(1) if isinstance(n, (BufferLoad, Call)) else None)
    return bool(found)


def has_effects(v) -> bool:
    """A vector whose lanes update memory when evaluated (T.atomic_addx2(..., return_prev=True))."""
    return is_vector(v) and getattr(v, "effects", False)


def snapshot(v: Vector, name: str = "lane", only_if_effects: bool = False) -> Vector:
    """`v` with every lane that reads memory or calls something evaluated now, into a let-bound
    variable (what a scalar `x = A[i]` becomes): later stores cannot change it, and a lane with
    a side effect runs exactly once."""
    from .builder import require
    from .expr import Var
    from .stmt import LetStmt

    if only_if_effects and not has_effects(v):
        return v
    if getattr(v, "stable", False):
        return v
    b = require("a vector value")
    out = []
    for k, e in enumerate(v.values):
        if _impure(e):
            var = Var(f"{name}_{k}", e.dtype)
            b.emit(LetStmt(var, e))
            e = var
        out.append(e)
    res = Vector(out, v.dtype)
    res.is_ramp = v.is_ramp
    return res


def settled(x):
    """`x`, with a vector of side-effecting lanes evaluated first (each lane once)."""
    return snapshot(x, only_if_effects=True) if has_effects(x) else x


def vector_with_effects(values: list[Expr], dtype: _dt.DataType) -> Vector:
    """The vector of an operation whose lanes update memory (T.atomic_addx2(..., return_prev=True)):
    each lane is evaluated exactly once, stored directly or let-bound when named or used in an
    expression (settled)."""
    out = Vector(values, dtype)
    out.effects = True
    return out
