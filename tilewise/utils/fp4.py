"""Between torch's packed fp4 (torch.float4_e2m1fn_x2, two values per byte, as kernels store fp4)
and numpy arrays of ml_dtypes.float4_e2m1fn (one value per byte, in the low four bits).

Packing follows torch / CUTLASS: element 2i is the low nibble of byte i, element 2i+1 the high one,
so a [..., n] x2 tensor holds [..., 2n] values."""
from __future__ import annotations

import ml_dtypes
import numpy as np


def unpack_float4_e2m1fn_x2(t) -> np.ndarray:
    """A numpy array of ml_dtypes.float4_e2m1fn, shape [..., 2n], from a torch.float4_e2m1fn_x2
    (or uint8 / int8) tensor or array of shape [..., n]. A GPU tensor is copied to the CPU;
    `torch.from_numpy(r.view(np.uint8))` is the torch.uint8 form kernels also take."""
    if type(t).__module__.startswith("torch"):
        import torch

        t = t.detach().cpu().view(torch.uint8).numpy()
    raw = np.asarray(t)
    if raw.dtype.itemsize != 1:
        raise TypeError(f"expected one byte per element (torch.float4_e2m1fn_x2, uint8 or int8), found {raw.dtype}")
    raw = raw.view(np.uint8)
    out = np.stack([raw & 0xF, raw >> 4], axis=-1).reshape(*raw.shape[:-1], 2 * raw.shape[-1])
    return out.view(ml_dtypes.float4_e2m1fn)


def pack_float4_e2m1fn_x2(a, torch_dtype: bool = True):
    """The inverse of unpack_float4_e2m1fn_x2: an array of float4_e2m1fn of shape [..., 2n] as a
    torch.float4_e2m1fn_x2 tensor of shape [..., n] (a uint8 numpy array when torch_dtype is False)."""
    a = np.asarray(a)
    if a.dtype != np.dtype(ml_dtypes.float4_e2m1fn):
        raise TypeError(f"expected an array of ml_dtypes.float4_e2m1fn, found {a.dtype}")
    if a.ndim == 0 or a.shape[-1] % 2:
        raise ValueError(f"packing two fp4 values per byte needs an even last dimension, found shape {a.shape}")
    nib = a.view(np.uint8) & 0xF
    packed = np.ascontiguousarray(nib[..., 0::2] | (nib[..., 1::2] << 4))
    if not torch_dtype:
        return packed
    import torch

    return torch.from_numpy(packed).view(torch.float4_e2m1fn_x2)
