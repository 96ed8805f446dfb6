"""Transposed T.gemm operands on the CPU (transform/transpose_gemm_operands.py): a float32/float64
operand tile filled by T.copy and taken transposed by T.gemm is copied transposed
(tw::copy_transposed) and the GEMM runs as NN. The products and their order are unchanged, so the
result must be bit-identical to the NN kernel on the operands transposed beforehand; ragged shapes
(tiles that do not divide, copies reaching past the tensors' edges), a batch dimension, and the
types the pass leaves alone (float16, bfloat16) are checked against numpy."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tilewise
import tilewise.language as T

NP = {"float32": np.float32, "float64": np.float64, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


def gemm_kernel(M, N, K, bm, bn, bk, ta, tb, dtype, batch=0):
    accum = "float64" if dtype == "float64" else "float32"
    a_shape = (K, M) if ta else (M, K)
    b_shape = (N, K) if tb else (K, N)
    if batch:
        a_shape, b_shape = (batch, *a_shape), (batch, *b_shape)
    c_shape = (batch, M, N) if batch else (M, N)

    @T.prim_func
    def main(A: T.Tensor(a_shape, dtype), B: T.Tensor(b_shape, dtype), C: T.Tensor(c_shape, accum)):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), max(batch, 1)) as (bx, by, bz):
            As = T.alloc_shared((bk, bm) if ta else (bm, bk), dtype)
            Bs = T.alloc_shared((bn, bk) if tb else (bk, bn), dtype)
            Cl = T.alloc_fragment((bm, bn), accum)
            T.clear(Cl)
            for ko in T.Pipelined(T.ceildiv(K, bk), num_stages=2):
                if batch:
                    if ta:
                        T.copy(A[bz, ko * bk, by * bm], As)
                    else:
                        T.copy(A[bz, by * bm, ko * bk], As)
                    if tb:
                        T.copy(B[bz, bx * bn, ko * bk], Bs)
                    else:
                        T.copy(B[bz, ko * bk, bx * bn], Bs)
                else:
                    if ta:
                        T.copy(A[ko * bk, by * bm], As)
                    else:
                        T.copy(A[by * bm, ko * bk], As)
                    if tb:
                        T.copy(B[bx * bn, ko * bk], Bs)
                    else:
                        T.copy(B[ko * bk, bx * bn], Bs)
                T.gemm(As, Bs, Cl, transpose_A=ta, transpose_B=tb)
            if batch:
                T.copy(Cl, C[bz, by * bm, bx * bn])
            else:
                T.copy(Cl, C[by * bm, bx * bn])

    # the blocks as written (groups of 4), not in bands (transform/gemm_bands.py)
    return tilewise.compile(main, target="cpu", pass_configs={"tw.cpu.disable_gemm_bands": True})


def _run(M, N, K, tiles, ta, tb, dtype, seed, batch=0):
    k = gemm_kernel(M, N, K, *tiles, ta, tb, dtype, batch)
    rng = np.random.default_rng(seed)
    lead = (batch,) if batch else ()
    a = rng.standard_normal(lead + ((K, M) if ta else (M, K))).astype(NP[dtype])
    b = rng.standard_normal(lead + ((N, K) if tb else (K, N))).astype(NP[dtype])
    c = np.full(lead + (M, N), np.nan, np.float64 if dtype == "float64" else np.float32)
    k(a, b, c)
    return k, a, b, c


def _ref(a, b, ta, tb):
    a = np.swapaxes(a, -1, -2) if ta else a
    b = np.swapaxes(b, -1, -2) if tb else b
    return a.astype(np.float64) @ b.astype(np.float64)


# 70 x 150 x 45 in 32 x 32 x 16 tiles: nothing divides, the K loop merges 4 steps into one call
# with a tail of 3, and the grid's rows form groups of 4 and 1 blocks
RAGGED = (70, 150, 45, (32, 32, 16))


@pytest.mark.parametrize("ta,tb", [(False, True), (True, False), (True, True)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_transposed_bit_identical_to_nn(ta, tb, dtype):
    M, N, K, tiles = RAGGED
    k, a, b, c = _run(M, N, K, tiles, ta, tb, dtype, seed=1)
    src = k.get_kernel_source()
    assert "tw::copy_transposed" in src and "tw_grp" in src
    np.testing.assert_allclose(c, _ref(a, b, ta, tb), rtol=1e-5, atol=1e-5 * np.sqrt(K))
    nn = gemm_kernel(M, N, K, *tiles, False, False, dtype)
    assert "tw::copy_transposed" not in nn.get_kernel_source()
    c2 = np.full_like(c, np.nan)
    nn(np.ascontiguousarray(a.T) if ta else a, np.ascontiguousarray(b.T) if tb else b, c2)
    np.testing.assert_array_equal(c, c2)


@pytest.mark.parametrize("shape", [(1, 1, 1), (9, 20, 7), (64, 64, 64), (33, 17, 100)])
def test_transposed_shapes(shape):
    """Tiles of 16 x 8 x 8 against tensors smaller than a tile, exactly tiled, and ragged; W x W
    register blocks and element-wise edges both."""
    M, N, K = shape
    for ta, tb in ((True, False), (False, True), (True, True)):
        _, a, b, c = _run(M, N, K, (16, 8, 8), ta, tb, "float32", seed=M + N + K)
        np.testing.assert_allclose(c, _ref(a, b, ta, tb), rtol=1e-5, atol=1e-5 * np.sqrt(K), err_msg=f"{ta} {tb}")


def test_transposed_batched():
    """A leading batch index in the copies' source regions."""
    _, a, b, c = _run(40, 24, 33, (16, 8, 8), True, True, "float32", seed=5, batch=3)
    np.testing.assert_allclose(c, _ref(a, b, True, True), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
def test_low_precision_operands_keep_their_packing(ta, tb, dtype):
    """float16/bfloat16 tiles are converted in the GEMM's packing, which transposes as it goes:
    the pass leaves them alone, and every transposition stays right."""
    M, N, K, tiles = RAGGED
    k, a, b, c = _run(M, N, K, tiles, ta, tb, dtype, seed=2)
    assert "tw::copy_transposed" not in k.get_kernel_source()
    np.testing.assert_allclose(c, _ref(a, b, ta, tb), rtol=1e-4, atol=1e-4 * np.sqrt(K))
