"""A tensor parameter the kernel never touches may be passed as None (TileLang's null pointer:
an optional bias the kernel was specialised without); one it touches may not."""
import numpy as np
import pytest

import tilewise as tl
import tilewise.language as T


def _bias_add(N, with_bias):
    @T.prim_func
    def main(A: T.Tensor((N,), "float32"), Bias: T.Tensor((N,), "float32"), C: T.Tensor((N,), "float32")):
        with T.Kernel(T.ceildiv(N, 128), threads=128) as bx:
            for i in T.Parallel(128):
                if with_bias:
                    C[bx * 128 + i] = A[bx * 128 + i] + Bias[bx * 128 + i]
                else:
                    C[bx * 128 + i] = A[bx * 128 + i] * 2

    return main


@pytest.mark.parametrize("target", ["cpu", "cuda", "cuda -arch=sm_90a"])
def test_none_for_an_untouched_tensor(target):
    a = np.arange(256, dtype=np.float32)
    k = tl.compile(_bias_add(256, False), out_idx=[2], target=target)
    np.testing.assert_array_equal(k(a, None), a * 2)


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_none_for_a_touched_tensor_is_refused(target):
    a = np.arange(256, dtype=np.float32)
    k = tl.compile(_bias_add(256, True), out_idx=[2], target=target)
    with pytest.raises(TypeError, match="Bias is None, but the kernel accesses it"):
        k(a, None)
    np.testing.assert_array_equal(k(a, a), a * 2)
