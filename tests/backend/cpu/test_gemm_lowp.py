"""T.gemm on the CPU target with low-precision operands (tw_gemm_lowp.h for int8/uint8, the
converting packing of tw_gemm.h for float16/bfloat16) against numpy.

Integers are exact: numpy's int64 product (plus the accumulated C) cast to int32, which wraps as
the kernel's int32 accumulator does. float16/bfloat16 products are summed in float32: the result
is compared with the float64 product of the same (rounded) inputs within K float32 roundings of
sum |a| |b|, the bound of any summation order.

Shapes are ragged on purpose: tiles that are not whole register blocks or whole vectors, odd K
(the pair packing pads it), global shapes that do not divide the tiles (zero-filled edge tiles)."""
from __future__ import annotations

import platform

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tilewise
import tilewise.language as T

TORCH = {"int8": torch.int8, "uint8": torch.uint8, "float16": torch.float16, "bfloat16": torch.bfloat16}
INT = ("int8", "uint8")


def _kernel(M, N, K, a_dtype, b_dtype, bm, bn, bk, trans_a=False, trans_b=False, accumulate=False, flags=()):
    """C = C_in + op(A) @ op(B) (or op(A) @ op(B) with accumulate False), tiled bm x bn x bk."""
    acc = "int32" if a_dtype in INT else "float32"
    ashape = (K, M) if trans_a else (M, K)
    bshape = (N, K) if trans_b else (K, N)

    @T.prim_func
    def main(A: T.Tensor(ashape, a_dtype), B: T.Tensor(bshape, b_dtype), C_in: T.Tensor((M, N), acc),
             C: T.Tensor((M, N), acc)):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            A_s = T.alloc_shared((bk, bm) if trans_a else (bm, bk), a_dtype)
            B_s = T.alloc_shared((bn, bk) if trans_b else (bk, bn), b_dtype)
            C_l = T.alloc_fragment((bm, bn), acc)
            if accumulate:
                T.copy(C_in[by * bm, bx * bn], C_l)
            else:
                T.clear(C_l)
            for ko in T.Pipelined(T.ceildiv(K, bk), num_stages=2):
                if trans_a:
                    T.copy(A[ko * bk, by * bm], A_s)
                else:
                    T.copy(A[by * bm, ko * bk], A_s)
                if trans_b:
                    T.copy(B[bx * bn, ko * bk], B_s)
                else:
                    T.copy(B[ko * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_l, transpose_A=trans_a, transpose_B=trans_b)
            T.copy(C_l, C[by * bm, bx * bn])

    return tilewise.compile(main, out_idx=[-1], target="cpu", compile_flags=list(flags))


def _operand(rng, shape, dtype, extreme=False):
    if dtype in INT:
        lo, hi = (-128, 127) if dtype == "int8" else (0, 255)
        x = rng.choice([lo, hi], size=shape) if extreme else rng.integers(lo, hi + 1, size=shape)
        return torch.from_numpy(x.astype(dtype))
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32)).to(TORCH[dtype])


def _check(M, N, K, a_dtype, b_dtype, tiles, trans_a=False, trans_b=False, accumulate=False, extreme=False, seed=0,
           flags=()):
    rng = np.random.default_rng(seed)
    k = _kernel(M, N, K, a_dtype, b_dtype, *tiles, trans_a=trans_a, trans_b=trans_b, accumulate=accumulate,
                flags=flags)
    a = _operand(rng, (K, M) if trans_a else (M, K), a_dtype, extreme)
    b = _operand(rng, (N, K) if trans_b else (K, N), b_dtype, extreme)
    an = a.float().numpy().astype(np.float64 if a_dtype not in INT else np.int64)
    bn = b.float().numpy().astype(np.float64 if b_dtype not in INT else np.int64)
    an = an.T if trans_a else an
    bn = bn.T if trans_b else bn
    if a_dtype in INT:
        c_in = torch.from_numpy(rng.integers(-2**31, 2**31, size=(M, N)).astype(np.int32))
        out = k(a, b, c_in).numpy()
        ref = an @ bn + (c_in.numpy().astype(np.int64) if accumulate else 0)
        np.testing.assert_array_equal(out, ref.astype(np.int32))  # astype wraps, like int32 sums
    else:
        c_in = torch.from_numpy(rng.standard_normal((M, N)).astype(np.float32))
        out = k(a, b, c_in).numpy().astype(np.float64)
        ref = an @ bn + (c_in.numpy() if accumulate else 0)
        bound = (K + 1) * 2.0**-23 * (np.abs(an) @ np.abs(bn) + (np.abs(c_in.numpy()) if accumulate else 0))
        assert np.all(np.abs(out - ref) <= bound + 1e-30), float(np.max(np.abs(out - ref) - bound))


DTYPES = [("int8", "int8"), ("uint8", "uint8"), ("int8", "uint8"), ("uint8", "int8"), ("bfloat16", "bfloat16"),
          ("float16", "float16")]


@pytest.mark.parametrize("a_dtype,b_dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, True)])
def test_ragged_tiles_one_block(a_dtype, b_dtype, trans_a, trans_b):
    # a single block whose tile is the whole ragged matrix: partial register blocks, a partial last
    # vector of columns, an odd K and (transposed) blocks that are not whole transposes
    _check(37, 45, 23, a_dtype, b_dtype, (37, 45, 23), trans_a, trans_b)


@pytest.mark.parametrize("a_dtype,b_dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, True), (True, False)])
def test_ragged_matrix_accumulates(a_dtype, b_dtype, trans_a, trans_b):
    # edge tiles zero-filled by T.copy, several K steps summed into C, C_in accumulated
    _check(70, 83, 101, a_dtype, b_dtype, (32, 48, 32), trans_a, trans_b, accumulate=True, seed=1)


@pytest.mark.parametrize("a_dtype,b_dtype", [("int8", "int8"), ("uint8", "uint8"), ("int8", "uint8")])
def test_int8_extreme_values_exact(a_dtype, b_dtype):
    # only -128/127 (0/255): the largest products and pair sums; C_in near the int32 limits wraps
    _check(64, 64, 160, a_dtype, b_dtype, (64, 64, 160), accumulate=True, extreme=True, seed=2)
    _check(64, 64, 160, a_dtype, b_dtype, (64, 64, 160), trans_a=True, trans_b=True, extreme=True, seed=3)


def test_int8_long_k_chunks():
    # one call with K larger than a packing chunk (the K loop inside the micro-kernel's driver)
    _check(16, 200, 1030, "int8", "int8", (16, 200, 1030), trans_b=True, seed=4)


@pytest.mark.parametrize("a_dtype,b_dtype", [("int8", "uint8"), ("float16", "float16")])
def test_sse_vectors(a_dtype, b_dtype):
    # -march=x86-64-v2 (after tilewise's -march=native): 16-byte vectors (pmaddwd on 4 lanes, a
    # 4 x 4 transpose) and float16 by the integer rebias instead of F16C, on this machine
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("an x86-64 -march")
    _check(37, 45, 23, a_dtype, b_dtype, (37, 45, 23), True, True, accumulate=True, flags=("-march=x86-64-v2",))
    _check(70, 83, 101, a_dtype, b_dtype, (32, 48, 32), False, True, extreme=a_dtype in INT, seed=5,
           flags=("-march=x86-64-v2",))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(2, 40), n=st.integers(2, 72), k=st.integers(2, 70),  # (unit dimensions squeeze away)
       dt=st.sampled_from(DTYPES), ta=st.booleans(), tb=st.booleans())
def test_shapes_property(m, n, k, dt, ta, tb):
    _check(m, n, k, dt[0], dt[1], (m, n, k), ta, tb, accumulate=True)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_every_finite_16bit_value_converts_exactly(dtype):
    # A holds every finite bit pattern (subnormals included) and B is the identity, so C = A in
    # float32 exactly: the packing's conversion (F16C's vcvtph2ps, the integer rebias or the
    # bfloat16 shift) is exact everywhere (infinities would meet the identity's zeros: NaN)
    bits = np.arange(1 << 16, dtype=np.uint16)
    vals = bits.view(np.float16).astype(np.float32) if dtype == "float16" else (bits.astype(np.uint32) << 16).view(np.float32)
    vals = vals[np.isfinite(vals)]
    vals = np.concatenate([vals, np.zeros((-len(vals)) % 32, np.float32)]).reshape(-1, 32)
    m = vals.shape[0]

    @T.prim_func
    def main(A: T.Tensor((m, 32), dtype), B: T.Tensor((32, 32), dtype), C: T.Tensor((m, 32), "float32")):
        with T.Kernel(T.ceildiv(m, 128), threads=128) as bx:
            A_s = T.alloc_shared((128, 32), dtype)
            B_s = T.alloc_shared((32, 32), dtype)
            C_l = T.alloc_fragment((128, 32), "float32")
            T.clear(C_l)
            T.copy(A[bx * 128, 0], A_s)
            T.copy(B, B_s)
            T.gemm(A_s, B_s, C_l)
            T.copy(C_l, C[bx * 128, 0])

    k = tilewise.compile(main, out_idx=[-1], target="cpu")
    a = torch.from_numpy(vals).to(TORCH[dtype])
    assert np.array_equal(a.float().numpy(), vals)  # the inputs are the values themselves
    out = k(a, torch.eye(32, dtype=TORCH[dtype])).numpy()
    np.testing.assert_array_equal(out, vals)  # as values: -0 + the identity's +0 products is +0
