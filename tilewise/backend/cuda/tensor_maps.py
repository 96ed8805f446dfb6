"""TMA tensor maps at launch: the arguments of `cuTensorMapEncodeTiled` for each map of a kernel,
computed from the launch's arguments (the tensor's address, its dynamic dimensions), checked
against the driver's rules, and encoded into the 128 bytes the kernel receives as a
`const __grid_constant__ CUtensorMap` parameter.

The arguments (`EncodeArgs`) are plain data so that everything up to the driver call can be
tested without a GPU, and so that the PTX interpreter can be given the same description in place
of the opaque bytes (jit/runtimes.py). A map describes a row-major buffer: dimensions innermost
first, byte strides of the outer dimensions, the box innermost first, element strides 1, no
interleave, the map's swizzle, out-of-bounds elements filled with zeros.

The driver cannot encode a map over a tensor with no elements (a dimension of 0, e.g. K = 0).
Such a map is passed as 128 zero bytes: no box of it has an element in bounds, and a kernel whose
loop over that dimension runs zero times never issues a copy through it (the PTX interpreter
reports one that does)."""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

from ...ir.buffer import Buffer
from ...ir.dtype import DataType
from ...ir.evaluate import evaluate
from ...ir.tensor_map import TensorMap

# CUtensorMapDataType by element type: TMA moves bytes, so integer and 8-bit float types use the
# unsigned type of their width (the float types matter only for the NaN out-of-bounds fill)
_DATA_TYPE = {
    "float16": "FLOAT16", "bfloat16": "BFLOAT16", "float32": "FLOAT32", "float64": "FLOAT64",
    "int32": "INT32", "uint32": "UINT32", "int64": "INT64", "uint64": "UINT64",
    "int16": "UINT16", "uint16": "UINT16", "int8": "UINT8", "uint8": "UINT8", "bool": "UINT8",
    "float8_e4m3": "UINT8", "float8_e5m2": "UINT8", "float8_e8m0fnu": "UINT8",
    "float8_e4m3fnuz": "UINT8", "float8_e5m2fnuz": "UINT8",
    # fp6 one value per byte (tilewise's storage), not TMA's packed 16U6 type; fp4 (packed two per
    # byte, transform/pack_fp4.py) has no entry: tileop/tma.py leaves it to thread copies
    "float6_e2m3fn": "UINT8", "float6_e3m2fn": "UINT8",
    # int4 / uint4 one value per byte too; tfloat32 copied as the float32 bits it is stored in (the
    # reader ignores the low 13 bits: TMA's TFLOAT32 types would round on the way)
    "int4": "UINT8", "uint4": "UINT8", "tfloat32": "FLOAT32",
}  # fmt: skip
_SWIZZLE = {0: "NONE", 32: "32B", 64: "64B", 128: "128B"}
MAX_STRIDE = 1 << 40
MAX_DIM = 1 << 32


class TensorMapError(ValueError):
    """A tensor map the driver would reject for this launch (alignment, strides, box)."""


@dataclass(frozen=True)
class EncodeArgs:
    """cuTensorMapEncodeTiled's arguments for one map of one launch (enum values by name)."""

    name: str  # the map (and its C parameter)
    data_type: str  # CU_TENSOR_MAP_DATA_TYPE_*
    element_bytes: int
    global_address: int
    global_dims: tuple[int, ...]  # innermost first
    global_strides: tuple[int, ...]  # bytes, dimensions 1 .. rank-1
    box: tuple[int, ...]  # innermost first
    element_strides: tuple[int, ...]
    swizzle_bytes: int
    interleave: str = "CU_TENSOR_MAP_INTERLEAVE_NONE"
    l2_promotion: str = "CU_TENSOR_MAP_L2_PROMOTION_L2_128B"
    oob_fill: str = "CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE"  # NONE fills with zeros

    @property
    def rank(self) -> int:
        return len(self.global_dims)

    @property
    def empty(self) -> bool:
        """A tensor without elements, which the driver cannot encode (see the module doc)."""
        return 0 in self.global_dims

    @property
    def swizzle(self) -> str:
        return f"CU_TENSOR_MAP_SWIZZLE_{_SWIZZLE[self.swizzle_bytes]}"


def data_type(dt: DataType) -> str:
    name = _DATA_TYPE.get(dt.name)
    if name is None:
        raise TensorMapError(f"no TMA element type for {dt}")
    return f"CU_TENSOR_MAP_DATA_TYPE_{name}"


def encode_args(m: TensorMap, address: int, env: dict) -> EncodeArgs:
    """The encoding of map `m` for a launch whose buffer argument is at `address` and whose
    dynamic dimensions (and scalar parameters) are bound in `env`."""
    b: Buffer = m.buffer
    e = b.dtype.bytes
    shape = []
    for d in b.shape:
        try:
            shape.append(int(evaluate(d, env)))
        except (TypeError, ValueError):
            raise TensorMapError(f"tensor map {m.name}: the dimension {d} of {b.name} is not known at launch") from None
    dims = tuple(reversed(shape))
    strides = []
    step = e
    for n in dims[:-1]:
        step *= n
        strides.append(step)
    args = EncodeArgs(m.name, data_type(b.dtype), e, int(address), dims, tuple(strides), tuple(reversed(m.box)),
                      (1,) * m.rank, m.swizzle, l2_promotion=f"CU_TENSOR_MAP_L2_PROMOTION_{m.l2_promotion}")
    check(args)
    return args


def check(a: EncodeArgs):
    """The driver's requirements (cuTensorMapEncodeTiled), as errors naming the map."""
    where = f"tensor map {a.name}"
    if not 1 <= a.rank <= 5:
        raise TensorMapError(f"{where}: rank {a.rank}; TMA handles 1 to 5 dimensions")
    if a.global_address % 16:
        raise TensorMapError(f"{where}: the tensor's address {a.global_address:#x} is not 16-byte aligned")
    for n in a.global_dims:
        if not 0 <= n <= MAX_DIM:
            raise TensorMapError(f"{where}: dimension {n} (dimensions innermost first: {a.global_dims}) must be 1 to 2^32")
    for s in a.global_strides:
        if s % 16 or s >= MAX_STRIDE:
            raise TensorMapError(f"{where}: a row stride of {s} bytes; TMA needs multiples of 16 below 2^40 "
                                 f"(strides: {a.global_strides})")
    for n in a.box:
        if not 1 <= n <= 256:
            raise TensorMapError(f"{where}: box {a.box} (innermost first); every extent must be 1 to 256")
    inner = a.box[0] * a.element_bytes
    if inner % 16:
        raise TensorMapError(f"{where}: box rows of {inner} bytes; TMA needs a multiple of 16")
    if a.swizzle_bytes and inner > a.swizzle_bytes:
        raise TensorMapError(f"{where}: box rows of {inner} bytes exceed the {a.swizzle_bytes}-byte swizzle")


def encode(a: EncodeArgs, driver) -> bytes:
    """The 128 bytes of the encoded map (cuda.bindings.driver is passed in: tests replace it)."""
    from .launch import check as check_result

    if a.empty:
        return bytes(128)
    err_and_map = driver.cuTensorMapEncodeTiled(
        getattr(driver.CUtensorMapDataType, a.data_type),
        a.rank,
        a.global_address,
        list(a.global_dims),
        list(a.global_strides),
        list(a.box),
        list(a.element_strides),
        getattr(driver.CUtensorMapInterleave, a.interleave),
        getattr(driver.CUtensorMapSwizzle, a.swizzle),
        getattr(driver.CUtensorMapL2promotion, a.l2_promotion),
        getattr(driver.CUtensorMapFloatOOBfill, a.oob_fill),
    )
    tmap = check_result(err_and_map, f"cuTensorMapEncodeTiled({a.name}, dims={a.global_dims}, box={a.box})")
    return bytes((ctypes.c_char * 128).from_address(int(tmap.getPtr())))
