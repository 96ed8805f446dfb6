"""tilelang.utils.tensor: map a dtype name to torch's dtype, and re-exports used by tests."""
from __future__ import annotations

from ..ir.dtype import as_dtype
from ..profiler.supply import TensorSupplyType  # noqa: F401
from ..testing import torch_assert_close  # noqa: F401


def map_torch_type(dtype):
    """torch's dtype for a tilewise / TileLang dtype ("float16", "e4m3_float8", T.bfloat16, ...)."""
    return as_dtype(dtype).torch


def get_tensor_supply(supply_type: TensorSupplyType = TensorSupplyType.Integer):
    """TileLang's supply function: f(param) -> a random tensor for a KernelParam (or a kernel's
    parameter), as `supply_type` says; dynamic dimensions cannot be made up and raise."""
    from ..profiler.supply import make_tensor

    def get_tensor(param):
        dt = as_dtype(str(param.dtype).replace("torch.", ""))
        if not param.shape or not all(isinstance(d, int) for d in param.shape):
            raise ValueError(f"a random tensor needs a static shape, got {list(param.shape)}")
        return make_tensor(tuple(param.shape), dt, supply_type)

    return get_tensor
