"""tilelang.carver: TileLang's hardware-aware tile-size recommender (the BitBLAS roller, built on
TVM's schedule analysis) and its device queries. tilewise has the device queries
(`tilewise.carver.arch.driver`, which the persistent-kernel examples use to size their grid); the
roller, its architecture models (`arch.CUDA`, `arch.CDNA`) and templates are not implemented and
importing them is an ImportError that says so."""
from __future__ import annotations

from . import arch

_ROLLER = ("analysis", "matmul_analysis", "common_schedules", "utils")


def __getattr__(name: str):
    if name in _ROLLER:
        raise ImportError(f"tilelang.carver.{name} (the roller: tile sizes from TVM's schedule analysis) is not "
                          "implemented in tilewise; give the configurations to @autotune(configs=...) directly")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["arch"]
