"""Scalar data types: one object per type, shared by the IR, the backends and the runtime."""
from __future__ import annotations

import ctypes

import numpy as np

try:  # ml_dtypes gives numpy host types for bfloat16 and float8
    import ml_dtypes
except ImportError:  # pragma: no cover - a hard dependency, but keep import errors readable
    ml_dtypes = None


class DataType(str):
    """A scalar type such as float16 or int32; compare with ==, or with its name as a string.

    It is a str (its canonical name), as TVM's DataType is, because TileLang code passes
    `T.float16` where a string is expected, e.g. `getattr(torch, out_dtype)`."""

    def __new__(cls, name: str, kind: str, bits: int, lanes: int = 1):
        return super().__new__(cls, name)

    def __init__(self, name: str, kind: str, bits: int, lanes: int = 1):
        self.name = name
        # "float" | "bfloat" | "int" | "uint" | "bool" | "handle" | "float8" | "float6" | "float4" |
        # "e8m0" (the OCP MX scale type: a power of two, no sign, no zero) | "tfloat" (TensorFloat-32)
        self.kind = kind
        self.bits = bits
        self.lanes = lanes

    # A DataType behaves like the string of its name for users who compare with "float16".
    def __eq__(self, other: object) -> bool:
        if isinstance(other, DataType):
            return self.name == other.name
        if isinstance(other, str):
            try:
                return self is as_dtype(other)
            except (TypeError, ValueError):
                return False
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self.name)

    def __reduce__(self):
        return as_dtype, (self.name,)

    def __repr__(self) -> str:
        return self.name

    __str__ = __repr__

    def __call__(self, value=None):
        """`T.float32(1.0)` makes a constant; `T.int32()` is a fresh scalar variable that is also
        an annotation (a macro's `x: T.int32()`), as TVM's `T.int32()` is."""
        # expressions carry dtypes: expr.py imports this module
        from .expr import AnnotatedVar, Cast, as_expr, const

        if value is None:
            return AnnotatedVar(self)
        if isinstance(value, (int, float, bool)):
            from .literal_range import check_literal

            check_literal(value, self, f"T.{self.name}")  # TVM's FloatImm / IntImm range check
            return const(value, self)
        return Cast(as_expr(value), self)

    @property
    def is_float(self) -> bool:
        return self.kind in ("float", "bfloat", "float8", "float6", "float4", "e8m0", "tfloat")

    @property
    def is_int(self) -> bool:
        return self.kind in ("int", "uint")

    @property
    def is_signed(self) -> bool:
        return self.kind == "int"

    @property
    def is_bool(self) -> bool:
        return self.kind == "bool"

    @property
    def tl_name(self) -> str:
        """The name as TileLang spells it, for messages: its e4m3 fp8 type is float8_e4m3fn
        (tilewise's canonical name float8_e4m3 is an alias of the same type)."""
        return _TL_NAMES.get(self.name, self.name)

    @property
    def bytes(self) -> int:
        return max(1, self.bits // 8)  # int4 / uint4 take a byte each inside a kernel

    @property
    def is_sub_byte_int(self) -> bool:
        """int4 / uint4: one value per byte inside a kernel, packed two per byte in TileLang's tensors."""
        return self.is_int and self.bits < 8

    @property
    def numpy(self) -> np.dtype:
        return _NUMPY[self.name]()

    @property
    def ctype(self):
        """The ctypes type a scalar kernel argument of this type is passed as; 16- and 8-bit
        floats travel as their bit patterns. None for types that cannot be passed."""
        return _CTYPES.get(self.name)

    @property
    def torch(self):
        """torch's dtype (torch is optional: imported only when asked)."""
        import torch

        # TileLang's storage dtypes: int4 / uint4 tensors are int8 / uint8 (two values per byte),
        # tfloat32 tensors float32
        name = {"float8_e4m3": "float8_e4m3fn", "int4": "int8", "uint4": "uint8", "tfloat32": "float32"}
        t = getattr(torch, name.get(self.name, self.name), None)
        if t is None:
            if self.kind == "float4":  # torch has only the packed torch.float4_e2m1fn_x2
                raise TypeError(f"torch has no one-value-per-byte dtype for {self}: kernels take packed byte tensors "
                                "(torch.int8 / uint8 / float4_e2m1fn_x2 of half the last dimension, two values per "
                                f"byte) or numpy arrays of ml_dtypes.{self.name}")
            if self.kind == "float6":
                raise TypeError(f"torch has no one-value-per-byte dtype for {self}: kernels take torch.uint8 "
                                f"tensors (the value in each byte's low bits) or numpy arrays of ml_dtypes.{self.name}")
            raise TypeError(f"torch has no dtype for {self}")
        return t

    def as_torch(self):
        """TileLang's name for `.torch`, except that fp4 answers its storage dtype
        torch.float4_e2m1fn_x2 (two values per byte, half the last dimension) as TileLang's does;
        `.torch` raises for it, since no torch dtype holds one fp4 value per element."""
        if self.kind == "float4":
            import torch

            return torch.float4_e2m1fn_x2
        return self.torch


class _DataTypeMeta(type):
    def __instancecheck__(cls, obj) -> bool:
        return isinstance(obj, DataType)


class DataTypeFactory(metaclass=_DataTypeMeta):
    """TVM's `DataType("float16")` and TileLang's `T.dtype("float16")`: tilewise's dtype object
    (`.bits`, `.lanes`, `str()`); `isinstance(x, DataTypeFactory)` holds for every dtype."""

    def __new__(cls, dtype):
        return as_dtype(dtype)


class ScalarAnnotation:
    """A scalar parameter annotation, e.g. `x: T.int32` or `x: T.float32()` on a macro."""

    def __init__(self, dtype: DataType):
        self.dtype = dtype


def _np(name):
    return lambda: np.dtype(name)


def _ml(name):
    def get():
        if ml_dtypes is None:
            raise TypeError(f"{name} needs the ml_dtypes package")
        return np.dtype(getattr(ml_dtypes, name))

    return get


_TYPES = {
    "bool": DataType("bool", "bool", 8),
    "int8": DataType("int8", "int", 8),
    "int16": DataType("int16", "int", 16),
    "int32": DataType("int32", "int", 32),
    "int64": DataType("int64", "int", 64),
    "uint8": DataType("uint8", "uint", 8),
    "uint16": DataType("uint16", "uint", 16),
    "uint32": DataType("uint32", "uint", 32),
    "uint64": DataType("uint64", "uint", 64),
    "float16": DataType("float16", "float", 16),
    "bfloat16": DataType("bfloat16", "bfloat", 16),
    "float32": DataType("float32", "float", 32),
    "float64": DataType("float64", "float", 64),
    "float8_e4m3": DataType("float8_e4m3", "float8", 8),
    "float8_e5m2": DataType("float8_e5m2", "float8", 8),
    # The OCP microscaling (MX) element and scale types. A value (a register, an expression) takes a
    # byte, in the low bits, as ml_dtypes does, so `bits` is 8; fp4 *buffers* are stored packed two
    # per byte, as TileLang's are (transform/pack_fp4.py, jit/packed_fp4.py, docs/API.md), fp6 one
    # per byte.
    "float4_e2m1fn": DataType("float4_e2m1fn", "float4", 8),
    "float6_e2m3fn": DataType("float6_e2m3fn", "float6", 8),
    "float6_e3m2fn": DataType("float6_e3m2fn", "float6", 8),
    "float8_e8m0fnu": DataType("float8_e8m0fnu", "e8m0", 8),
    # AMD's fnuz float8 formats (bias 2^(E-1), no infinity or negative zero, NaN 0x80): storage and
    # conversions like the other float8 types (no tensor-core form on NVIDIA GPUs)
    "float8_e4m3fnuz": DataType("float8_e4m3fnuz", "float8", 8),
    "float8_e5m2fnuz": DataType("float8_e5m2fnuz", "float8", 8),
    # TileLang's sub-byte integers: `bits` is the value's width 4 (integer arithmetic wraps at it),
    # stored one value per byte in the low four bits, as ml_dtypes.int4 / uint4 store them; tensor
    # arguments may come packed two per byte in torch.int8 / uint8, as TileLang's do (jit/packed_fp4.py)
    "int4": DataType("int4", "int", 4),
    "uint4": DataType("uint4", "uint", 4),
    # TensorFloat-32 (TileLang's `custom[tfloat32]`): float32 storage holding values with a 10-bit
    # mantissa; every conversion into it rounds to nearest, ties away (cvt.rna.tf32.f32, CUTLASS's
    # tfloat32_t), and arithmetic on it happens in float32 and rounds back, as CUTLASS's does
    "tfloat32": DataType("tfloat32", "tfloat", 32),
    "handle": DataType("handle", "handle", 64),
}
_NUMPY = {
    "bool": _np("bool"),
    "int8": _np("int8"),
    "int16": _np("int16"),
    "int32": _np("int32"),
    "int64": _np("int64"),
    "uint8": _np("uint8"),
    "uint16": _np("uint16"),
    "uint32": _np("uint32"),
    "uint64": _np("uint64"),
    "float16": _np("float16"),
    "bfloat16": _ml("bfloat16"),
    "float32": _np("float32"),
    "float64": _np("float64"),
    "float8_e4m3": _ml("float8_e4m3fn"),
    "float8_e5m2": _ml("float8_e5m2"),
    "float4_e2m1fn": _ml("float4_e2m1fn"),
    "float6_e2m3fn": _ml("float6_e2m3fn"),
    "float6_e3m2fn": _ml("float6_e3m2fn"),
    "float8_e8m0fnu": _ml("float8_e8m0fnu"),
    "float8_e4m3fnuz": _ml("float8_e4m3fnuz"),
    "float8_e5m2fnuz": _ml("float8_e5m2fnuz"),
    "int4": _ml("int4"),
    "uint4": _ml("uint4"),
    "tfloat32": _np("float32"),
    "handle": _np("uint64"),
}
# canonical name -> TileLang's spelling, where they differ (DataType.tl_name)
_TL_NAMES = {"float8_e4m3": "float8_e4m3fn"}

_ALIASES = {
    "float": "float32",
    "double": "float64",
    "half": "float16",
    "int": "int32",
    "short": "int16",
    "long": "int64",
    "uint": "uint32",
    "ulong": "uint64",
    "bf16": "bfloat16",
    "fp16": "float16",
    "fp32": "float32",
    "float8_e4m3fn": "float8_e4m3",
    "e4m3_float8": "float8_e4m3",
    "e5m2_float8": "float8_e5m2",
    "custom[tfloat32]": "tfloat32",
    "tf32": "tfloat32",
}

bool_ = _TYPES["bool"]
int8 = _TYPES["int8"]
int16 = _TYPES["int16"]
int32 = _TYPES["int32"]
int64 = _TYPES["int64"]
uint8 = _TYPES["uint8"]
uint16 = _TYPES["uint16"]
uint32 = _TYPES["uint32"]
uint64 = _TYPES["uint64"]
float16 = _TYPES["float16"]
bfloat16 = _TYPES["bfloat16"]
float32 = _TYPES["float32"]
float64 = _TYPES["float64"]
float8_e4m3 = _TYPES["float8_e4m3"]
float8_e5m2 = _TYPES["float8_e5m2"]
float4_e2m1fn = _TYPES["float4_e2m1fn"]
float6_e2m3fn = _TYPES["float6_e2m3fn"]
float6_e3m2fn = _TYPES["float6_e3m2fn"]
float8_e8m0fnu = _TYPES["float8_e8m0fnu"]
float8_e4m3fnuz = _TYPES["float8_e4m3fnuz"]
float8_e5m2fnuz = _TYPES["float8_e5m2fnuz"]
int4 = _TYPES["int4"]
uint4 = _TYPES["uint4"]
tfloat32 = _TYPES["tfloat32"]
handle = _TYPES["handle"]


def known_dtype_names() -> list[str]:
    return sorted(_TYPES) + sorted(_ALIASES)


def as_dtype(value) -> DataType:
    """Accept a DataType, a name ("float16", "float"), a numpy dtype, a torch dtype or a Python type."""
    if isinstance(value, DataType):
        return value
    if isinstance(value, ScalarAnnotation):
        return value.dtype
    if value is bool:
        return bool_
    if value is int:
        return int32
    if value is float:
        return float32
    if isinstance(value, str):
        name = _ALIASES.get(value, value)
        if name in _TYPES:
            return _TYPES[name]
        if name == "float4_e2m1fnx2":  # TileLang's packed pair: the bytes of a float4_e2m1fn tensor
            raise ValueError(f"unknown dtype {value!r} as an element type: a tensor of fp4 pairs is the bytes of a "
                             "float4_e2m1fn tensor with the last dimension doubled (fp4 is stored two values per "
                             "byte); declare it so, or as uint8")
        raise ValueError(f"unknown dtype {value!r}; known: {', '.join(known_dtype_names())}")
    mod = type(value).__module__
    if mod.startswith("torch"):
        name = str(value).replace("torch.", "")
        name = {"float8_e4m3fn": "float8_e4m3", "half": "float16", "float": "float32"}.get(name, name)
        if name == "float4_e2m1fn_x2":
            raise TypeError(
                "torch.float4_e2m1fn_x2 packs two fp4 values per byte: it is no one-value dtype (a kernel's "
                "float4_e2m1fn parameter takes such a tensor of half the last dimension, as TileLang's does; "
                "tilewise.utils.unpack_float4_e2m1fn_x2 gives one value per element)"
            )
        return as_dtype(name)
    try:
        npd = np.dtype(value)
    except TypeError:
        raise TypeError(f"not a dtype: {value!r}") from None
    for name, get in _NUMPY.items():
        if name == "handle":
            continue
        try:
            if get() == npd:
                return _TYPES[name]
        except TypeError:
            continue
    raise TypeError(f"unsupported numpy dtype {npd}")


_CTYPES = {
    "bool": ctypes.c_bool, "int8": ctypes.c_int8, "int16": ctypes.c_int16, "int32": ctypes.c_int32,
    "int64": ctypes.c_int64, "uint8": ctypes.c_uint8, "uint16": ctypes.c_uint16, "uint32": ctypes.c_uint32,
    "uint64": ctypes.c_uint64, "float32": ctypes.c_float, "float64": ctypes.c_double,
    "float16": ctypes.c_uint16, "bfloat16": ctypes.c_uint16, "float8_e4m3": ctypes.c_uint8, "float8_e5m2": ctypes.c_uint8,
    "float4_e2m1fn": ctypes.c_uint8, "float6_e2m3fn": ctypes.c_uint8, "float6_e3m2fn": ctypes.c_uint8,
    "float8_e8m0fnu": ctypes.c_uint8, "float8_e4m3fnuz": ctypes.c_uint8, "float8_e5m2fnuz": ctypes.c_uint8,
    "int4": ctypes.c_int8, "uint4": ctypes.c_uint8, "tfloat32": ctypes.c_float,
}  # fmt: skip
