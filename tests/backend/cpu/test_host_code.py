"""A prim_func with no T.Kernel (TileLang's host code): on the CPU target an implicit block of one
thread runs it as written; GPU targets refuse it with a CompileError naming why. Against numpy."""
import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError

N = 37


@T.prim_func
def host(A: T.Tensor((N,), "float32"), B: T.Tensor((N, 3), "float32"), C: T.Tensor((N, 3), "float32")):
    for i, j in T.Parallel(N, 3):
        C[i, j] = B[i, j] / (A[i] + 3.0) - B[i, j]
    for i in T.serial(N - 1):
        C[i + 1, 0] = C[i + 1, 0] + C[i, 0]  # a running sum: the serial order is kept


def test_host_code_runs_on_cpu():
    rng = np.random.default_rng(0)
    a = rng.random(N, dtype=np.float32)
    b = rng.standard_normal((N, 3), dtype=np.float32)
    want = b / (a[:, None] + 3.0) - b
    want[:, 0] = np.cumsum(want[:, 0])
    got = np.asarray(tilewise.compile(host, out_idx=[2], target="c")(a, b))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["emulator", None])
def test_host_code_refused_on_gpu(backend):
    kwargs = {"execution_backend": backend} if backend else {}
    with pytest.raises(CompileError, match="has no `with T.Kernel"):
        tilewise.compile(host, out_idx=[2], target="cuda", **kwargs)
