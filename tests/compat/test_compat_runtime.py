"""TileLang's runtime API around T (issue 14 item 5): cache switches and clearing, tilewise.env as
tilelang.env with the TILELANG_* names, log level, postprocessing callbacks (CUDA and C),
next_power_of_2, JITKernel.result_idx / export_library, the 0.1.x Profiler(rt_mod, params,
result_idx) flow, engine.param.KernelParam, autotuner.jit and keys=, DataType and the tvm
stand-in, tilewise.quantize, the requires_cuda_compute_version decorators, target dicts and
Blackwell names."""
from __future__ import annotations

import ctypes
import logging
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise import env
from tilewise.backend.cuda.device import gpu_present


def add_one(n: int = 16, name_offset: float = 1.0):
    @T.prim_func
    def main(A: T.Tensor((n,), "float32"), B: T.Tensor((n,), "float32")):
        with T.Kernel(1):
            for i in T.Parallel(n):
                B[i] = A[i] + name_offset

    return main


def test_cache_switches_and_clear_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path))
    (tmp_path / "notes.txt").write_text("not ours")
    tilewise.compile(add_one(16, 2.5), out_idx=[1], target="cpu")
    entries = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert entries
    assert tilewise.is_cache_enabled()
    tilewise.disable_cache()
    try:
        assert not tilewise.is_cache_enabled() and not env.is_cache_enabled()
        k = tilewise.compile(add_one(16, 3.5), out_idx=[1], target="cpu")  # compiled outside the cache
        np.testing.assert_array_equal(k(np.zeros(16, np.float32)), np.full(16, 3.5, np.float32))
        assert [p for p in tmp_path.iterdir() if p.is_dir()] == entries
    finally:
        tilewise.enable_cache()
    assert tilewise.clear_cache() == len(entries)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]  # only tilewise's entries go
    from tilewise.cache import cached, clear_cache

    assert clear_cache is tilewise.clear_cache and cached is tilewise.cached


def test_env_answers_tilelang_names(monkeypatch, tmp_path):
    for name in ("TILEWISE_CACHE_DIR", "TILELANG_CACHE_DIR", "TILEWISE_TARGET", "TILELANG_TARGET",
                 "TILEWISE_AUTOTUNE_WORKERS", "TILELANG_AUTO_TUNING_CPU_COUNTS", "TILELANG_PRINT_ON_COMPILATION"):
        monkeypatch.delenv(name, raising=False)
    # TILELANG_* are read when the TILEWISE_* variable is unset
    monkeypatch.setenv("TILELANG_CACHE_DIR", str(tmp_path / "tl"))
    assert env.get("TILEWISE_CACHE_DIR") == str(tmp_path / "tl") == env.TILELANG_CACHE_DIR
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path / "tw"))
    assert env.TILELANG_CACHE_DIR == str(tmp_path / "tw")
    monkeypatch.setenv("TILELANG_TARGET", "cpu")
    assert tilewise.jit.__module__ and tilewise.compile(add_one(), out_idx=[1]).target.kind == "cpu"
    assert env.get_default_target() == "cpu" and env.TILELANG_DEFAULT_TARGET == "cpu"
    monkeypatch.setenv("TILELANG_AUTO_TUNING_CPU_COUNTS", "-1")
    assert env.get("TILEWISE_AUTOTUNE_WORKERS") == ""
    monkeypatch.setenv("TILELANG_AUTO_TUNING_CPU_COUNTS", "3")
    assert env.get("TILEWISE_AUTOTUNE_WORKERS") == "3"
    # TileLang's test_tilelang_env: defaults, the environment, and assignment
    assert tilewise.env.TILELANG_PRINT_ON_COMPILATION == "1"
    monkeypatch.setenv("TILELANG_PRINT_ON_COMPILATION", "0")
    assert tilewise.env.TILELANG_PRINT_ON_COMPILATION == "0"
    with pytest.warns(UserWarning, match="TILELANG_PRINT_ON_COMPILATION = '1' has no effect"):
        tilewise.env.TILELANG_PRINT_ON_COMPILATION = "1"
    assert tilewise.env.TILELANG_PRINT_ON_COMPILATION == "1"
    # assignment to a mapped name takes effect, and reaches child processes
    tilewise.env.TILELANG_CACHE_DIR = str(tmp_path / "assigned")
    try:
        assert env.get("TILEWISE_CACHE_DIR") == str(tmp_path / "assigned")
        assert env.environ()["TILEWISE_CACHE_DIR"] == str(tmp_path / "assigned")
    finally:
        env._forced.clear()
    from tilewise.env import env as env_object

    assert env_object is env and env_object.CacheState.is_enabled()
    with pytest.raises(AttributeError, match="no attribute 'NO_SUCH'"):
        env.NO_SUCH  # noqa: B018


def test_set_log_level_and_next_power_of_2():
    tilewise.set_log_level("DEBUG")
    assert logging.getLogger("tilewise").level == logging.DEBUG
    tilewise.set_log_level(logging.WARNING)
    assert logging.getLogger("tilewise.autotuner").getEffectiveLevel() == logging.WARNING
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        tilewise.set_log_level("LOUD")
    assert [tilewise.next_power_of_2(x) for x in (1, 5, 64, 65)] == [1, 8, 64, 128]


def test_postprocessing_callbacks():
    seen = []
    tilewise.register_c_postproc(lambda code, target: (seen.append(target), "// c-hook\n" + code)[1])
    try:
        k = tilewise.compile(add_one(16, 7.0), out_idx=[1], target="cpu")
        assert k.get_kernel_source().startswith("// c-hook\n") and seen == ["c"]
        np.testing.assert_array_equal(k(np.zeros(16, np.float32)), np.full(16, 7.0, np.float32))
    finally:
        from tilewise.engine.callback import unregister_c_postproc_callback

        unregister_c_postproc_callback()
    assert "c-hook" not in tilewise.compile(add_one(16, 7.0), out_idx=[1], target="cpu").get_kernel_source()
    from tilewise.engine import callback

    for kind in ("cuda", "hip"):  # the GPU targets' sources
        getattr(tilewise, f"register_{kind}_postproc")(lambda code, target, kind=kind: f"// {kind}-hook\n" + code)
        try:
            k = tilewise.compile(add_one(), out_idx=[1], target=kind, execution_backend="emulator")
            assert k.get_kernel_source().startswith(f"// {kind}-hook")
        finally:
            getattr(callback, f"unregister_{kind}_postproc_callback")()


def test_result_idx_export_library_and_the_01x_profiler_flow(tmp_path):
    k = tilewise.compile(add_one(), out_idx=[1], target="cpu")
    assert k.result_idx == k.out_idx == [1]
    k.export_library(tmp_path / "lib" / "kernel.so")
    lib = ctypes.CDLL(str(tmp_path / "lib" / "kernel.so"))
    assert hasattr(lib, "tw_entry")
    kc = tilewise.compile(add_one(), out_idx=[1], target="cuda", execution_backend="emulator")
    kc.export_library(tmp_path / "kernel.cubin")
    assert (tmp_path / "kernel.cubin").read_bytes()[:4] == b"\x7fELF"

    artifact = tilewise.lower(add_one(), target="cpu")
    assert [p.name for p in artifact.params] == ["A", "B"]
    profiler = tilewise.Profiler(artifact.rt_mod, artifact.params, result_idx=[1])
    a = np.arange(16, dtype=np.float32)
    np.testing.assert_array_equal(profiler(a), a + 1)
    profiler.assert_allclose(lambda x: x + 1)
    p2 = tilewise.Profiler(artifact.rt_mod, artifact.params, [1], supply_type=tilewise.TensorSupplyType.Integer)
    assert p2.supply == tilewise.TensorSupplyType.Integer


def test_kernel_param_for_supply_programs():
    torch = pytest.importorskip("torch")
    from tilewise.engine.param import KernelParam
    from tilewise.utils.tensor import get_tensor_supply

    t = get_tensor_supply(tilewise.TensorSupplyType.Integer)(KernelParam(torch.bfloat16, [3, 2]))
    assert t.dtype is torch.bfloat16 and tuple(t.shape) == (3, 2)
    with pytest.raises(ValueError, match="needs a static shape"):
        get_tensor_supply()(KernelParam(torch.float16, [T.dynamic("m")]))

    k = tilewise.compile(add_one(), out_idx=[1], target="cpu")
    p = KernelParam.from_buffer(k.params[0])
    assert p.dtype is torch.float32 and p.shape == [16] and not p.is_scalar() and not p.is_float8()
    assert KernelParam.from_var(T.Var("n", T.int32)).is_scalar()


def test_autotuner_jit_and_keys_of_tilelang_014(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path))
    from tilewise.autotuner import autotune, jit

    def make(scale):
        @T.prim_func
        def main(A: T.Tensor((64,), "float32"), B: T.Tensor((64,), "float32")):
            with T.Kernel(4) as bx:
                for i in T.Parallel(16):
                    B[bx * 16 + i] = A[bx * 16 + i] * scale

        return main

    @autotune(configs=[(2.0,), (3.0,)], keys=["scale"], warmup=1, rep=3)
    @jit(out_idx=[1], ref_prog=lambda a: a * 2, target="cpu")
    def kernel(scale=None):
        return make(scale)

    result = kernel()  # 0.1.4: the AutotuneResult; scale 3 fails the reference check
    assert result.config == {"scale": 2.0} and result.latency is not None
    assert [c for c, _ in result.skipped] == [{"scale": 3.0}]
    with pytest.raises(ValueError, match="has 2 values for keys"):
        autotune(configs=[(1, 2)], keys=["scale"])


def test_eager_function_under_autotune(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TILEWISE_AUTOTUNE_WORKERS", "1")

    @tilewise.autotune(configs=[{"block": 8}, {"block": 16}], warmup=1, rep=3)
    @tilewise.jit(target="cpu")
    def double(A, block: int = 4):
        N = T.const("N")
        A: T.Tensor((N,), T.float32)
        B = T.empty((N,), T.float32)
        with T.Kernel(T.ceildiv(N, block)) as bx:
            for i in T.Parallel(block):
                if bx * block + i < N:
                    B[bx * block + i] = A[bx * block + i] * 2
        return B

    a = np.arange(40, dtype=np.float32)
    np.testing.assert_array_equal(double(a), a * 2)  # tuned on a, then run on it
    assert double.tune(a).config in ({"block": 8}, {"block": 16})
    k = double.compile(N=40)
    np.testing.assert_array_equal(k(a), a * 2)
    assert double.compile(a, block=4).params[0].shape == (40,)  # every tuned parameter given: no tuning


def test_datatype_and_the_tvm_stand_in():
    from tilewise import tvm

    assert tilewise.DataType("float16").bits == 16 and isinstance(T.float32, tilewise.DataType)
    code = "import tilewise as tilelang\nfrom tilelang import tvm as tvm\nfrom tvm import DataType, tir\n" \
           "print(DataType('bfloat16').bits, tir.const(3, 'uint8').dtype)"
    out = subprocess.run([sys.executable, "-c", code.replace("from tilelang import", "from tilewise import")],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.split() == ["16", "uint8"], out.stderr
    assert str(tvm.target.Target({"kind": "cuda", "arch": "sm_90a"})) == "cuda -arch=sm_90a"
    assert tilewise.compile(add_one(), out_idx=[1], target=tvm.target.Target("c")).target.kind == "cpu"

    @T.prim_func
    def k(A: T.Tensor((4,), "uint8"), B: T.Tensor((4,), "float16")):
        with T.Kernel(1):
            for i in T.serial(4):
                B[i] = tvm.tir.Select(A[i] > tvm.tir.const(1, "uint8"), tvm.tir.reinterpret("float16", tvm.tir.Cast(
                    "uint16", A[i]) + tvm.tir.const(0x3C00, "uint16")), tvm.tir.const(0, "float16"))

    out = tilewise.compile(k, out_idx=[1], target="cpu")(np.array([0, 1, 2, 3], np.uint8))
    ref = (np.arange(4, dtype=np.uint16) + 0x3C00).view(np.float16)
    np.testing.assert_array_equal(out, np.where(np.arange(4) > 1, ref, 0))
    with pytest.raises(tilewise.errors.OutsideKernelError, match="T.call_extern"):
        tvm.tir.call_extern("float16", "f")  # T.call_extern: only inside a kernel (tests/language/test_expert_tier.py)
    assert tvm.testing.requires_package is tilewise.testing.requires_package


def _unpacking_kernel(convert, n_fields, in_dtype, out_dtype, extra=None):
    @T.prim_func
    def k(A: T.Tensor((8,), in_dtype), B: T.Tensor((8 * n_fields,), out_dtype)):
        with T.Kernel(1):
            for i, j in T.grid(8, n_fields):
                if extra is None:
                    B[i * n_fields + j] = convert(A[i], j)
                else:
                    B[i * n_fields + j] = convert(A[i], j, extra)

    return k


@pytest.mark.parametrize("where", [dict(target="cpu"), dict(target="cuda", execution_backend="emulator")],
                         ids=["cpu", "emulator"])
def test_quantize_converters_against_numpy(where):
    from tilewise import quantize as q

    packed = np.array([0x00, 0x0F, 0xF0, 0x81, 0x7E, 0x5A, 0xC3, 0xFF], np.uint8)
    lo, hi = packed & 15, packed >> 4
    fields = np.stack([lo, hi], 1).reshape(-1).astype(np.int64)

    def run(kernel, a):
        return tilewise.compile(kernel, out_idx=[1], **where)(a)

    un = q._tir_packed_to_unsigned_convert("uint", 8)
    np.testing.assert_array_equal(run(_unpacking_kernel(lambda v, j: un(4, v, j, "float16"), 2, "uint8", "float16"),
                                      packed), fields)
    sg = q._tir_packed_to_signed_convert("uint", 8)
    np.testing.assert_array_equal(run(_unpacking_kernel(lambda v, j: sg(4, v, j, "int32"), 2, "uint8", "int32"),
                                      packed), fields - 8)
    zz = q._tir_packed_to_unsigned_convert_with_zeros("uint", 8)
    # the subtraction is in the zero's type (the storage type for an integer: it wraps, as in TileLang)
    np.testing.assert_array_equal(run(_unpacking_kernel(lambda v, j: zz(4, v, j, 3.0, "int32"), 2, "uint8", "int32"),
                                      packed), fields - 3)
    ii = q._tir_packed_int_to_int_convert("int", 8)
    np.testing.assert_array_equal(run(_unpacking_kernel(lambda v, j: ii(4, v, j, "int32"), 2, "int8", "int32"),
                                      packed.view(np.int8)), np.where(fields >= 8, fields - 16, fields))

    # fp4 (e2m1) fields: value = (-1)^s * 2^(e - 1) * (1 + m / 2), scaled by 2^scale; e = 0 gives 2^-1 * ...
    s, e, m = fields >> 3, (fields >> 1) & 3, fields & 1
    scale = 2
    ref_bf16 = (-1.0) ** s * 2.0 ** (e + 126 + scale - 127) * (1 + m / 2)
    got = run(_unpacking_kernel(lambda v, j, sc: q._tir_u8_to_f4_to_bf16(4, v, j, sc, "bfloat16"), 2, "uint8",
                                "bfloat16", scale), packed)
    np.testing.assert_array_equal(np.asarray(got, np.float64), ref_bf16)
    fp4 = q._tir_packed_to_fp4_to_f16("uint", 8)
    e3 = fields & 7
    ref_f16 = np.where(e3 == 0, 0.0, (-1.0) ** s * 2.0 ** ((e3 | 8) - 15))
    got = run(_unpacking_kernel(lambda v, j: fp4(4, v, j, "float16"), 2, "uint8", "float16"), packed)
    np.testing.assert_array_equal(np.asarray(got, np.float64), ref_f16)
    # float8 e4m3 bytes (normal numbers) as float16
    import ml_dtypes

    normal = np.array([0x38, 0x40, 0xB8, 0x7E, 0x09, 0x54, 0xC1, 0x30], np.uint8)
    got = run(_unpacking_kernel(lambda v, j: q._tir_u8_to_f8_e4m3_to_f16(8, v, "float16"), 1, "uint8", "float16"),
              normal)
    np.testing.assert_array_equal(np.asarray(got, np.float32), normal.view(ml_dtypes.float8_e4m3fn).astype(np.float32))


def test_quantize_host_helpers():
    from tilewise import quantize as q

    w = np.array([[1, 2, 3, 4], [15, 0, 7, 8]], np.int8)
    packed = q.general_compress(w, source_bits=4, storage_dtype=np.uint8)
    np.testing.assert_array_equal(packed, [[0x21, 0x43], [0x0F, 0x87]])
    torch = pytest.importorskip("torch")
    original, linear, scales, qw = q.gen_quant4(64, 32, groupsize=32)
    assert original.shape == (64, 32) and scales.shape == (2, 32) and qw.min() >= -8 and qw.max() <= 8
    assert torch.allclose(linear.weight.data.t().float(), (qw.float().reshape(2, 32, 32) * scales.float().reshape(
        2, 1, 32)).reshape(64, 32), atol=1e-2)
    with pytest.raises(NotImplementedError, match="fast_decoding=False"):
        q.get_lop3_intrin_group(out_dtype="float16")
    with pytest.raises(NotImplementedError, match="T.call_extern"):
        q.get_mxfp_intrin_group()


def test_requires_cuda_compute_version_decorators_skip_without_a_gpu():
    import pytest as _pytest

    for deco in (tilewise.testing.requires_cuda_compute_version(8, 0),
                 tilewise.testing.requires_cuda_compute_version_ge(9, 0),
                 tilewise.testing.requires_cuda_compute_version_gt(8, 9),
                 tilewise.testing.requires_cuda_compute_version_le(9, 0),
                 tilewise.testing.requires_cuda_compute_version_lt(10, 0),
                 tilewise.testing.requires_cuda_compute_version_eq(9, 0)):
        def check():
            pass

        marked = deco(check)
        (mark,) = [m for m in marked.pytestmark if m.name == "skipif"]
        if not gpu_present():
            assert mark.args[0] is True and "no CUDA GPU" in mark.kwargs["reason"]
    with _pytest.raises(ValueError, match="mode must be one of"):
        tilewise.testing.requires_cuda_compute_version(8, 0, mode="about")



def test_requires_cuda_or_cdna_skips_without_either_gpu():
    from tilewise.backend.hip.device import amd_gpu_present

    def check():
        pass

    (mark,) = [m for m in tilewise.testing.requires_cuda_or_cdna(check).pytestmark if m.name == "skipif"]
    assert mark.args[0] is (not (gpu_present() or amd_gpu_present()))
    assert "CUDA GPU or an AMD CDNA GPU" in mark.kwargs["reason"]


def test_target_dicts_and_newer_architectures():
    k = tilewise.compile(add_one(), out_idx=[1], target={"kind": "cuda", "arch": "sm_90"},
                         execution_backend="emulator")
    assert str(k.target) == "cuda -arch=sm_90"
    assert tilewise.compile(add_one(), out_idx=[1], target={"kind": "c"}).target.kind == "cpu"
    for arch in ("sm_100a", "sm_120"):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            k = tilewise.compile(add_one(), out_idx=[1], target=f"cuda -arch={arch}", execution_backend="emulator")
        from tilewise.jit import compile_flags

        assert any(f"target {arch}: tilewise has no lowering" in str(x.message) for x in w) or \
            ("arch", arch) in compile_flags._warned  # said once per process
        assert k.build.machine.name == arch and k.build.machine.has("tma") and not k.build.machine.has("wgmma")
        a = np.arange(16, dtype=np.float32)
        np.testing.assert_array_equal(k(a), a + 1)
        assert k.get_sass()  # NVRTC compiled it for that architecture
    with pytest.raises(ValueError, match=r"sm_75 \(tilewise needs sm_80 \(Ampere\) or newer"):
        tilewise.compile(add_one(), target="cuda -arch=sm_75")
    with pytest.raises(ValueError, match="a target dict needs a 'kind'"):
        tilewise.compile(add_one(), target={"arch": "sm_90"})


def test_a_tvm_target_scope_is_the_target_of_auto_compiles():
    """`with tvm.target.Target("c"):` (TileLang's CPU tests): a compile for "auto" inside the scope
    uses that target, as TileLang's determine_target does; scopes nest and unwind."""
    from tilewise import tvm
    from tilewise.jit.target import parse_target

    assert tvm.target.Target.current() is None
    with pytest.raises(ValueError):
        tvm.target.Target.current(allow_none=False)
    with tvm.target.Target("c") as outer:
        assert tvm.target.Target.current() is outer
        assert parse_target("auto").kind == "cpu"
        with tvm.target.Target({"kind": "cuda", "arch": "sm_90a"}):
            assert str(parse_target("auto")) == "cuda -arch=sm_90a"
            assert parse_target("c").kind == "cpu"  # an explicit target wins over the scope
        assert tvm.target.Target.current() is outer
        assert tilewise.compile(add_one(), out_idx=[1]).target.kind == "cpu"
    assert tvm.target.Target.current() is None
