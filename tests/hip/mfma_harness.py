"""Kernels for the MFMA tests and the benchmark: the canonical tiled GEMM with every T.gemm variant
(ss and rs operands, transposes, policies, ragged shapes), compiled for "hip -arch=gfx942" (run in
the emulator; clang-19 gives the ISA and resources)."""
from __future__ import annotations

import ml_dtypes
import numpy as np

import tilewise
import tilewise.language as T

NP = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32, "int8": np.int8,
      "float8_e4m3fnuz": ml_dtypes.float8_e4m3fnuz, "float8_e5m2fnuz": ml_dtypes.float8_e5m2fnuz}


def hip(func):
    """`func` compiled for gfx942, run by the emulator when called."""
    return tilewise.compile(func, target="hip -arch=gfx942", execution_backend="emulator")


def gemm_kernel(M, N, K, bm=128, bn=128, bk=32, in_dtype="float16", acc="float32", threads=256, trans_A=False,
                trans_B=False, a_frag=False, b_frag=False, policy="Square", k_pack=1, b_dtype=None):
    """The canonical tiled GEMM with static shapes (ragged ones are guarded by the copies); B is
    in_dtype too unless b_dtype says otherwise."""
    b_dtype = b_dtype or in_dtype
    a_shape, a_tile = ((K, M), (bk, bm)) if trans_A else ((M, K), (bm, bk))
    b_shape, b_tile = ((N, K), (bn, bk)) if trans_B else ((K, N), (bk, bn))
    pol = getattr(T.GemmWarpPolicy, policy)

    @T.prim_func
    def gemm(A: T.Tensor(a_shape, in_dtype), B: T.Tensor(b_shape, b_dtype), C: T.Tensor((M, N), acc)):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=threads) as (bx, by):
            A_s = T.alloc_shared(a_tile, in_dtype)
            B_s = T.alloc_shared(b_tile, b_dtype)
            A_f = T.alloc_fragment(a_tile, in_dtype)
            B_f = T.alloc_fragment(b_tile, b_dtype)
            C_f = T.alloc_fragment((bm, bn), acc)
            T.clear(C_f)
            for k in T.serial(T.ceildiv(K, bk)):
                if trans_A:
                    T.copy(A[k * bk, by * bm], A_s)
                else:
                    T.copy(A[by * bm, k * bk], A_s)
                if trans_B:
                    T.copy(B[bx * bn, k * bk], B_s)
                else:
                    T.copy(B[k * bk, bx * bn], B_s)
                if a_frag:
                    T.copy(A_s, A_f)
                if b_frag:
                    T.copy(B_s, B_f)
                T.gemm(A_f if a_frag else A_s, B_f if b_frag else B_s, C_f, transpose_A=trans_A,
                       transpose_B=trans_B, policy=pol, k_pack=k_pack)
            T.copy(C_f, C[by * bm, bx * bn])

    return gemm


def rand(rng, shape, dtype):
    if dtype == "int8":
        return rng.integers(-128, 128, size=shape).astype(np.int8)
    return rng.standard_normal(shape).astype(np.float32).astype(NP[dtype])
