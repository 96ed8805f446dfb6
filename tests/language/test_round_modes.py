"""T.round's rounding modes (TileLang 0.1.15): halfway cases to even by default (TVM's round is
`nearbyint`, as numpy's), away from zero with "ties-away-from-zero" (C's round), alike on every
target and for every float type."""
import ml_dtypes
import numpy as np
import pytest

import tilewise
import tilewise.language as T

HALFWAY = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49, 3.7, -3.7, 4.5, 5.5, -4.5, 0.0, 1.0, 100.5, -7.25])


def _kernel(dtype):
    @T.prim_func
    def main(A: T.Tensor((16,), dtype), B: T.Tensor((16,), dtype), C: T.Tensor((16,), dtype)):
        with T.Kernel(1, threads=16):
            for i in T.Parallel(16):
                B[i] = T.round(A[i])
                C[i] = T.round(A[i], "ties-away-from-zero")

    return main


def _away(x):
    t = np.trunc(x)
    return np.where(np.abs(x - t) >= 0.5, t + np.sign(x), t)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
@pytest.mark.parametrize("target,backend", [("cpu", "auto"), ("cuda -arch=sm_80", "emulator"),
                                            ("cuda -arch=sm_90a", "ptx"), ("hip", "emulator")])
def test_round_modes_on_every_target(dtype, target, backend):
    x = HALFWAY.astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
    b, c = tilewise.compile(_kernel(dtype), out_idx=[1, 2], target=target, execution_backend=backend)(x)
    xf = x.astype(np.float64)
    np.testing.assert_array_equal(np.asarray(b).astype(np.float64), np.rint(xf))
    np.testing.assert_array_equal(np.asarray(c).astype(np.float64), _away(xf))


def test_round_of_python_numbers_and_bad_modes():
    assert T.round(2.5) == 2.0 and T.round(-2.5) == -2.0 and T.round(3.5) == 4.0
    assert T.round(2.5, "ties-away-from-zero") == 3.0 and T.round(-2.5, "ties-away-from-zero") == -3.0
    assert T.round(7) == 7
    with pytest.raises(ValueError, match="ties-to-odd"):
        T.round(1.5, "ties-to-odd")
