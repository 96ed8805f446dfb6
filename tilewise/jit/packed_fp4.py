"""TileLang's packed fp4 and int4 / uint4 tensors at the call boundary.

TileLang passes a `T.Tensor((..., n), "float4_e2m1fn")` parameter as a byte tensor of shape
`(..., n // 2)` (torch.int8 / uint8 / float4_e2m1fn_x2): two values per byte, element 2i in the
low nibble of byte i and element 2i + 1 in the high nibble (its `fp4_e2_2_t` x() / y()). Its
argument binder reads the logical shape as the runtime shape with the last dimension times
two, and the logical strides as the runtime strides times two except the last, which stays 1.

Inside a kernel fp4 is packed the same way (transform/pack_fp4.py), so a packed fp4 argument
goes to the kernel as its bytes (the logical view below only binds shapes and strides), and a
numpy array of ml_dtypes.float4_e2m1fn (one value per byte) is packed for the call and unpacked
back (PackedLogical). fp4 outputs the call allocates come back packed as torch.int8 when the
call's tensors are torch tensors.

TileLang's int4 / uint4 tensors are packed the same way (torch.int8 / torch.uint8 storage, two
4-bit integers per byte, the even element in the low nibble); tilewise keeps them one value per
byte inside a kernel, in the low nibble as ml_dtypes.int4 / uint4 store them: their arguments
are unpacked for the call (Unpacked) and packed back after it."""
from __future__ import annotations

import numpy as np

from ..ir.dtype import DataType

PACK = 2  # fp4 values per byte

_BYTE_TORCH = ("torch.uint8", "torch.int8", "torch.float4_e2m1fn_x2")


def packs_two(dt: DataType) -> bool:
    """Does TileLang pass tensors of dt two values per byte (fp4, int4, uint4)?"""
    return dt.kind == "float4" or dt.is_sub_byte_int


def is_packed_fp4(p_dtype: DataType, a) -> bool:
    """Is `a` TileLang's packed form of an fp4 parameter: a byte tensor (torch uint8 / int8 /
    float4_e2m1fn_x2, or a numpy uint8 / int8 array)? numpy arrays of ml_dtypes.float4_e2m1fn
    are the one-value-per-byte logical form (packed for the call by PackedLogical; int4 / uint4
    arrays of ml_dtypes.int4 / uint4 stay as they are)."""
    if not packs_two(p_dtype):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype in (np.uint8, np.int8)
    return type(a).__module__.startswith("torch") and str(getattr(a, "dtype", "")) in _BYTE_TORCH


def _raw(a):
    """The packed tensor's bytes as uint8 (numpy array, or a torch tensor on a GPU)."""
    if isinstance(a, np.ndarray):
        return a.view(np.uint8)
    import torch

    t = a.detach().view(torch.uint8)
    return t.numpy() if t.device.type == "cpu" else t


def _strides(raw) -> tuple:
    if isinstance(raw, np.ndarray):
        return tuple(s // raw.itemsize for s in raw.strides)
    return tuple(raw.stride())


def _empty_strides(shape) -> tuple:
    """An array with no element has no layout: numpy may report any strides for it (0s for the
    result of an elementwise operation on an empty array), so it gets contiguous ones."""
    return tuple(int(np.prod(shape[k + 1:])) for k in range(len(shape)))


class Unpacked:
    """One packed argument's unpacked twin and how to write it back."""

    def __init__(self, name: str, a, dt: DataType):
        raw = _raw(a)
        if raw.ndim == 0:
            raise ValueError(f"argument {name}: a packed (fp4 / int4) tensor needs at least one dimension (two values per "
                             "byte along the last one)")
        shape, strides = tuple(raw.shape), _strides(raw)
        if 0 in shape:
            strides = _empty_strides(shape)
        if shape[-1] > 1 and strides[-1] != 1:
            raise ValueError(f"argument {name}: a packed (fp4 / int4) tensor's last dimension must be contiguous (stride 1: "
                             f"two values share each byte), found strides {strides}")
        self.raw = raw
        self.shape = (*shape[:-1], shape[-1] * PACK)
        self.strides = (*(s * PACK for s in strides[:-1]), 1)
        span = 1 + sum((n - 1) * s for n, s in zip(self.shape, self.strides)) if all(self.shape) else 0
        if isinstance(raw, np.ndarray):
            flat = np.zeros(span, np.uint8)
            u = np.lib.stride_tricks.as_strided(flat, self.shape, self.strides, writeable=True)
        else:
            import torch

            flat = torch.zeros(span, dtype=torch.uint8, device=raw.device)
            u = torch.as_strided(flat, self.shape, self.strides)
        u[..., 0::2] = raw & 0x0F
        u[..., 1::2] = raw >> 4
        self.bytes = u
        # the kernel's argument: numpy's fp4 type on the host, the byte tensor itself on a GPU
        self.array = u.view(dt.numpy) if isinstance(u, np.ndarray) else u

    def write_back(self) -> None:
        """Pack the (possibly written) values into the caller's tensor."""
        u, raw = self.bytes, self.raw
        raw[...] = (u[..., 0::2] & 0x0F) | ((u[..., 1::2] & 0x0F) << 4)


def packed_output(shape, device: str, dt: DataType | None = None):
    """The torch.int8 tensor TileLang returns for an fp4 or int4 output of logical `shape`
    (torch.uint8 for uint4)."""
    import torch

    if not shape or shape[-1] % PACK:
        raise ValueError(f"a packed (fp4 / int4) output of shape {tuple(shape)} cannot be packed two values per byte: its last "
                         "dimension must be even")
    storage = torch.uint8 if dt is not None and dt.name == "uint4" else torch.int8
    return torch.zeros((*shape[:-1], shape[-1] // PACK), dtype=storage,
                       device="cuda" if device == "cuda" else "cpu")


# ------------------------------------------------------------------------------ fp4 kernels
# fp4 buffers are packed inside kernels too (transform/pack_fp4.py): a kernel addresses element
# e of an fp4 parameter (its offset by the logical strides) as nibble e % 2 of byte e // 2 of
# what it is given. So a packed argument goes in as its bytes, unchanged, and a numpy array of
# ml_dtypes.float4_e2m1fn (one value per byte) is packed for the call and unpacked back.


def fp4_code(b: np.ndarray) -> np.ndarray:
    """The four-bit code of the value ml_dtypes reads in each byte of an fp4 array: it reads a set
    bit above the value's as the sign."""
    return (b & 7) | np.where(b & 0xF8, 8, 0).astype(np.uint8)


def fp4_kernel_bytes(a):
    """The bytes a kernel is given for TileLang's packed form of an fp4 argument (a view: the
    kernel writes into the caller's tensor)."""
    return _raw(a)


def logical_view(name: str, a, dt: DataType):
    """A stand-in of the logical shape and strides of a packed fp4 argument, for binding the
    kernel's dimensions and checking the argument: on the CPU a read-only numpy view with those
    shape and strides over the argument's address (never read: the kernel gets the bytes); for a
    tensor on a GPU the unpacked copy."""
    raw = _raw(a)
    if not isinstance(raw, np.ndarray):
        return Unpacked(name, a, dt).array
    if raw.ndim == 0:
        raise ValueError(f"argument {name}: a packed (fp4 / int4) tensor needs at least one dimension (two values per "
                         "byte along the last one)")
    shape, strides = tuple(raw.shape), tuple(raw.strides)  # raw is uint8: bytes are elements
    if 0 in shape:
        strides = _empty_strides(shape)
    if shape[-1] > 1 and strides[-1] != 1:
        raise ValueError(f"argument {name}: a packed (fp4 / int4) tensor's last dimension must be contiguous (stride 1: "
                         f"two values share each byte), found strides {strides}")
    return np.lib.stride_tricks.as_strided(raw.view(dt.numpy), (*shape[:-1], shape[-1] * PACK),
                                           (*(st * PACK for st in strides[:-1]), 1), writeable=False)


def _span(shape, strides) -> int:
    return 1 + sum((n - 1) * s for n, s in zip(shape, strides)) if all(shape) else 0


class PackedLogical:
    """A numpy array of ml_dtypes.float4_e2m1fn (one value per byte) packed two per byte for a
    kernel, element e (by the array's strides) in nibble e % 2 of byte e // 2."""

    def __init__(self, a: np.ndarray):
        self.logical = a
        strides = tuple(s // a.itemsize for s in a.strides)
        if any(s < 0 for s in strides):
            raise ValueError("an fp4 argument with negative strides: pass a copy (np.ascontiguousarray)")
        self.shape, self.strides = tuple(a.shape), strides
        span = _span(self.shape, strides)
        codes = np.zeros(span + (span & 1), np.uint8)
        if span:
            np.lib.stride_tricks.as_strided(codes, self.shape, strides)[...] = fp4_code(a.view(np.uint8))
        self.array = codes[0::2] | (codes[1::2] << 4)

    def write_back(self) -> None:
        span = _span(self.shape, self.strides)
        if not span:
            return
        codes = np.empty(self.array.size * 2, np.uint8)
        codes[0::2] = self.array & 0x0F
        codes[1::2] = self.array >> 4
        self.logical.view(np.uint8)[...] = np.lib.stride_tricks.as_strided(codes, self.shape, self.strides)
