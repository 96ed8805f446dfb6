"""tilelang.cuda: where TileLang (0.1.9 on) keeps its CUDA-specific Python modules. Of those,
programs import `tilelang.cuda.intrinsics` (the expert tier); here it is tilewise.intrinsics."""
from . import intrinsics

__all__ = ["intrinsics"]
