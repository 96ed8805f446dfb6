"""TileLang's tilelang.utils.target availability checks, as TileLang's tests use them to pick a
device: CUDA when a GPU is present; HIP and Metal never (tilewise has no such targets)."""
from __future__ import annotations

from ..backend.cuda.device import gpu_present


def check_cuda_availability() -> bool:
    return gpu_present()


def check_hip_availability() -> bool:
    return False


def check_metal_availability() -> bool:
    return False
