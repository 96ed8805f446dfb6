"""CPU GEMM kernels run in bands of R x G blocks (transform/gemm_bands.py): each K step copies a
B tile once for the band's rows and an A tile once for its columns. The results must be those of
the blocks run as written (pass config tw.cpu.disable_gemm_bands), bit for bit, on shapes the
tiles do not divide, bands that the grid does not fill, transposed operands, float64 and the
epilogue variants; kernels whose blocks could interact run as written."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tilewise
import tilewise.language as T

AS_WRITTEN = {"tw.cpu.disable_gemm_bands": True}


def gemm_kernel(M, N, K, bm, bn, bk, dtype="float32", trans_a=False, trans_b=False, epilogue="none",
                out_dtype=None, accum_dtype=None):
    a_shape = (K, M) if trans_a else (M, K)
    b_shape = (N, K) if trans_b else (K, N)
    out_dtype = out_dtype or dtype

    @T.prim_func
    def main(A: T.Tensor(a_shape, dtype), B: T.Tensor(b_shape, dtype), Bias: T.Tensor((N,), dtype),
             C: T.Tensor((M, N), out_dtype)):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            As = T.alloc_shared((bk, bm) if trans_a else (bm, bk), dtype)
            Bs = T.alloc_shared((bn, bk) if trans_b else (bk, bn), dtype)
            bias = T.alloc_fragment((bn,), dtype)
            Cl = T.alloc_fragment((bm, bn), accum_dtype or dtype)
            T.clear(Cl)
            for ko in T.Pipelined(T.ceildiv(K, bk), num_stages=3):
                if trans_a:
                    T.copy(A[ko * bk, by * bm], As)
                else:
                    T.copy(A[by * bm, ko * bk], As)
                if trans_b:
                    T.copy(B[bx * bn, ko * bk], Bs)
                else:
                    T.copy(B[ko * bk, bx * bn], Bs)
                T.gemm(As, Bs, Cl, transpose_A=trans_a, transpose_B=trans_b)
            if epilogue in ("bias", "relu", "gelu"):
                T.copy(Bias[bx * bn], bias)
                for i, j in T.Parallel(bm, bn):
                    if epilogue == "relu":
                        Cl[i, j] = T.max(Cl[i, j] + bias[j], 0)
                    elif epilogue == "gelu":
                        x = Cl[i, j] + bias[j]  # a LetStmt in the loop, as in example_gemm_epilogue.py
                        Cl[i, j] = 0.5 * x * (1 + T.erf(x * 0.7071067811865476))
                    else:
                        Cl[i, j] = Cl[i, j] + bias[j]
            T.copy(Cl, C[by * bm, bx * bn])

    return main


def _compare(func, args, shape=None):
    """Runs func with bands (of the given shape, or the pass's choice) and as written."""
    configs = {"tw.cpu.gemm_band_shape": shape} if shape else None
    banded = tilewise.compile(func, target="cpu", pass_configs=configs)
    written = tilewise.compile(func, target="cpu", pass_configs=AS_WRITTEN)
    assert "tw_band" in banded.get_kernel_source()
    assert "tw_band" not in written.get_kernel_source()
    outs = []
    for k in (banded, written):
        out = [a.copy() for a in args]
        k(*out)
        outs.append(out[-1])
    assert np.array_equal(outs[0], outs[1])
    return outs[0]


def _inputs(M, N, K, dtype, trans_a, trans_b, out_dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    bias = rng.standard_normal(N).astype(dtype)
    c = np.full((M, N), np.nan, out_dtype)
    return [a, b, bias, c]


def _ref(a, b, bias, trans_a, trans_b, epilogue):
    x = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    if epilogue in ("bias", "relu", "gelu"):
        x = x + bias
    if epilogue == "gelu":
        return 0.5 * x * (1 + np.vectorize(math.erf, otypes=[np.float64])(x / math.sqrt(2)))
    return np.maximum(x, 0) if epilogue == "relu" else x


@pytest.mark.parametrize("M,N,K,shape", [
    (200, 330, 100, (2, 3, 2)),  # ragged everywhere; the last band has 1 of 2 columns and 2 of 3 rows
    (256, 256, 96, None),  # the pass's own band shape
    (97, 161, 64, (3, 1, 1)),  # one row per band
    (64, 320, 40, (1, 2, 3)),  # one column per band, K below one merged step
    (130, 200, 330, (2, 2, 3)),  # 5 merged K steps in chunks of 3 and 2, then the remainder loop
])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False), (True, True)])
def test_bands_bit_identical_transposed(M, N, K, shape, trans_a, trans_b):
    func = gemm_kernel(M, N, K, 64, 64, 32, "float32", trans_a, trans_b)
    args = _inputs(M, N, K, np.float32, trans_a, trans_b, np.float32)
    out = _compare(func, args, shape)
    ref = _ref(*args[:3], trans_a, trans_b, "none")
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("epilogue,dtype,out_dtype", [
    ("bias", "float32", "float32"),
    ("relu", "float32", "float32"),
    ("relu", "float32", "float16"),  # cast to fp16 in the store
    ("gelu", "float32", "float32"),  # a per-element temporary (LetStmt) in the epilogue loop
    ("gelu", "float16", "float16"),  # examples/gemm/example_gemm_epilogue.py's kernel
    ("none", "float64", "float64"),
    ("bias", "float64", "float64"),
])
def test_bands_bit_identical_epilogues(epilogue, dtype, out_dtype):
    M, N, K = 150, 200, 70
    accum = "float32" if dtype == "float16" else dtype
    func = gemm_kernel(M, N, K, 64, 64, 32, dtype, epilogue=epilogue, out_dtype=out_dtype, accum_dtype=accum)
    args = _inputs(M, N, K, np.dtype(dtype), False, False, np.dtype(out_dtype))
    out = _compare(func, args, (2, 2, 2))
    ref = _ref(*args[:3], False, False, epilogue)
    tol = 1e-2 if dtype == "float16" else 2e-3 if out_dtype == "float16" else 1e-4
    np.testing.assert_allclose(out.astype(np.float64), ref, rtol=tol, atol=tol)


def test_canonical_example_gemm_is_banded():
    """examples/gemm's kernel (128 x 128 x 32 tiles, K steps merged in pairs) at 512³."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "gemm"))
    from example_gemm import matmul

    n = 512
    func = matmul(n, n, n, dtype="float32")
    rng = np.random.default_rng(1)
    args = [rng.standard_normal((n, n)).astype(np.float32) for _ in range(2)] + [np.zeros((n, n), np.float32)]
    out = _compare(func, args)
    np.testing.assert_allclose(out, args[0].astype(np.float64) @ args[1], rtol=1e-4, atol=1e-3)


def test_blocks_that_read_what_they_write_run_as_written():
    """A kernel reading the tensor it writes (C += A @ B) could see other blocks' stores: no bands."""
    M = N = K = 128

    @T.prim_func
    def main(A: T.Tensor((M, K), "float32"), B: T.Tensor((K, N), "float32"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(N // 32, M // 32) as (bx, by):
            As = T.alloc_shared((32, 32), "float32")
            Bs = T.alloc_shared((32, 32), "float32")
            Cl = T.alloc_fragment((32, 32), "float32")
            T.copy(C[by * 32, bx * 32], Cl)
            for ko in T.serial(K // 32):
                T.copy(A[by * 32, ko * 32], As)
                T.copy(B[ko * 32, bx * 32], Bs)
                T.gemm(As, Bs, Cl)
            T.copy(Cl, C[by * 32, bx * 32])

    k = tilewise.compile(main, target="cpu")
    assert "tw_band" not in k.get_kernel_source()
    rng = np.random.default_rng(2)
    a, b, c = (rng.standard_normal((128, 128)).astype(np.float32) for _ in range(3))
    ref = c.astype(np.float64) + a.astype(np.float64) @ b
    k(a, b, c)
    np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-4)


def test_atomic_epilogue_runs_as_written():
    """Split-K style atomics: the order of blocks could matter, so no bands."""
    M = N = K = 128

    @T.prim_func
    def main(A: T.Tensor((M, K), "float32"), B: T.Tensor((K, N), "float32"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(N // 32, M // 32) as (bx, by):
            As = T.alloc_shared((32, 32), "float32")
            Bs = T.alloc_shared((32, 32), "float32")
            Cl = T.alloc_fragment((32, 32), "float32")
            T.clear(Cl)
            for ko in T.serial(K // 32):
                T.copy(A[by * 32, ko * 32], As)
                T.copy(B[ko * 32, bx * 32], Bs)
                T.gemm(As, Bs, Cl)
            for i, j in T.Parallel(32, 32):
                T.atomic_add(C[by * 32 + i, bx * 32 + j], Cl[i, j])

    k = tilewise.compile(main, target="cpu")
    assert "tw_band" not in k.get_kernel_source()
    rng = np.random.default_rng(3)
    a, b = (rng.standard_normal((128, 128)).astype(np.float32) for _ in range(2))
    c = np.zeros((128, 128), np.float32)
    k(a, b, c)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


def test_bands_dynamic_shapes():
    """Symbolic M and N: the band counts and the last band's extents come from the grid at run
    time, down to a grid of one block."""
    M, N, K = T.symbolic("m"), T.symbolic("n"), 70

    @T.prim_func
    def main(A: T.Tensor((M, K), "float32"), B: T.Tensor((K, N), "float32"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(N, 16), T.ceildiv(M, 32)) as (bx, by):
            As = T.alloc_shared((32, 16), "float32")
            Bs = T.alloc_shared((16, 16), "float32")
            Cl = T.alloc_fragment((32, 16), "float32")
            T.clear(Cl)
            for ko in T.Pipelined(T.ceildiv(K, 16), num_stages=2):
                T.copy(A[by * 32, ko * 16], As)
                T.copy(B[ko * 16, bx * 16], Bs)
                T.gemm(As, Bs, Cl)
            T.copy(Cl, C[by * 32, bx * 16])

    banded = tilewise.compile(main, target="cpu")
    written = tilewise.compile(main, target="cpu", pass_configs=AS_WRITTEN)
    assert "tw_band" in banded.get_kernel_source()
    rng = np.random.default_rng(4)
    for m, n in ((1, 5), (33, 17), (150, 100), (200, 300)):
        a = rng.standard_normal((m, K)).astype(np.float32)
        b = rng.standard_normal((K, n)).astype(np.float32)
        c1, c2 = np.empty((m, n), np.float32), np.empty((m, n), np.float32)
        banded(a, b, c1)
        written(a, b, c2)
        assert np.array_equal(c1, c2)
        np.testing.assert_allclose(c1, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
