"""The Hopper launch path up to cuLaunchKernel: the cuTensorMapEncodeTiled arguments of every
tensor map (from the launch's arguments and dynamic dimensions), the driver's rules as launch
errors, the encoded maps appended to the kernel parameters (the driver call intercepted), and
dynamic shared memory above 48 KiB. Only the real launch needs a GPU."""
from __future__ import annotations

import math

import numpy as np
import pytest
from cuda.bindings import driver as real_driver
from hopper_kernels import gemm_reference, tma_roundtrip, wgmma_gemm
from hypothesis import given, settings
from hypothesis import strategies as st

from tilewise.backend.cuda.launch import CudaLauncher, CudaLaunchError, launch_plans, pack_params, tensor_map_args
from tilewise.backend.cuda.nvrtc import nvrtc_compile
from tilewise.backend.cuda.renderer import render_cuda
from tilewise.backend.cuda.tensor_maps import EncodeArgs, TensorMapError, check, encode_args
from tilewise.ir import Buffer, Var
from tilewise.ir.tensor_map import TensorMap
from tilewise.jit.target import gpu_present


class FakeDriver:
    """cuda.bindings.driver with cuTensorMapEncodeTiled recorded instead of called: the map it
    returns holds the call's index in every word."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return getattr(real_driver, name)

    def cuTensorMapEncodeTiled(self, *args):
        self.calls.append(args)
        m = real_driver.CUtensorMap()
        m.opaque = [len(self.calls) * 0x1000 + k for k in range(16)]
        return real_driver.CUresult.CUDA_SUCCESS, m


def map_bytes(call_no: int) -> bytes:
    return b"".join((call_no * 0x1000 + k).to_bytes(8, "little") for k in range(16))


GEMM = render_cuda(wgmma_gemm())  # maps B_map (box 64 x 64 of B: N x K) and A_map (A: M x K), swizzle 128


def test_encode_args_of_a_launch():
    kernel = GEMM.kernels[0]
    a_addr, b_addr = 0x7000_0000, 0x7100_0000
    b_args, a_args = tensor_map_args(GEMM, kernel, [a_addr, b_addr, 0x7200_0000], [100, 200, 70])  # M, K, N
    assert a_args == EncodeArgs("A_map", "CU_TENSOR_MAP_DATA_TYPE_FLOAT16", 2, a_addr, (200, 100), (400,), (64, 64),
                                (1, 1), 128)
    assert b_args.global_address == b_addr and b_args.global_dims == (200, 70) and b_args.global_strides == (400,)
    assert a_args.swizzle == "CU_TENSOR_MAP_SWIZZLE_128B" and a_args.interleave == "CU_TENSOR_MAP_INTERLEAVE_NONE"
    assert a_args.oob_fill == "CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE"  # out-of-bounds elements read as zero


def test_encode_args_ranks_and_types():
    d0, d1 = Var("d0"), Var("d1")
    X = Buffer("X", (3, d0, 5, d1, 32), "float8_e4m3")
    a = encode_args(TensorMap("x", X, (1, 2, 1, 4, 32), 32), 0x1000, {d0: 7, d1: 9})
    assert a.data_type == "CU_TENSOR_MAP_DATA_TYPE_UINT8" and a.element_bytes == 1
    assert a.global_dims == (32, 9, 5, 7, 3)
    assert a.global_strides == (32, 32 * 9, 32 * 9 * 5, 32 * 9 * 5 * 7)
    assert a.box == (32, 4, 1, 2, 1) and a.element_strides == (1,) * 5 and a.rank == 5
    for dtype, name in (("bfloat16", "BFLOAT16"), ("int8", "UINT8"), ("int32", "INT32"), ("float32", "FLOAT32"),
                        ("uint16", "UINT16"), ("float64", "FLOAT64")):
        Y = Buffer("Y", (16, 16), dtype)
        assert encode_args(TensorMap("y", Y, (1, 16)), 0x100, {}).data_type == f"CU_TENSOR_MAP_DATA_TYPE_{name}"


@pytest.mark.parametrize(
    "shape, box, swizzle, address, env, msg",
    [
        (("n", 64), (8, 64), 128, 0x1008, {"n": 16}, "not 16-byte aligned"),
        ((16, "n"), (8, 8), 0, 0x1000, {"n": 70}, "row stride of 140 bytes"),
        ((16, 64), (8, 4), 0, 0x1000, {}, "box rows of 8 bytes"),
        ((16, 512), (8, 512), 0, 0x1000, {}, "every extent must be 1 to 256"),
    ],
)
def test_encode_rules(shape, box, swizzle, address, env, msg):
    n = Var("n")
    X = Buffer("X", tuple(n if d == "n" else d for d in shape), "float16")
    with pytest.raises(TensorMapError, match=msg):
        encode_args(TensorMap("x", X, box, swizzle), address, {n: env["n"]} if env else {})
    with pytest.raises(TensorMapError, match="exceed the 64-byte swizzle"):
        check(EncodeArgs("m", "CU_TENSOR_MAP_DATA_TYPE_FLOAT16", 2, 0, (128, 4), (256,), (64, 4), (1, 1), 64))


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_encode_args_property(data):
    rank = data.draw(st.integers(1, 5))
    e = data.draw(st.sampled_from([1, 2, 4, 8]))
    dtype = {1: "int8", 2: "float16", 4: "float32", 8: "float64"}[e]
    shape = data.draw(st.lists(st.integers(1, 300), min_size=rank, max_size=rank))
    box = [data.draw(st.integers(1, min(n, 256))) for n in shape]
    swizzle = data.draw(st.sampled_from([0, 32, 64, 128]))
    box[-1] = max(1, (min(box[-1] * e, swizzle or 256) // 16 * 16) // e) if (box[-1] * e) % 16 else box[-1]
    X = Buffer("X", tuple(shape), dtype)
    try:
        tm = TensorMap("x", X, tuple(box), swizzle)
    except ValueError:
        return  # a box row wider than the swizzle: the map itself is refused
    ok = (box[-1] * e) % 16 == 0 and all(math.prod(shape[k + 1:]) * e % 16 == 0 for k in range(rank - 1))
    try:
        a = encode_args(tm, 0x4000, {})
    except TensorMapError:
        assert not ok
        return
    assert ok
    assert a.global_dims == tuple(reversed(shape)) and a.box == tuple(reversed(box))
    assert a.global_strides == tuple(math.prod(shape[rank - k:]) * e for k in range(1, rank))


def test_pack_params_appends_encoded_maps():
    fake = FakeDriver()
    args, dims = [0x7000_0000, 0x7100_0000, 0x7200_0000], [100, 200, 70]
    params = pack_params(GEMM, args, dims, GEMM.kernels[0], driver=fake)
    assert params.names == ["A", "B", "C", "M", "K", "N", "B_map", "A_map"]
    assert [params.read(i) for i in range(6)] == args + dims
    assert params.read(6) == map_bytes(1) and params.read(7) == map_bytes(2)
    dtype, rank, address, gdims, strides, box, estrides, interleave, swizzle, l2, oob = fake.calls[1]
    assert (dtype, rank, address) == (real_driver.CUtensorMapDataType.CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2, args[0])
    assert (gdims, strides, box, estrides) == ([200, 100], [400], [64, 64], [1, 1])
    assert interleave == real_driver.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_NONE
    assert swizzle == real_driver.CUtensorMapSwizzle.CU_TENSOR_MAP_SWIZZLE_128B
    assert l2 == real_driver.CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_L2_128B
    assert oob == real_driver.CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE
    # without the kernel (or for kernels without maps) the parameters stop at the dynamic dimensions
    assert len(pack_params(GEMM, args, dims)) == 6


def test_empty_tensor_map_is_zero_bytes():
    fake = FakeDriver()
    params = pack_params(GEMM, [0x7000_0000, 0x7100_0000, 0x7200_0000], [100, 0, 70], GEMM.kernels[0], driver=fake)
    assert params.read(6) == params.read(7) == bytes(128)  # K = 0: nothing to encode, nothing copied
    assert fake.calls == []
    assert launch_plans(GEMM, [0, 0, 0], [100, 0, 70])[0].grid == (2, 2, 1)  # the kernel still runs (C = 0)


def test_launch_errors_name_the_argument():
    with pytest.raises(CudaLaunchError, match="argument A: tensor map A_map: the tensor's address 0x70000008"):
        tensor_map_args(GEMM, GEMM.kernels[0], [0x7000_0008, 0x7100_0000, 0], [100, 200, 70])
    with pytest.raises(CudaLaunchError, match="argument B: tensor map B_map: a row stride of 202 bytes"):
        tensor_map_args(GEMM, GEMM.kernels[0], [0x7000_0000, 0x7100_0000, 0], [100, 101, 70])


def test_launcher_parameters_per_kernel():
    mod = render_cuda(tma_roundtrip(2, "float32", (256, 64), 0))  # a 64 KiB box: above the 48 KiB default
    (plan,) = launch_plans(mod, [0x1000, 0x2000, 0x3000, 0, 0], [300, 64])
    assert plan.shared_bytes == 256 * 64 * 4 + 8 and plan.shared_opt_in
    launcher = CudaLauncher(mod, b"")
    plans, shared = launcher.prepare([0x1000, 0x2000, 0x3000, 5, -3], [300, 64])
    assert len(shared) == 2 + 3 + 2  # X, Y, R, c0, c1, then the dimensions d0, d1
    fake = FakeDriver()
    own = launcher.kernel_params(mod.kernels[0], shared, [0x1000, 0x2000, 0x3000, 5, -3], [300, 64], driver=fake)
    assert own.names[-2:] == ["X_map", "Y_map"] and len(own) == len(shared) + 2
    assert [c[2] for c in fake.calls] == [0x1000, 0x2000]
    plain = render_cuda(wgmma_gemm()).kernels[0]
    plain.tensor_maps = []
    assert launcher.kernel_params(plain, shared, [], [], driver=fake) is shared


@pytest.mark.skipif(not gpu_present(), reason="needs a CUDA GPU")
def test_hopper_gemm_on_gpu():
    import torch

    if torch.cuda.get_device_capability()[0] != 9:
        pytest.skip("needs a Hopper GPU (sm_90a)")
    mod = render_cuda(wgmma_gemm(tma_store=True))
    launcher = CudaLauncher(mod, nvrtc_compile(mod.source, "sm_90a").cubin)
    M, N, K = 128, 128, 192
    A = torch.randn(M, K, dtype=torch.float16, device="cuda")
    B = torch.randn(N, K, dtype=torch.float16, device="cuda")
    C = torch.zeros(M, N, dtype=torch.float32, device="cuda")
    launcher([A, B, C], [M, K, N])
    torch.cuda.synchronize()
    ref = gemm_reference(A.cpu().numpy(), B.cpu().numpy(), False, False, "float32")
    np.testing.assert_allclose(C.cpu().numpy(), ref, rtol=1e-3, atol=1e-3)
