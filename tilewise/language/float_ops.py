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

float16 and bfloat16 `fma` / `fma2` lanes are rounded once to their type, as the GPU's
half-precision fma does: the exact a * b + c as a float64 pair, rounded to odd, then to the type;
`fmul` and the packed add / sub / mul / max go through float32, where their single rounding to the
narrow type is exact too (float32 has more than 2p + 2 bits for p-bit operands).

TileLang's `rounding_mode` also takes "rz", "ru" and "rd" (CUDA's `__fadd_rz`, `__fmul_ru`,
`__fdiv_rd` ...: toward zero, up, down). tilewise computes a directed result from exact arithmetic
in the IR, the same on every target: the value is carried as a float64 s plus the sign of what s
misses (the exact sum's error by Knuth's TwoSum, the residual of a division or square root by one
float64 fma, which is exact there; a product of two float32 values is exact in float64), t is s
rounded to the nearest float32 — one of the two float32 values around the exact result — and the
exact result's side of t, the sign of (s - t) + error, decides whether t or its float32 neighbour
(T.nextafter) is the answer. Overflow goes to the largest finite value where the mode rounds
toward zero, infinities and NaNs pass through.

TileLang 0.1.13 also takes float64 (CUDA's `__dadd_rz` ...) and, in "rn" only, float16 / bfloat16.
float64 "rn" is the same single-rounding IR operation as for float32. float64 "rz" / "ru" / "rd"
of ieee_add / ieee_sub use TwoSum, whose error is exact in float64 itself, to decide the step to
a neighbour as above. The other float64 directed operations (mul, fmaf, fdiv, frcp, fsqrt) would
need error terms that stay exact through subnormal results (an fma residual of a subnormal
product or quotient may round to zero and lose its sign), so each is one Call named for CUDA's
function ("dmul_rz", "dfma_ru", "ddiv_rd", "drcp_rz", "dsqrt_ru"): CUDA's `__dmul_rz`, `__fma_ru`,
... (PTX `mul.rz.f64` ...), the CPU's own instruction between fesetround calls (tw_cpu.h), and
exact rational arithmetic in the emulator and the PTX interpreter (ir/directed64.py). The half
types are computed in float32 and rounded once to the type: for +, -, *, /, sqrt, rounding to
float32 first and then to a p-bit type is the correct p-bit rounding when float32's 24 bits >= 2p + 2 (p = 11, 8)."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.expr import Call, Const, Expr, Select, as_expr, cast, logical_and, logical_not, logical_or
from .math import _v

_MODES = ("rn", "rz", "ru", "rd")


def _floats(what: str, *args) -> list[Expr]:
    """The operands as expressions of one float type (Python numbers take the type of the others)."""
    args = [_v(a) for a in args]
    like = next((a.dtype for a in args if isinstance(a, Expr)), _dt.float32)
    out = [a if isinstance(a, Expr) else as_expr(a, like) for a in args]
    dt = out[0].dtype
    if not dt.is_float or dt.kind not in ("float", "bfloat"):
        raise CompileError(f"T.{what} only supports floating-point inputs, but got {dt.tl_name}")
    if any(e.dtype != dt for e in out[1:]):
        raise CompileError(f"T.{what} expects all inputs to have the same dtype, but got {[str(e.dtype) for e in out]}")
    return out


def _fused(a: Expr, b: Expr, c: Expr) -> Expr:
    """a * b + c rounded once to their type."""
    dt = a.dtype
    if dt.name in ("float32", "float64"):
        return Call("fma", [a, b, c], dt)
    # float16 / bfloat16: the product is exact in float64, the sum an exact pair (s, e); s rounded
    # to odd keeps the inexactness, so the one rounding to the narrow type is correct (53 >= 11 + 2)
    f64 = _dt.float64
    s, e = _two_sum(_mul64(cast(a, f64), cast(b, f64)), cast(c, f64))
    odd = (Call("reinterpret", [s], _dt.int64) & Const(1, _dt.int64)) == Const(1, _dt.int64)
    exact_or_odd = logical_or(logical_or(e == Const(0.0, f64), e != e), odd)
    toward_e = Call("nextafter", [s, Call("copysign", [Const(float("inf"), f64), e], f64)], f64)
    return cast(Select(exact_or_odd, s, toward_e), dt)


def _check_mode(what: str, rounding_mode) -> str:
    if not (isinstance(rounding_mode, str) and rounding_mode in _MODES):
        raise CompileError(f"T.{what}: Invalid rounding mode {rounding_mode!r}; must be one of {_MODES}")
    return rounding_mode


def _f64(e: Expr) -> Expr:
    return cast(e, _dt.float64)


def _mul64(a: Expr, b: Expr) -> Expr:
    """a * b in float64 as a call no pass fuses into a following addition."""
    return Call("fma", [a, b, Const(-0.0, _dt.float64)], _dt.float64)


def _two_sum(a: Expr, b: Expr) -> tuple[Expr, Expr]:
    """(s, e) with s = fl(a + b) and s + e = a + b exactly (Knuth; float64 operands)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _sum(a: Expr, b: Expr, mode: str) -> Expr:
    """a + b (float64 operands, exact sum needed) rounded to float32 in mode. An exact zero sum is
    +0 in every mode but "rd", where IEEE 754 makes it -0 (unless both operands are +0): that is
    -((-a) + (-b)) rounded to nearest."""
    s, e = _two_sum(a, b)
    r = _round(s, e, mode)
    if mode != "rd":
        return r
    zero64 = Const(0.0, _dt.float64)
    exact_zero = logical_and(s == zero64, e == zero64)
    return Select(exact_zero, -cast((-a) + (-b), _dt.float32), r)


def _round(s: Expr, err: Expr, mode: str) -> Expr:
    """The float32 rounding, in `mode`, of the exact value s + err (s float64, err's sign only
    matters when s is a float32 value)."""
    t = cast(s, _dt.float32)
    if mode == "rn":
        return t
    return _step(t, (s - _f64(t)) + err, mode)  # the exact value's side of t (its sign is exact)


def _step(t: Expr, d: Expr, mode: str) -> Expr:
    """t, or its neighbour in t's type on the side `mode` asks for, given d: a float64 whose sign
    is the sign of (exact value - t)."""
    ft = t.dtype
    up = Call("nextafter", [t, Const(float("inf"), ft)], ft)
    down = Call("nextafter", [t, Const(float("-inf"), ft)], ft)
    zero64 = Const(0.0, _dt.float64)
    if mode == "ru":
        return Select(d > zero64, up, t)
    if mode == "rd":
        return Select(d < zero64, down, t)
    toward0 = Call("nextafter", [t, Const(0.0, ft)], ft)  # rz: step back when t is farther from 0
    zero = Const(0.0, ft)
    return Select(logical_or(logical_and(t > zero, d < zero64), logical_and(t < zero, d > zero64)), toward0, t)


def _sum64(a: Expr, b: Expr, mode: str) -> Expr:
    """a + b of two float64 values rounded to float64 in a directed mode. TwoSum's error is exact
    for any finite operands; an overflow (s infinite from finite operands) goes to the largest
    finite value where the mode rounds toward zero; an exact zero sum is -0 in "rd"."""
    f64 = _dt.float64
    s, e = _two_sum(a, b)
    r = _step(s, e, mode)
    inf = Const(float("inf"), f64)
    big = Const(1.7976931348623157e308, f64)
    finite = logical_and(Call("abs", [a], f64) < inf, Call("abs", [b], f64) < inf)
    overflow = logical_and(Call("abs", [s], f64) == inf, finite)
    keep_inf = {"ru": s > Const(0.0, f64), "rd": s < Const(0.0, f64), "rz": Const(False, _dt.bool_)}[mode]
    r = Select(logical_and(overflow, logical_not(keep_inf)), Call("copysign", [big, s], f64), r)
    if mode != "rd":
        return r
    zero64 = Const(0.0, f64)
    exact_zero = logical_and(s == zero64, e == zero64)
    return Select(exact_zero, -((-a) + (-b)), r)


_HALVES = ("float16", "bfloat16")


def _kind(what: str, e: Expr, mode: str) -> str:
    """"f32", "f64" or "half" for the operand type; half precision takes "rn" only (as CUDA's
    __hadd ... do); other types are refused by name."""
    name = e.dtype.name
    if name == "float32":
        return "f32"
    if name == "float64":
        return "f64"
    if name in _HALVES:
        if mode != "rn":
            raise CompileError(
                f"T.{what}: Only rounding mode 'rn' is available for half precision ({name}), got {mode!r}"
            )
        return "half"
    raise CompileError(f"T.{what} supports float16, bfloat16, float32 and float64, got {e.dtype}")


def _directed64(op: str, mode: str, *args: Expr) -> Expr:
    """A float64 operation rounded in a directed mode as one Call ("dmul_rz", ...): CUDA's
    __dmul_rz ..., the CPU's operation under fesetround, ir/directed64.py's exact arithmetic in
    the emulator (see the module doc)."""
    return Call(f"{op}_{mode}", list(args), _dt.float64)


def _via_f32(dt, f) -> Expr:
    """A half-precision operation computed in float32 and rounded once to dt: float32's 24 bits
    are at least 2p + 2 for p = 11 (float16) and 8 (bfloat16), so for +, -, *, / and sqrt the
    float32 result rounded to dt is the correctly rounded dt result (no double-rounding error)."""
    return cast(f(_dt.float32), dt)


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


def _fma_call(a: Expr, b: Expr, c: Expr) -> Expr:
    return Call("fma", [a, b, c], a.dtype)


def ieee_add(x, y, rounding_mode="rn") -> Expr:
    """x + y rounded once in `rounding_mode` ("rn", "rz", "ru", "rd")."""
    mode = _check_mode("ieee_add", rounding_mode)
    a, b = _floats("ieee_add", x, y)
    kind = _kind("ieee_add", a, mode)
    if kind == "half":
        return _via_f32(a.dtype, lambda f: _fma_call(cast(a, f), Const(1.0, f), cast(b, f)))
    if mode == "rn":
        return _fma_call(a, Const(1.0, a.dtype), b)
    if kind == "f64":
        return _sum64(a, b, mode)
    return _sum(_f64(a), _f64(b), mode)


def ieee_sub(x, y, rounding_mode="rn") -> Expr:
    mode = _check_mode("ieee_sub", rounding_mode)
    a, b = _floats("ieee_sub", x, y)
    kind = _kind("ieee_sub", a, mode)
    if kind == "half":
        return _via_f32(a.dtype, lambda f: _fma_call(cast(a, f), Const(1.0, f), -cast(b, f)))
    if mode == "rn":
        return _fma_call(a, Const(1.0, a.dtype), -b)
    if kind == "f64":
        return _sum64(a, -b, mode)
    return _sum(_f64(a), -_f64(b), mode)


def ieee_mul(x, y, rounding_mode="rn") -> Expr:
    mode = _check_mode("ieee_mul", rounding_mode)
    a, b = _floats("ieee_mul", x, y)
    kind = _kind("ieee_mul", a, mode)
    if kind == "half":
        return _via_f32(a.dtype, lambda f: _fma_call(cast(a, f), cast(b, f), Const(-0.0, f)))
    if mode == "rn":
        return _fma_call(a, b, Const(-0.0, a.dtype))
    if kind == "f64":
        return _directed64("dmul", mode, a, b)
    return _round(_mul64(_f64(a), _f64(b)), Const(0.0, _dt.float64), mode)  # exact in float64


def ieee_fmaf(x, y, z, rounding_mode="rn") -> Expr:
    mode = _check_mode("ieee_fmaf", rounding_mode)
    a, b, c = _floats("ieee_fmaf", x, y, z)
    kind = _kind("ieee_fmaf", a, mode)
    if kind == "half":
        return _fused(a, b, c)  # rounded once to the half type (see _fused)
    if mode == "rn":
        return _fma_call(a, b, c)
    if kind == "f64":
        return _directed64("dfma", mode, a, b, c)
    return _sum(_mul64(_f64(a), _f64(b)), _f64(c), mode)


def _quotient(n: Expr, b: Expr, mode: str) -> Expr:
    """n / b (float64 operands holding float32 values) rounded to float32 in mode."""
    q = n / b
    residual = Call("fma", [-q, b, n], _dt.float64)  # n - q*b, exact
    return _round(q, residual / b, mode)


def ieee_fdiv(x, y, rounding_mode="rn") -> Expr:
    mode = _check_mode("ieee_fdiv", rounding_mode)
    a, b = _floats("ieee_fdiv", x, y)
    kind = _kind("ieee_fdiv", a, mode)
    if kind == "half":
        return _via_f32(a.dtype, lambda f: cast(a, f) / cast(b, f))
    if mode == "rn":
        return a / b
    if kind == "f64":
        return _directed64("ddiv", mode, a, b)
    return _quotient(_f64(a), _f64(b), mode)


def ieee_frcp(x, rounding_mode="rn") -> Expr:
    mode = _check_mode("ieee_frcp", rounding_mode)
    (a,) = _floats("ieee_frcp", x)
    kind = _kind("ieee_frcp", a, mode)
    if kind == "half":
        return _via_f32(a.dtype, lambda f: Const(1.0, f) / cast(a, f))
    if mode == "rn":
        return Const(1.0, a.dtype) / a
    if kind == "f64":
        return _directed64("drcp", mode, a)
    return _quotient(Const(1.0, _dt.float64), _f64(a), mode)


def ieee_fsqrt(x, rounding_mode="rn") -> Expr:
    mode = _check_mode("ieee_fsqrt", rounding_mode)
    (a,) = _floats("ieee_fsqrt", x)
    kind = _kind("ieee_fsqrt", a, mode)
    if kind == "half":
        return _via_f32(a.dtype, lambda f: Call("sqrt", [cast(a, f)], f))
    if mode == "rn":
        return Call("sqrt", [a], a.dtype)
    if kind == "f64":
        return _directed64("dsqrt", mode, a)
    a64 = _f64(a)
    r = Call("sqrt", [a64], _dt.float64)
    # sqrt(a) - r = (a - r*r) / (sqrt(a) + r): the exact residual a - r*r (one fma) over about 2r
    return _round(r, Call("fma", [-r, r, a64], _dt.float64) / (r + r), mode)


def ieee_frsqrt(x) -> Expr:
    """1/sqrt(x) rounded to the operand's type (float32, float16, bfloat16; see the module doc).
    float64 has no such operation in CUDA (TileLang refuses it too)."""
    (a,) = _floats("ieee_frsqrt", x)
    if a.dtype.name == "float64":
        raise CompileError("T.ieee_frsqrt: frsqrt is not supported for float64")
    _kind("ieee_frsqrt", a, "rn")
    f64 = _dt.float64
    return cast(Const(1.0, f64) / Call("sqrt", [cast(a, f64)], f64), a.dtype)
