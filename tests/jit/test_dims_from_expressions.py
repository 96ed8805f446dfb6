"""A dynamic dimension that appears only inside a shape expression (`T.Tensor((n * 4,), ...)`,
`(n + 1,)`) is solved from the argument's extent and checked against every other dimension."""
import numpy as np
import pytest

import tilewise as tl
import tilewise.language as T


def _kernel():
    n = T.symbolic("n")

    @T.prim_func
    def kernel(A: T.Tensor((n * 4,), T.int32), B: T.Tensor((n + 1,), T.int32)):
        with T.Kernel(1) as _:
            for i in range(n * 4):
                A[i] = i
            for i in range(n + 1):
                B[i] = n

    return kernel


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_dimension_solved_from_an_expression(target):
    k = tl.compile(_kernel(), target=target)
    A = np.full(16, -1, np.int32)
    B = np.zeros(5, np.int32)
    k(A, B)
    np.testing.assert_array_equal(A, np.arange(16))
    np.testing.assert_array_equal(B, np.full(5, 4))
    with pytest.raises(ValueError, match=r"dimension 0 should be n \+ 1 = 5, found 6"):
        k(np.zeros(16, np.int32), np.zeros(6, np.int32))
    with pytest.raises(ValueError, match=r"n \* 4 = 16, found 15"):
        k(np.zeros(15, np.int32), np.zeros(5, np.int32))
