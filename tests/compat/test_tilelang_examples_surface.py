"""Names TileLang's example programs import that sit outside `T`: the newer module paths of the
expert tier (tilelang.cuda.intrinsics...), the carver's device queries, and the clear errors
for the carver's roller, which tilewise does not implement."""
from __future__ import annotations

import importlib
import types

import pytest

import tilewise.intrinsics as intrinsics


def test_cuda_intrinsics_paths_are_the_expert_tier_modules():
    from tilewise.cuda.intrinsics.layout.utils import get_ldmatrix_offset, mma_store_index_map
    from tilewise.cuda.intrinsics.macro.mma_macro_generator import TensorCoreIntrinEmitter as E2

    from tilewise.cuda.intrinsics import TensorCoreIntrinEmitter, get_swizzle_layout, make_mma_swizzle_layout

    assert TensorCoreIntrinEmitter is E2 is intrinsics.TensorCoreIntrinEmitter
    assert get_swizzle_layout is intrinsics.get_swizzle_layout
    assert make_mma_swizzle_layout is intrinsics.make_mma_swizzle_layout
    assert get_ldmatrix_offset is intrinsics.get_ldmatrix_offset
    assert mma_store_index_map is intrinsics.mma_store_index_map
    # the same module objects, whichever path imports them
    assert importlib.import_module("tilewise.cuda.intrinsics.layout.mma_layout") is intrinsics.mma_layout
    assert importlib.import_module("tilewise.cuda.intrinsics.macro.mma_macro_generator") is \
        intrinsics.mma_macro_generator
    # an index map through the new path gives the same numbers: lane 5, local 3 of ldmatrix
    from tilewise.cuda.intrinsics.layout.mma_layout import ldmatrix_32x8_to_shared_16x16_layout as f

    assert f(5, 3) == intrinsics.mma_layout.ldmatrix_32x8_to_shared_16x16_layout(5, 3)


class _Props:
    multi_processor_count = 132
    name = "test device"
    shared_memory_per_block = 48 << 10


def test_carver_driver_reads_torchs_device_properties(monkeypatch):
    torch = pytest.importorskip("torch")
    from tilewise.carver.arch import driver

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert driver.get_cuda_device_properties() is None and driver.get_device_name() is None
    with pytest.raises(RuntimeError, match="get_num_sms: no CUDA device 0"):
        driver.get_num_sms()

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=0: _Props())
    assert driver.get_num_sms() == 132
    assert driver.get_device_name() == "test device"
    assert driver.get_shared_memory_per_block(format="kb") == 48
    with pytest.raises(ValueError, match="format must be one of"):
        driver.get_shared_memory_per_block(format="gb")


def test_carver_attribute_queries_need_a_gpu(monkeypatch):
    from tilewise.backend.cuda import device
    from tilewise.carver.arch import driver

    monkeypatch.setattr(device, "gpu_present", lambda: False)
    with pytest.raises(RuntimeError, match=r"get_device_attribute\(12\): no CUDA device"):
        driver.get_registers_per_block()


def test_carver_roller_is_a_clear_import_error():
    with pytest.raises(ImportError, match="arch.CUDA .*not implemented in tilewise"):
        exec("from tilewise.carver.arch import CUDA", {})
    with pytest.raises(ImportError, match="roller and its templates .* not implemented"):
        exec("from tilewise.carver.template import MatmulTemplate", {})
    with pytest.raises(ImportError, match="roller and its templates .* not implemented"):
        exec("from tilewise.carver.roller.rasterization import NoRasterization", {})
    import tilewise.carver as carver

    assert isinstance(carver.arch, types.ModuleType)


def test_tvm_tirx_is_tvm_tir():
    # TileLang's TVM renamed tir to tirx; the dequantisation examples build their bit tricks with
    # tirx.const / tirx.reinterpret while a kernel is parsed
    import numpy as np

    import tilewise
    import tilewise.language as T
    from tilewise import tvm
    from tilewise.tvm import tir, tirx

    assert tirx is tir is tvm.tirx
    assert importlib.import_module("tilewise.tvm.tirx") is tir

    @T.prim_func
    def shifts(A: T.Tensor((4,), "uint16"), B: T.Tensor((4,), "uint16")):
        with T.Kernel(1, threads=32):
            for i in T.Parallel(4):
                B[i] = (A[i] >> tirx.const(1, "uint16")) & tirx.const(6, "uint16")

    a = np.array([3, 12, 255, 7], np.uint16)
    b = np.zeros(4, np.uint16)
    tilewise.compile(shifts, target="cpu")(a, b)
    np.testing.assert_array_equal(b, (a >> 1) & 6)
