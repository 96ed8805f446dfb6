"""Multiply-add contraction is decided in the IR (transform/contract_fma.py): `a * b + c` written
as one float32/float64 expression is one fma (one rounding) on every target -- the thread-IR
emulator, the PTX interpreter on what NVRTC compiled (with --fmad=false, so nothing else is
fused) and the CPU target (g++ with -ffp-contract=off: its GEMM micro-kernel fuses explicitly); a
product stored and added in another statement is rounded twice on every target. The inputs make
the two differ: (1 + 2^-12)^2 - (1 + 2^-11) is 2^-24 exactly, and 0 when the product is rounded
first."""
import numpy as np
import pytest

import tilewise
import tilewise.language as T

N = 128


def _kernel(dtype, fused: bool):
    @T.prim_func
    def main(A: T.Tensor((N,), dtype), B: T.Tensor((N,), dtype), C: T.Tensor((N,), dtype),
             D: T.Tensor((N,), dtype)):
        with T.Kernel(1, threads=N) as _bx:
            if fused:
                for i in T.Parallel(N):
                    D[i] = A[i] * B[i] - C[i]
            else:
                P = T.alloc_shared((N,), dtype)
                for i in T.Parallel(N):
                    P[i] = A[i] * B[i]
                for i in T.Parallel(N):
                    D[i] = P[i] - C[i]

    return main


def _inputs(dtype):
    eps = {"float32": 2.0**-12, "float64": 2.0**-27}[dtype]
    a = np.full(N, 1 + eps, dtype)
    a[1::2] *= -1  # c - a * b as well as a * b - c
    c = (a * a.astype(np.float64)).astype(dtype)  # the product rounded
    return a, a.copy(), c, eps * eps


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fused", [True, False])
def test_contraction_is_the_same_on_every_target(dtype, fused):
    a, b, c, tiny = _inputs(dtype)
    want = np.full(N, tiny if fused else 0.0, dtype)
    k = tilewise.compile(_kernel(dtype, fused), target="cuda -arch=sm_80", execution_backend="emulator")
    assert ("tw::fma(" in k.get_kernel_source()) == fused
    for backend in ("emulator", "ptx"):
        d = np.zeros(N, dtype)
        k.with_execution_backend(backend)(a, b, c, d)
        np.testing.assert_array_equal(d, want, err_msg=backend)
    d = np.zeros(N, dtype)
    tilewise.compile(_kernel(dtype, fused), target="cpu")(a, b, c, d)
    np.testing.assert_array_equal(d, want, err_msg="cpu")


def test_nvrtc_fuses_only_what_the_ir_says():
    k = tilewise.compile(_kernel("float32", False), target="cuda -arch=sm_80", execution_backend="emulator")
    ptx = k.with_execution_backend("ptx").runtime.ptx
    assert "fma.rn.f32" not in ptx and ("mul.rn.f32" in ptx or "mul.f32" in ptx)
    k = tilewise.compile(_kernel("float32", True), target="cuda -arch=sm_80", execution_backend="emulator")
    assert "fma.rn.f32" in k.with_execution_backend("ptx").runtime.ptx
