"""Smaller TileLang behaviours a ported program relies on (issue #14's last gaps):

- `T.PrimExpr` accepts a `T.alloc_var` name, as TileLang treats it (frontend_v2 test_marco_return);
- a buffer slice with a step is rejected as TileLang rejects it, with an error that is also a
  RuntimeError (TileLang's parser diagnostics are; frontend_v2 test_buffer_slice_step);
- `tilelang.transform.simplify.apply_simplify` / `simplify_prim_func` drop the tensor parameters
  the body never touches, as TileLang's Simplify(simplify_arguments=True) does (kernel/gemv_simt
  calls its bias-less kernel with three tensors)."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError
from tilewise.transform.simplify import apply_simplify, simplify_prim_func


def test_alloc_var_names_are_prim_exprs():
    seen = []

    def record(*flags):
        seen.append(flags)

    @T.macro
    def make_var(x):
        return T.alloc_var(T.float32, init=x)

    @T.prim_func
    def main(A: T.Tensor((2,), T.float32)):
        with T.Kernel(1):
            v = make_var(3.0)
            record(isinstance(v, T.PrimExpr), isinstance(v + 1.0, T.PrimExpr), isinstance(A, T.PrimExpr))
            A[0] = v
            A[1] = v * 2.0

    assert seen == [(True, True, False)]
    assert issubclass(T.Var, T.PrimExpr) and not issubclass(int, T.PrimExpr)
    with pytest.raises(TypeError):
        T.PrimExpr()
    a = np.zeros(2, np.float32)
    tilewise.compile(main, target="cpu")(a)
    np.testing.assert_array_equal(a, [3.0, 6.0])


def test_a_slice_with_a_step_is_rejected_as_tilelang_does():
    with pytest.raises(RuntimeError, match="step 1") as e:
        @T.prim_func
        def main(A: T.Tensor((10,), T.int32), B: T.Tensor((5,), T.int32)):
            with T.Kernel(1):
                B[0:5:2] = A[0:10:2]

    # the message starts with the source line (file:line), not with the function's name
    assert isinstance(e.value, CompileError) and str(e.value).split(":")[0].endswith("test_surface_gaps.py")


@pytest.mark.parametrize("op", ["reshape", "view"])
def test_a_view_of_the_wrong_size_is_an_assertion_error_as_in_tilelang(op):
    # TileLang asserts the element count while building the program; its tests expect AssertionError
    with pytest.raises(AssertionError, match="1056 x float32") as e:
        @T.prim_func
        def main(A: T.Tensor((1024,), T.float32), B: T.Tensor((32, 32), T.float32)):
            with T.Kernel(1):
                v = getattr(T, op)(A, [32, 33])
                T.copy(v, B)

    assert isinstance(e.value, CompileError)


def gemv(N=64, K=32, with_bias=False):
    @T.prim_func
    def main(A: T.Tensor((K,), T.float32), B: T.Tensor((N, K), T.float32), Bias: T.Tensor((N,), T.float32),
             C: T.Tensor((N,), T.float32)):
        with T.Kernel(N // 16) as bx:
            acc = T.alloc_fragment((16,), T.float32)
            T.clear(acc)
            for i in T.Parallel(16):
                for k in T.serial(K):
                    acc[i] += A[k] * B[bx * 16 + i, k]
            for i in T.Parallel(16):
                if with_bias:
                    C[bx * 16 + i] = acc[i] + Bias[bx * 16 + i]
                else:
                    C[bx * 16 + i] = acc[i]

    return main


@pytest.mark.parametrize("with_bias", [False, True])
def test_apply_simplify_drops_untouched_tensor_parameters(with_bias):
    func = apply_simplify(gemv(with_bias=with_bias))
    assert [p.name for p in func.params] == (["A", "B", "Bias", "C"] if with_bias else ["A", "B", "C"])
    rng = np.random.default_rng(0)
    a, b, bias = rng.random(32, np.float32), rng.random((64, 32), np.float32), rng.random(64, np.float32)
    c = np.zeros(64, np.float32)
    for target, backend in (("cpu", None), ("cuda -arch=sm_80", "emulator")):
        k = tilewise.compile(func, target=target, execution_backend=backend)
        k(a, b, bias, c) if with_bias else k(a, b, c)
        np.testing.assert_allclose(c, b @ a + (bias if with_bias else 0), rtol=1e-5)
    assert [p.name for p in simplify_prim_func(gemv)(with_bias=with_bias).params] == [p.name for p in func.params]


def test_apply_simplify_keeps_scalars_and_tensors_declaring_a_used_dimension():
    n = T.symbolic("n")

    @T.prim_func
    def main(X: T.Tensor((n,), T.float32), Y: T.Tensor((64,), T.float32), s: T.int32):
        with T.Kernel(1):
            for i in T.Parallel(64):
                Y[i] = T.cast(n + s, T.float32)

    func = apply_simplify(main)
    assert [p.name for p in func.params] == ["X", "Y", "s"]  # X is the only tensor declaring n
    y = np.zeros(64, np.float32)
    tilewise.compile(func, target="cpu")(np.zeros(5, np.float32), y, 2)
    np.testing.assert_array_equal(y, 7.0)
