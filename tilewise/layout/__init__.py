"""Layouts: where each element of a tile lives. `Layout` maps a logical index to a physical
index (swizzles, padding); `Fragment` maps it to (thread, register)."""
from .fragment import Fragment
from .layout import Layout
from .swizzle import make_padded_layout, make_swizzled_layout

__all__ = ["Fragment", "Layout", "make_padded_layout", "make_swizzled_layout"]
