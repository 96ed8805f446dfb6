"""TileLang's intrinsic emitters for instructions tilewise does not emit: importing the class works
(TileLang's programs import them), constructing one is a CompileError naming what is missing."""
from __future__ import annotations

from ..errors import CompileError


class _Refused:
    what = ""
    instead = "TensorCoreIntrinEmitter (mma.sync) or T.gemm"

    def __init__(self, *args, **kwargs):
        raise CompileError(f"{type(self).__name__}: {self.what} is not supported by tilewise; use {self.instead}")


class WGMMATensorCoreIntrinEmitter(_Refused):
    what = "driving wgmma by hand (shared-memory descriptors, warpgroup fences)"
    instead = "T.gemm, which issues wgmma on sm_90a, or TensorCoreIntrinEmitter (mma.sync)"


class WGMMADescriptorParams(_Refused):
    what = "a hand-built wgmma shared-memory descriptor"
    instead = "T.gemm, which builds its descriptors on sm_90a"


class SparseTensorCoreIntrinEmitter(_Refused):
    what = "sparse mma.sp"
    instead = "T.gemm_sp for 2:4 sparse GEMM"


class WGSparseTensorCoreIntrinEmitter(_Refused):
    what = "sparse wgmma"
    instead = "T.gemm_sp for 2:4 sparse GEMM"


class TensorCoreIntrinEmitterSM120(_Refused):
    what = "sm_120's block-scaled mma"
    instead = "TensorCoreIntrinEmitter (sm_80 / sm_90a mma.sync)"


__all__ = ["SparseTensorCoreIntrinEmitter", "TensorCoreIntrinEmitterSM120", "WGMMADescriptorParams",
           "WGMMATensorCoreIntrinEmitter", "WGSparseTensorCoreIntrinEmitter"]
