"""The mma.sync variants tw_cuda.h implements, with each operand's per-thread register count, so
that lowering can size fragments and the renderer can name the device function."""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import InternalError
from ...ir.dtype import as_dtype

_PTX_NAMES = ("f16", "bf16", "f32", "tf32", "s8", "u8", "s32", "s4", "u4")
_PTX_TYPE = {
    "float16": "f16", "bfloat16": "bf16", "float32": "f32", "int8": "s8", "uint8": "u8", "int32": "s32",
    "tfloat32": "tf32", "int4": "s4", "uint4": "u4",
}  # fmt: skip


@dataclass(frozen=True)
class MmaVariant:
    shape: str  # "m16n8k16"
    a: str  # PTX operand types
    b: str
    c: str
    a_regs: int  # 32-bit registers per thread holding A, B, C (= D)
    b_regs: int
    c_regs: int

    @property
    def function(self) -> str:
        """The tw_cuda.h function: tw::mma_<shape>_<c>_<a>_<b>(a, b, c)."""
        return f"tw::mma_{self.shape}_{self.c}_{self.a}_{self.b}"

    @property
    def ptx(self) -> str:
        return f"mma.sync.aligned.{self.shape}.row.col.{self.c}.{self.a}.{self.b}.{self.c}"


MMA_VARIANTS = {
    (v.shape, v.a, v.b, v.c): v
    for v in (
        MmaVariant("m16n8k16", "f16", "f16", "f32", 4, 2, 4),
        MmaVariant("m16n8k16", "bf16", "bf16", "f32", 4, 2, 4),
        MmaVariant("m16n8k16", "f16", "f16", "f16", 4, 2, 2),
        MmaVariant("m16n8k8", "tf32", "tf32", "f32", 4, 2, 4),
        MmaVariant("m16n8k8", "f16", "f16", "f32", 2, 1, 4),
        MmaVariant("m16n8k8", "bf16", "bf16", "f32", 2, 1, 4),
        MmaVariant("m16n8k8", "f16", "f16", "f16", 2, 1, 2),
        MmaVariant("m16n8k32", "s8", "s8", "s32", 4, 2, 4),
        MmaVariant("m16n8k32", "u8", "u8", "s32", 4, 2, 4),
        MmaVariant("m16n8k32", "s8", "u8", "s32", 4, 2, 4),
        MmaVariant("m16n8k32", "u8", "s8", "s32", 4, 2, 4),
        # 4-bit integers, two per byte (INT4TensorCoreIntrinEmitter)
        MmaVariant("m16n8k64", "s4", "s4", "s32", 4, 2, 4),
        MmaVariant("m16n8k64", "u4", "u4", "s32", 4, 2, 4),
    )
}


def ptx_type(name) -> str:
    """The PTX operand type of an IR dtype (or a PTX type name, passed through)."""
    s = str(name)
    if s in _PTX_NAMES:
        return s
    if s in _PTX_TYPE:
        return _PTX_TYPE[s]
    if s in ("int4", "uint4"):
        return _PTX_TYPE[s]
    try:
        dt = as_dtype(s)
    except (TypeError, ValueError):
        raise InternalError(f"mma_sync: unknown operand type {name!r}") from None
    if dt.name not in _PTX_TYPE:
        raise InternalError(f"mma_sync: no PTX mma operand type for {dt}")
    return _PTX_TYPE[dt.name]


def mma_variant(shape: str, a_dtype, b_dtype, c_dtype) -> MmaVariant:
    """The variant for an mma_sync call's attributes; float32 inputs of m16n8k8 are tf32."""
    a, b, c = ptx_type(a_dtype), ptx_type(b_dtype), ptx_type(c_dtype)
    if shape == "m16n8k8":
        a = "tf32" if a == "f32" else a
        b = "tf32" if b == "f32" else b
    v = MMA_VARIANTS.get((shape, a, b, c))
    if v is None:
        known = ", ".join(f"{s}.{x}.{y}->{z}" for s, x, y, z in sorted(MMA_VARIANTS))
        raise InternalError(f"mma_sync: no variant {shape}.{a}.{b}->{c}; supported: {known}")
    return v
