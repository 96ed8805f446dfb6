"""tilelang.carver.arch: `driver` (the CUDA device's properties). TileLang's architecture
models for the roller (`CUDA`, `CDNA`, `auto_infer_current_arch`, ...) are not implemented."""
from __future__ import annotations

from . import driver

_MODELS = ("CUDA", "CDNA", "CPU", "METAL", "RDNA", "TileDevice", "auto_infer_current_arch", "get_arch",
           "is_cuda_arch", "is_cdna_arch", "is_ampere_arch", "is_hopper_arch", "is_volta_arch")


def __getattr__(name: str):
    if name in _MODELS:
        raise ImportError(f"tilelang.carver.arch.{name} (an architecture model of TileLang's roller, built on "
                          "TVM's schedule analysis) is not implemented in tilewise")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["driver"]
