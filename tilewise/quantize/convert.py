"""In-kernel unpacking of low-bit values packed in wider integers (TileLang's
tilelang.quantize.quantization names and argument orders). Each returns an expression: field
`pos` (0 = least significant bits) of width `nbit` in `val`, converted to `dtype`."""
from __future__ import annotations

from ..ir.dtype import as_dtype
from ..ir.expr import as_expr, cast
from ..language.math import if_then_else, reinterpret
from ..language.math import min as tmin


def _c(value: int, dtype: str):
    return as_expr(value, as_dtype(dtype))


def _field(val, pos, nbit: int, dtype: str):
    """(val >> (pos * nbit)) & (2**nbit - 1), computed in `dtype`."""
    v = cast(as_expr(val), as_dtype(dtype))
    shift = cast(as_expr(pos), as_dtype(dtype)) * _c(nbit, dtype)
    return (v >> shift) & _c((1 << nbit) - 1, dtype)


def _check_storage(val, storage: str) -> None:
    got = as_expr(val).dtype
    if got != as_dtype(storage):
        raise ValueError(f"the packed value has type {got}, but this converter unpacks {storage}")


def _tir_packed_to_unsigned_convert(storage_type: str = "uint", storage_nbit: int = 8):
    """f(nbit, val, pos, dtype): the unsigned field, as dtype."""
    storage = f"{storage_type}{storage_nbit}"

    def convert(nbit: int, val, pos, dtype: str):
        _check_storage(val, storage)
        return cast(_field(val, pos, nbit, storage), as_dtype(dtype))

    return convert


def _tir_packed_to_signed_convert(storage_type: str = "uint", storage_nbit: int = 8):
    """f(nbit, val, pos, dtype): the field minus 2**(nbit-1) (offset binary), as dtype."""
    storage = f"{storage_type}{storage_nbit}"

    def convert(nbit: int, val, pos, dtype: str):
        _check_storage(val, storage)
        field = _field(cast(as_expr(val), as_dtype("uint32")), pos, nbit, "uint32")
        return cast(field, as_dtype(dtype)) - _c(1 << (nbit - 1), dtype)

    return convert


def _tir_packed_to_unsigned_convert_with_zeros(storage_type: str = "uint", storage_nbit: int = 8):
    """f(nbit, val, pos, zero, dtype): (field - zero), as dtype."""
    storage = f"{storage_type}{storage_nbit}"

    def convert(nbit: int, val, pos, zero, dtype: str):
        _check_storage(val, storage)
        return cast(_field(val, pos, nbit, storage) - zero, as_dtype(dtype))

    return convert


def _tir_packed_int_to_int_convert(storage_type: str = "uint", storage_nbit: int = 8):
    """f(nbit, val, pos, dtype): the field read as a two's-complement nbit integer, as dtype."""
    storage = f"{storage_type}{storage_nbit}"

    def convert(nbit: int, val, pos, dtype: str):
        _check_storage(val, storage)
        field = _field(cast(as_expr(val), as_dtype("int32")), pos, nbit, "int32")
        # sign-extend by flipping and subtracting the top bit (no shift out of range: C would let
        # the compiler assume a signed overflow away)
        top = _c(1 << (nbit - 1), "int32")
        return cast((field ^ top) - top, as_dtype(dtype))

    return convert


def _fp4_e2m1_to_f16(field):
    """An fp4 field (sign, 3 bits) as float16: exponent field 0 gives 0, otherwise the f16
    exponent field is the 3 bits with the top one set (assembled in 16 bits)."""
    f = cast(field, as_dtype("uint16"))
    sign = f >> _c(3, "uint16")
    e = f & _c(7, "uint16")
    bits = ((e | _c(8, "uint16")) | (sign << _c(5, "uint16"))) << _c(10, "uint16")
    return if_then_else(e == _c(0, "uint16"), as_expr(0.0, as_dtype("float16")), reinterpret(bits, "float16"))


def _tir_packed_to_fp4_to_f16(storage_type: str = "uint", storage_nbit: int = 8):
    """f(nbit, val, pos, dtype): a 4-bit float field as float16 (nbit must be 4)."""
    storage = f"{storage_type}{storage_nbit}"

    def convert(nbit: int, val, pos, dtype: str = "float16"):
        _check_storage(val, storage)
        if nbit != 4:
            raise ValueError(f"_tir_packed_to_fp4_to_f16 unpacks 4-bit fields, got nbit={nbit}")
        return _fp4_e2m1_to_f16(_field(val, pos, nbit, storage))

    return convert


def _tir_u32_to_f4_to_f32(nbit: int, val, pos, dtype: str = "float32"):
    """A 4-bit float field of a uint32 as float32 (0 when its exponent field is 0)."""
    _check_storage(val, "uint32")
    field = _field(val, pos, nbit, "uint32")
    sign = field >> _c(3, "uint32")
    e = field & _c(7, "uint32")
    bits = ((e | _c(120, "uint32")) | (sign << _c(8, "uint32"))) << _c(23, "uint32")
    return if_then_else(e == _c(0, "uint32"), as_expr(0.0, as_dtype("float32")), reinterpret(bits, "float32"))


def _tir_u8_to_f8_e4m3_to_f16(nbit: int, val, dtype: str = "float16"):
    """A float8 e4m3 byte as float16 by moving its fields: the exponent rebiased by +8 (7 -> 15);
    e4m3's subnormals and NaN are not special-cased (as in TileLang)."""
    if nbit != 8 or as_dtype(dtype) != as_dtype("float16"):
        raise ValueError("_tir_u8_to_f8_e4m3_to_f16 converts 8-bit values to float16")
    v = cast(as_expr(val), as_dtype("uint16"))
    sign = (v >> _c(7, "uint16")) << _c(15, "uint16")
    exp = ((v >> _c(3, "uint16")) & _c(15, "uint16")) + _c(8, "uint16")
    mant = (v & _c(7, "uint16")) << _c(7, "uint16")
    return reinterpret(sign | (exp << _c(10, "uint16")) | mant, "float16")


def _tir_u8_to_f4_to_bf16(nbit: int, val, pos, scale, dtype: str = "bfloat16"):
    """An fp4 (e2m1) field of a uint8 as bfloat16 with `scale` added to its exponent (MXFP4's
    shared exponent), the biased exponent saturating at 255."""
    if nbit != 4 or as_dtype(dtype) != as_dtype("bfloat16"):
        raise ValueError("_tir_u8_to_f4_to_bf16 converts 4-bit fields to bfloat16")
    _check_storage(val, "uint8")
    field = _field(val, pos, nbit, "uint16")
    sign = field >> _c(3, "uint16")
    e = (field & _c(6, "uint16")) >> _c(1, "uint16")
    e = tmin(e + _c(126, "uint16") + cast(as_expr(scale), as_dtype("uint16")), _c(255, "uint16"))
    m = field & _c(1, "uint16")
    bits = (((sign << _c(8, "uint16")) | e) << _c(7, "uint16")) | (m << _c(6, "uint16"))
    return reinterpret(bits, "bfloat16")
