"""tilelang.utils.tensor: map a dtype name to torch's dtype, and re-exports used by tests."""
from __future__ import annotations

from ..ir.dtype import as_dtype
from ..profiler.supply import TensorSupplyType  # noqa: F401
from ..testing import torch_assert_close  # noqa: F401


def map_torch_type(dtype):
    """torch's dtype for a tilewise / TileLang dtype ("float16", "e4m3_float8", T.bfloat16, ...)."""
    return as_dtype(dtype).torch
