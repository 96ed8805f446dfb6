"""TileLang 0.1.15's explicitly rounded float operations: `T.fma(x, y, z)`, `T.fmul(x, y)` and the
IEEE forms `T.ieee_add / ieee_sub / ieee_mul / ieee_fdiv(x, y, rounding_mode="rn")`,
`T.ieee_fmaf(x, y, z, rounding_mode="rn")`, `T.ieee_frcp / ieee_fsqrt(x, rounding_mode="rn")` and
`T.ieee_frsqrt(x)`.

Each is one operation rounded once to the operands' type, which no compiler may fuse with a
neighbour. tilewise decides multiply-add contraction in the IR (transform/contract_fma.py: an `a *
b + c` written as one expression becomes Call("fma")), so the forms that must stay apart are made
of that same single-rounding Call, whose operands no pass looks through:

- `fma(x, y, z)` is Call("fma") for float32/float64 (`fmaf` / `fma`, one rounding);
- `fmul(x, y)` = fma(x, y, -0.0): the exact product plus -0.0 rounds once to the product, with
  the product's own sign of zero, and cannot be fused into a later addition;
- `ieee_add(x, y)` = fma(x, 1, y), `ieee_sub(x, y)` = fma(x, 1, -y) for the same reason;
- `ieee_fdiv`, `ieee_frcp`, `ieee_fsqrt`: division and square root are correctly rounded on every
  target (tilewise never compiles them as approximations unless fast math is asked for);
- `ieee_frsqrt(x)`: 1/sqrt(x) evaluated in float64 and rounded once to float32. 1/sqrt(x) of a
  float32 is never a float32 midpoint (it is exact or irrational), and tests/language/
  test_tl015_names_math.py checks the float64 evaluation against an exact integer criterion.

float16 and bfloat16 operands are computed in float32 (their products are exact there) and
rounded once back, as the GPU's half-precision fma does.

TileLang's `rounding_mode` also takes "rz", "ru" and "rd" (CUDA's `__fadd_rz` ...). tilewise's
CPU code and emulator round to nearest only, so a directed mode is a CompileError naming it rather
than a silently different result."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.expr import Call, Const, Expr, as_expr, cast
from .math import _v

_MODES = ("rn", "rz", "ru", "rd")


def _floats(what: str, *args) -> list[Expr]:
    """The operands as expressions of one float type (Python numbers take the type of the others)."""
    args = [_v(a) for a in args]
    like = next((a.dtype for a in args if isinstance(a, Expr)), _dt.float32)
    out = [a if isinstance(a, Expr) else as_expr(a, like) for a in args]
    dt = out[0].dtype
    if not dt.is_float or dt.kind not in ("float", "bfloat"):
        raise CompileError(f"T.{what} only supports floating-point inputs, but got {dt}")
    if any(e.dtype != dt for e in out[1:]):
        raise CompileError(f"T.{what} expects all inputs to have the same dtype, but got {[str(e.dtype) for e in out]}")
    return out


def _fused(a: Expr, b: Expr, c: Expr) -> Expr:
    """a * b + c rounded once to their type."""
    dt = a.dtype
    if dt.name in ("float32", "float64"):
        return Call("fma", [a, b, c], dt)
    f32 = _dt.float32  # half types: the product is exact in float32, the sum rounded there
    return cast(Call("fma", [cast(a, f32), cast(b, f32), cast(c, f32)], f32), dt)


def _check_mode(what: str, rounding_mode) -> None:
    if not (isinstance(rounding_mode, str) and rounding_mode in _MODES):
        raise CompileError(f"T.{what}: invalid rounding mode {rounding_mode!r}; must be one of {set(_MODES)}")
    if rounding_mode != "rn":
        raise CompileError(
            f"T.{what}(..., rounding_mode={rounding_mode!r}): tilewise implements only round-to-nearest ('rn'); "
            "directed rounding (rz/ru/rd) is not available on its CPU and emulator targets")


def _float32_only(what: str, e: Expr) -> None:
    if e.dtype != _dt.float32:
        raise CompileError(f"T.{what} is a float32 operation (CUDA's __f*_rn), got {e.dtype}")


def fma(x, y, z) -> Expr:
    """x * y + z as one fused multiply-add (rounded once)."""
    a, b, c = _floats("fma", x, y, z)
    return _fused(a, b, c)


def fmul(x, y) -> Expr:
    """x * y rounded once, kept apart from any neighbouring addition."""
    a, b = _floats("fmul", x, y)
    if a.dtype.name not in ("float32", "float64"):
        return cast(cast(a, _dt.float32) * cast(b, _dt.float32), a.dtype)  # exact in float32, one rounding
    return Call("fma", [a, b, Const(-0.0, a.dtype)], a.dtype)


def ieee_add(x, y, rounding_mode="rn") -> Expr:
    """x + y, rounded once (only rounding_mode "rn" in tilewise)."""
    _check_mode("ieee_add", rounding_mode)
    a, b = _floats("ieee_add", x, y)
    _float32_only("ieee_add", a)
    return Call("fma", [a, Const(1.0, a.dtype), b], a.dtype)


def ieee_sub(x, y, rounding_mode="rn") -> Expr:
    _check_mode("ieee_sub", rounding_mode)
    a, b = _floats("ieee_sub", x, y)
    _float32_only("ieee_sub", a)
    return Call("fma", [a, Const(1.0, a.dtype), -b], a.dtype)


def ieee_mul(x, y, rounding_mode="rn") -> Expr:
    _check_mode("ieee_mul", rounding_mode)
    a, b = _floats("ieee_mul", x, y)
    _float32_only("ieee_mul", a)
    return Call("fma", [a, b, Const(-0.0, a.dtype)], a.dtype)


def ieee_fmaf(x, y, z, rounding_mode="rn") -> Expr:
    _check_mode("ieee_fmaf", rounding_mode)
    a, b, c = _floats("ieee_fmaf", x, y, z)
    _float32_only("ieee_fmaf", a)
    return Call("fma", [a, b, c], a.dtype)


def ieee_fdiv(x, y, rounding_mode="rn") -> Expr:
    _check_mode("ieee_fdiv", rounding_mode)
    a, b = _floats("ieee_fdiv", x, y)
    _float32_only("ieee_fdiv", a)
    return a / b


def ieee_frcp(x, rounding_mode="rn") -> Expr:
    _check_mode("ieee_frcp", rounding_mode)
    (a,) = _floats("ieee_frcp", x)
    _float32_only("ieee_frcp", a)
    return Const(1.0, a.dtype) / a


def ieee_fsqrt(x, rounding_mode="rn") -> Expr:
    _check_mode("ieee_fsqrt", rounding_mode)
    (a,) = _floats("ieee_fsqrt", x)
    _float32_only("ieee_fsqrt", a)
    return Call("sqrt", [a], a.dtype)


def ieee_frsqrt(x) -> Expr:
    """1/sqrt(x) correctly rounded to float32 (see the module doc)."""
    (a,) = _floats("ieee_frsqrt", x)
    _float32_only("ieee_frsqrt", a)
    f64 = _dt.float64
    return cast(Const(1.0, f64) / Call("sqrt", [cast(a, f64)], f64), _dt.float32)
