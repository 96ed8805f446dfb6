"""The TIR math names TileLang re-exports into T (TVM's `tvm.script.tir` surface) that the rest of
the T namespace lacked, and TileLang's fast-math intrinsics:

- float tests `T.isnan`, `T.isinf`, `T.isfinite` (bool; an integer operand is never NaN or
  infinite, as in TVM);
- binary float math `T.atan2`, `T.hypot`, `T.copysign`, `T.nextafter` (float32 / float64), and
  `T.ldexp(x, e)` = x * 2**e;
- integer bit counts `T.popcount(x)` (x's type) and `T.clz(x)` (int32), counted in x's own
  width: clz(0) is the width, as CUDA's __clz;
- `T.bitwise_not`, `T.likely(cond)` (a hint: the condition itself), `T.__ldg(A[i])` (a cache
  hint: the element itself), `T.fabs` (= T.abs),
  `T.asinh`, `T.acosh`, `T.atanh`;
- `T.__exp`, `T.__exp10`, `T.__log`, `T.__log2`, `T.__log10`, `T.__sin`, `T.__cos`, `T.__tan`:
  CUDA's approximate `__expf` family for float32 and the low-precision types (computed in float),
  the accurate function for float64; the CPU's float math is already fast and accurate;
  `T.fast_rcp(x)` (float32): rcp.approx on CUDA, a division on the CPU.

Every name computes what ir/scalar_ops.py says, on every target (the emulator takes it from
there; tw_cpu.h and tw_cuda.h implement it)."""
from __future__ import annotations

import math as _pymath

from ..errors import CompileError, DtypeError
from ..ir import dtype as _dt
from ..ir.expr import Call, Const, Expr, as_expr, cast, promote, unary
from .math import _unary, _v
from .math import abs as _abs


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _float_operand(x, what: str, like=None) -> Expr:
    """x as a float expression: Python numbers take `like`'s type (else float32), integer
    expressions become float32 (as T.exp does with them)."""
    x = _v(x)
    if not isinstance(x, (Expr, int, float, bool)):
        raise CompileError(f"{what}: expected a number or a scalar expression, got {type(x).__name__} {x!r}")
    e = as_expr(x, like if like is not None and not isinstance(x, Expr) else None)
    if e.dtype.is_float:
        return e
    if e.dtype.is_int or e.dtype.is_bool:
        return cast(e, _dt.float32)
    raise CompileError(f"{what}: expected a number, got {e} of type {e.dtype}")


def _float_pair(a, b, what: str) -> tuple[Expr, Expr]:
    a, b = _v(a), _v(b)
    like = next((x.dtype for x in (a, b) if isinstance(x, Expr) and x.dtype.is_float), None)
    ea, eb = _float_operand(a, what, like), _float_operand(b, what, like)
    dt = promote(ea.dtype, eb.dtype)
    return cast(ea, dt), cast(eb, dt)


def _float_test(name: str, pyfn, integers: bool):
    def f(x):
        x = _v(x)
        if _is_number(x):
            return pyfn(float(x))
        if isinstance(x, bool):
            return integers
        if not isinstance(x, Expr):
            raise CompileError(f"T.{name}: expected a scalar expression, got {type(x).__name__} {x!r}")
        if x.dtype.is_int or x.dtype.is_bool:
            return Const(integers, _dt.bool_)  # an integer is never NaN or infinite
        if not x.dtype.is_float:
            raise CompileError(f"T.{name}: expected a number, got {x} of type {x.dtype}")
        return Call(name, [x], _dt.bool_)

    f.__name__ = name
    f.__doc__ = f"T.{name}(x): whether the float x is {name[2:]} (bool)."
    return f


isnan = _float_test("isnan", _pymath.isnan, False)
isinf = _float_test("isinf", _pymath.isinf, False)
isfinite = _float_test("isfinite", _pymath.isfinite, True)


def _binary_float(name: str, pyfn):
    def f(x1, x2):
        a, b = _v(x1), _v(x2)
        if _is_number(a) and _is_number(b):
            return pyfn(float(a), float(b))
        a, b = _float_pair(a, b, f"T.{name}")
        return Call(name, [a, b], a.dtype)

    f.__name__ = name
    return f


atan2 = _binary_float("atan2", _pymath.atan2)
atan2.__doc__ = "T.atan2(y, x): the angle of (x, y), in (-pi, pi]."
hypot = _binary_float("hypot", _pymath.hypot)
hypot.__doc__ = "T.hypot(x, y): sqrt(x*x + y*y) without intermediate overflow."
copysign = _binary_float("copysign", _pymath.copysign)
copysign.__doc__ = "T.copysign(x, y): |x| with the sign of y."


def nextafter(x1, x2):
    """T.nextafter(x, y): the next float32 / float64 value after x towards y."""
    a, b = _v(x1), _v(x2)
    if _is_number(a) and _is_number(b):
        return _pymath.nextafter(float(a), float(b))
    a, b = _float_pair(a, b, "T.nextafter")
    if a.dtype.bits < 32:
        raise CompileError(
            f"T.nextafter: {a.dtype} is not supported (float32 and float64 are); the next value of a "
            "narrow type is not the next float32 value rounded back")
    return Call("nextafter", [a, b], a.dtype)


def ldexp(x1, x2):
    """T.ldexp(x, e): x * 2**e for a float x and an integer exponent e (int32)."""
    x, e = _v(x1), _v(x2)
    if _is_number(x) and isinstance(e, int) and not isinstance(x, bool):
        return _pymath.ldexp(float(x), e)
    xe = _float_operand(x, "T.ldexp")
    ee = as_expr(e, _dt.int32)
    if not (ee.dtype.is_int or ee.dtype.is_bool):
        raise CompileError(f"T.ldexp: the exponent must be an integer, got {ee} of type {ee.dtype}")
    return Call("ldexp", [xe, cast(ee, _dt.int32)], xe.dtype)


def _int_operand(x, what: str) -> Expr:
    x = _v(x)
    if isinstance(x, bool) or not isinstance(x, (Expr, int)):
        raise CompileError(f"{what}: expected an integer, got {type(x).__name__} {x!r}")
    e = as_expr(x)
    if not e.dtype.is_int:
        raise CompileError(f"{what}: expected an integer, got {e} of type {e.dtype}")
    return e


def popcount(x):
    """T.popcount(x): the number of set bits of the integer x in its own width (x's type)."""
    e = _int_operand(x, "T.popcount")
    return Call("popcount", [e], e.dtype)


def clz(x):
    """T.clz(x): leading zero bits of the integer x in its own width (int32); clz(0) is the width."""
    e = _int_operand(x, "T.clz")
    return cast(Call("clz", [e], e.dtype), _dt.int32)


def bitwise_not(x):
    """T.bitwise_not(x): ~x of an integer (logical not of a bool)."""
    x = _v(x)
    if isinstance(x, bool):
        return not x
    if isinstance(x, int):
        return ~x
    if not isinstance(x, Expr) or not (x.dtype.is_int or x.dtype.is_bool):
        raise CompileError(f"T.bitwise_not: expected an integer, got {x!r}")
    return unary("not" if x.dtype.is_bool else "bitnot", x)


def likely(cond):
    """T.likely(cond): a branch hint; the value is cond."""
    return _v(cond)


def ldg(value):
    """T.__ldg(A[i]): CUDA's read-only-cache load of global tensor element A[i]. A cache hint: the
    value is A[i] (tilewise's CUDA kernels leave the choice of load to the compiler)."""
    from ..ir.expr import BufferLoad

    value = _v(value)
    if not isinstance(value, BufferLoad) or not value.buffer.is_global:
        raise CompileError(f"T.__ldg takes one element of a global tensor (T.__ldg(A[i])), got {value!r}")
    return value


def assume(cond=None):
    """T.assume(cond): a fact for TVM's analyser, which tilewise's simplifier does not use. As in
    TileLang 0.1.13, a condition the host can evaluate (on dynamic dimensions and scalar
    parameters only) is checked at every call: a RuntimeError "Assume: cond" when it is false
    (jit/args.py). Conditions on anything else are not checked."""
    from ..ir.builder import current
    from ..ir.printer import expr_str

    cond = _v(cond)
    b = current()
    if b is not None and isinstance(cond, Expr):
        b.func_attrs.setdefault(HOST_ASSUMES, []).append((cond, expr_str(cond)))
    return None


HOST_ASSUMES = "tilewise_assumes"  # PrimFunc.attrs: [(condition, its text)] of T.assume


fabs = _abs
asinh = _unary("asinh", _pymath.asinh)
acosh = _unary("acosh", _pymath.acosh)
atanh = _unary("atanh", _pymath.atanh)


_FAST_TYPES = ("float16", "bfloat16", "float32", "float64")


def _fast(name: str, pyfn):
    def f(x):
        x = _v(x)
        if _is_number(x):
            return pyfn(float(x))
        if not isinstance(x, Expr) or x.dtype.name not in _FAST_TYPES:
            # TileLang's wording and types: float16, bfloat16, float32, float64
            got = x.dtype.tl_name if isinstance(x, Expr) else repr(x)
            raise DtypeError(f"T.__{name} only supports floating-point inputs, but got {got} "
                             f"(one of {', '.join(_FAST_TYPES)})")
        return Call(f"fast_{name}", [x], x.dtype)

    f.__name__ = f"__{name}"
    f.__doc__ = f"T.__{name}(x): fast (approximate on CUDA) {name} of a float."
    return f


fast_exp = _fast("exp", _pymath.exp)
fast_exp10 = _fast("exp10", lambda x: 10.0**x)
fast_log = _fast("log", _pymath.log)
fast_log2 = _fast("log2", _pymath.log2)
fast_log10 = _fast("log10", _pymath.log10)
fast_sin = _fast("sin", _pymath.sin)
fast_cos = _fast("cos", _pymath.cos)
fast_tan = _fast("tan", _pymath.tan)


def fast_rcp(x):
    """T.fast_rcp(x): approximate 1 / x of a float32 (CUDA's rcp.approx; exact division on the CPU)."""
    x = _v(x)
    if _is_number(x):
        return 1.0 / x
    if not isinstance(x, Expr) or x.dtype != _dt.float32:
        what = f"{x} of type {x.dtype}" if isinstance(x, Expr) else repr(x)
        raise CompileError(f"T.fast_rcp: takes a float32 value (as TileLang's), got {what}")
    return Call("fast_rcp", [x], x.dtype)
