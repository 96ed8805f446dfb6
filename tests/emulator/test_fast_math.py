"""tl.enable_fast_math (and compile_flags=["--use_fast_math"]): NVRTC compiles float32 arithmetic
with .ftz (subnormal operands and results flushed to zero) and the math functions with the
approximate instructions. The emulator models the first exactly -- the thread-IR emulator and
the PTX interpreter then agree bit for bit on flushed products -- and computes the functions
accurately: the approximate results stay within CUDA's documented bound of them (__expf:
2 + floor(1.173 |x|) ulp)."""
import numpy as np
import pytest

import tilewise
import tilewise.language as T

N = 128


def _kernel():
    @T.prim_func
    def main(A: T.Tensor((N,), "float32"), B: T.Tensor((N,), "float32"), P: T.Tensor((N,), "float32"),
             E: T.Tensor((N,), "float32")):
        with T.Kernel(1, threads=N) as _bx:
            for i in T.Parallel(N):
                P[i] = A[i] * B[i]
                E[i] = T.exp(A[i] + B[i])

    return main


def _ulp_distance(x, y):
    xi, yi = x.view(np.int32).astype(np.int64), y.view(np.int32).astype(np.int64)
    xi = np.where(xi < 0, -(xi & 0x7FFFFFFF), xi)
    yi = np.where(yi < 0, -(yi & 0x7FFFFFFF), yi)
    return np.abs(xi - yi)


@pytest.mark.parametrize("how", ["pass_config", "compile_flag", "precise"])
def test_fast_math_flushes_subnormals_on_every_target(how):
    kw = {"precise": {}, "pass_config": {"pass_configs": {"tl.enable_fast_math": True}},
          "compile_flag": {"compile_flags": ["--use_fast_math"]}}[how]
    k = tilewise.compile(_kernel(), target="cuda -arch=sm_80", execution_backend="emulator", **kw)
    a = np.full(N, 2.0**-70, np.float32)
    a[::2] = np.float32(2.0**-3)
    a[1::4] *= -1
    b = np.full(N, 2.0**-70, np.float32)  # 2^-140 is subnormal in float32
    b[::2] = np.linspace(-8, 8, N // 2, dtype=np.float32)
    fast = how != "precise"
    want = (a.astype(np.float64) * b).astype(np.float32)
    if fast:
        want[1::2] = np.copysign(np.float32(0), want[1::2])
    out = {}
    for backend in ("emulator", "ptx"):
        p, e = np.zeros(N, np.float32), np.zeros(N, np.float32)
        k.with_execution_backend(backend)(a, b, p, e)
        np.testing.assert_array_equal(p.view(np.int32), want.view(np.int32), err_msg=backend)
        out[backend] = e
    ptx = k.with_execution_backend("ptx").runtime.ptx
    assert ("mul.ftz.f32" in ptx or "mul.rn.ftz.f32" in ptx) == fast
    x = (a.astype(np.float32) + b).astype(np.float32)
    bound = 2 + np.floor(1.173 * np.abs(x.astype(np.float64))) if fast else np.full(N, 2.0)  # expf: 2 ulp
    assert (_ulp_distance(out["emulator"], out["ptx"]) <= bound).all()
    np.testing.assert_allclose(out["emulator"], np.exp(x.astype(np.float64)), rtol=2**-22)  # float32 exp: within 2 ulp
