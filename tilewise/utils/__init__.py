"""Helpers TileLang exposes as tilelang.utils (dtype mapping for torch, tensor supply types), and
tilewise's fp4 packing helpers."""
from .fp4 import pack_float4_e2m1fn_x2, unpack_float4_e2m1fn_x2  # noqa: F401
from .tensor import TensorSupplyType, map_torch_type, torch_assert_close  # noqa: F401
