"""TileLang 0.1.8's function style (language/eager.py, jit/eager.py): @jit on a function whose
body is the kernel, with T.const dimensions, parameters declared in the body and T.empty
outputs; the same features in @T.prim_func; T.Ref, T.inline, T.annotate_pass_configs /
T.annotate_compile_flags and compile_flags=."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import OutsideKernelError
from tilewise.transform import PassConfigKey

EMU = dict(target="cuda", execution_backend="emulator")


def make_matmul(**jit_kwargs):
    @tilewise.jit(**jit_kwargs)
    def matmul(A, B, block_M: int = 32, block_N: int = 32, block_K: int = 16, dtype=T.float32):
        M, N, K = T.const("M, N, K")
        A: T.Tensor((M, K), dtype)
        B: T.Tensor((K, N), dtype)
        C = T.empty((M, N), dtype)
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            A_shared = T.alloc_shared((block_M, block_K), dtype)
            B_shared = T.alloc_shared((block_K, block_N), dtype)
            C_local = T.alloc_fragment((block_M, block_N), "float32")
            T.clear(C_local)
            for k in T.Pipelined(T.ceildiv(K, block_K), num_stages=2):
                T.copy(A[by * block_M, k * block_K], A_shared)
                T.copy(B[k * block_K, bx * block_N], B_shared)
                T.gemm(A_shared, B_shared, C_local)
            T.copy(C_local, C[by * block_M, bx * block_N])
        return C

    return matmul


@pytest.mark.parametrize("where", [dict(target="cpu"), EMU], ids=["cpu", "emulator"])
def test_eager_gemm_specialises_per_shape_and_returns_its_output(where, rng):
    matmul = make_matmul(**where)
    a = rng.standard_normal((64, 32)).astype(np.float32)
    b = rng.standard_normal((32, 32)).astype(np.float32)
    c = matmul(a, b)
    assert matmul.mode == "eager"
    tol = 1e-4 if where["target"] == "cpu" else 3e-2  # float32 T.gemm is tf32 on CUDA
    np.testing.assert_allclose(c, a @ b, rtol=tol, atol=tol)
    k = matmul.compile(M=64, N=32, K=32)  # the same kernel, from the T.const values by keyword
    assert k is matmul.compile(a, b) and k.out_idx == [2]
    assert [p.name for p in k.params] == ["A", "B", "C"] and k.params[0].shape == (64, 32)
    if where["target"] == "cpu":
        a2 = rng.standard_normal((40, 32)).astype(np.float32)  # another M: another kernel
        np.testing.assert_allclose(matmul(a2, b), a2 @ b, rtol=1e-4, atol=1e-4)
        assert matmul.compile(a2, b) is not k
        torch = pytest.importorskip("torch")
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        out = matmul(ta, tb, block_M=16)  # a Python value changes the kernel too
        assert isinstance(out, torch.Tensor)
        np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-4, atol=1e-4)


def test_dynamic_dimensions_share_one_kernel_and_outputs_follow_them():
    @tilewise.jit(target="cpu")
    def add_one(A, scale: float = 1.0):
        m, n = T.dynamic("m, n")
        A: T.Tensor[[m, n], T.float32]
        B = T.empty([m, n + 1], T.float32)
        with T.Kernel(T.ceildiv(m, 8)) as bx:
            for i, j in T.Parallel(8, n + 1):
                if bx * 8 + i < m:
                    B[bx * 8 + i, j] = T.if_then_else(j < n, A[bx * 8 + i, T.min(j, n - 1)] * scale, -1.0)
        return B

    for shape in [(5, 3), (17, 9)]:
        a = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
        out = add_one(a, 2.0)
        assert out.shape == (shape[0], shape[1] + 1)
        np.testing.assert_array_equal(out[:, :-1], a * 2)
        assert (out[:, -1] == -1).all()
    assert len(add_one._eager._kernels) == 1  # one kernel for every size


def test_strides_and_consts_given_by_keyword_and_symbolic():
    @tilewise.jit(target="cpu")
    def copy(A, B):
        N, M, sN, sM = T.const("N, M, sN, sM")
        A: T.StridedTensor[[N, M], [sN, sM], T.float32]
        B: T.Tensor[[N, M], T.float32]
        with T.Kernel(1) as _:
            for i, j in T.Parallel(N, M):
                B[i, j] = A[i, j]

    big = np.arange(8 * 12, dtype=np.float32).reshape(8, 12)
    view = big[:, ::3]  # strides (12, 3) in elements
    out = np.zeros((8, 4), np.float32)
    copy(view, out)
    np.testing.assert_array_equal(out, view)
    k = copy.compile(N=8, M=4, sN=12, sM=3)
    assert k is copy.compile(view, out)
    with pytest.raises(TypeError, match="no parameter or T.const named 'Q'"):
        copy.compile(N=8, M=4, sN=12, sM=3, Q=1)
    with pytest.raises(TypeError, match="T.const 'N' is read from argument A, which is not given"):
        copy.compile(M=4)

    @tilewise.jit(target="cpu")
    def scale(A, factor: int = 2):
        M, N = T.const("M, N")
        A: T.Tensor[[M, N], T.int32]
        B = T.empty([M, N], T.int32)
        with T.Kernel(1) as _:
            for i, j in T.Parallel(M, N):
                B[i, j] = A[i, j] * factor
        return B

    # a T.dynamic variable given for a T.const keeps that dimension dynamic (TileLang's autotune test)
    k = scale.compile(M=T.dynamic("m"), N=4)
    for rows in (3, 6):
        a = np.arange(rows * 4, dtype=np.int32).reshape(rows, 4)
        np.testing.assert_array_equal(k(a), a * 2)


def test_prim_func_with_parameters_declared_in_the_body_and_t_empty():
    @T.prim_func
    def kernel(A, n: T.int32):
        A: T.Tensor[[16], T.float32]
        T.annotate_pass_configs({PassConfigKey.TL_DISABLE_TMA_LOWER: True})
        B = T.empty([16], T.float32)
        C = T.empty([n + 1], T.int32)
        with T.Kernel(1) as _:
            for i in T.serial(16):
                B[i] = A[i] + 1.0
            for i in T.serial(n + 1):
                C[i] = i
        return C, B

    assert kernel.attrs["tilelang_out_idx"] == [-1, -2]
    assert kernel.attrs["tilelang_pass_configs"] == {PassConfigKey.TL_DISABLE_TMA_LOWER: True}
    a = np.arange(16, dtype=np.float32)
    for where in (dict(target="cpu"), EMU):
        k = tilewise.compile(kernel, **where)
        assert k.pass_configs == {"tl.disable_tma_lower": True}
        c, b = k(a, 5)
        np.testing.assert_array_equal(b, a + 1)
        np.testing.assert_array_equal(c, np.arange(6))
    with pytest.raises(ValueError, match="Out index conflict"):
        tilewise.compile(kernel, out_idx=[-1], target="cpu")


def test_macros_return_t_empty_outputs_and_take_references():
    @T.macro
    def copy_impl(A):
        M, N = A.shape
        B = T.empty(M, N, dtype=A.dtype)
        with T.Kernel(T.ceildiv(M, 8), threads=32) as bx:
            T.copy(A[bx * 8:bx * 8 + 8, 0:N], B[bx * 8:bx * 8 + 8, 0:N])
        return B

    @tilewise.jit(target="cpu")
    def copy(A):
        M = T.const("M")
        A: T.Tensor[[M, 4], T.float32]
        return copy_impl(A)

    a = np.arange(40, dtype=np.float32).reshape(10, 4)
    np.testing.assert_array_equal(copy(a), a)

    @T.macro
    def bump(x: T.Ref, by):
        x = x + by  # noqa: F841 - stores into the caller's element
        x += 1

    class Counter:
        def __init__(self, buf):
            self.buf = buf

        @T.inline
        def add(self, i, v):
            self.buf[i] = self.buf[i] + v

    @T.prim_func
    def refs(A: T.Tensor((4,), "int32")):
        with T.Kernel(1) as _:
            acc = T.alloc_var("int32", init=10)
            bump(acc, 5)
            bump(A[2], 100)
            A[0] = acc
            Counter(A).add(3, 7)

    for where in (dict(target="cpu"), EMU):
        x = np.zeros(4, np.int32)
        tilewise.compile(refs, **where)(x)
        np.testing.assert_array_equal(x, [16, 0, 101, 7])

    def bad():
        @T.prim_func
        def k(A: T.Tensor((4,), "int32")):
            with T.Kernel(1) as _:
                bump(3, 1)

    with pytest.raises(tilewise.CompileError, match="annotated T.Ref: pass an element"):
        bad()


def test_a_kernel_without_grid_dimensions_is_one_block():
    @tilewise.jit(target="cpu")
    def fill(A):
        A: T.Tensor[[8], T.int32]
        with T.Kernel(threads=32):
            for i in T.serial(8):
                A[i] = i * 2

    x = np.zeros(8, np.int32)
    assert fill(x) is None  # no T.empty: nothing returned, A written in place
    np.testing.assert_array_equal(x, np.arange(8) * 2)


def test_errors_name_the_problem():
    with pytest.raises(OutsideKernelError, match=r"T.const\(...\) can only be used in a @tilewise.jit"):
        T.const("M")

    with pytest.raises(tilewise.CompileError, match="makes output\\(s\\) B with T.empty but does not return them"):
        @T.prim_func
        def k1(A: T.Tensor((4,), "float32")):
            B = T.empty((4,), "float32")  # noqa: F841
            with T.Kernel(1) as _:
                A[0] = 1.0

    with pytest.raises(tilewise.CompileError, match="returns A, but a kernel function returns only tensors made with"):
        @T.prim_func
        def k2(A: T.Tensor((4,), "float32")):
            with T.Kernel(1) as _:
                A[0] = 1.0
            return A

    with pytest.raises(tilewise.CompileError, match="parameter A is used before its declaration"):
        @T.prim_func
        def k3(A):
            B = A  # noqa: F841
            A: T.Tensor((4,), "float32")

    @tilewise.jit(target="cpu")
    def only_out(A):
        N = T.const("N")
        A: T.Tensor[[4], T.float32]
        B = T.empty([N], T.float32)
        with T.Kernel(1) as _:
            B[0] = A[0]
        return B

    with pytest.raises(TypeError, match="T.const 'N' is not a dimension of any tensor parameter.*pass N="):
        only_out(np.zeros(4, np.float32))
    np.testing.assert_array_equal(only_out.compile(N=2)(np.ones(4, np.float32))[:1], [1.0])

    with pytest.raises(ValueError, match="out_idx is for kernel factories"):
        make_matmul(out_idx=[-1])(np.zeros((4, 4), np.float32), np.zeros((4, 4), np.float32))


def test_lazy_factories_keep_working_and_par_compile():
    def build(n):
        @T.prim_func
        def main(A: T.Tensor((n,), "float32"), B: T.Tensor((n,), "float32")):
            with T.Kernel(1) as _:
                for i in T.Parallel(n):
                    B[i] = A[i] * 2

        return main

    @tilewise.jit(out_idx=[-1], target="cpu")
    def via_helper(n):  # the source does not say: the first call tells
        return build(n)

    a = np.arange(8, dtype=np.float32)
    np.testing.assert_array_equal(via_helper(8)(a), a * 2)
    assert via_helper.mode == "lazy"
    ks = tilewise.par_compile([build(4), build(8)], out_idx=[-1], target="cpu")
    np.testing.assert_array_equal(ks[1](a), a * 2)

    matmul = make_matmul(target="cpu")
    x = np.ones((32, 16), np.float32)
    k1, k2 = matmul.par_compile([dict(M=32, N=16, K=16), dict(M=32, N=32, K=16)])
    assert k1 is matmul.compile(x, np.ones((16, 16), np.float32))
    assert k2.params[1].shape == (16, 32)


def test_compile_flags_take_effect_or_warn_once(tmp_path):
    @T.prim_func
    def flagged(A: T.Tensor((4,), "int32")):
        T.annotate_compile_flags(["-DTW_UNUSED_MACRO=1"])
        with T.Kernel(1) as _:
            for i in T.serial(4):
                A[i] = i

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        k = tilewise.compile(flagged, target="cpu", compile_flags=["-O2", "--use_fast_math", "--use_fast_math"])
    assert k.build.compile_flags == ("-O2", "-DTW_UNUSED_MACRO=1")
    msgs = [str(x.message) for x in w if "compile_flags" in str(x.message)]
    assert len(msgs) == 1 and "'--use_fast_math' has no effect on the CPU target" in msgs[0]
    x = np.zeros(4, np.int32)
    k(x)
    np.testing.assert_array_equal(x, np.arange(4))

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        kc = tilewise.compile(flagged, target="cuda", execution_backend="emulator",
                              compile_flags="-O3 --ptxas-options=-v,--maxrregcount=64 -lineinfo")
    assert kc.build.compile_flags == ("--ptxas-options=-v", "--ptxas-options=--maxrregcount=64", "-lineinfo",
                                      "-DTW_UNUSED_MACRO=1")
    text = " | ".join(str(x.message) for x in w)
    assert "'-O3' has no effect: tilewise compiles CUDA with NVRTC" in text
    assert "the emulator runs the lowered program" in text
    assert kc.get_sass()  # NVRTC took the flags

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        tilewise.compile(flagged, target="cpu", target_host="llvm")
    assert any("target_host='llvm' has no effect" in str(x.message) for x in w)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        tilewise.lower(flagged, "cpu", runtime_only=True)
    from tilewise.errors import _warned

    assert any("runtime_only=True has no effect" in str(x.message) for x in w) or ("option", "runtime_only") in _warned

    @tilewise.jit(target="cpu", debug_root_path=str(tmp_path / "dbg"))
    def dumped(A):
        A: T.Tensor[[4], T.int32]
        with T.Kernel(1) as _:
            A[0] = 7

    dumped(np.zeros(4, np.int32))
    assert sorted(p.name for p in (tmp_path / "dbg").iterdir()) == [
        "tilewise_jit_kernel_dumped.cpp", "tilewise_jit_program_dumped.py"]
