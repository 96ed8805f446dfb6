"""tilewise.torch.custom_op: compiled kernels and @jit factories as torch.library operators —
schema from the kernel's parameters, outputs from out_idx, mutated inputs from the kernel's
writes, and a fake implementation whose output sizes follow the kernel's symbolic shapes —
checked by torch.library.opcheck and by torch.compile(fullgraph=True) on the CPU target."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tilewise  # noqa: E402
import tilewise.language as T  # noqa: E402
import tilewise.torch as twt  # noqa: E402

_names = itertools.count()


def uname(base: str) -> str:
    return f"twtest::{base}_{next(_names)}"


def matmul(M, N, K, bm=32, bn=32, bk=32, dtype="float32"):
    @T.prim_func
    def main(A: T.Tensor((M, K), dtype), B: T.Tensor((K, N), dtype), C: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            A_s = T.alloc_shared((bm, bk), dtype)
            B_s = T.alloc_shared((bk, bn), dtype)
            C_l = T.alloc_fragment((bm, bn), "float32")
            T.clear(C_l)
            for k in T.Pipelined(T.ceildiv(K, bk), num_stages=2):
                T.copy(A[by * bm, k * bk], A_s)
                T.copy(B[k * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_l)
            T.copy(C_l, C[by * bm, bx * bn])
    return main


def stack_double(block=16):
    """C = [A + B; 2 A] for any number of rows n: an output of n * 2 rows."""
    n = T.dynamic("n")

    @T.prim_func
    def main(A: T.Tensor((n, 8), "float32"), B: T.Tensor((n, 8), "float32"), C: T.Tensor((n * 2, 8), "float32")):
        with T.Kernel(T.ceildiv(n, block), threads=32) as bx:
            for i, j in T.Parallel(block, 8):
                if bx * block + i < n:
                    C[bx * block + i, j] = A[bx * block + i, j] + B[bx * block + i, j]
                    C[n + bx * block + i, j] = A[bx * block + i, j] * 2.0
    return main


def row_sums(block=4):
    """Two outputs: per-row sums of A (n) and per-block sums (ceildiv(n, block)) times a scale."""
    n = T.dynamic("n")

    @T.prim_func
    def main(A: T.Tensor((n, 16), "float32"), scale: T.float32, S: T.Tensor((n,), "float32"),
             G: T.Tensor((T.ceildiv(n, block),), "float32")):
        with T.Kernel(T.ceildiv(n, block), threads=32) as bx:
            acc = T.alloc_fragment((block, 16), "float32")
            rows = T.alloc_fragment((block,), "float32")
            tot = T.alloc_fragment((1,), "float32")
            for i, j in T.Parallel(block, 16):
                acc[i, j] = T.if_then_else(bx * block + i < n, A[bx * block + i, j] * scale, 0)
            T.reduce_sum(acc, rows, dim=1)
            for i in T.Parallel(block):
                if bx * block + i < n:
                    S[bx * block + i] = rows[i]
            T.reduce_sum(rows, tot, dim=0)
            G[bx] = tot[0]
    return main


def scale_in_place(n=64, block=16):
    """Writes its input X (X *= s) and returns nothing: X is a mutated argument."""
    @T.prim_func
    def main(X: T.Tensor((n,), "float32"), s: T.float32):
        with T.Kernel(T.ceildiv(n, block), threads=32) as bx:
            for i in T.Parallel(block):
                X[bx * block + i] = X[bx * block + i] * s
    return main


@pytest.fixture(scope="module")
def mm_op():
    kernel = tilewise.compile(matmul(64, 64, 64), out_idx=[-1], target="cpu")
    return twt.custom_op(kernel, uname("mm"))


@pytest.fixture(scope="module")
def stack_op():
    return twt.custom_op(tilewise.compile(stack_double(), out_idx=[2], target="cpu"), uname("stack"))


def test_schema_from_kernel_parameters(mm_op, stack_op):
    assert str(mm_op._opoverload._schema).endswith("(Tensor A, Tensor B) -> Tensor")
    rs = twt.custom_op(tilewise.compile(row_sums(), out_idx=[2, 3], target="cpu"), uname("rows"))
    assert str(rs._opoverload._schema).endswith("(Tensor A, float scale) -> (Tensor, Tensor)")
    sp = twt.custom_op(tilewise.compile(scale_in_place(), target="cpu"), uname("scale"))
    assert str(sp._opoverload._schema).endswith("(Tensor(a0!) X, float s) -> ()")


def test_static_kernel_runs_and_passes_opcheck(mm_op):
    a, b = torch.randn(64, 64), torch.randn(64, 64)
    torch.testing.assert_close(mm_op(a, b), a @ b, rtol=1e-4, atol=1e-4)
    torch.library.opcheck(mm_op, (a, b))
    # read-only inputs that are views are made contiguous for the kernel
    torch.testing.assert_close(mm_op(a.t(), b), a.t() @ b, rtol=1e-4, atol=1e-4)


def test_static_kernel_in_compiled_model_inductor(mm_op):
    """The default backend (inductor) with the tilewise op between torch operations."""
    lin = torch.nn.Linear(64, 64)

    def model(x, w):
        return torch.relu(lin(mm_op(x, w))) * 2

    a, w = torch.randn(64, 64), torch.randn(64, 64)
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(a, w), model(a, w), rtol=1e-4, atol=1e-4)


def test_static_shape_mismatch_is_reported_at_trace_time(mm_op):
    f = torch.compile(lambda a, b: mm_op(a, b), fullgraph=True, backend="aot_eager")
    with pytest.raises(Exception, match="dimension 0 should be 64"):
        f(torch.randn(32, 64), torch.randn(64, 64))
    with pytest.raises(TypeError, match="expected dtype float32, found float16"):
        mm_op(torch.randn(64, 64).half(), torch.randn(64, 64))


def test_dynamic_output_shape_is_symbolic(stack_op):
    a, b = torch.randn(40, 8), torch.randn(40, 8)
    c = stack_op(a, b)
    assert c.shape == (80, 8)
    torch.testing.assert_close(c, torch.cat([a + b, 2 * a]))
    torch.library.opcheck(stack_op, (a, b))
    torch._dynamo.reset()
    counts = []

    def backend(gm, inputs):
        counts.append(gm)
        return gm.forward

    f = torch.compile(lambda x, y: stack_op(x.sin(), y).sum(0), fullgraph=True, dynamic=True, backend=backend)
    for n in (40, 7, 100):
        x, y = torch.randn(n, 8), torch.randn(n, 8)
        torch.testing.assert_close(f(x, y), torch.cat([x.sin() + y, 2 * x.sin()]).sum(0))
    assert len(counts) == 1  # one graph for every n: the output's 2n rows are a SymInt expression


def test_fake_tensor_shapes_follow_expressions():
    rs = twt.custom_op(tilewise.compile(row_sums(), out_idx=[2, 3], target="cpu"), uname("rows"))
    a = torch.randn(10, 16)
    s, g = rs(a, 0.5)
    torch.testing.assert_close(s, a.sum(1) * 0.5, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g, torch.nn.functional.pad(a.sum(1) * 0.5, (0, 2)).view(3, 4).sum(1),
                               rtol=1e-5, atol=1e-5)
    torch.library.opcheck(rs, (a, 0.5))
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    with FakeTensorMode(shape_env=ShapeEnv()) as mode:
        fa = mode.from_tensor(torch.randn(13, 16), symbolic_context=None)
        fs, fg = rs(fa, 1.0)
    assert fs.shape == (13,) and fg.shape == (4,)  # ceildiv(13, 4)


def test_mutated_input_is_declared_and_compiles():
    op = twt.custom_op(tilewise.compile(scale_in_place(), target="cpu"), uname("scale"))
    x = torch.randn(64)
    want = x * 3
    assert op(x, 3.0) is None
    torch.testing.assert_close(x, want)
    torch.library.opcheck(op, (torch.randn(64), 2.0))

    def f(y):
        z = y + 1
        op(z, 0.5)
        return z * 2

    y = torch.randn(64)
    torch.testing.assert_close(torch.compile(f, fullgraph=True, backend="aot_eager")(y), (y + 1))


def test_jit_factories():
    @tilewise.jit(out_idx=[-1], target="cpu")
    def mm(M, N, K, bm=32):
        return matmul(M, N, K, bm, 32, 32)

    op = twt.custom_op(mm, uname("mm_factory"), M=32, N=64, K=32)
    a, b = torch.randn(32, 32), torch.randn(32, 64)
    torch.testing.assert_close(op(a, b), a @ b, rtol=1e-4, atol=1e-4)
    # a T.dynamic size as the factory's argument: one kernel, one graph, any number of rows
    rows = twt.custom_op(mm, uname("mm_rows"), M=T.dynamic("m"), N=64, K=32)
    g = torch.compile(lambda x, w: rows(x, w).tanh(), fullgraph=True, dynamic=True, backend="aot_eager")
    for m in (32, 45, 3):
        x = torch.randn(m, 32)
        torch.testing.assert_close(g(x, b), (x @ b).tanh(), rtol=1e-4, atol=1e-4)

    @tilewise.jit(target="cpu")
    def add_one(A, block: int = 16):
        n = T.const("n")
        A: T.Tensor((n,), T.float32)
        B = T.empty((n,), T.float32)
        with T.Kernel(T.ceildiv(n, block), threads=32) as bx:
            for i in T.Parallel(block):
                if bx * block + i < n:
                    B[bx * block + i] = A[bx * block + i] + 1.0
        return B

    # an eager-style function: T.const values by keyword, a T.dynamic one keeps the size free
    dyn = twt.custom_op(add_one, uname("add_one"), n=T.dynamic("n"))
    f = torch.compile(lambda x: dyn(x) * 2, fullgraph=True, dynamic=True, backend="aot_eager")
    for n in (5, 37):
        x = torch.randn(n)
        torch.testing.assert_close(f(x), (x + 1) * 2)
    torch.library.opcheck(dyn, (torch.randn(9),))


def test_refuses_what_torch_cannot_express():
    m = T.dynamic("m")

    @T.prim_func
    def free_output(A: T.Tensor((8,), "float32"), m_: T.int32, B: T.Tensor((m,), "float32")):
        with T.Kernel(1, threads=32):
            for i in T.Parallel(8):
                B[i] = A[i]

    with pytest.raises(ValueError, match="no input's shape determines m"):  # tilewise.compile refuses it already
        twt.custom_op(tilewise.compile(free_output, out_idx=[2], target="cpu"), uname("free"))
    with pytest.raises(twt.ShapeError, match="uses m, which no input"):  # and so does custom_op for a kernel
        twt.shapes.check_expressible(free_output.params, [0, 1], [2])
    with pytest.raises(TypeError, match="compiled kernel"):
        twt.custom_op(lambda x: x, uname("nope"))


def test_emulator_backend_registers_as_a_cpu_op():
    """A CUDA kernel run by the emulator takes CPU tensors, so its op is a CPU op."""
    k = tilewise.compile(stack_double(), out_idx=[2], target="cuda", execution_backend="emulator")
    op = twt.custom_op(k, uname("stack_emu"))
    a, b = torch.randn(20, 8), torch.randn(20, 8)
    torch.testing.assert_close(op(a, b), torch.cat([a + b, 2 * a]))
    assert np.isfinite(op(a, b).numpy()).all()


def test_cuda_kernel_registers_as_a_cuda_op():
    """An NVRTC-compiled kernel (launched on torch's current stream where a GPU exists) is a CUDA
    operator: its fake implementation gives CUDA outputs (no GPU needed to trace), and the
    dispatcher refuses CPU tensors."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    k = tilewise.compile(stack_double(), out_idx=[2], target="cuda", execution_backend="nvrtc")
    op = twt.custom_op(k, uname("stack_cuda"))
    with FakeTensorMode(shape_env=ShapeEnv()):
        c = op(torch.empty(13, 8, device="cuda"), torch.empty(13, 8, device="cuda"))
    assert c.shape == (26, 8) and c.device.type == "cuda"
    with pytest.raises(NotImplementedError, match="CPU"):
        op(torch.randn(3, 8), torch.randn(3, 8))


def test_subpackage_name_does_not_shadow_pytorch():
    """tilewise.torch is named after PyTorch; imports are absolute, so `import torch` anywhere
    (in tilewise's own modules too) is still PyTorch."""
    import sys

    from tilewise.jit import args

    assert sys.modules["torch"] is torch and hasattr(torch, "library")
    assert twt is not torch and twt.__name__ == "tilewise.torch"
    assert args._alloc([2], tilewise.DataType("float32"), True, "cpu").__class__ is torch.Tensor
