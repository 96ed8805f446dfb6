"""tilewise.torch.autograd_function: a forward kernel and a backward kernel paired into a
differentiable function — checked by torch.autograd.gradcheck (float64 kernels), with scalar
inputs, outputs kept for the backward only, and under torch.compile(fullgraph=True)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import tilewise  # noqa: E402
import tilewise.language as T  # noqa: E402
import tilewise.torch as twt  # noqa: E402

N, BLOCK = 48, 16


def tanh_scale_fwd(dtype="float64"):
    """Y = tanh(X) * s, and T = tanh(X) kept for the backward."""
    @T.prim_func
    def fwd(X: T.Tensor((N,), dtype), s: T.float64, Y: T.Tensor((N,), dtype), Th: T.Tensor((N,), dtype)):
        with T.Kernel(N // BLOCK, threads=32) as bx:
            for i in T.Parallel(BLOCK):
                Th[bx * BLOCK + i] = T.tanh(X[bx * BLOCK + i])
                Y[bx * BLOCK + i] = Th[bx * BLOCK + i] * T.cast(s, dtype)
    return fwd


def tanh_scale_bwd(dtype="float64"):
    """dX = dY * s * (1 - T^2)."""
    @T.prim_func
    def bwd(Th: T.Tensor((N,), dtype), dY: T.Tensor((N,), dtype), s: T.float64, dX: T.Tensor((N,), dtype)):
        with T.Kernel(N // BLOCK, threads=32) as bx:
            for i in T.Parallel(BLOCK):
                t = Th[bx * BLOCK + i]
                dX[bx * BLOCK + i] = dY[bx * BLOCK + i] * T.cast(s, dtype) * (1.0 - t * t)
    return bwd


@pytest.fixture(scope="module")
def tanh_scale():
    fwd = tilewise.compile(tanh_scale_fwd(), out_idx=[2, 3], target="cpu")
    bwd = twt.custom_op(tilewise.compile(tanh_scale_bwd(), out_idx=[3], target="cpu"))

    def backward(x, s, y, th, dy):  # inputs, forward outputs, gradient of the returned output
        return bwd(th, dy, s), None  # no gradient for the scalar

    return twt.autograd_function(fwd, backward, returns=[0], name="tanh_scale")


def test_gradcheck(tanh_scale):
    x = torch.randn(N, dtype=torch.float64, requires_grad=True)
    y = tanh_scale(x, 1.5)
    assert isinstance(y, torch.Tensor)  # only Y is returned; Th stays inside
    torch.testing.assert_close(y, torch.tanh(x) * 1.5)
    assert torch.autograd.gradcheck(lambda t: tanh_scale(t, 1.5), (x,))


def test_in_compiled_model(tanh_scale):
    w = torch.randn(N, dtype=torch.float64, requires_grad=True)
    x = torch.randn(N, dtype=torch.float64)

    def loss(w):
        return (tanh_scale(x * w, 0.5) ** 2).sum()

    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    (g,) = torch.autograd.grad(compiled(w), w)
    wr = w.detach().clone().requires_grad_()
    (gr,) = torch.autograd.grad((torch.tanh(x * wr) * 0.5).pow(2).sum(), wr)
    torch.testing.assert_close(g, gr)


def square_fwd():
    @T.prim_func
    def fwd(X: T.Tensor((N,), "float64"), Y: T.Tensor((N,), "float64"), C: T.Tensor((N,), "float64")):
        with T.Kernel(N // BLOCK, threads=32) as bx:
            for i in T.Parallel(BLOCK):
                Y[bx * BLOCK + i] = X[bx * BLOCK + i] * X[bx * BLOCK + i]
                C[bx * BLOCK + i] = X[bx * BLOCK + i] * X[bx * BLOCK + i] * X[bx * BLOCK + i]
    return fwd


def square_bwd():
    """The convention as one kernel: inputs (X), forward outputs (Y, C), their gradients -> dX."""
    @T.prim_func
    def bwd(X: T.Tensor((N,), "float64"), Y: T.Tensor((N,), "float64"), C: T.Tensor((N,), "float64"),
            dY: T.Tensor((N,), "float64"), dC: T.Tensor((N,), "float64"), dX: T.Tensor((N,), "float64")):
        with T.Kernel(N // BLOCK, threads=32) as bx:
            for i in T.Parallel(BLOCK):
                x = X[bx * BLOCK + i]
                dX[bx * BLOCK + i] = 2.0 * x * dY[bx * BLOCK + i] + 3.0 * Y[bx * BLOCK + i] * dC[bx * BLOCK + i]
    return bwd


def test_kernels_given_directly_and_all_outputs_returned():
    """JITKernels as forward and backward are registered as operators by the helper; with
    returns omitted every forward output is returned (and gets a gradient argument; an unused
    one arrives as zeros)."""
    f = twt.autograd_function(tilewise.compile(square_fwd(), out_idx=[1, 2], target="cpu"),
                              tilewise.compile(square_bwd(), out_idx=[5], target="cpu"))
    x = torch.randn(N, dtype=torch.float64, requires_grad=True)
    y, c = f(x)
    torch.testing.assert_close(c, x ** 3)
    (g,) = torch.autograd.grad((y + 2 * c).sum(), x)
    torch.testing.assert_close(g, 2 * x + 6 * x ** 2)
    y, _ = f(x)
    (g,) = torch.autograd.grad(y.sum(), x)  # c unused
    torch.testing.assert_close(g, 2 * x)
    assert torch.autograd.gradcheck(lambda t: f(t), (x,))


def test_wrong_number_of_gradients_is_an_error():
    fwd = tilewise.compile(tanh_scale_fwd(), out_idx=[2, 3], target="cpu")
    f = twt.autograd_function(fwd, lambda x, s, y, th, dy: dy, returns=[0])
    x = torch.randn(N, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="1 gradient\\(s\\) for 2 input"):
        f(x, 1.0).sum().backward()
    with pytest.raises(IndexError, match="returns= names output 5"):
        twt.autograd_function(fwd, lambda *a: None, returns=[5])(x, 1.0)
