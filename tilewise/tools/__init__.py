"""Tools around compiled kernels (TileLang's tilelang.tools): pictures of layouts."""
from .plot_layout import plot_layout

__all__ = ["plot_layout"]
