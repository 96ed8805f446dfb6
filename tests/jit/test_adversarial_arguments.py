"""Adversarial call arguments on every executor (native CPU, the thread-IR emulator, the PTX
interpreter), numpy and torch alike: each is either run correctly or refused before anything
runs with an error naming the parameter and what was expected; nothing is read as something
it is not (a strided view as contiguous, an np.matrix's rows as elements, a masked array's
masked elements as data)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tilewise
import tilewise.language as T

BACKENDS = [("cpu", "auto"), ("cuda -arch=sm_80", "emulator"), ("cuda -arch=sm_80", "ptx")]


def _add():
    n = T.symbolic("n")

    @T.prim_func
    def add(A: T.Tensor((n, 64), "float32"), B: T.Tensor((n, 64), "float32"), C: T.Tensor((n, 64), "float32")):
        with T.Kernel(T.ceildiv(n, 32), threads=64) as bx:
            for i, j in T.Parallel(32, 64):
                if bx * 32 + i < n:
                    C[bx * 32 + i, j] = A[bx * 32 + i, j] + B[bx * 32 + i, j]

    return add


def _scale():
    @T.prim_func
    def scale(A: T.Tensor((64, 64), "float32"), s: T.float32, k: T.int32, C: T.Tensor((64, 64), "float32")):
        with T.Kernel(2, threads=64) as bx:
            for i, j in T.Parallel(32, 64):
                C[bx * 32 + i, j] = A[bx * 32 + i, j] * s + k

    return scale


_kernels: dict = {}


def _kernel(which: str, target: str, backend: str, out_idx):
    key = (which, target, backend, tuple(out_idx or ()))
    if key not in _kernels:
        func = _add() if which == "add" else _scale()
        _kernels[key] = tilewise.compile(func, out_idx=out_idx, target=target, execution_backend=backend)
    return _kernels[key]


def _a(*shape):
    return np.random.default_rng(0).random(shape, dtype=np.float32)


# (label, arguments of add(A, B) -> C, error class, message pattern)
_ADD_REFUSED = [
    ("wrong dtype", lambda: (_a(8, 64).astype(np.float64), _a(8, 64)), TypeError,
     "argument A: expected dtype float32, found float64"),
    ("wrong rank", lambda: (_a(8 * 64), _a(8, 64)), ValueError, r"argument A: expected 2 dimensions \(n, 64\)"),
    ("wrong static dim", lambda: (_a(8, 32), _a(8, 32)), ValueError, r"argument A: expected shape \(n, 64\)"),
    ("inconsistent dynamic dim", lambda: (_a(8, 64), _a(6, 64)), ValueError,
     "argument B: dimension 0 is n=8 from an earlier argument, found 6"),
    ("transposed view", lambda: (_a(64, 8).T, _a(8, 64)), ValueError, "argument A: the kernel needs a contiguous"),
    ("negative strides", lambda: (_a(8, 64)[::-1], _a(8, 64)), ValueError, "argument A: the kernel needs a contiguous"),
    ("every other row", lambda: (_a(16, 64)[::2], _a(8, 64)), ValueError, "argument A: the kernel needs a contiguous"),
    ("broadcast view", lambda: (np.broadcast_to(_a(64), (8, 64)), _a(8, 64)), ValueError,
     "argument A: the kernel needs a contiguous"),
    ("torch transposed", lambda: (torch.rand(64, 8).t(), torch.rand(8, 64)), ValueError,
     "argument A: the kernel needs a contiguous"),
    ("torch expanded", lambda: (torch.rand(64).expand(8, 64), torch.rand(8, 64)), ValueError,
     "argument A: the kernel needs a contiguous"),
    ("None", lambda: (None, _a(8, 64)), TypeError, "argument A is None, but the kernel accesses it"),
    ("python float", lambda: (1.0, _a(8, 64)), TypeError, "argument A: expected a numpy array or torch tensor"),
    ("list", lambda: (_a(8, 64).tolist(), _a(8, 64)), TypeError, "argument A: expected a numpy array or torch"),
    ("numpy scalar", lambda: (np.float32(1.0), _a(8, 64)), TypeError,
     "argument A: expected a numpy array or torch tensor .* found a numpy float32 scalar"),
    ("0-d array", lambda: (np.array(1.0, np.float32), _a(8, 64)), ValueError,
     r"argument A: expected 2 dimensions \(n, 64\), found shape \(\)"),
    ("torch 0-d", lambda: (torch.tensor(1.0), torch.rand(8, 64)), ValueError,
     r"argument A: expected 2 dimensions \(n, 64\), found shape \(\)"),
    ("bool array", lambda: (np.zeros((8, 64), bool), _a(8, 64)), TypeError, "argument A: expected dtype float32, found bool"),
    ("torch bool", lambda: (torch.zeros(8, 64, dtype=torch.bool), torch.rand(8, 64)), TypeError,
     "argument A: expected dtype float32, found bool"),
    ("big-endian", lambda: (_a(8, 64).astype(">f4"), _a(8, 64)), TypeError, "argument A: expected dtype float32"),
    ("complex", lambda: (torch.zeros(8, 64, dtype=torch.complex64), torch.rand(8, 64)), TypeError,
     "argument A: expected dtype float32"),
    ("object array", lambda: (np.zeros((8, 64), object), _a(8, 64)), TypeError, "argument A: expected dtype float32"),
    ("meta tensor", lambda: (torch.empty(8, 64, device="meta"), torch.rand(8, 64)), ValueError,
     "argument A: the tensor is on meta"),
    ("sparse tensor", lambda: (torch.zeros(8, 64).to_sparse(), torch.rand(8, 64)), TypeError,
     "argument A: expected a dense"),
    ("masked elements", lambda: (np.ma.masked_less(_a(8, 64), 0.5), _a(8, 64)), TypeError,
     "argument A: a masked array with masked elements"),
    ("memoryview", lambda: (memoryview(_a(8, 64)), _a(8, 64)), TypeError, "argument A: expected a numpy array"),
    ("dimension over int32", lambda: (np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (1 << 40, 64), (0, 0)),
                                      _a(8, 64)), ValueError, "more than a int32 holds"),
    ("too few", lambda: (_a(8, 64),), TypeError, r"the kernel takes 2 argument\(s\) \(A, B\)"),
    ("too many", lambda: (_a(8, 64), _a(8, 64), _a(8, 64)), TypeError, r"the kernel takes 2 argument\(s\)"),
]


@pytest.mark.parametrize("target,backend", BACKENDS)
@pytest.mark.parametrize("label,make,exc,pattern", _ADD_REFUSED, ids=[c[0] for c in _ADD_REFUSED])
def test_refused_with_the_parameter_named(target, backend, label, make, exc, pattern):
    k = _kernel("add", target, backend, [2])
    with pytest.raises(exc, match=pattern):
        k(*make())


@pytest.mark.parametrize("target,backend", BACKENDS)
def test_keywords(target, backend):
    k = _kernel("add", target, backend, [2])
    a, b = _a(8, 64), _a(9, 64)[1:]
    np.testing.assert_array_equal(k(B=b, A=a), a + b)
    with pytest.raises(TypeError, match="the kernel has no input argument 'X'; inputs: A, B"):
        k(a, X=b)
    with pytest.raises(TypeError, match="no input argument 'C' \\(it is an output, allocated by the call\\)"):
        k(a, b, C=a)
    with pytest.raises(TypeError, match="argument A is given twice"):
        k(a, A=b)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("target,backend", BACKENDS)
def test_ndarray_subclasses_are_their_elements(target, backend):
    """np.matrix indexes rows as 2-D matrices and a masked array's view is a subclass: the
    kernel reads the memory as a plain array (the emulator once failed inside np.matrix)."""
    k = _kernel("add", target, backend, [2])
    a, b = _a(8, 64), _a(8, 64) + 1
    np.testing.assert_array_equal(k(np.asmatrix(a), np.asmatrix(b)), a + b)
    np.testing.assert_array_equal(k(np.ma.masked_array(a), np.ma.masked_less(b, 0.0)), a + b)  # nothing masked
    out = np.ma.masked_array(np.zeros((64, 64), np.float32))
    ks = _kernel("scale", target, backend, None)
    ks(np.asmatrix(_a(64, 64)), 2.0, 1, out)
    np.testing.assert_allclose(out.data, _a(64, 64) * 2 + 1, rtol=1e-6)


@pytest.mark.parametrize("target,backend", BACKENDS)
def test_views_that_are_contiguous_run(target, backend):
    """Offset and reversed-then-copied views are honoured with their own data; a zero-size one
    makes a grid of 0 blocks, which raises as TileLang's launch does (test_empty_grid.py)."""
    from tilewise.emulator.errors import EmptyGridError

    k = _kernel("add", target, backend, [2])
    z = np.zeros((0, 64), np.float32)
    with pytest.raises(EmptyGridError, match="grid dimension must be positive"):
        k(z, z)
    with pytest.raises(EmptyGridError):
        k(torch.zeros(0, 64), torch.zeros(0, 64))
    big = torch.rand(9, 64)
    torch.testing.assert_close(k(big[1:], big.flip(0)[1:]), big[1:] + big.flip(0)[1:])
    a = _a(9, 64)
    np.testing.assert_array_equal(k(a[1:], a[:-1]), a[1:] + a[:-1])


@pytest.mark.parametrize("target,backend", BACKENDS)
def test_scalar_parameters(target, backend):
    k = _kernel("scale", target, backend, [3])
    a = _a(64, 64)
    np.testing.assert_allclose(k(a, 2, np.int64(3)), a * 2 + 3, rtol=1e-6)
    np.testing.assert_allclose(k(a, torch.tensor(2.0), 3), a * 2 + 3, rtol=1e-6)
    assert np.isnan(k(a, float("nan"), 3)).all()
    for s, kk, exc, pattern in [
        (2.0, 3.5, TypeError, r"argument k: expected an integer \(int32\), found float 3.5"),
        (2.0, True, TypeError, "argument k: expected an integer"),
        (2.0, 1 << 40, ValueError, r"argument k: expected a int32 in \[-2147483648, 2147483647\]"),
        (a, 3, TypeError, "argument s: expected a float32 scalar, found an array"),
        ("x", 3, TypeError, r"argument s: expected a number \(float32\), found str"),
        (None, 3, TypeError, "argument s: expected a number"),
        (1j, 3, TypeError, "argument s: expected a number"),
    ]:
        with pytest.raises(exc, match=pattern):
            k(a, s, kk)


@pytest.mark.parametrize("target,backend", BACKENDS)
def test_outputs_that_cannot_be_written(target, backend):
    k = _kernel("scale", target, backend, None)
    a = _a(64, 64)
    ro = np.zeros((64, 64), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="argument C: the kernel writes it, but the array is read-only"):
        k(a, 1.0, 0, ro)
    with pytest.raises(ValueError, match="argument C: the kernel writes it in place, but the tensor requires grad"):
        k(torch.from_numpy(a), 1.0, 0, torch.zeros(64, 64, requires_grad=True))
    x = a.copy()
    k(x, 2.0, 0, x)  # the same buffer in and out: elementwise, each element read before written
    np.testing.assert_allclose(x, a * 2, rtol=1e-6)


def test_none_for_an_unused_tensor_after_switching_executor():
    """with_execution_backend keeps which tensors the kernel never touches (None allowed)."""

    @T.prim_func
    def unused(A: T.Tensor((64,), "float32"), Bias: T.Tensor((64,), "float32"), C: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            for i in T.Parallel(64):
                C[i] = A[i] * 2.0

    k = tilewise.compile(unused, out_idx=[2], target="cuda -arch=sm_80", execution_backend="emulator")
    a = _a(64)
    np.testing.assert_array_equal(k(a, None), a * 2)
    np.testing.assert_array_equal(k.with_execution_backend("ptx")(a, None), a * 2)
