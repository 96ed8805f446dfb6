"""TileLang 0.1.15's TIR-builder names in T (language/tir_builder.py), the TVM node-class views
(tir_nodes.py), the expert-tier helpers T re-exports, and the names that are clear CompileErrors
(tir_unsupported.py)."""
import numpy as np
import pytest
from conftest import emu

import tilewise
import tilewise.language as T
from tilewise.intrinsics import TensorCoreIntrinEmitter
from tilewise.language.tir_unsupported import MESSAGES


def test_match_buffer_on_handle_parameters_on_cpu():
    @T.prim_func
    def add(a: T.handle, b: T.Ptr("float32"), n: T.int32):
        A = T.match_buffer(a, (n,), "float32")
        B = T.match_buffer(b, (n,), "float32")
        with T.Kernel(T.ceildiv(n, 32)) as bx:
            for i in T.Parallel(32):
                if T.ignore_loop_partition(bx * 32 + i < n):
                    B[bx * 32 + i] = A[bx * 32 + i] + 1

    k = tilewise.compile(add, target="cpu")
    a = np.arange(100, dtype=np.float32)
    b = np.zeros(100, np.float32)
    k(a, b, 100)
    np.testing.assert_array_equal(b, a + 1)


def test_builder_names_in_a_thread_level_kernel():
    """decl_buffer / allocate / bind / Let / buffer_store / tvm_access_ptr / call_intrin /
    func_attr / meta_var / var in one kernel, run by the emulator."""
    n = 64
    seen = {}

    @T.prim_func
    def k(A: T.Tensor((n,), "float32"), B: T.Tensor((n,), "float32"), C: T.Tensor((n,), "float32")):
        T.func_attr({"global_symbol": "k", "tir.noalias": True})
        with T.Kernel(1, threads=n):
            S = T.decl_buffer((n,), "float32", scope="shared")
            V = T.decl_buffer((n // 2, 2), "float32", data=S.data)  # a view of S's storage
            r = T.allocate((2,), "float32", "local")
            tx = T.get_thread_binding()
            j = T.bind(n - 1 - tx)
            seen.update(bound=T.has_let_value(j), value=T.get_let_value(j), unbound=T.has_let_value(T.var("int32")))
            x = T.var("int32")
            T.let(x, tx * 2)
            S[tx] = A[tx]
            T.buffer_store(r, T.Let(x + 1, {x: 3}), [0])  # 4
            r[1] = T.call_intrin("float32", "tir.exp", T.float32(0))  # 1
            B[j] = V[tx // 2, tx % 2] + r[0] * T.meta_var(2) + r[1]  # A[tx] + 9 at n - 1 - tx
            C[tx] = T.call_pure_extern("float32", "fabsf", A[tx] - x)

    A = np.linspace(-3, 3, n).astype(np.float32)
    B = np.zeros(n, np.float32)
    C = np.zeros(n, np.float32)
    emu(k)(A, B, C)
    np.testing.assert_allclose(B, (A + 9)[::-1], rtol=1e-6)
    np.testing.assert_allclose(C, np.abs(A - 2 * np.arange(n)))
    assert seen["bound"] and not seen["unbound"] and isinstance(seen["value"], T.Sub)


def test_tvm_access_ptr_and_type_annotation_feed_cp_async():
    @T.prim_func
    def k(A: T.Tensor((256,), "float16"), B: T.Tensor((256,), "float16")):
        with T.Kernel(1, threads=32):
            S = T.alloc_shared((256,), "float16")
            tx = T.get_thread_binding()
            T.ptx_cp_async(T.tvm_access_ptr(T.type_annotation("float16"), S.data, tx * 8, 8, 2),
                           T.tvm_access_ptr(T.type_annotation("float16"), A.data, tx * 8, 8, 1), 8)
            T.evaluate(T.call_intrin("handle", "tir.ptx_commit_group"))
            T.ptx_wait_group(0)
            for i in T.serial(8):
                B[tx * 8 + i] = S[255 - tx * 8 - i]

    A = np.arange(256).astype(np.float16)
    B = np.zeros(256, np.float16)
    emu(k)(A, B)
    np.testing.assert_array_equal(B, A[::-1])


def test_node_classes_are_views_of_tilewise_expressions():
    seen = {}

    @T.prim_func
    def k(A: T.Tensor((8,), "int32")):
        with T.Kernel(1):
            seen.update(add=A[0] + 1, mul=A[0] * 2, fdiv=A[0] // 2, fmod=A[0] % 2, lt=A[0] < 2, eq=A[0] == 2,
                        load=A[0], max=T.max(A[0], 1), call=T.exp(T.float32(1)), var=T.int32())
            for j in T.serial(8):
                A[j] = T.Mod(j - 4, 3) + T.Add(j, 0) * 0  # truncated remainder, as TVM's Mod

    out = np.zeros(8, np.int32)
    tilewise.compile(k, target="cpu")(out)
    np.testing.assert_array_equal(out, np.fmod(np.arange(8) - 4, 3))
    assert isinstance(k, T.PrimFunc)
    assert isinstance(T.IntImm("int32", 4), T.IntImm) and not isinstance(T.FloatImm("float32", 1.5), T.IntImm)
    assert isinstance(seen["add"], T.Add) and isinstance(seen["mul"], T.Mul) and not isinstance(seen["mul"], T.Add)
    assert isinstance(seen["fdiv"], T.FloorDiv) and isinstance(seen["fmod"], T.FloorMod)
    assert isinstance(seen["lt"], T.LT) and isinstance(seen["eq"], T.EQ) and not isinstance(seen["lt"], T.GE)
    assert isinstance(seen["load"], T.BufferLoad) and isinstance(seen["max"], T.Max)
    assert isinstance(seen["call"], T.Call) and isinstance(seen["var"], T.SizeVar)
    assert isinstance("x", T.StringImm) and not isinstance(seen["load"], T.Ramp)
    assert T.Range(2, 5) == range(2, 5)


def test_get_tvm_dtype():
    import torch

    assert T.get_tvm_dtype(torch.bfloat16) == T.bfloat16 and T.get_tvm_dtype("int8") == T.int8


def test_emitter_helpers_are_in_T():
    assert T.TensorCoreIntrinEmitter is TensorCoreIntrinEmitter
    assert T.get_mma_micro_size("int8") == (16, 16, 32)
    assert T.get_ldmatrix_offset("A", 17, 0, 32, "float16") == tilewise.intrinsics.get_ldmatrix_offset("A", 17, 0, 32)
    for name in ("get_swizzle_layout", "make_mma_swizzle_layout", "mma_store_index_map"):
        assert callable(getattr(T, name))
    with pytest.raises(tilewise.CompileError, match="wgmma"):
        T.WGMMATensorCoreIntrinEmitter()
    with pytest.raises(tilewise.CompileError, match="gemm_sp"):
        T.SparseTensorCoreIntrinEmitter()


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_every_refused_name_is_a_compile_error(name):
    with pytest.raises(tilewise.CompileError, match=f"T.{name}"):
        getattr(T, name)()


@pytest.mark.parametrize("name", ["Shuffle", "Reduce", "IterVar", "Any", "CommReducer"])
def test_absent_node_classes_are_compile_errors(name):
    with pytest.raises(tilewise.CompileError, match=f"T.{name}"):
        getattr(T, name)(1, 2)
    assert not isinstance(T.int32(1), getattr(T, name))


@pytest.mark.parametrize("body,match", [
    (lambda: T.func_attr({"tir.unknown": 1}), "no meaning"),
    (lambda: T.func_attr({"tir.noalias": False}), "__restrict__"),
    (lambda: T.allocate((4,), "float32", "global"), "T.alloc_global"),
    (lambda: T.decl_buffer((4,), "float32", scope="shared", strides=(1,)), "strides"),
    (lambda: T.call_intrin("float32", "tir.nonexistent_thing", 1), "not an intrinsic"),
    (lambda: T.env_thread("threadIdx.x"), "T.Kernel"),
    (lambda: T.launch_thread("threadIdx.x", 32), "T.Kernel"),
    (lambda: T.vectorlow("float16x2", 0), "vector lanes"),
    (lambda: T.call_llvm_intrin("float32", "llvm.fma", 1.0), "LLVM"),
])  # fmt: skip
def test_builder_misuse_is_a_compile_error(body, match):
    with pytest.raises(tilewise.CompileError, match=match):
        @T.prim_func
        def k(A: T.Tensor((4,), "float32")):
            with T.Kernel(1, threads=32):
                body()


def test_tvm_access_ptr_of_another_element_type_is_refused():
    with pytest.raises(tilewise.CompileError, match="reinterpreting"):
        @T.prim_func
        def k(A: T.Tensor((64,), "float16")):
            with T.Kernel(1, threads=32):
                S = T.alloc_shared((64,), "float16")
                T.ptx_cp_async(T.tvm_access_ptr(T.type_annotation("uint8"), S.data, 0, 16, 2),
                               T.tvm_access_ptr(T.type_annotation("float16"), A.data, 0, 8, 1), 8)
