"""TileLang 0.1.15's dtype names that T lacked:

- `T.boolean`: TVM's name for `T.bool` (the same dtype).
- `T.void`: the type of a value-less call (`T.call_extern(T.void, "f", ...)` is a statement),
  which tilewise spells "handle" as TVM does for call_extern; so `T.void` is the handle dtype.
- the packed sub-byte vector types `T.float4_e2m1fnx2 ... x64`, `T.float6_e2m3fnx2 ...`,
  `T.float6_e3m2fnx2 ...`: in TileLang a float4_e2m1fnx8 is 32 bits of eight packed 4-bit values.
  tilewise stores fp4 buffers two values per byte (transform/pack_fp4.py) and fp6 one per byte,
  but has no vector values of them: the names exist and any use (calling one, `T.reinterpret` to
  one, a tensor of one) is an error naming the type. `T.float4_e2m1fnx2`, TileLang's pair (torch's
  float4_e2m1fn_x2), also answers `.is_float4()`, `.as_torch()`, `.bits`, `.lanes`.
- `T.tfloat32x2 ... x64`: vector dtypes (as `T.float32x4`) of T.tfloat32, present once the
  tfloat32 dtype is (it is added on another branch).
- `T.float8_e3m4`, `T.float8_e4m3b11fnuz` and their vectors: float8 formats that no target of
  tilewise has a conversion or tensor-core instruction for (ml_dtypes defines them; CUDA and the
  AMD GPUs do not), likewise errors naming them.

The errors are CompileErrors when called, and dtype lookups (`T.Tensor(shape, T.float8_e3m4)`)
reject the name as an unknown dtype ("unknown dtype 'float8_e3m4'")."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt

LANES = (2, 4, 8, 16, 32, 64)


class UnsupportedDType(str):
    """A TileLang dtype name tilewise cannot represent: a str (its name, so that it prints and
    compares as TileLang's does) whose use as a constructor raises CompileError with the reason."""

    def __new__(cls, name: str, reason: str):
        obj = super().__new__(cls, name)
        obj.reason = reason
        return obj

    @property
    def name(self) -> str:
        return str.__str__(self)

    def __call__(self, *args, **kwargs):
        raise CompileError(f"T.{self.name}: {self.reason}")

    def __repr__(self) -> str:
        return self.name


class PackedFp4Pair(UnsupportedDType):
    """`T.float4_e2m1fnx2`, TileLang's packed pair of fp4 values (one byte, torch's
    float4_e2m1fn_x2): a dtype to ask about (`.is_float4()`, `.as_torch()`, `.bits`, `.lanes`).
    fp4 buffers are stored two values per byte already (transform/pack_fp4.py), so a tensor of
    pairs is declared as a float4_e2m1fn tensor of twice the last dimension; a pair value has no
    representation in a kernel (calling it is a CompileError)."""

    # no `element` attribute: it is not one of the vector dtypes of values (T.float32x4)
    lanes = 2
    bits = 8

    def is_float4(self) -> bool:
        return True

    def is_float4_e2m1fn(self) -> bool:
        return False

    @property
    def torch(self):
        import torch

        return torch.float4_e2m1fn_x2

    def as_torch(self):
        return self.torch


_PACKED = ("a packed vector of {bits}-bit values, which has no value form in a kernel (fp4 buffers are stored "
           "two values per byte, fp6 one per byte); use {elem} buffers")
_PAIR = ("a packed pair of fp4 values has no value form in a kernel; fp4 buffers are stored two values per byte "
         "already, so index a float4_e2m1fn buffer (or view its bytes as uint8 with T.view)")
_NO_TARGET = "a float8 format no tilewise target (sm_80/sm_90a/CPU/HIP gfx942) converts or computes with"


def dtype_names() -> dict[str, object]:
    out: dict[str, object] = {"boolean": _dt.bool_, "void": _dt.handle}
    for elem, bits in (("float4_e2m1fn", 4), ("float6_e2m3fn", 6), ("float6_e3m2fn", 6)):
        for n in LANES:
            out[f"{elem}x{n}"] = UnsupportedDType(f"{elem}x{n}", _PACKED.format(bits=bits, elem=elem))
    out["float4_e2m1fnx2"] = PackedFp4Pair("float4_e2m1fnx2", _PAIR)
    try:  # T.tfloat32 itself is another branch's (tlex2): its vectors follow once the dtype exists
        tf32 = _dt.as_dtype("tfloat32")
    except (TypeError, ValueError):
        tf32 = None
    if tf32 is not None:
        from .global_vector import VectorDType

        for n in LANES:
            out[f"tfloat32x{n}"] = VectorDType(tf32, n)
    for elem in ("float8_e3m4", "float8_e4m3b11fnuz"):
        out[elem] = UnsupportedDType(elem, _NO_TARGET)
        for n in LANES:
            out[f"{elem}x{n}"] = UnsupportedDType(f"{elem}x{n}", _NO_TARGET)
    return out
