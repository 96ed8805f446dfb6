"""TileLang's `tilelang.utils.target` helpers that programs and tests call to pick a platform."""
from __future__ import annotations

from ..backend.cuda.device import gpu_present
from ..backend.hip.device import amd_gpu_present


def check_cuda_availability() -> bool:
    """Whether a CUDA GPU is present to run compiled kernels on."""
    return gpu_present()


def check_hip_availability() -> bool:
    """Whether an AMD GPU is present (through hip-python) to run "hip" kernels on."""
    return amd_gpu_present()


def check_metal_availability() -> bool:
    """Always False: tilewise has no Metal target."""
    return False


def determine_target(target="auto", return_object: bool = False):
    """The target `target` ("auto": CUDA when a CUDA GPU is present, else HIP when an AMD GPU is,
    else the CPU) resolves to, as its
    string (or tilewise's Target with return_object=True)."""
    from ..jit.target import parse_target

    t = parse_target(target)
    return t if return_object else str(t)
