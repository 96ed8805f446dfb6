"""The external functions whose meaning tilewise knows: the CUDA math functions a T.call_extern
may name (`expf`, `__expf`, `fmaxf`, `__popc`, ...), each as the IR's own math operation on the
function's parameter type. The emulator runs such calls with the IR's scalar semantics and the
CPU target (which has no CUDA math library) renders them as those operations; the CUDA
renderer prints the name as written."""
from __future__ import annotations

from . import dtype as _dt
from .expr import BinOp, Call, Cast, Expr

_UNARY = ("exp", "exp2", "exp10", "log", "log2", "log10", "log1p", "expm1", "sqrt", "rsqrt", "tanh", "sin", "cos",
          "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "erf", "floor", "ceil", "round",
          "trunc")  # fmt: skip
_BINARY = ("pow", "fmod", "atan2", "hypot", "copysign")

# name -> (IR math name, or "div", and the parameter type C converts the arguments to)
KNOWN: dict[str, tuple[str, _dt.DataType]] = {}
for _n in _UNARY + _BINARY:
    KNOWN[_n + "f"] = (_n, _dt.float32)
    KNOWN[_n] = (_n, _dt.float64)
KNOWN.update({
    "rintf": ("nearbyint", _dt.float32), "rint": ("nearbyint", _dt.float64),
    "nearbyintf": ("nearbyint", _dt.float32), "nearbyint": ("nearbyint", _dt.float64),
    "fabsf": ("abs", _dt.float32), "fabs": ("abs", _dt.float64),
    "fmaxf": ("max", _dt.float32), "fmax": ("max", _dt.float64),
    "fminf": ("min", _dt.float32), "fmin": ("min", _dt.float64),
    "__expf": ("fast_exp", _dt.float32), "__exp10f": ("fast_exp10", _dt.float32), "__logf": ("fast_log", _dt.float32),
    "__log2f": ("fast_log2", _dt.float32), "__log10f": ("fast_log10", _dt.float32),
    "__sinf": ("fast_sin", _dt.float32), "__cosf": ("fast_cos", _dt.float32), "__tanf": ("fast_tan", _dt.float32),
    "__frcp_rn": ("rcp", _dt.float32), "__fsqrt_rn": ("sqrt", _dt.float32), "__fdividef": ("div", _dt.float32),
    "__popc": ("popcount", _dt.uint32), "__popcll": ("popcount", _dt.uint64),
    "__clz": ("clz", _dt.int32), "__clzll": ("clz", _dt.int64),
})  # fmt: skip

# functions with no effect on any value (only on timing), which the emulator and the CPU skip
NO_EFFECT = ("__nanosleep",)


def arity(op: str) -> int:
    return 2 if op in _BINARY or op in ("max", "min", "div") else 1


def as_ir(call: Call) -> Expr | None:
    """A T.call_extern of a known function as the IR operation it is (with C's conversions), or
    None for a function tilewise does not know (or called with the wrong number of arguments)."""
    known = KNOWN.get(call.attrs.get("name"))
    if known is None:
        return None
    op, param = known
    if len(call.args) != arity(op):
        return None
    args = [a if a.dtype == param else Cast(a, param) for a in call.args]
    value: Expr = BinOp("div", args[0], args[1], param) if op == "div" else Call(op, args, param)
    if call.dtype.kind == "handle" or call.dtype == param:
        return value
    return Cast(value, call.dtype)
