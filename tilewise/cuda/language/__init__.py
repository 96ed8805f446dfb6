"""tilelang.cuda.language (TileLang 0.1.15): the CUDA-specific language names. Programs import
`tilelang.cuda.language.intrinsics` for the emitters; the names are tilewise's own."""
from . import intrinsics

__all__ = ["intrinsics"]
