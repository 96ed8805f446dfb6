"""T.assume on host values (TileLang 0.1.13): checked at every call, a RuntimeError when false."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T


def _kernel(target="cpu", **kw):
    n = T.dynamic("n")

    @T.prim_func
    def main(A: T.Tensor((n,), "float32"), s: T.int32):
        with T.Kernel(1, threads=32) as _:
            T.assume(n % 4 == 0)
            T.assume(s > 0)
            for i in T.Parallel(32):
                T.assume(i < 64)  # not a host value: not checked
                if i < n:
                    A[i] = T.cast(s, "float32")

    return tilewise.compile(main, target=target, **kw)


@pytest.mark.parametrize("how", [dict(), dict(target="cuda", execution_backend="emulator")])
def test_assume_is_checked_per_call(how):
    k = _kernel(**how)
    a = np.zeros(8, np.float32)
    k(a, 3)
    np.testing.assert_array_equal(a, 3.0)
    for _ in range(2):  # every call, not only the first
        with pytest.raises(RuntimeError, match=r"Assume: n % 4 == 0"):
            k(np.zeros(6, np.float32), 3)
    with pytest.raises(RuntimeError, match=r"Assume: s > 0"):
        k(a, 0)
