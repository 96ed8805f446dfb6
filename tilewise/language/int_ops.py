"""TileLang 0.1.15's integer helpers missing from T: `T.cdiv` (its name for T.ceildiv),
`T.align_up(x, y)` (x rounded up to a multiple of y: cdiv(x, y) * y) and TVM's fixed-point
`T.q_multiply_shift(x, y, q, s)`.

q_multiply_shift multiplies two Q-numbers with q fractional bits and shifts by s, rounding half
up: round(x * y * 2^(s - q)) in TVM's lowering (tir/transforms: a positive s shifts x left before
the multiply, a negative s adds to the right shift). It is built here from int64 arithmetic the IR
already has on every target: x64 = int64(x) << max(s, 0); p = x64 * int64(y); n = q + max(-s, 0);
int32((p + (1 << (n - 1))) >> n), the right shift arithmetic (toward negative infinity, so the
added half rounds half up)."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.expr import Const, Expr, as_expr, cast, const_value
from .math import _v, ceildiv

cdiv = ceildiv


def align_up(x, y):
    """x rounded up to a multiple of y."""
    return ceildiv(x, y) * _v(y)


def _int32(v, what: str) -> Expr:
    e = as_expr(_v(v), _dt.int32)
    if not e.dtype.is_int:
        raise CompileError(f"T.q_multiply_shift: {what} must be an integer, got {e} of type {e.dtype}")
    return e if e.dtype == _dt.int32 else cast(e, _dt.int32)


def q_multiply_shift(x, y, q, s) -> Expr:
    """round(x * y * 2^-q shifted by s) of two int32 Q-numbers, as TVM lowers tir.q_multiply_shift."""
    i64 = _dt.int64
    xe, ye = _int32(x, "x"), _int32(y, "y")
    qv = const_value(as_expr(_v(q)))
    sv = const_value(as_expr(_v(s)))
    if not isinstance(qv, int) or qv < 1:
        raise CompileError(f"T.q_multiply_shift: q (the fractional bits) must be a constant >= 1, got {q}")
    if isinstance(sv, int):
        left, right = max(sv, 0), max(-sv, 0)
        p = cast(xe, i64)
        if left:
            p = p << Const(left, i64)
        p = p * cast(ye, i64)
        n = qv + right
        if n > 62:
            raise CompileError(f"T.q_multiply_shift: a total right shift of {n} bits does not fit int64 arithmetic")
        return cast((p + Const(1 << (n - 1), i64)) >> Const(n, i64), _dt.int32)
    se = cast(_int32(s, "s"), i64)  # a shift known only at run time: both sides as selects
    from .math import if_then_else
    from .math import max as _max

    zero = Const(0, i64)
    left = _max(se, zero)
    right = _max(-se, zero)
    p = (cast(xe, i64) << left) * cast(ye, i64)
    n = right + Const(qv, i64)
    half = if_then_else(n > zero, Const(1, i64) << (n - Const(1, i64)), zero)
    return cast((p + half) >> n, _dt.int32)


def q_multiply_shift_per_axis(x, y, ls, rs, q, is_lshift_required, is_rshift_required) -> Expr:
    """TVM's per-axis form: the left shift `ls` and right shift `rs` (both >= 0) given apart, each
    applied only when its flag is set: int32((int64(x) << ls) * y + 2^(n-1)) >> n) with n = q + rs."""
    i64 = _dt.int64
    qv = const_value(as_expr(_v(q)))
    if not isinstance(qv, int) or qv < 1:
        raise CompileError(f"T.q_multiply_shift_per_axis: q must be a constant >= 1, got {q}")
    lreq, rreq = (const_value(as_expr(_v(f))) for f in (is_lshift_required, is_rshift_required))
    if not isinstance(lreq, int) or not isinstance(rreq, int):
        raise CompileError("T.q_multiply_shift_per_axis: is_lshift_required / is_rshift_required must be constants")
    p = cast(_int32(x, "x"), i64)
    if lreq:
        p = p << cast(_int32(ls, "ls"), i64)
    p = p * cast(_int32(y, "y"), i64)
    n = Const(qv, i64) + cast(_int32(rs, "rs"), i64) if rreq else Const(qv, i64)
    return cast((p + (Const(1, i64) << (n - Const(1, i64)))) >> n, _dt.int32)
