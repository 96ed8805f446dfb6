"""Random inputs for a kernel's parameters (TileLang's TensorSupplyType)."""
from __future__ import annotations

import enum

import numpy as np

from ..ir.buffer import Buffer


class TensorSupplyType(enum.Enum):
    Integer = 1
    Uniform = 2
    Normal = 3
    Randn = 4
    Zero = 5
    One = 6
    Auto = 7


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def make_inputs(kernel, supply: TensorSupplyType = TensorSupplyType.Auto, use_torch: bool | None = None):
    """One input per non-output parameter; torch tensors when torch is installed."""
    if use_torch is None:
        use_torch = _torch_available()
    rng = np.random.default_rng()
    out = []
    for i, p in enumerate(kernel.params):
        if i in kernel.out_idx:
            continue
        if not isinstance(p, Buffer):
            raise ValueError(f"the profiler cannot invent a value for the scalar parameter {p.name}; pass input_tensors")
        if not all(isinstance(d, int) for d in p.shape):
            raise ValueError(f"the profiler needs static shapes, but {p.name} has shape {p.shape}; pass input_tensors")
        out.append(make_tensor(p.shape, p.dtype, supply, rng, use_torch))
    return out


def make_tensor(shape, dt, supply: TensorSupplyType = TensorSupplyType.Auto, rng=None, use_torch: bool | None = None):
    """One random array of `shape` and tilewise dtype `dt` as `supply` says (a torch tensor when
    torch is installed, unless use_torch is False)."""
    if use_torch is None:
        use_torch = _torch_available()
    rng = rng if rng is not None else np.random.default_rng()
    s = supply
    if s == TensorSupplyType.Auto:
        s = TensorSupplyType.Integer if dt.is_int or dt.is_bool else TensorSupplyType.Uniform
    if s == TensorSupplyType.Integer:
        lo, hi = (0, 2) if dt.is_bool else ((0, 4) if not dt.is_signed and dt.is_int else (-2, 3))
        a = rng.integers(lo, hi, size=shape)
    elif s == TensorSupplyType.Uniform:
        a = rng.uniform(-1.0, 1.0, size=shape)
    elif s in (TensorSupplyType.Normal, TensorSupplyType.Randn):
        a = rng.standard_normal(size=shape)
    elif s == TensorSupplyType.Zero:
        a = np.zeros(shape)
    else:
        a = np.ones(shape)
    if dt.kind == "e8m0":  # a scale: unsigned powers of two (zero and negatives would be NaN)
        a = np.exp2(np.rint(a))
    a = a.astype(dt.numpy)
    if use_torch and dt.kind not in ("float4", "float6"):  # torch has no one-per-byte fp4 / fp6: numpy arrays
        import torch

        if dt.name == "bfloat16":
            t = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
        elif dt.name.startswith("float8"):
            t = torch.from_numpy(a.view(np.uint8)).view(dt.torch)
        else:
            t = torch.from_numpy(a)
        return t
    return a
