"""float32 T.gemm on sm_80 runs mma.m16n8k8 .tf32, which reads only the top 10 mantissa bits of
its operand registers: the lowering rounds each operand with cvt.rna.tf32.f32 (nearest, ties
away from zero), and the thread-IR emulator, the PTX interpreter and the compiled PTX agree.
Inputs on a tf32 tie (1 + 2^-11) give different products under rounding-away, rounding-to-even
and truncation, and every product and sum is exact in float32, so results compare exactly."""
import numpy as np

import tilewise
import tilewise.language as T
from tilewise.emulator.ptx import round_tf32_rna

M = N = 64
K = 32


def _gemm():
    @T.prim_func
    def main(A: T.Tensor((M, K), "float32"), B: T.Tensor((K, N), "float32"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(1, 1, threads=128) as (bx, by):
            A_s = T.alloc_shared((M, K), "float32")
            B_s = T.alloc_shared((K, N), "float32")
            C_f = T.alloc_fragment((M, N), "float32")
            T.clear(C_f)
            T.copy(A, A_s)
            T.copy(B, B_s)
            T.gemm(A_s, B_s, C_f)
            T.copy(C_f, C)

    return main


def _inputs():
    r = np.random.default_rng(5)
    a = (r.choice([-1.0, 1.0], (M, K)) * (1 + 2.0**-11) * 2.0 ** r.integers(0, 2, (M, K))).astype(np.float32)
    b = (r.choice([-1.0, 0.0, 1.0, 2.0], (K, N))).astype(np.float32)  # exact in tf32
    return a, b


def test_round_tf32_rna():
    x = np.array([1 + 2.0**-11, -(1 + 2.0**-11), 1 + 2.0**-12, 1 + 3 * 2.0**-11, np.inf, -np.inf,
                  np.finfo(np.float32).max, 0.0], np.float32)
    got = round_tf32_rna(x).view(np.float32)
    want = [1 + 2.0**-10, -(1 + 2.0**-10), 1.0, 1 + 2.0**-9, np.inf, -np.inf, np.inf, 0.0]
    np.testing.assert_array_equal(got, np.array(want, np.float32))
    assert np.isnan(round_tf32_rna(np.array([np.nan], np.float32)).view(np.float32)).all()


def test_tf32_gemm_rounds_operands_on_every_target():
    a, b = _inputs()
    rounded = round_tf32_rna(a).view(np.float32).astype(np.float64)
    want = rounded @ b.astype(np.float64)
    truncated = (a.view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32).astype(np.float64) @ b
    assert (want != truncated).mean() > 0.5  # the inputs tell rounding from truncation
    k = tilewise.compile(_gemm(), target="cuda -arch=sm_80", execution_backend="emulator")
    assert "tf32_round(" in k.get_kernel_source()
    for backend in ("emulator", "ptx"):
        c = np.zeros((M, N), np.float32)
        k.with_execution_backend(backend)(a, b, c)
        np.testing.assert_array_equal(c.astype(np.float64), want, err_msg=backend)
    ptx = k.with_execution_backend("ptx").runtime.ptx
    assert "cvt.rna.tf32.f32" in ptx and "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32" in ptx
