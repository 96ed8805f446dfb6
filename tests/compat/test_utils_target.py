"""tilelang.utils.target's platform checks, which TileLang programs call to choose a path, and the
0.1.x `tvm.register_func` form of registering a source post-processing callback."""
from __future__ import annotations

from tilewise.backend.cuda.device import gpu_present
from tilewise.backend.hip.device import amd_gpu_present
from tilewise.jit.target import Target
from tilewise.utils.target import (
    check_cuda_availability,
    check_hip_availability,
    check_metal_availability,
    determine_target,
)


def test_platform_checks():
    assert check_cuda_availability() == gpu_present()
    assert check_hip_availability() == amd_gpu_present()
    assert check_metal_availability() is False


def test_determine_target():
    assert determine_target("cpu") == "cpu"
    assert determine_target("cuda -arch=sm_90a") == "cuda -arch=sm_90a"
    assert determine_target("cuda", return_object=True) == Target("cuda", "sm_80")
    assert determine_target("auto") in ("cpu", "cuda -arch=sm_80") or determine_target("auto").startswith("cuda")


def test_tvm_register_func_registers_a_source_callback():
    import pytest

    from tilewise import tvm
    from tilewise.engine import callback

    try:
        @tvm.register_func("tilelang_callback_cuda_postproc", override=True)
        def stamp(code, target):
            return "// stamped\n" + code

        assert callback._callbacks["cuda"] is stamp
    finally:
        callback.unregister_cuda_postproc_callback()
    with pytest.raises(NotImplementedError, match="no TVM global function registry"):
        tvm.register_func("my.func", lambda: 0)
