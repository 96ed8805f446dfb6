"""TileLang 0.1.15's pass configs: every key exists; those tilewise can honour take effect
(tl.disable_wgmma, tl.enable_async_copy, tl.device_compile_flags, tl.enable_dump_ir /
tl.dump_ir_path, cuda.kernels_output_dir); the others warn once when set to something other than
TileLang's default; "tirx.*" spellings are the "tir.*" keys."""
import warnings

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise import PassConfigKey, errors

TL015_NAMES = [
    "TL_SIMPLIFY_TRANSITIVELY_PROVE_INEQUALITIES", "TL_SIMPLIFY_ENABLE_LET_INLINE", "TL_DISABLE_BUFFER_INIT_CHECK",
    "TL_DISABLE_DATA_RACE_CHECK", "TL_DISABLE_PRELOWER_SEMANTIC_CHECK", "TL_ENABLE_AUTO_SCHEDULE",
    "TL_ENABLE_AUTO_WARP_SPECIALIZATION", "TL_DEVICE_COMPILE_FLAGS", "TL_EMIT_LINE_DIRECTIVES",
    "TL_ENABLE_REDUCER_PLAN_VERBOSE", "TL_LAYOUT_COST_MODEL", "TL_REDUCER_FORCE_BASELINE", "TL_ENABLE_FP32X2_REDUCTION",
    "TL_ENABLE_ASYNC_COPY", "TL_ENABLE_LOWER_LDGSTG", "TL_ENABLE_LOWER_LDGSTG_PREDICATED", "TL_DISABLE_WGMMA",
    "TL_DISABLE_SHARED_MEMORY_REUSE", "TL_DISABLE_LOOP_UNSWITCHING", "TL_LOOP_UNSWITCHING_ALLOW_NON_TRIVIAL_ELSE",
    "TL_IF_STMT_BINDING_INLINE_REPLAYABLE_BINDS", "TL_FORCE_LET_INLINE", "TL_AST_PRINT_ENABLE",
    "TL_LAYOUT_VISUALIZATION_ENABLE", "TL_LAYOUT_VISUALIZATION_FORMATS", "TL_STORAGE_REWRITE_DETECT_INPLACE",
    "TIR_ADD_LOWER_PASS", "CUDA_KERNELS_OUTPUT_DIR", "TL_DISABLE_OUT_OF_BOUND_WARNING", "TL_ENABLE_DUMP_IR",
    "TL_DUMP_IR_DIR", "TL_PASS_PROFILE", "TL_PASS_PROFILE_THRESHOLD_MS",
]


def _gemm(M=128, N=128, K=128, bM=64, bN=64, bK=32):
    @T.prim_func
    def main(A: T.Tensor((M, K), "float16"), B: T.Tensor((K, N), "float16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(N, bN), T.ceildiv(M, bM), threads=128) as (bx, by):
            As = T.alloc_shared((bM, bK), "float16")
            Bs = T.alloc_shared((bK, bN), "float16")
            Cl = T.alloc_fragment((bM, bN), "float")
            T.clear(Cl)
            for k in T.Pipelined(T.ceildiv(K, bK), num_stages=3):
                T.copy(A[by * bM, k * bK], As)
                T.copy(B[k * bK, bx * bN], Bs)
                T.gemm(As, Bs, Cl)
            T.copy(Cl, C[by * bM, bx * bN])

    return main


def _add_one():
    @T.prim_func
    def add_one(A: T.Tensor((64,), "float32"), B: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            for i in T.Parallel(64):
                B[i] = A[i] + 1.0

    return add_one


def test_every_tl015_key_exists():
    missing = [n for n in TL015_NAMES if not hasattr(PassConfigKey, n)]
    assert not missing


def test_disable_wgmma_keeps_gemm_on_mma_sync():
    a = np.random.default_rng(0).random((128, 128)).astype(np.float16)
    b = np.random.default_rng(1).random((128, 128)).astype(np.float16)
    k = tilewise.compile(_gemm(), out_idx=[2], target="cuda -arch=sm_90a", execution_backend="emulator",
                         pass_configs={PassConfigKey.TL_DISABLE_WGMMA: True})
    assert "wgmma" not in k.get_kernel_source() and "m16n8k16" in k.get_kernel_source()
    np.testing.assert_allclose(k(a, b), a.astype(np.float32) @ b.astype(np.float32), rtol=1e-3, atol=1e-3)


def test_enable_async_copy_false_is_use_async_copy_false():
    src = tilewise.compile(_gemm(), out_idx=[2], target="cuda -arch=sm_80", execution_backend="emulator",
                           pass_configs={"tl.enable_async_copy": False}).get_kernel_source()
    assert "cp.async" not in src
    src = tilewise.compile(_gemm(), out_idx=[2], target="cuda -arch=sm_80", execution_backend="emulator",
                           pass_configs={"tirx.use_async_copy": False}).get_kernel_source()
    assert "cp.async" not in src


def test_device_compile_flags_join_compile_flags():
    k = tilewise.compile(_add_one(), out_idx=[1], target="cuda -arch=sm_80", execution_backend="emulator",
                         pass_configs={"tl.device_compile_flags": "-DTW_TEST_FLAG=1"})
    assert "-DTW_TEST_FLAG=1" in k.compile_flags


def test_dump_ir_and_kernels_output_dir(tmp_path):
    dump, out = tmp_path / "ir", tmp_path / "src"
    k = tilewise.compile(_add_one(), out_idx=[1], target="cpu",
                         pass_configs={"tl.enable_dump_ir": True, "tl.dump_ir_path": str(dump),
                                       "cuda.kernels_output_dir": str(out)})
    np.testing.assert_array_equal(k(np.zeros(64, np.float32)), np.ones(64, np.float32))
    assert any(p.name.startswith("add_one.00_input") for p in dump.iterdir())
    assert (out / "add_one.cpp").read_text().strip()


def test_no_effect_keys_warn_once_unless_default():
    errors._warned.discard(("pass_config", "tl.layout_cost_model"))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        tilewise.compile(_add_one(), out_idx=[1], target="cpu", pass_configs={"tl.disable_data_race_check": True})
    assert not [x for x in w if "tl.disable_data_race_check" in str(x.message)]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for _ in range(2):
            tilewise.compile(_add_one(), out_idx=[1], target="cpu", pass_configs={"tl.layout_cost_model": "v2"})
    said = [str(x.message) for x in w if "tl.layout_cost_model" in str(x.message)]
    assert len(said) == 1 and "no effect" in said[0]


def test_tirx_spelling_and_add_lower_pass():
    a = tilewise.compile(_add_one(), out_idx=[1], target="cpu", pass_configs={"tirx.disable_vectorize": True})
    b = tilewise.compile(_add_one(), out_idx=[1], target="cpu", pass_configs={"tir.disable_vectorize": True})
    assert a.pass_configs == b.pass_configs
    tilewise.compile(_add_one(), out_idx=[1], target="cpu", pass_configs={"tirx.add_lower_pass": []})
    with pytest.raises(ValueError, match="cannot run TVM passes"):
        tilewise.compile(_add_one(), out_idx=[1], target="cpu", pass_configs={"tirx.add_lower_pass": [(1, object())]})
