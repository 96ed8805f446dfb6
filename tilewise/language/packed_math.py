"""TileLang 0.1.15's packed x2 arithmetic: `T.add2`, `T.sub2`, `T.mul2`, `T.max2`, `T.min2` (x, y),
`T.fma2(x, y, z)` and `T.abs2(x)` on pairs of float32, float16 or bfloat16 (TileLang's
float32x2 / float16x2 / bfloat16x2 values).

An operand is a pair in tilewise's terms: a vector value of two lanes (`T.reinterpret(T.ldg64(..),
T.float32x2)`), a slice of two contiguous elements (`A[i:i+2]`) or a local buffer of two elements;
all operands of one call have the same element type. The result is a vector value of two lanes
(in registers), which `C[i:i+2] = v`, `T.stg64` or `v[0]` / `v[1]` use.

Each lane is the scalar operation rounded once to the element type (`fma2`: one fused
multiply-add per lane, float16/bfloat16 through float32 where the product is exact), which is what
CUDA's `__hadd2`, `__hfma2`, `__hmax2` ... and sm_100's `add.f32x2` compute per lane. The emitted
code is two scalar operations: tilewise targets sm_80/sm_90a, which have packed half instructions
the CUDA compiler may form, but no packed float32 arithmetic."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.builder import emit
from ..ir.expr import BufferLoad, Call, Const, Expr, as_expr, binary, cast, const_value
from ..ir.stmt import BufferStore
from ..ir.vector import is_vector, settled
from . import global_vector as _gv
from .float_ops import _fused

_PACKED = ("float32", "float16", "bfloat16")


def _lanes(x, what: str) -> tuple[list[Expr], _dt.DataType]:
    """The two lane values of a packed operand and their type."""
    if is_vector(x):
        if x.lanes != 2:
            raise CompileError(f"T.{what}: expected a pair (x2 value), got {x.dtype} x {x.lanes}")
        vals, dt = list(settled(x).values), x.dtype
    elif isinstance(x, BufferRegion):
        ext = [e if isinstance(e, int) else const_value(e) for e in x.extents]
        if ext[-1] != 2 or any(e != 1 for e in ext[:-1]):
            raise CompileError(f"T.{what}: a slice operand must hold two contiguous elements, got {x}")
        idx = list(x.starts)
        vals = []
        for k in range(2):
            i = list(idx)
            i[-1] = as_expr(i[-1]) + k
            vals.append(BufferLoad(x.buffer, i))
        dt = x.buffer.dtype
    elif isinstance(x, Buffer) and x.ndim == 1 and const_value(as_expr(x.shape[0])) == 2 and not x.is_global:
        vals, dt = [BufferLoad(x, [Const(k, _dt.int32)]) for k in range(2)], x.dtype
    else:
        raise CompileError(f"T.{what} takes float32x2 / float16x2 / bfloat16x2 pairs (a 2-lane vector value, a "
                           f"2-element slice or a 2-element local buffer), got {x!r}")
    if dt.name not in _PACKED:
        raise CompileError(f"T.{what}: expected dtype in {['float32x2', 'bfloat16x2', 'float16x2']}, got '{dt}x2'")
    return vals, dt


def _packed(what: str, lane_op, *operands) -> _gv.VectorValue:
    pairs = [_lanes(x, what) for x in operands]
    dts = {dt.name for _, dt in pairs}
    if len(dts) > 1:
        raise CompileError(f"T.{what}: all packed x2 arguments must have the same dtype, got {sorted(dts)}")
    dt = pairs[0][1]
    regs = _gv._regs(dt, 2)
    for k in range(2):
        emit(BufferStore(regs, [Const(k, _dt.int32)], lane_op(*(vals[k] for vals, _ in pairs))))
    return _gv.VectorValue(regs)


def _in_type(op):
    """A binary lane operation rounded once to the element type (narrow types via float32)."""

    def lane(a: Expr, b: Expr) -> Expr:
        if a.dtype == _dt.float32:
            return op(a, b)
        return cast(op(cast(a, _dt.float32), cast(b, _dt.float32)), a.dtype)

    return lane


def _no_fuse_add(a: Expr, b: Expr) -> Expr:
    return Call("fma", [a, Const(1.0, a.dtype), b], a.dtype)  # a lane sum nothing fuses into


def add2(x, y) -> _gv.VectorValue:
    """Packed element-wise add (x + y)."""
    return _packed("add2", _in_type(_no_fuse_add), x, y)


def sub2(x, y) -> _gv.VectorValue:
    """Packed element-wise subtract (x - y)."""
    return _packed("sub2", _in_type(lambda a, b: _no_fuse_add(a, -b)), x, y)


def mul2(x, y) -> _gv.VectorValue:
    """Packed element-wise multiply (x * y)."""
    return _packed("mul2", _in_type(lambda a, b: Call("fma", [a, b, Const(-0.0, a.dtype)], a.dtype)), x, y)


def fma2(x, y, z) -> _gv.VectorValue:
    """Packed fused multiply-add (x * y + z), one rounding per lane."""
    return _packed("fma2", _fused, x, y, z)


def max2(x, y) -> _gv.VectorValue:
    """Packed element-wise maximum (a NaN lane operand is ignored, as __hmax2 / fmaxf)."""
    return _packed("max2", lambda a, b: binary("max", a, b), x, y)


def min2(x, y) -> _gv.VectorValue:
    """Packed element-wise minimum."""
    return _packed("min2", lambda a, b: binary("min", a, b), x, y)


def abs2(x) -> _gv.VectorValue:
    """Packed element-wise absolute value."""
    return _packed("abs2", lambda a: Call("abs", [a], a.dtype), x)
