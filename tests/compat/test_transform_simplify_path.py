"""TileLang's `tilelang.transform.simplify` module path (its SIMT gemv tests import from it)."""
import numpy as np

import tilewise
import tilewise.language as T
from tilewise.transform.simplify import apply_simplify, simplify_prim_func


@simplify_prim_func
def _double(n):
    @T.prim_func
    def main(A: T.Tensor((n,), "float32"), B: T.Tensor((n,), "float32")):
        with T.Kernel(1, threads=n):
            for i in T.Parallel(n):
                B[i] = A[i] * 2

    return main


def test_apply_simplify_and_simplify_prim_func():
    k = tilewise.compile(apply_simplify(_double(32)), out_idx=[1], target="cpu")
    a = np.arange(32, dtype=np.float32)
    np.testing.assert_array_equal(k(a), a * 2)
