"""Layouts: where each element of a tile lives. `Layout` maps a logical index to a physical
index (swizzles, padding); `Fragment` maps it to (thread, register). Names and signatures follow
`tilelang.layout`."""
from .fragment import Fragment
from .layout import Layout
from .partial_fragment import PartialFragment, make_fully_replicated_partial_fragment
from .swizzle import (
    make_full_bank_swizzled_layout,
    make_fully_replicated_layout_fragment,
    make_gemm_fragment_8x8,
    make_gemm_fragment_8x8_transposed,
    make_half_bank_swizzled_layout,
    make_linear_layout,
    make_padded_layout,
    make_quarter_bank_swizzled_layout,
    make_swizzled_layout,
    make_wgmma_swizzled_layout,
)

__all__ = [
    "Fragment",
    "Layout",
    "PartialFragment",
    "make_full_bank_swizzled_layout",
    "make_fully_replicated_layout_fragment",
    "make_fully_replicated_partial_fragment",
    "make_gemm_fragment_8x8",
    "make_gemm_fragment_8x8_transposed",
    "make_half_bank_swizzled_layout",
    "make_linear_layout",
    "make_padded_layout",
    "make_quarter_bank_swizzled_layout",
    "make_swizzled_layout",
    "make_wgmma_swizzled_layout",
]
