"""`T.Tensor[...]` forms TileLang accepts (issue 1728): the shape alone means float32."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError


def test_shape_only_subscripts_are_float32_tensors():
    n = T.dynamic("n")

    @T.prim_func
    def k(A: T.Tensor[(n,)], B: T.Tensor[4, 8], C: T.Tensor[(4, 8), T.float16], D: T.Tensor[(n,)]):
        with T.Kernel(1, threads=32):
            for i in T.serial(n):
                D[i] = A[i] * 2.0
            for i, j in T.Parallel(4, 8):
                C[i, j] = B[i, j]

    kern = tilewise.compile(k, target="cpu")
    a = np.arange(5, dtype=np.float32)
    b = np.arange(32, dtype=np.float32).reshape(4, 8)
    c = np.zeros((4, 8), np.float16)
    d = np.zeros(5, np.float32)
    kern(a, b, c, d)
    np.testing.assert_array_equal(d, a * 2)
    np.testing.assert_array_equal(c, b.astype(np.float16))


def test_a_dtype_inside_the_shape_is_an_error():
    with pytest.raises(CompileError, match=r"\[shape, dtype\] expected"):
        T.Tensor[4, 8, "float16"]
