"""A fragment's last element-wise update is computed where the next statement reads it
(transform/sink_register_updates.py), with the same result bit for bit: the multiply-add
contraction is decided before the move, so a product stored by the update and subtracted by the
store is still rounded twice, on the thread-IR emulator and in the PTX that NVRTC compiled. A
fragment read again later keeps its update loop."""
from __future__ import annotations

import re

import numpy as np
import pytest

import tilewise
import tilewise.language as T

N = 256
TARGET = "cuda -arch=sm_80"


def _kernel(read_again: bool):
    @T.prim_func
    def main(A: T.Tensor((N,), "float32"), C: T.Tensor((N,), "float32"), D: T.Tensor((N,), "float32"),
             E: T.Tensor((N,), "float32")):
        with T.Kernel(1, threads=128) as _bx:
            x = T.alloc_fragment((N,), "float32")
            T.copy(A, x)
            for i in T.Parallel(N):
                x[i] = x[i] * x[i]
            for i in T.Parallel(N):
                D[i] = x[i] - C[i]
            if read_again:
                T.copy(x, E)

    return main


def _inputs():
    eps = 2.0**-12
    a = np.full(N, 1 + eps, np.float32)
    a[1::2] *= -1
    c = (a.astype(np.float64) ** 2).astype(np.float32)  # the square rounded: x - c is exactly 0
    return a, c


@pytest.mark.parametrize("read_again", [False, True])
def test_update_moves_to_its_reader_with_the_same_bits(read_again):
    k = tilewise.compile(_kernel(read_again), target=TARGET, execution_backend="emulator")
    src = k.get_kernel_source()
    update = re.search(r"x\[\w+\] = \(x\[\w+\] \* x\[\w+\]\);", src)
    assert (update is not None) == read_again, src  # the update loop is gone only when x is dead
    assert "tw::fma(" not in src
    if not read_again:
        assert re.search(r"\(\(x\[\d+\] \* x\[\d+\]\) - C_v0\[", src), src
    a, c = _inputs()
    for backend in ("emulator", "ptx"):
        fn = k if backend == "emulator" else tilewise.compile(_kernel(read_again), target=TARGET,
                                                                execution_backend=backend)
        d, e = np.full(N, np.nan, np.float32), np.zeros(N, np.float32)
        fn(a, c, d, e)
        np.testing.assert_array_equal(d, np.zeros(N, np.float32), err_msg=backend)  # rounded, then subtracted
        if read_again:
            np.testing.assert_array_equal(e, c, err_msg=backend)


def test_softmax_division_is_done_at_the_store():
    """The fp16 softmax's 64 IEEE divisions are computed next to their conversions and stores
    (the reason its registers match TileLang's: test_sass_quality.py), and the result is the
    division's correctly rounded quotient."""

    @T.prim_func
    def softmax(X: T.Tensor((4, 1024), "float16"), Y: T.Tensor((4, 1024), "float16")):
        with T.Kernel(4, threads=128) as bx:
            x = T.alloc_fragment((1, 1024), "float32")
            s = T.alloc_fragment((1,), "float32")
            T.copy(X[bx, 0], x)
            T.reduce_sum(x, s, dim=1)
            for i, j in T.Parallel(1, 1024):
                x[i, j] = x[i, j] / s[i]
            T.copy(x, Y[bx, 0])

    k = tilewise.compile(softmax, target=TARGET, execution_backend="emulator")
    src = k.get_kernel_source()
    assert not re.search(r"x\[\w+\] = \(x\[\w+\] / ", src), src
    assert re.search(r"\(tw::half\)\(\(x\[[^\]]*\] / s\[0\]\)\)", src), src
    rng = np.random.default_rng(0)
    xs = rng.uniform(0.5, 2.0, (4, 1024)).astype(np.float16)
    y = np.zeros_like(xs)
    k(xs, y)
    got_sum = xs.astype(np.float32).sum(axis=1, keepdims=True)  # the order differs: compare loosely
    np.testing.assert_allclose(y.astype(np.float32), xs.astype(np.float32) / got_sum, rtol=2e-3)
