"""Helpers TileLang exposes as tilelang.utils (dtype mapping for torch, tensor supply types)."""
from .tensor import TensorSupplyType, map_torch_type, torch_assert_close  # noqa: F401
