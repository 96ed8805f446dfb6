"""The HIP target as data (targets, machine, defaults), its clear errors for what AMD GPUs do not
have, the code-object inspection, and the hip-python launch path up to the final
hipModuleLaunchKernel, driven with a fake `hip` module recording the calls."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise import CompileError
from tilewise.backend.hip.inspect import parse_resources
from tilewise.backend.hip.launch import HipLauncher, HipRuntimeError
from tilewise.emulator.wavefront import shfl_source
from tilewise.jit.target import parse_target, record_for, resolve_backend


def test_target_strings():
    assert str(parse_target("hip")) == "hip -arch=gfx942"
    assert parse_target("hip -arch=gfx90a").arch == "gfx90a"
    assert parse_target({"kind": "hip", "arch": "gfx942"}).arch == "gfx942"
    with pytest.raises(ValueError, match="gfx1100"):
        parse_target("hip -arch=gfx1100")
    m = record_for(parse_target("hip")).machine("gfx942")
    assert (m.warp_size, m.max_shared_bytes, m.lowering_keys) == (64, 64 * 1024, ("hip", "cuda"))
    assert not m.has("cp_async") and not m.has("wgmma") and not m.has("tma")
    # no AMD GPU here: the emulator runs "hip" kernels
    assert resolve_backend(parse_target("hip"), "auto") == "emulator"


@T.prim_func
def _prints(A: T.Tensor((64,), "float32")):
    with T.Kernel(1, threads=64) as _:
        T.print(A[0])


@T.prim_func
def _sine(A: T.Tensor((64,), "float64"), B: T.Tensor((64,), "float64")):
    with T.Kernel(1, threads=64) as _:
        for i in T.Parallel(64):
            B[i] = T.sin(A[i])


@T.prim_func
def _fp8(A: T.Tensor((64,), "float8_e4m3"), B: T.Tensor((64,), "float32")):
    with T.Kernel(1, threads=64) as _:
        for i in T.Parallel(64):
            B[i] = T.cast(A[i], "float32")


@pytest.mark.parametrize("func, match", [(_prints, "printf"), (_sine, "sin on float64"), (_fp8, "float8_e4m3")])
def test_what_amd_gpus_cannot_do_is_a_compile_error(func, match):
    with pytest.raises(CompileError, match=match):
        tilewise.compile(func, target="hip", execution_backend="emulator")


def test_tanh_compiles_and_matches(rng, clang19):
    @T.prim_func
    def k(A: T.Tensor((256,), "float32"), B: T.Tensor((256,), "float32")):
        with T.Kernel(1, threads=256) as _:
            for i in T.Parallel(256):
                B[i] = T.tanh(A[i])

    kernel = tilewise.compile(k, target="hip", execution_backend="emulator")
    assert kernel.resource_usage()["scratch_bytes"] == 0
    a = np.concatenate([rng.standard_normal(200) * 3, np.linspace(-0.2, 0.2, 56)]).astype(np.float32)
    b = np.empty_like(a)
    kernel(a, b)
    np.testing.assert_allclose(b, np.tanh(a), rtol=1e-6, atol=1e-7)


def test_parse_resources_of_clang_metadata():
    text = """amdhsa.kernels:
  - .agpr_count:     4
    .args:
      - .address_space:  global
        .offset:         0
    .group_segment_fixed_size: 8192
    .name:           k0
    .private_segment_fixed_size: 16
    .sgpr_count:     20
    .sgpr_spill_count: 0
    .vgpr_count:     40
    .vgpr_spill_count: 2
  - .agpr_count:     0
    .name:           k1
    .vgpr_count:     8
amdhsa.target:   amdgcn-amd-amdhsa--gfx942
"""
    r = parse_resources(text)
    assert r["k0"] == {"vgprs": 40, "agprs": 4, "sgprs": 20, "vgpr_spills": 2, "sgpr_spills": 0, "scratch_bytes": 16,
                       "lds_bytes": 8192}
    assert r["k1"] == {"vgprs": 8, "agprs": 0}


def test_wavefront_shuffle_sources():
    lane = np.arange(64)
    assert list(shfl_source("shfl_xor", lane, 32, 64)[:2]) == [32, 33]  # across the two halves
    assert list(shfl_source("shfl_xor", lane, 32, 32)[:2]) == [0, 1]  # 32-lane segments: own value
    assert shfl_source("shfl_down", lane, 1, 64)[63] == 63 and shfl_source("shfl_down", lane, 1, 16)[15] == 15
    assert shfl_source("shfl_up", lane, 4, 64)[3] == 3 and shfl_source("shfl_up", lane, 4, 64)[40] == 36
    assert list(shfl_source("shfl_idx", lane, 5, 16)[[0, 17, 63]]) == [5, 21, 53]


class FakeHip:
    """hip-python's `hip.hip` as far as the launcher uses it: calls return (hipError_t, results)."""

    def __init__(self, fail: str | None = None):
        self.calls: list = []
        self.fail = fail

    def _ret(self, name, *out):
        self.calls.append(name)
        return (98 if name == self.fail else 0, *out)

    def hipSetDevice(self, d):  # noqa: N802 - hip-python's names
        return self._ret("hipSetDevice")

    def hipModuleLoadData(self, image):  # noqa: N802
        self.image = image
        return self._ret("hipModuleLoadData", "module")

    def hipModuleGetFunction(self, mod, name):  # noqa: N802
        return self._ret("hipModuleGetFunction", ("fn", mod, name))

    def hipModuleLaunchKernel(self, fn, gx, gy, gz, bx, by, bz, shared, stream, params, extra):  # noqa: N802
        # the parameter array lives only for the call: read what its entries point at now
        ptrs = ctypes.cast(params, ctypes.POINTER(ctypes.c_void_p))
        self.args = (ctypes.cast(ptrs[0], ctypes.POINTER(ctypes.c_uint64))[0],
                     ctypes.cast(ptrs[1], ctypes.POINTER(ctypes.c_float))[0])
        self.launch = (fn, (gx, gy, gz), (bx, by, bz), shared, stream, extra)
        return self._ret("hipModuleLaunchKernel")

    def hipModuleLaunchCooperativeKernel(self, fn, gx, gy, gz, bx, by, bz, shared, stream, params):  # noqa: N802
        self.launch = (fn, (gx, gy, gz), (bx, by, bz), shared, stream)
        return self._ret("hipModuleLaunchCooperativeKernel")

    class hipDeviceAttribute_t:  # noqa: N801
        hipDeviceAttributeMultiprocessorCount = 63

    def hipDeviceGetAttribute(self, attr, device):  # noqa: N802
        self.attribute = (attr, device)
        return self._ret("hipDeviceGetAttribute", self.cus)

    def hipModuleOccupancyMaxActiveBlocksPerMultiprocessor(self, fn, threads, dyn_lds):  # noqa: N802
        self.occupancy = (fn, threads, dyn_lds)
        return self._ret("hipModuleOccupancyMaxActiveBlocksPerMultiprocessor", 2)

    cus = 304

    def hipGetErrorString(self, err):  # noqa: N802
        return b"hipErrorInvalidImage"


def _module_and_binary(clang):
    @T.prim_func
    def scale(A: T.Tensor((1000,), "float32"), s: T.float32):
        with T.Kernel(T.ceildiv(1000, 256), threads=256) as bx:
            for i in T.Parallel(256):
                if bx * 256 + i < 1000:
                    A[bx * 256 + i] = A[bx * 256 + i] * s

    k = tilewise.compile(scale, target="hip", execution_backend="emulator")
    return k.build.module, k.build.binary


def test_launch_path_up_to_the_launch_call(clang19):
    module, hsaco = _module_and_binary(clang19)
    assert hsaco[:4] == b"\x7fELF"
    hip = FakeHip()
    launcher = HipLauncher(module, hsaco, hip=hip)
    a = np.zeros(1000, np.float32)
    launcher([a.ctypes.data, 2.5], [], stream=7, device=0)
    assert hip.calls == ["hipSetDevice", "hipModuleLoadData", "hipModuleGetFunction", "hipModuleLaunchKernel"]
    assert hip.image == hsaco
    fn, grid, block, shared, stream, extra = hip.launch
    assert fn[2] == module.kernels[0].name.encode()
    assert (grid, block, shared, stream, extra) == ((4, 1, 1), (256, 1, 1), 0, 7, None)
    # kernelParams: a void** whose entries point at the pointer and the float32 scalar
    assert hip.args == (a.ctypes.data, 2.5)
    launcher([a.ctypes.data, 1.0], [], stream=7, device=0)  # loaded once per device
    assert hip.calls.count("hipModuleLoadData") == 1


def test_a_grid_barrier_is_a_cooperative_launch(clang19):
    """T.sync_grid: the occupancy check (2 workgroups per CU x 304 CUs here), then
    hipModuleLaunchCooperativeKernel with the same grid, block and parameter array."""
    from tilewise.backend.cuda.launch import CudaLaunchError

    @T.prim_func
    def barrier(A: T.Tensor((512,), "float32")):
        with T.Kernel(4, threads=128) as bx:
            tx = T.get_thread_binding()
            A[bx * 128 + tx] = A[bx * 128 + tx] + 1.0
            T.sync_grid()
            A[bx * 128 + tx] = A[bx * 128 + tx] + A[(3 - bx) * 128 + tx]

    k = tilewise.compile(barrier, target="hip", execution_backend="emulator")
    assert "#define TW_GRID_SYNC" in k.get_kernel_source() and "tw::grid_sync()" in k.get_kernel_source()
    hip = FakeHip()
    a = np.zeros(512, np.float32)
    HipLauncher(k.build.module, k.build.binary, hip=hip)([a.ctypes.data], [], stream=3, device=1)
    assert hip.calls == ["hipSetDevice", "hipModuleLoadData", "hipModuleGetFunction", "hipDeviceGetAttribute",
                         "hipModuleOccupancyMaxActiveBlocksPerMultiprocessor", "hipModuleLaunchCooperativeKernel"]
    assert hip.attribute == (63, 1) and hip.occupancy[1:] == (128, 0)
    assert hip.launch[1:] == ((4, 1, 1), (128, 1, 1), 0, 3)
    hip = FakeHip()
    hip.cus = 1  # 2 resident workgroups: the 4 of the launch do not fit
    with pytest.raises(CudaLaunchError, match="4 blocks"):
        HipLauncher(k.build.module, k.build.binary, hip=hip)([a.ctypes.data], [], stream=3, device=1)
    assert "hipModuleLaunchCooperativeKernel" not in hip.calls


def test_a_failing_hip_call_is_an_error_naming_it(clang19):
    module, hsaco = _module_and_binary(clang19)
    with pytest.raises(HipRuntimeError, match="hipModuleLoadData.*hipErrorInvalidImage"):
        HipLauncher(module, hsaco, hip=FakeHip(fail="hipModuleLoadData"))([np.zeros(1000, np.float32).ctypes.data, 1.0],
                                                                         [], stream=0, device=0)


@T.prim_func
def _halves_swapped(A: T.Tensor((64,), "float32"), B: T.Tensor((64,), "float32")):
    with T.Kernel(1, threads=64) as _:
        tx = T.get_thread_binding()
        B[tx] = T.shfl_xor(A[tx], 32, width=64) + T.shfl_down(A[tx], 1, width=64)


def test_a_whole_wavefront_shuffle(clang19):
    """width=64 is one AMD wavefront: lane i reads lane i ^ 32, and lane 31 reads lane 32 going
    down (with CUDA's 32-lane warps neither would cross); a CUDA target refuses the width."""
    k = tilewise.compile(_halves_swapped, target="hip", execution_backend="emulator")
    assert "ds_bpermute_b32" in k.get_isa()
    a = np.arange(64, dtype=np.float32)
    b = np.zeros(64, np.float32)
    k(a, b)
    np.testing.assert_array_equal(b, (np.arange(64) ^ 32) + np.minimum(np.arange(64) + 1, 63))
    with pytest.raises(CompileError, match="width 64"):
        tilewise.compile(_halves_swapped, target="cuda", execution_backend="emulator")


def test_kernel_report_of_a_hip_kernel(tmp_path, clang19):
    k = tilewise.compile(_halves_swapped, target="hip", execution_backend="emulator")
    k(np.arange(64, dtype=np.float32), np.zeros(64, np.float32))
    page = open(k.report(tmp_path / "hip.html")).read()
    assert "HIP C++" in page and "AMDGPU ISA" in page and "ds_bpermute_b32" in page and "lds_bytes" in page


@T.prim_func
def _dot4(A: T.Tensor((64, 4), "int8"), B: T.Tensor((64, 4), "int8"), C: T.Tensor((64,), "int32")):
    with T.Kernel(1, threads=64) as _:
        tx = T.get_thread_binding()
        T.dp4a(A[tx, 0], B[tx, 0], C[tx])


def test_dp4a_is_one_dot4_instruction(rng, clang19):
    k = tilewise.compile(_dot4, target="hip", execution_backend="emulator")
    assert "v_dot4c_i32_i8" in k.get_isa() or "v_dot4_i32_i8" in k.get_isa()
    a = rng.integers(-128, 128, (64, 4)).astype(np.int8)
    b = rng.integers(-128, 128, (64, 4)).astype(np.int8)
    c = rng.integers(-1000, 1000, 64).astype(np.int32)
    want = c + (a.astype(np.int32) * b.astype(np.int32)).sum(axis=1)
    k(a, b, c)
    np.testing.assert_array_equal(c, want)


def test_clang_assembly_and_code_object_agree(clang19):
    """The metadata clang prints with -S (.amdgpu_metadata) and the code object's note give the
    same resources; the assembly has the same instructions as the disassembled code object."""
    from tilewise.backend.hip.clang import compile_asm
    from tilewise.backend.hip.inspect import resource_usage

    k = tilewise.compile(_halves_swapped, target="hip", execution_backend="emulator")
    asm = compile_asm(k.get_kernel_source(), "gfx942")
    assert parse_resources(asm) == resource_usage(k.build.binary)
    assert asm.count("ds_bpermute_b32") == k.get_isa().count("ds_bpermute_b32") > 0


def test_fast_math_flushes_float32_subnormals(clang19):
    """tl.enable_fast_math sets the kernel's float32 denormal mode to flush (what the emulator
    models of fast math); without it subnormals are kept (mode 3)."""
    from tilewise.backend.hip.inspect import kernel_descriptors

    for fast, mode in ((True, 0), (False, 3)):
        k = tilewise.compile(_halves_swapped, target="hip", execution_backend="emulator",
                             pass_configs={"tl.enable_fast_math": fast})
        assert f".amdhsa_float_denorm_mode_32 {mode}" in kernel_descriptors(k.build.binary)


@T.prim_func
def _too_much_lds(A: T.Tensor((128, 256), "float32"), B: T.Tensor((128, 256), "float32")):
    with T.Kernel(1, threads=256) as _:
        s = T.alloc_shared((128, 256), "float32")  # 128 KiB: twice an MI300X workgroup's LDS
        T.copy(A, s)
        T.copy(s, B)


def test_lds_beyond_64_kib_is_a_compile_error():
    with pytest.raises(CompileError, match="gfx942"):
        tilewise.compile(_too_much_lds, target="hip", execution_backend="emulator")


@T.prim_func
def _warp_sums(B: T.Tensor((64,), "int32")):
    with T.Kernel(1, threads=64) as _:
        tx = T.get_thread_binding()
        B[tx] = T.warp_reduce_sum(tx)


def test_warp_reduce_combines_each_32_lane_half(clang19):
    k = tilewise.compile(_warp_sums, target="hip", execution_backend="emulator")
    assert "swizzle(SWAP,16)" in k.get_isa()
    b = np.zeros(64, np.int32)
    k(b)
    np.testing.assert_array_equal(b, [sum(range(32))] * 32 + [sum(range(32, 64))] * 32)


@T.prim_func
def _half_wave(A: T.Tensor((32,), "float32"), B: T.Tensor((32,), "float32")):
    with T.Kernel(1, threads=32) as _:
        tx = T.get_thread_binding()
        B[tx] = T.shfl_xor(A[tx], 16) + T.shfl_down(A[tx], 1)


@T.prim_func
def _past_the_block(A: T.Tensor((32,), "float32"), B: T.Tensor((32,), "float32")):
    with T.Kernel(1, threads=32) as _:
        tx = T.get_thread_binding()
        B[tx] = T.shfl_down(A[tx], 1, width=64)


def test_shuffles_in_a_block_of_half_a_wavefront(clang19):
    """32 threads leave lanes 32-63 off: shuffles among the 32 are fine; reading lane 32 (lane 31
    going down a 64-wide group) is reported."""
    from tilewise.emulator import DivergenceError

    a = np.arange(32, dtype=np.float32)
    b = np.zeros(32, np.float32)
    tilewise.compile(_half_wave, target="hip", execution_backend="emulator")(a, b)
    np.testing.assert_array_equal(b, (np.arange(32) ^ 16) + np.minimum(np.arange(32) + 1, 31))
    k = tilewise.compile(_past_the_block, target="hip", execution_backend="emulator")
    with pytest.raises(DivergenceError, match="reads lane 32"):
        k(a, b)
