"""The emitters' atom-level interface (TileLang 0.1.15, tilelang.cuda.language.intrinsics):
`TensorCoreIntrinEmitter.mma_atom(A, B, C, inst_m_idx, inst_n_idx, k_inner)` over
`T.grid(e.mma_num_inst_m, e.mma_num_inst_n)` is the warp's `mma()` one tile at a time. A GEMM
written with it runs in the emulator (re-run by the PTX interpreter, conftest.py) and on the CPU
against numpy, bit for bit equal to the same GEMM written with `mma()`; the wgmma / tcgen05
emitters the same module exports are refused by name when constructed."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from conftest import emu

import tilewise
import tilewise.language as T
from tilewise.cuda.language.intrinsics import (
    TCGEN05TensorCoreIntrinEmitter,
    TensorCoreIntrinEmitter,
    WGMMATensorCoreIntrinEmitter,
    make_mma_swizzle_layout,
)
from tilewise.errors import CompileError
from tilewise.ir import dtype as _dt
from tilewise.ir.buffer import Buffer
from tilewise.utils.language import is_fragment, is_local, is_shared, to_buffer_region

NP = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32}


def atom_gemm(M, N, K, dtype, accum, out, warp_tile, atoms: bool):
    """C = A @ B.T (A M x K, B N x K) by a 2 x 2 warp grid; the product step is mma_atom per
    (i, j) when `atoms`, else one mma()."""
    chunk = 32
    e = TensorCoreIntrinEmitter(a_dtype=dtype, b_dtype=dtype, accum_dtype=accum, a_transposed=False, b_transposed=True,
                                block_row_warps=2, block_col_warps=2, warp_row_tiles=warp_tile[0],
                                warp_col_tiles=warp_tile[1], chunk=chunk)
    bm, bn = 2 * warp_tile[0], 2 * warp_tile[1]
    n_m, n_n = e.mma_num_inst_m, e.mma_num_inst_n
    assert (n_m, n_n) == (e.warp_rows, e.warp_cols)

    @T.prim_func
    def gemm(A: T.Tensor((M, K), dtype), B: T.Tensor((N, K), dtype), C: T.Tensor((M, N), out)):
        with T.Kernel(N // bn, M // bm, threads=128) as (bx, by):
            As = T.alloc_shared((bm, chunk), dtype)
            Bs = T.alloc_shared((bn, chunk), dtype)
            Cs = T.alloc_shared((bm // 16, bn // e.micro_size_y, 16, e.micro_size_y), out)
            a_regs = T.alloc_local((e.warp_rows * e.local_size_a,), dtype)
            b_regs = T.alloc_local((e.warp_cols * e.local_size_b,), dtype)
            acc = T.alloc_local((e.warp_rows * e.warp_cols * e.local_size_out,), accum)
            T.annotate_layout({As: make_mma_swizzle_layout(As), Bs: make_mma_swizzle_layout(Bs)})
            T.clear(acc)
            for ko in T.serial(K // chunk):
                T.copy(A[by * bm, ko * chunk], As)
                T.copy(B[bx * bn, ko * chunk], Bs)
                for ki in T.serial(chunk // e.micro_size_k):
                    e.ldmatrix_a(a_regs, As, ki)
                    e.ldmatrix_b(b_regs, Bs, ki)
                    if atoms:
                        for i, j in T.grid(n_m, n_n):
                            e.mma_atom(a_regs, b_regs, acc, i, j, ki)
                    else:
                        e.mma(a_regs, b_regs, acc, ki)
            e.stmatrix(acc, Cs)
            for i, j in T.Parallel(bm, bn):
                C[by * bm + i, bx * bn + j] = Cs[i // 16, j // e.micro_size_y, i % 16, j % e.micro_size_y]

    return gemm


CASES = [
    # dtype, accum, out, warp tile (32 x 32: 16 x 16 atoms of two m16n8 each; 16 x 8: one m16n8)
    ("float16", "float16", "float16", (32, 32)),
    ("bfloat16", "float32", "float32", (32, 32)),
    ("float16", "float32", "float32", (16, 8)),
]


@pytest.mark.filterwarnings("ignore:gemm programs its threads")  # the CPU target runs it thread-exactly
@pytest.mark.parametrize("target", ["emulator", "cpu"])
@pytest.mark.parametrize("dtype,accum,out,warp_tile", CASES)
def test_mma_atom_gemm(dtype, accum, out, warp_tile, target, rng):
    M, N, K = 128, 64, 64
    a = rng.standard_normal((M, K)).astype(NP[dtype])
    b = rng.standard_normal((N, K)).astype(NP[dtype])
    kernels = {}
    for atoms in (True, False):
        f = atom_gemm(M, N, K, dtype, accum, out, warp_tile, atoms)
        kernels[atoms] = emu(f, out_idx=[2]) if target == "emulator" else tilewise.compile(f, out_idx=[2], target="cpu")
    c = np.asarray(kernels[True](a, b))
    ref = a.astype(np.float64) @ b.astype(np.float64).T
    tol = 2e-2 if out == "float16" else 1e-3
    np.testing.assert_allclose(c.astype(np.float64), ref, rtol=tol, atol=tol * np.abs(ref).max())
    # the atoms are mma() one tile at a time: the same products, accumulated in the same order
    np.testing.assert_array_equal(c, np.asarray(kernels[False](a, b)))


def test_wgmma_and_tcgen05_emitters_are_refused_by_name():
    kw = dict(a_dtype="float16", b_dtype="float16", accum_dtype="float32")
    with pytest.raises(CompileError, match="WGMMATensorCoreIntrinEmitter: driving wgmma by hand"):
        WGMMATensorCoreIntrinEmitter(**kw)
    with pytest.raises(CompileError, match="TCGEN05TensorCoreIntrinEmitter.*Blackwell"):
        TCGEN05TensorCoreIntrinEmitter(**kw)


def test_buffer_questions():
    s = Buffer("s", (8, 16), _dt.float32, "shared.dyn")
    f = Buffer("f", (8, 16), _dt.float32, "local.fragment")
    r = Buffer("r", (4,), _dt.float32, "local")
    g = Buffer("g", (8, 16), _dt.float32, "global")
    whole = to_buffer_region(s)
    assert whole.buffer is s and [e for _, e in whole.region] == [8, 16]
    corner = to_buffer_region(s[2, 3], extents=[4])
    assert [e for _, e in corner.region] == [1, 4] and [int(x.value) for x, _ in corner.region] == [2, 3]
    assert to_buffer_region(whole) is whole
    assert is_shared(s) and is_fragment(f) and is_local(r) and not is_shared(g) and not is_local(f)
