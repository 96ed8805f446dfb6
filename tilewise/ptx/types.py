"""PTX types as numpy dtypes, and the reinterpretations between them.

Registers hold the numpy dtype of their declared type (`.f32` float32, `.b32` uint32, `.pred`
bool; `.f16`/`.bf16` and packed pairs hold their bits as unsigned integers). An instruction reads
an operand as *its* type: same size is a reinterpretation of the bits (a view), a different size
is the truncation or extension PTX defines for such operands (sign-extension when the
instruction type is signed). Values are numpy arrays with one entry per thread, or numpy scalars
when every thread holds the same value."""
from __future__ import annotations

import numpy as np

from .errors import PtxUnsupportedError

DTYPES = {
    "pred": np.dtype(np.bool_),
    "b8": np.dtype(np.uint8), "u8": np.dtype(np.uint8), "s8": np.dtype(np.int8),
    "b16": np.dtype(np.uint16), "u16": np.dtype(np.uint16), "s16": np.dtype(np.int16),
    "f16": np.dtype(np.uint16), "bf16": np.dtype(np.uint16),
    "b32": np.dtype(np.uint32), "u32": np.dtype(np.uint32), "s32": np.dtype(np.int32),
    "f32": np.dtype(np.float32), "f16x2": np.dtype(np.uint32), "bf16x2": np.dtype(np.uint32),
    "tf32": np.dtype(np.uint32),
    "b64": np.dtype(np.uint64), "u64": np.dtype(np.uint64), "s64": np.dtype(np.int64),
    "f64": np.dtype(np.float64),
}  # fmt: skip

UINT = {1: np.dtype(np.uint8), 2: np.dtype(np.uint16), 4: np.dtype(np.uint32), 8: np.dtype(np.uint64)}
SINT = {1: np.dtype(np.int8), 2: np.dtype(np.int16), 4: np.dtype(np.int32), 8: np.dtype(np.int64)}


def dtype(ptx_type: str) -> np.dtype:
    dt = DTYPES.get(ptx_type)
    if dt is None:
        raise PtxUnsupportedError(f"PTX type .{ptx_type} is not supported")
    return dt


def is_signed(ptx_type: str) -> bool:
    return ptx_type.startswith("s")


def is_float(ptx_type: str) -> bool:
    return ptx_type in ("f32", "f64")


def convert(value, have: np.dtype, want: np.dtype, signed: bool):
    """`value` (of dtype `have`) read as `want`: a view for equal sizes; truncation or extension
    (signed: sign extension) of the bits otherwise."""
    if have == want:
        return value
    if want == np.bool_ or have == np.bool_:
        if want == have:
            return value
        raise PtxUnsupportedError(f"a predicate used as {want} (or the reverse)")
    if have.itemsize == want.itemsize:
        return value.view(want)
    raw = value.view(UINT[have.itemsize])
    if want.itemsize < have.itemsize:
        return raw.astype(UINT[want.itemsize]).view(want)
    if signed:
        return raw.view(SINT[have.itemsize]).astype(SINT[want.itemsize]).view(want)
    return raw.astype(UINT[want.itemsize]).view(want)


def scalar(value: int, dt: np.dtype):
    """An integer immediate as a numpy scalar of `dt` (two's complement wrap)."""
    if dt == np.bool_:
        return np.bool_(value != 0)
    if dt.kind == "f":
        return dt.type(value)
    bits = 8 * dt.itemsize
    return np.array(value & ((1 << bits) - 1), dtype=UINT[dt.itemsize]).view(dt)[()]
