"""TileLang's vector-typed values (TVM's `lanes` > 1) in kernels:

- `T.Broadcast(value, lanes)`: every lane is `value`; `T.Ramp(base, stride, lanes)`: lane k is
  `base + k * stride`. Both are also TVM's node classes: `isinstance(v, T.Ramp)`.
- `A[T.Ramp(i, 1, 4)]`, `B[t, T.Ramp(0, 1, 4)]`, `A[T.Broadcast(j, 4)]`: one load per lane (a
  vector value); `A[T.Ramp(i, 1, 4)] = v` and `A[i:i+4] = v`: one store per lane. Negative lanes
  of a Ramp index count from the end of the dimension (at run time when their sign is unknown),
  as TileLang's LegalizeNegativeIndex makes them.
- `T.float32x4(a, b, c, d)`, `T.float16x2(x, y)`: a vector value of those lanes;
  `T.alloc_var(T.float16x2)` / `T.alloc_var("float32x4", init)`: a vector variable (registers)
  that `v = ...` / `v += ...` overwrite; `x: T.float32x4 = ...` converts the lanes.
- `T.extract_lane(v, lane)`: one lane (a compile-time integer in [0, lanes)).
- Operators, comparisons, T.max / T.min / T.exp ..., `T.cast(v, "float16x4")` apply lane by lane;
  a scalar operand is broadcast; vectors of different lanes are a CompileError naming both.

The representation (ir/vector.py, docs/THREAD_IR.md "Vector values") is a tuple of per-lane
scalar expressions: nothing below the front end sees lanes, so the CPU, the emulator, CUDA and
the PTX interpreter all run the same scalar code."""
from __future__ import annotations

from numbers import Integral

from ..errors import CompileError, DtypeError, LaneIndexError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer
from ..ir.builder import emit, require_kernel
from ..ir.expr import BufferLoad, Const, Expr, as_expr, cast, const_value
from ..ir.stmt import Allocate, BufferStore
from ..ir.vector import (
    Vector,
    broadcast,
    cast_vector,
    is_vector,
    ramp,
    settled,
    snapshot,
    split_vector_dtype,
)
from ..ir.visitor import collect_loads


class _VectorNode(type):
    """A class whose isinstance test is a predicate on vector values and whose call builds one
    (as T.Ramp / T.Broadcast are TVM node classes)."""

    def __instancecheck__(cls, x) -> bool:
        return bool(cls._test(x))

    def __call__(cls, *args, **kwargs):
        return cls._make(*args, **kwargs)


def _broadcast(value, lanes, span=None) -> Vector:
    out = broadcast(_scalar(value, "T.Broadcast"), lanes)
    out.is_broadcast = True
    return out


def _ramp(base, stride, lanes, span=None) -> Vector:
    return ramp(_scalar(base, "T.Ramp"), _scalar(stride, "T.Ramp"), lanes)


def _scalar(x, what: str):
    if isinstance(x, Buffer) and x.is_var:
        return x.load_var()
    if isinstance(x, (Expr, int, float, bool)) or is_vector(x):
        return x
    raise CompileError(f"{what}: expected a scalar value, got {x!r}")


Broadcast = _VectorNode("Broadcast", (), {
    "_test": staticmethod(lambda x: is_vector(x) and getattr(x, "is_broadcast", False)),
    "_make": staticmethod(_broadcast),
    "__doc__": "T.Broadcast(value, lanes): a vector value whose every lane is value."})
Ramp = _VectorNode("Ramp", (), {
    "_test": staticmethod(lambda x: is_vector(x) and x.is_ramp),
    "_make": staticmethod(_ramp),
    "__doc__": "T.Ramp(base, stride, lanes): a vector value whose lane k is base + k * stride."})


def extract_lane(vector, lane, span=None):
    """Lane `lane` (a compile-time integer) of a vector value, a scalar of its element type."""
    if isinstance(vector, VectorVar):
        vector = vector.value()
    if not is_vector(vector):
        if isinstance(vector, (Expr, Buffer)):
            dt = vector.dtype
            raise CompileError(f"T.extract_lane expects a vector expression, but got dtype {dt} (a scalar)")
        raise DtypeError(f"T.extract_lane expects a PrimExpr (a vector value), but got {type(vector).__name__}")
    i = lane.load_var() if isinstance(lane, Buffer) and lane.is_var else lane
    if isinstance(i, Expr):  # a constant (T.int32(1), TVM's IntImm), not a run-time value
        c = const_value(i)
        if not isinstance(c, int):
            raise DtypeError(f"T.extract_lane expects a compile-time integer lane, but got {i!r}")
        i = c
    if isinstance(i, bool) or not isinstance(i, Integral):
        raise DtypeError(f"T.extract_lane expects a compile-time integer lane, but got {type(lane).__name__}")
    i = int(i)
    if not 0 <= i < vector.lanes:
        raise LaneIndexError(f"T.extract_lane: lane index {i} is out of bounds for {vector.type_name} "
                             f"({vector.lanes} lanes)")
    return settled(vector).values[i]


class VectorVar:
    """`T.alloc_var(T.float16x2)`: a vector variable, one register per lane. Reading it gives its
    current lanes; `v = value` (the parser) and `v.assign(value)` overwrite them."""

    def __init__(self, regs: Buffer, lanes_dtype: str):
        self.regs = regs
        self.type_name = lanes_dtype

    @property
    def lanes(self) -> int:
        return int(self.regs.shape[0])

    @property
    def dtype(self) -> _dt.DataType:
        return self.regs.dtype

    def value(self) -> Vector:
        return Vector([BufferLoad(self.regs, [Const(k, _dt.int32)]) for k in range(self.lanes)], self.dtype)

    def assign(self, value) -> None:
        value = _dev(value)
        if is_vector(value):
            if value.lanes != self.lanes:
                raise CompileError(f"assigning a {value.type_name} value to the {self.type_name} variable "
                                   f"{self.regs.name}: lanes mismatch ({value.lanes} vs {self.lanes})")
        else:  # a scalar is broadcast, as TVM's Let of a vector variable to a scalar would not allow implicitly
            value = broadcast(as_expr(value, self.dtype), self.lanes)
        if any(ld.buffer is self.regs for e in value.values for ld in collect_loads(e)):
            value = snapshot(value, self.regs.name)  # v = v.yx: read every lane before writing
        for k, e in enumerate(value.values):
            emit(BufferStore(self.regs, [Const(k, _dt.int32)], cast(e, self.dtype)))

    def __repr__(self) -> str:
        return f"<{self.type_name} variable {self.regs.name}>"


def _dev(x):
    return x.value() if isinstance(x, VectorVar) else x


def alloc_vector_var(dtype, init=None) -> VectorVar:
    """`T.alloc_var` of a vector dtype (alloc.py hands these here)."""
    elem, lanes = split_vector_dtype(dtype)
    require_kernel("T.alloc_var")
    name = f"{elem.name}x{lanes}"
    regs = Buffer("vec", (lanes,), elem, "local")
    regs.auto_named = True
    emit(Allocate(regs, Const(0, elem) if init is None else None))
    v = VectorVar(regs, name)
    if init is not None:
        v.assign(init)
    return v


def make_vector(dtype, *values) -> Vector:
    """`T.float32x4(a, b, c, d)`: a vector of those lanes; one scalar is broadcast, one vector of
    as many lanes converted."""
    elem, lanes = split_vector_dtype(dtype)
    vals = [_dev(v) for v in values]
    if len(vals) == 1 and is_vector(vals[0]):
        return cast_vector(vals[0], dtype)
    if len(vals) == 1:
        return broadcast(cast(as_expr(_scalar(vals[0], str(dtype)), elem), elem), lanes)
    if len(vals) != lanes:
        raise CompileError(f"T.{elem.name}x{lanes}(...) takes {lanes} lane values (or one to broadcast), got "
                           f"{len(vals)}")
    for v in vals:
        if is_vector(v):
            raise CompileError(f"T.{elem.name}x{lanes}(...): each lane must be a scalar, got {v!r}")
    return Vector([cast(as_expr(_scalar(v, str(dtype)), elem), elem) for v in vals], elem)


def store_lanes(buf: Buffer, key: tuple, value) -> None:
    """`A[..., T.Ramp(i, 1, n), ...] = value`: lane k of value (a vector of n lanes, or a scalar
    for all) into the element lane k of the indices names. Every lane and index is read before
    the first store, as one vector store does."""
    value = _dev(value)
    lanes = buf.vector_lane_indices(key)
    n = len(lanes)
    if is_vector(value):
        if value.lanes != n:
            raise CompileError(f"storing a {value.type_name} value into {buf.name} at a {n}-lane vector index: "
                               f"lanes mismatch ({value.lanes} vs {n})")
        vals = list(value.values)
    else:
        if isinstance(value, Buffer) and value.is_var:
            value = value.load_var()
        vals = [as_expr(value, buf.dtype)] * n
    reads_dst = any(ld.buffer is buf for e in [*vals, *(i for idx in lanes for i in idx)]
                    for ld in collect_loads(e))
    if reads_dst and n > 1:
        vals = list(snapshot(Vector(vals), "stored").values)
        lanes = [list(snapshot(Vector(list(col)), "index").values) for col in zip(*lanes)]
        lanes = [list(row) for row in zip(*lanes)]
    for idx, v in zip(lanes, vals):
        emit(BufferStore(buf, list(idx), cast(v, buf.dtype)))

