"""Compiling and calling kernels: out_idx forms, numpy and torch in and out, @tilewise.jit,
lower/cached, JITKernel accessors, the profiler and the testing helpers."""
from __future__ import annotations

import functools

import ml_dtypes
import numpy as np
import pytest
import torch

import tilewise
import tilewise.language as T
from tilewise.testing import set_random_seed, torch_assert_close


def _two_outputs(M, N, dtype="float32"):
    """B = A + s and C = A * s, written by one kernel."""

    @T.prim_func
    def two(A: T.Tensor((M, N), dtype), B: T.Tensor((M, N), dtype), C: T.Tensor((M, N), dtype), s: T.float32):
        with T.Kernel(T.ceildiv(M, 4)) as bx:
            for i, j in T.Parallel(4, N):
                if bx * 4 + i < M:
                    B[bx * 4 + i, j] = A[bx * 4 + i, j] + s
                    C[bx * 4 + i, j] = A[bx * 4 + i, j] * s

    return two


@functools.cache
def _func(dtype="float32"):
    return _two_outputs(10, 6, dtype)


A = np.random.default_rng(0).standard_normal((10, 6)).astype(np.float32)


def test_out_idx_none_writes_in_place_and_returns_none():
    k = tilewise.compile(_func(), out_idx=None, target="cpu")
    b, c = np.zeros_like(A), np.zeros_like(A)
    assert k(A, b, c, 2.0) is None
    np.testing.assert_allclose(b, A + 2, rtol=1e-6)
    np.testing.assert_allclose(c, A * 2, rtol=1e-6)
    assert k.out_idx == []


@pytest.mark.parametrize("out_idx", [2, -2, [2], [-2]])
def test_single_output_returns_one_array(out_idx):
    k = tilewise.compile(_func(), out_idx=out_idx, target="cpu")
    b = np.zeros_like(A)
    c = k(A, b, 2.0)
    assert isinstance(c, np.ndarray) and c.shape == (10, 6) and c.dtype == np.float32
    np.testing.assert_allclose(c, A * 2, rtol=1e-6)
    np.testing.assert_allclose(b, A + 2, rtol=1e-6)  # the other tensor is written in place
    assert k.out_idx == [2]


@pytest.mark.parametrize("out_idx,order", [([1, 2], "bc"), ([-3, -2], "bc"), ([2, 1], "cb")])
def test_several_outputs_return_a_list_in_out_idx_order(out_idx, order):
    k = tilewise.compile(_func(), out_idx=out_idx, target="cpu")
    outs = k(A, 3.0)
    assert isinstance(outs, list) and len(outs) == 2
    want = {"b": A + 3, "c": A * 3}
    for o, name in zip(outs, order):
        np.testing.assert_allclose(o, want[name], rtol=1e-6)


def test_fresh_outputs_on_every_call():
    k = tilewise.compile(_func(), out_idx=[1, 2], target="cpu")
    b1, _ = k(A, 1.0)
    b2, _ = k(A, 5.0)
    assert b1 is not b2
    np.testing.assert_allclose(b1, A + 1, rtol=1e-6)


def test_torch_in_torch_out():
    k = tilewise.compile(_func(), out_idx=[1, 2], target="cpu")
    a = torch.from_numpy(A.copy())
    b, c = k(a, 2.0)
    assert isinstance(b, torch.Tensor) and b.dtype == torch.float32 and b.device.type == "cpu"
    torch.testing.assert_close(b, a + 2)
    torch.testing.assert_close(c, a * 2)


def test_torch_in_place_argument():
    k = tilewise.compile(_func(), out_idx=[2], target="cpu")
    a = torch.from_numpy(A.copy())
    b = torch.zeros(10, 6)
    c = k(a, b, 2.0)
    torch.testing.assert_close(b, a + 2)
    torch.testing.assert_close(c, a * 2)


@pytest.mark.parametrize("dtype,tdtype,npdtype,tol", [
    ("float16", torch.float16, np.float16, 2e-3),
    ("bfloat16", torch.bfloat16, ml_dtypes.bfloat16, 1.6e-2),
])  # fmt: skip
def test_half_precision_tensors(dtype, tdtype, npdtype, tol):
    k = tilewise.compile(_func(dtype), out_idx=[1, 2], target="cpu")
    a = torch.from_numpy(A.copy()).to(tdtype)
    b, c = k(a, 3.0)
    assert b.dtype == tdtype and c.dtype == tdtype
    ref_b = (a.float() + 3).to(tdtype)
    ref_c = (a.float() * 3).to(tdtype)
    torch.testing.assert_close(b, ref_b, rtol=tol, atol=tol)
    torch.testing.assert_close(c, ref_c, rtol=tol, atol=tol)
    # numpy arrays of the same type come back as numpy arrays
    an = A.astype(npdtype)
    bn, cn = k(an, 3.0)
    assert isinstance(bn, np.ndarray) and bn.dtype == np.dtype(npdtype)
    np.testing.assert_allclose(bn.astype(np.float32), (an.astype(np.float32) + 3), rtol=tol, atol=tol)


def test_mixed_numpy_and_torch_inputs_give_torch_outputs():
    k = tilewise.compile(_func(), out_idx=[2], target="cpu")
    c = k(A, torch.zeros(10, 6), 1.0)
    assert isinstance(c, torch.Tensor)


# ------------------------------------------------------------------------------- jit, lower, cached


def test_jit_factory_compiles_once_per_arguments(monkeypatch):
    import importlib

    jit_mod = importlib.import_module("tilewise.jit.jit")  # `tilewise.jit` is also the decorator

    compiled = []
    real = jit_mod._compile

    def counting(func, **kw):
        compiled.append(func.name)
        return real(func, **kw)

    monkeypatch.setattr(jit_mod, "_compile", counting)
    made = []

    @tilewise.jit(out_idx=[-1], target="cpu")
    def scale(M, N, factor, dtype="float32"):
        made.append((M, N, factor))

        @T.prim_func
        def scale_kernel(X: T.Tensor((M, N), dtype), Y: T.Tensor((M, N), dtype)):
            with T.Kernel(1) as _:
                for i, j in T.Parallel(M, N):
                    Y[i, j] = X[i, j] * factor

        return scale_kernel

    k1 = scale(4, 4, 2.0)
    k2 = scale(4, 4, 2.0)
    k3 = scale(4, 4, factor=2.0)
    k4 = scale(4, 4, 2.0, "float32")
    assert k1 is k2 is k3 is k4
    assert len(made) == 1 and len(compiled) == 1
    k5 = scale(4, 4, 3.0)
    assert k5 is not k1 and len(compiled) == 2
    x = np.ones((4, 4), np.float32)
    np.testing.assert_array_equal(k1(x), x * 2)
    np.testing.assert_array_equal(k5(x), x * 3)
    from tilewise.ir.stmt import PrimFunc

    assert isinstance(scale.get_tir(4, 4, 2.0), PrimFunc)


def test_jit_factory_must_return_a_prim_func():
    @tilewise.jit(target="cpu")
    def bad(n):
        return n

    with pytest.raises(TypeError, match="must return a @T.prim_func"):
        bad(3)


def test_jit_directly_on_a_prim_func():
    @tilewise.jit(out_idx=1, target="cpu")
    @T.prim_func
    def inc(X: T.Tensor((4,), "float32"), Y: T.Tensor((4,), "float32")):
        with T.Kernel(1) as _:
            for i in T.serial(4):
                Y[i] = X[i] + 1

    assert isinstance(inc, tilewise.JITKernel)
    np.testing.assert_array_equal(inc(np.zeros(4, np.float32)), np.ones(4))


def test_lower_gives_source_without_compiling(monkeypatch):
    import tilewise.backend.cpu.build as build

    def no_compiler(*a, **k):
        raise AssertionError("lower must not compile")

    monkeypatch.setattr(build, "build_shared_library", no_compiler)
    lowered = tilewise.lower(_func(), target="cpu")
    assert 'extern "C"' in lowered.kernel_source and "tw_entry" in lowered.kernel_source
    assert lowered.get_kernel_source() == lowered.kernel_source == str(lowered)
    assert "T.copy" not in str(lowered.lowered_func)


def test_cached_returns_a_working_kernel():
    k = tilewise.cached(_func(), [1, 2], target="cpu")
    b, c = k(A, 2.0)
    np.testing.assert_allclose(c, A * 2, rtol=1e-6)
    assert tilewise.cached(_func(), [1, 2], target="cpu").runtime.library is k.runtime.library


def test_jitkernel_accessors():
    k = tilewise.compile(_func(), out_idx=[-2], target="cpu")
    src = k.get_kernel_source()
    assert src == k.kernel_source and "tw_entry" in src
    assert [p.name for p in k.params] == ["A", "B", "C", "s"]
    assert [p.name for p in k.input_params] == ["A", "B", "s"]
    assert k.out_idx == [2]
    assert "two(A, B, C, s)" in repr(k) and "['C']" in repr(k)
    assert isinstance(k.get_profiler(), tilewise.Profiler)


def test_target_aliases_and_backends():
    for t in ("cpu", "c", "llvm"):
        k = tilewise.compile(_func(), out_idx=[1, 2], target=t, execution_backend="cython")
        assert k.target.kind == "cpu"
    with pytest.raises(ValueError, match="does not apply to the CPU target"):
        tilewise.compile(_func(), target="cpu", execution_backend="nvrtc")


# ------------------------------------------------------------------------------- profiler and testing


@functools.cache
def _scale_kernel():
    @T.prim_func
    def double(X: T.Tensor((16, 8), "float32"), Y: T.Tensor((16, 8), "float32")):
        with T.Kernel(2) as bx:
            for i, j in T.Parallel(8, 8):
                Y[bx * 8 + i, j] = X[bx * 8 + i, j] * 2

    return tilewise.compile(double, out_idx=[1], target="cpu")


def test_profiler_do_bench_returns_positive_milliseconds():
    prof = _scale_kernel().get_profiler()
    t = prof.do_bench(warmup=1, rep=3)
    assert isinstance(t, float) and t > 0
    t2 = prof.do_bench(_scale_kernel(), warmup=1, rep=2, input_tensors=[np.ones((16, 8), np.float32)])
    assert t2 > 0


def test_do_bench_modes():
    from tilewise.profiler import do_bench

    calls = []
    t = do_bench(lambda: calls.append(1), warmup=1, rep=2)
    assert t > 0 and len(calls) > 5
    qs = do_bench(lambda: None, warmup=1, rep=1, quantiles=[0.5, 0.9])
    assert len(qs) == 2 and qs[0] <= qs[1]


def test_assert_allclose_passes_for_a_correct_kernel_and_raises_for_a_wrong_reference():
    prof = _scale_kernel().get_profiler()
    prof.assert_allclose(lambda x: x * 2)
    prof.assert_allclose(lambda x: x * 2, atol=0, rtol=0)
    with pytest.raises(AssertionError, match="elements differ"):
        prof.assert_allclose(lambda x: x * 2 + 0.5)


def test_assert_allclose_for_in_place_kernels():
    k = tilewise.compile(_func(), out_idx=None, target="cpu")
    x = np.random.default_rng(1).standard_normal((10, 6)).astype(np.float32)
    ins = [x, np.zeros_like(x), np.zeros_like(x), 2.0]
    k.get_profiler().assert_allclose(lambda a, b, c, s: [a, a + s, a * s, s], input_tensors=ins)


@pytest.mark.parametrize("supply", list(tilewise.TensorSupplyType))
def test_tensor_supply_types(supply):
    prof = _scale_kernel().get_profiler(supply)
    (x,) = prof._inputs()
    assert isinstance(x, torch.Tensor) and tuple(x.shape) == (16, 8) and x.dtype == torch.float32
    v = x.numpy()
    if supply == tilewise.TensorSupplyType.Zero:
        assert (v == 0).all()
    elif supply == tilewise.TensorSupplyType.One:
        assert (v == 1).all()
    elif supply == tilewise.TensorSupplyType.Integer:
        assert (v == np.round(v)).all() and v.min() >= -2 and v.max() <= 2
    elif supply in (tilewise.TensorSupplyType.Uniform, tilewise.TensorSupplyType.Auto):
        assert v.min() >= -1 and v.max() <= 1 and v.std() > 0
    else:
        assert v.std() > 0.3
    y = prof.run_once()  # on freshly supplied inputs
    assert tuple(y.shape) == (16, 8)


def test_profiler_supplies_low_precision_and_integer_tensors():
    @T.prim_func
    def mixed(X: T.Tensor((4,), "bfloat16"), Y: T.Tensor((4,), "int8"), Z: T.Tensor((4,), "float32")):
        with T.Kernel(1) as _:
            for i in T.serial(4):
                Z[i] = T.cast(X[i], "float32") + T.cast(Y[i], "float32")

    k = tilewise.compile(mixed, out_idx=[2], target="cpu")
    prof = k.get_profiler()
    x, y = prof._inputs()
    assert x.dtype == torch.bfloat16 and y.dtype == torch.int8
    prof.assert_allclose(lambda a, b: a.float() + b.float(), atol=0, rtol=0)


def test_torch_assert_close_and_random_seed():
    torch_assert_close(np.ones(4), torch.ones(4))
    torch_assert_close(np.array([1.0, 2.0, 3.0, 100.0]), np.array([1.0, 2.0, 3.0, 0.0]), max_mismatched_ratio=0.25)
    with pytest.raises(AssertionError, match="1 of 4 elements differ"):
        torch_assert_close(np.array([1.0, 2.0, 3.0, 100.0]), np.array([1.0, 2.0, 3.0, 0.0]))
    with pytest.raises(AssertionError, match="shape"):
        torch_assert_close(np.ones(3), np.ones(4))
    torch_assert_close(torch.ones(2, dtype=torch.bfloat16), np.ones(2))
    set_random_seed(7)
    a = (np.random.rand(3), torch.rand(3))
    set_random_seed(7)
    b = (np.random.rand(3), torch.rand(3))
    np.testing.assert_array_equal(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])


def test_auto_target_and_environment_override(monkeypatch):
    from tilewise.jit.target import gpu_present

    if not gpu_present():
        k = tilewise.compile(_func(), out_idx=[1, 2])  # target="auto": the CPU when there is no GPU
        assert k.target.kind == "cpu"
    monkeypatch.setenv("TILEWISE_TARGET", "cpu")
    assert tilewise.compile(_func(), out_idx=[1, 2], target="auto").target.kind == "cpu"
    with pytest.raises(ValueError, match="unsupported CUDA architecture"):
        tilewise.compile(_func(), target="cuda -arch=sm_10")
