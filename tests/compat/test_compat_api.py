"""Host-side names TileLang programs and tests use: PassConfigKey, tilewise.utils / tilewise.math /
tilewise.cdiv, JITKernel.run_once() and get_kernel_source(kernel_only=...), torch outputs from
kernels without inputs, and CUDA source post-processing callbacks."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.engine.callback import register_cuda_postproc_callback, unregister_cuda_postproc_callback
from tilewise.transform import PassConfigKey


def add_one(n: int = 16):
    @T.prim_func
    def main(A: T.Tensor((n,), "float32"), B: T.Tensor((n,), "float32")):
        with T.Kernel(1):
            for i in T.Parallel(n):
                B[i] = A[i] + 1

    return main


def test_pass_config_keys_are_the_strings_tilelang_uses():
    assert tilewise.PassConfigKey is PassConfigKey
    assert PassConfigKey.TL_DISABLE_TMA_LOWER == "tl.disable_tma_lower"
    assert str(PassConfigKey.TIR_DISABLE_VECTORIZE) == "tir.disable_vectorize"
    by_enum = tilewise.compile(add_one(), out_idx=[1], target="cpu", pass_configs={
        PassConfigKey.TL_DISABLE_TMA_LOWER: True, PassConfigKey.TL_DISABLE_WARP_SPECIALIZED: True})
    by_str = tilewise.compile(add_one(), out_idx=[1], target="cpu", pass_configs={
        "tl.disable_tma_lower": True, "tl.disable_warp_specialized": True})
    assert by_enum.pass_configs == by_str.pass_configs
    assert all(type(k) is str for k in by_enum.pass_configs)
    a = np.arange(16, dtype=np.float32)
    np.testing.assert_array_equal(by_enum(a), a + 1)
    with pytest.raises(ValueError, match="unknown pass config 'tl.no_such_thing'"):
        tilewise.compile(add_one(), target="cpu", pass_configs={"tl.no_such_thing": True})


def test_utils_and_math_helpers():
    torch = pytest.importorskip("torch")
    from tilewise.utils import map_torch_type
    from tilewise.utils.tensor import map_torch_type as same

    assert same is map_torch_type
    assert map_torch_type("float16") is torch.float16
    assert map_torch_type("float") is torch.float32
    assert map_torch_type(T.bfloat16) is torch.bfloat16
    assert map_torch_type("e4m3_float8") is torch.float8_e4m3fn
    assert tilewise.cdiv(10, 4) == 3 and tilewise.cdiv(8, 4) == 2
    assert [tilewise.math.next_power_of_2(x) for x in (0, 1, 2, 3, 16, 17)] == [1, 1, 2, 4, 16, 32]
    assert tilewise.math.prev_power_of_2(100) == 64


def test_run_once_without_arguments_makes_inputs():
    k = tilewise.compile(add_one(), out_idx=[1], target="cpu")
    out = k.run_once()
    assert tuple(out.shape) == (16,)
    a = np.arange(16, dtype=np.float32)
    np.testing.assert_array_equal(k.run_once(a), a + 1)
    assert k.get_kernel_source(kernel_only=True) == k.get_kernel_source()


def test_a_kernel_without_inputs_returns_torch_tensors():
    torch = pytest.importorskip("torch")

    @T.prim_func
    def fill(A: T.Tensor((4,), "int32")):
        with T.Kernel(1):
            for i in T.Parallel(4):
                A[i] = i * 3

    out = tilewise.compile(fill, out_idx=-1, target="cpu")()
    assert isinstance(out, torch.Tensor)
    assert out.tolist() == [0, 3, 6, 9]


def test_cuda_postproc_callback_edits_the_cuda_source():
    seen = []

    @register_cuda_postproc_callback
    def stamp(code, target):
        seen.append(target)
        return "// stamped\n" + code

    try:
        k = tilewise.compile(add_one(), out_idx=[1], target="cuda", execution_backend="emulator")
        assert k.get_kernel_source().startswith("// stamped\n")
        assert seen and "cuda" in str(seen[0])
        a = np.arange(16, dtype=np.float32)
        np.testing.assert_array_equal(k(a), a + 1)
        cpu = tilewise.compile(add_one(), out_idx=[1], target="cpu")
        assert "stamped" not in cpu.get_kernel_source()
    finally:
        unregister_cuda_postproc_callback()
    assert "stamped" not in tilewise.compile(add_one(), target="cuda", execution_backend="emulator").get_kernel_source()

    with pytest.raises(TypeError, match="returned int"):
        register_cuda_postproc_callback(lambda code, target: 1)
        try:
            tilewise.compile(add_one(), target="cuda", execution_backend="emulator")
        finally:
            unregister_cuda_postproc_callback()


def test_jitkernel_constructed_from_a_prim_func_compiles_it(monkeypatch):
    monkeypatch.setenv("TILEWISE_TARGET", "cpu")
    k = tilewise.JITKernel(add_one(), [1])
    a = np.arange(16, dtype=np.float32)
    np.testing.assert_array_equal(k(a), a + 1)
    # TileLang's third positional parameter is the execution backend
    k2 = tilewise.JITKernel(add_one(), out_idx=[1], execution_backend="cython")
    assert k2.target.kind == "cpu"
    np.testing.assert_array_equal(tilewise.JITKernel(add_one(), [1], "ctypes")(a), a + 1)


def test_par_compile_builds_every_config():
    @tilewise.jit(out_idx=[1], target="cpu")
    def scaled(n, factor=2):
        @T.prim_func
        def main(A: T.Tensor((n,), "float32"), B: T.Tensor((n,), "float32")):
            with T.Kernel(1):
                for i in T.Parallel(n):
                    B[i] = A[i] * factor

        return main

    kernels = scaled.par_compile([(8,), {"n": 8, "factor": 3}, (4, 5), (8, 2)])
    assert kernels[0] is kernels[3] is scaled(8)  # one kernel per distinct argument set
    for k, (n, f) in zip(kernels, [(8, 2), (8, 3), (4, 5)]):
        a = np.arange(n, dtype=np.float32)
        np.testing.assert_array_equal(k(a), a * f)
    bad = scaled.par_compile([(8,), ("x",)], ignore_error=True)
    assert bad[0] is kernels[0] and bad[1] is None
    with pytest.raises(tilewise.CompileError, match="not an integer"):
        scaled.par_compile([("x",)])


def test_get_swizzle_layout_matches_the_gemm_operand_swizzle():
    from tilewise.intrinsics import get_swizzle_layout
    from tilewise.layout import make_swizzled_layout

    for cols, dtype in [(64, "float16"), (32, "float16"), (16, "float32"), (128, "int8")]:
        table = make_swizzled_layout((16, cols), dtype=dtype).table()
        for r in range(16):
            for c in range(cols):
                assert get_swizzle_layout(r, c, cols, dtype) == (r, int(table[r, c, 1])), (cols, dtype, r, c)
    assert get_swizzle_layout(3, 5, 12, "float16") == (3, 5)  # 24-byte rows are not swizzled



def test_legacy_profiler_on_lowered_module():
    """TileLang 0.1.x: mod, params = lower(program); Profiler(mod, params, result_idx, supply)."""
    import torch

    mod, params = tilewise.lower(add_one(), target="cpu")
    prof = tilewise.Profiler(mod, params, [1], tilewise.TensorSupplyType.Integer)
    a = torch.arange(16, dtype=torch.float32)
    torch.testing.assert_close(prof.func(a), a + 1)
    prof.assert_allclose(lambda x: x + 1)
    with pytest.raises(TypeError, match="supply type"):
        tilewise.Profiler(prof.kernel, params, [1])


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_alloc_var_is_a_scalar_in_the_source(target):
    @T.prim_func
    def var_add(A: T.Tensor((64,), "float16"), B: T.Tensor((64,), "float16")):
        with T.Kernel(2, threads=32) as bx:
            tmp = T.alloc_var("float16")
            tmp = 1  # noqa: F841
            for i in T.Parallel(32):
                B[bx * 32 + i] = A[bx * 32 + i] + tmp

    k = tilewise.compile(var_add, out_idx=[1], target=target, execution_backend="auto")
    src = k.get_kernel_source()
    assert "tmp =" in src and "tmp[" not in src
    a = np.arange(64).astype(np.float16)
    np.testing.assert_array_equal(k(a), a + 1)


def ptr_gemm():
    """TileLang's raw-pointer form: T.ptr parameters, tensors made with scalar dimensions."""

    @T.prim_func
    def pg(a_ptr: T.ptr, b_ptr: T.ptr, c_ptr: T.ptr, m: T.int32, n: T.int32, k: T.int32):
        A = T.make_tensor(a_ptr, (m, k), "float16")
        B = T.make_tensor(b_ptr, (k, n), "float16")
        C = T.make_tensor(c_ptr, (m, n), "float32")
        with T.Kernel(T.ceildiv(n, 32), T.ceildiv(m, 32), threads=128) as (bx, by):
            a_s = T.alloc_shared((32, 32), "float16")
            b_s = T.alloc_shared((32, 32), "float16")
            acc = T.alloc_fragment((32, 32), "float32")
            T.clear(acc)
            for ko in T.Pipelined(T.ceildiv(k, 32), num_stages=2):
                T.copy(A[by * 32, ko * 32], a_s)
                T.copy(B[ko * 32, bx * 32], b_s)
                T.gemm(a_s, b_s, acc)
            T.copy(acc, C[by * 32, bx * 32])

    return pg


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_raw_pointer_parameters(nvrtc_check, target):
    import torch

    k = tilewise.compile(ptr_gemm(), target=target, execution_backend="auto")
    assert [p.name for p in k.params] == ["A", "B", "C", "m", "n", "k"]
    m, n, kk = 40, 72, 48
    a = torch.randn(m, kk, dtype=torch.float16)
    b = torch.randn(kk, n, dtype=torch.float16)
    c = torch.zeros(m, n)
    k(a.data_ptr(), b.data_ptr(), c.data_ptr(), m, n, kk)
    ref = a.float() @ b.float()
    torch.testing.assert_close(c, ref, atol=1e-2, rtol=1e-2)
    c2 = torch.zeros(m, n)
    k(a, b, c2, m, n, kk)  # tensors work too, checked against the scalar dimensions
    torch.testing.assert_close(c2, ref, atol=1e-2, rtol=1e-2)
    with pytest.raises(ValueError, match="argument m is 41"):
        k(a, b, c2, m + 1, n, kk)
    if target == "cuda":
        nvrtc_check(ptr_gemm(), expect=("HMMA",), archs=("sm_80",))


def test_make_tensor_needs_a_pointer_parameter():
    with pytest.raises(tilewise.CompileError, match="T.ptr parameter"):
        @T.prim_func
        def bad(x: T.int32):
            A = T.make_tensor(x, (4,), "float32")
            with T.Kernel(1):
                A[0] = 1.0
