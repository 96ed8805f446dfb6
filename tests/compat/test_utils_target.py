"""tilelang.utils.target's platform checks, which TileLang programs call to choose a path."""
from __future__ import annotations

from tilewise.backend.cuda.device import gpu_present
from tilewise.jit.target import Target
from tilewise.utils.target import (
    check_cuda_availability,
    check_hip_availability,
    check_metal_availability,
    determine_target,
)


def test_platform_checks():
    assert check_cuda_availability() == gpu_present()
    assert check_hip_availability() is False
    assert check_metal_availability() is False


def test_determine_target():
    assert determine_target("cpu") == "cpu"
    assert determine_target("cuda -arch=sm_90a") == "cuda -arch=sm_90a"
    assert determine_target("cuda", return_object=True) == Target("cuda", "sm_80")
    assert determine_target("auto") in ("cpu", "cuda -arch=sm_80") or determine_target("auto").startswith("cuda")
