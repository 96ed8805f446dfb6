"""TileLang 0.1.15's dtype predicates (`T.is_float4`, `T.is_float4_e2m1fn`,
`T.is_float4_e2m1_unpacked`, `T.is_f8f6f4_family`), its GEMM operand check
`T.validate_gemm_ab_dtypes`, and the `T.float4_e2m1_unpacked` name.

The predicates take anything `T.Tensor` accepts as a dtype (a name, a T dtype, a numpy/torch
dtype). In TileLang `float4_e2m1_unpacked` is an fp4 value in one byte, an operand format of
Blackwell's tcgen05 `kind::f8f6f4` MMA; tilewise has no Blackwell target, so the name is an error
naming why (as the other Blackwell names are), and no tilewise dtype is the unpacked variant."""
from __future__ import annotations

from ..ir import dtype as _dt
from .dtype_names import UnsupportedDType

float4_e2m1_unpacked = UnsupportedDType(
    "float4_e2m1_unpacked",
    "the one-value-per-byte fp4 operand format of Blackwell's tcgen05 MMA (sm_100); tilewise has no "
    "Blackwell target. Use T.float4_e2m1fn (stored two values per byte, as TileLang stores it)")

_UNPACKED = "float4_e2m1_unpacked"


def _name(value: object) -> str:
    if isinstance(value, UnsupportedDType):
        return value.name
    if value in (_UNPACKED, "custom[float4_e2m1_unpacked]8"):  # TileLang's name and its TVM spelling
        return _UNPACKED
    if value == "float4_e2m1fnx2":  # TileLang's packed pair (T.float4_e2m1fnx2): no element dtype
        return "float4_e2m1fnx2"
    return _dt.as_dtype(value).name


def is_float4_e2m1fn(value: object) -> bool:
    """Whether `value` is the fp4 E2M1 dtype (`T.float4_e2m1fn`)."""
    return _name(value) == "float4_e2m1fn"


def is_float4_e2m1_unpacked(value: object) -> bool:
    """Whether `value` is TileLang's one-value-per-byte fp4 variant (never a tilewise dtype)."""
    return _name(value) == _UNPACKED


def is_float4(value: object) -> bool:
    """Whether `value` is any fp4 E2M1 variant (the packed pair T.float4_e2m1fnx2 included)."""
    return is_float4_e2m1fn(value) or is_float4_e2m1_unpacked(value) or _name(value) == "float4_e2m1fnx2"


def is_f8f6f4_family(value: object) -> bool:
    """Whether `value` is an fp8, fp6 or fp4 dtype (tcgen05's `kind::f8f6f4` operand family)."""
    name = _name(value)
    return is_float4(value) or name.startswith(("float8", "float6"))


def validate_gemm_ab_dtypes(a_dtype: object, b_dtype: object, *, a_in_tmem: bool = False,
                            allow_f8f6f4_mixed: bool = False) -> None:
    """Raise ValueError unless A and B may be multiplied together: equal dtypes, or (with
    `allow_f8f6f4_mixed`) two members of the fp8/fp6/fp4 family; an A in tensor memory skips the
    check, as in TileLang."""
    if a_in_tmem or _name(a_dtype) == _name(b_dtype):
        return
    if allow_f8f6f4_mixed and is_f8f6f4_family(a_dtype) and is_f8f6f4_family(b_dtype):
        return
    raise ValueError(f"mixed-dtype GEMM supports only fp8/fp6/fp4-family operands, got A={_name(a_dtype)}, "
                     f"B={_name(b_dtype)}")


__all__ = ["float4_e2m1_unpacked", "is_f8f6f4_family", "is_float4", "is_float4_e2m1_unpacked",
           "is_float4_e2m1fn", "validate_gemm_ab_dtypes"]
