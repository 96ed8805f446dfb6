"""Semantics differences tools/tl_differential.py found between TileLang 0.1.15's generated CUDA
and tilewise, each fixed to TileLang's behaviour, on the CPU, in the emulator and in the PTX
interpreter."""
import numpy as np
import pytest

import tilewise
import tilewise.language as T

BACKENDS = [("cpu", "auto"), ("cuda -arch=sm_80", "emulator"), ("cuda -arch=sm_80", "ptx")]
NAN = np.nan


def _clamp_kernel(dtype):
    @T.prim_func
    def main(A: T.Tensor((8,), dtype), L: T.Tensor((8,), dtype), H: T.Tensor((8,), dtype),
             B: T.Tensor((8,), dtype), C: T.Tensor((8,), dtype)):
        with T.Kernel(1, threads=8):
            for i in T.Parallel(8):
                B[i] = T.clamp(A[i], L[i], H[i])
                C[i] = T.clamp(A[i], -2.0, 2.0)

    return main


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
@pytest.mark.parametrize("target,backend", BACKENDS)
def test_clamp_propagates_nan_as_tl_clamp(dtype, target, backend):
    # tl::clamp (tl_templates/cuda/math.h): a NaN x, then a NaN lo, then a NaN hi is the result;
    # lo > hi gives hi. tilewise returned the bound for a NaN x (fmaxf drops the NaN).
    a = np.array([NAN, 1, 1, 5, -5, NAN, 0.5, 3], dtype)
    lo = np.array([0, NAN, 0, 0, 0, 1, 2, 0], dtype)
    hi = np.array([1, 1, NAN, 1, 1, NAN, 1, 1], dtype)
    b, c = tilewise.compile(_clamp_kernel(dtype), out_idx=[3, 4], target=target, execution_backend=backend)(a, lo, hi)
    np.testing.assert_array_equal(np.asarray(b), np.array([NAN, NAN, NAN, 1, 0, NAN, 1, 1], dtype))
    np.testing.assert_array_equal(np.asarray(c), np.array([NAN, 1, 1, 2, -2, NAN, 0.5, 2], dtype))


def _truncmod_kernel(dtype):
    @T.prim_func
    def main(A: T.Tensor((8,), dtype), B: T.Tensor((8,), dtype), C: T.Tensor((8,), dtype)):
        with T.Kernel(1, threads=8):
            for i in T.Parallel(8):
                C[i] = T.truncmod(A[i], B[i])

    return main


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("target,backend", BACKENDS)
def test_float_truncmod_is_fmod(dtype, target, backend):
    # TileLang prints T.truncmod of floats as fmodf / fmod; tilewise computed a - trunc(a/b)*b,
    # which is NaN for b = ±inf, +0 for a = -0 and inexact for large quotients
    a = np.array([0, -0.0, 5, -5, 1e30, 7.5, -7.5, NAN], dtype)
    b = np.array([np.inf, 1, -np.inf, 3, 3, -2, 2, 1], dtype)
    c = tilewise.compile(_truncmod_kernel(dtype), out_idx=[2], target=target, execution_backend=backend)(a, b)
    np.testing.assert_array_equal(np.signbit(np.asarray(c)), np.signbit(np.fmod(a, b)))
    np.testing.assert_array_equal(np.asarray(c), np.fmod(a, b))


def _absmax_keep_kernel(dim, dst_scope):
    n_out = 32 if dim == 0 else 16

    @T.prim_func
    def main(A: T.Tensor((16, 32), "float32"), B0: T.Tensor((n_out,), "float32"), B: T.Tensor((n_out,), "float32")):
        with T.Kernel(1, threads=128):
            a = T.alloc_fragment((16, 32), "float32")
            b = T.alloc_fragment((n_out,), "float32") if dst_scope == "fragment" else T.alloc_shared((n_out,), "float32")
            T.copy(A, a)
            T.copy(B0, b)
            T.reduce_absmax(a, b, dim=dim, clear=False)
            T.copy(b, B)

    return main


@pytest.mark.parametrize("dim,dst_scope", [(0, "fragment"), (1, "fragment"), (1, "shared")])
@pytest.mark.parametrize("target,backend", BACKENDS)
def test_reduce_absmax_without_clear_keeps_dst_sign(dim, dst_scope, target, backend):
    # TileLang reduces into a cleared copy and stores max(dst, copy): dst's old value is not made
    # absolute. tilewise compared |dst|, so a -inf (or -9) already in dst won over the row's max |x|.
    rng = np.random.default_rng(0)
    a = rng.standard_normal((16, 32)).astype("float32")
    n_out = 32 if dim == 0 else 16
    b0 = np.resize(np.array([-np.inf, -9.0, 0.5, 20.0, -0.0, np.inf, -1e30, 3.0], "float32"), n_out)
    k = tilewise.compile(_absmax_keep_kernel(dim, dst_scope), out_idx=[2], target=target, execution_backend=backend)
    got = np.asarray(k(a, b0))
    np.testing.assert_array_equal(got, np.maximum(b0, np.abs(a).max(axis=dim)))


def _cumsum_kernel(dim, scope):
    @T.prim_func
    def main(A: T.Tensor((16, 32), "float32"), B: T.Tensor((16, 32), "float32")):
        with T.Kernel(1, threads=128):
            S = T.alloc_shared((16, 32), "float32") if scope == "shared" else T.alloc_fragment((16, 32), "float32")
            T.copy(A, S)
            T.cumsum(S, dim=dim)
            T.copy(S, B)

    return main


@pytest.mark.parametrize("dim,scope", [(0, "shared"), (1, "shared"), (1, "fragment")])
@pytest.mark.parametrize("target,backend", BACKENDS)
def test_forward_cumsum_prefix_of_negative_zeros_is_positive_zero(dim, scope, target, backend):
    # TileLang's scan (tl_templates/cuda/scan.h) adds a carry, +0 at first, to every element: a
    # line starting with -0s gives +0s. The CPU target kept the first element as it was (-0).
    a = np.full((16, 32), -0.0, np.float32)
    a[5:, 3] = 2.0
    a[7, 4:] = -1.5
    got = np.asarray(tilewise.compile(_cumsum_kernel(dim, scope), out_idx=[1], target=target,
                                      execution_backend=backend)(a))
    want = np.cumsum(a, axis=dim) + np.float32(0)  # numpy keeps -0: the +0 carry makes every zero +0
    np.testing.assert_array_equal(got, want)
    assert not np.signbit(got[got == 0]).any()


def _cast_kernel(src, dst):
    @T.prim_func
    def main(A: T.Tensor((8,), src), B: T.Tensor((8,), dst)):
        with T.Kernel(1, threads=8):
            for i in T.Parallel(8):
                B[i] = T.Cast(dst, A[i])

    return main


@pytest.mark.parametrize("dst", ["float16", "bfloat16"])
@pytest.mark.parametrize("target,backend", BACKENDS)
def test_f64_to_half_types_round_once(dst, target, backend):
    # TileLang prints (half_t)x / (bfloat16_t)x for a double x: cutlass converts through float,
    # rounding twice. tilewise keeps rounding the double once (correctly): T.fma on float16 /
    # bfloat16 and every float64 -> half conversion rely on it (a KNOWN difference in
    # tools/tl_differential.py: cast_ties_f64_f16 / bf16).
    import ml_dtypes

    np_dst = np.dtype(np.float16) if dst == "float16" else np.dtype(ml_dtypes.bfloat16)
    tie = 2.0**-25 if dst == "float16" else 1 + 2.0**-8  # halfway between two values of dst
    a = np.array([tie + 2.0**-60, -(tie + 2.0**-60), tie, 1 + 2.0**-11 + 2.0**-40, 3.0 + 2.0**-40,
                  1e300, -1e-300, 65519.99999999], np.float64)
    got = np.asarray(tilewise.compile(_cast_kernel("float64", dst), out_idx=[1], target=target,
                                      execution_backend=backend)(a))
    want = a.astype(np_dst)  # numpy / ml_dtypes: one rounding from the double
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))


def _atomic_add_prev_kernel(n):
    @T.prim_func
    def main(A: T.Tensor((n,), "float32"), B: T.Tensor((n,), "float32"), P: T.Tensor((n,), "float32")):
        with T.Kernel(1, threads=n):
            for i in T.Parallel(n):
                P[i] = T.atomic_add(B[i], A[i], return_prev=True)

    return main


def _ftz(x):
    x = np.asarray(x, np.float32)
    return np.where(np.abs(x) < np.finfo(np.float32).tiny, np.copysign(np.float32(0), x), x).astype(np.float32)


@pytest.mark.parametrize("target,backend", BACKENDS)
def test_float32_atomic_add_flushes_subnormals(target, backend):
    # PTX's atom.add.f32 (TileLang's AtomicAdd / AtomicAddRet) flushes subnormal inputs and
    # results to sign-preserving zero: 1e-40 + 0 leaves 0. The CPU target and the emulator kept
    # the subnormal (the PTX interpreter already flushed). (Left: the CPU target's privatised
    # tile atomics, transform/privatise_atomics.py, sum per-thread copies without flushing.)
    sub = np.float32(1e-40)
    b0 = np.array([sub, 0, -sub, 1.0, 1.5e-38, -0.0, 2 * sub, 3.0], np.float32)
    a = np.array([0, sub, 0, sub, -1e-38, -sub, sub, -3.0], np.float32)
    k = tilewise.compile(_atomic_add_prev_kernel(8), out_idx=[2], target=target, execution_backend=backend)
    b = b0.copy()
    prev = np.asarray(k(a, b))
    np.testing.assert_array_equal(prev.view(np.uint32), b0.view(np.uint32))
    want = _ftz(_ftz(b0) + _ftz(a))
    np.testing.assert_array_equal(b.view(np.uint32), want.view(np.uint32))


def _cummax_kernel(dim):
    @T.prim_func
    def main(A: T.Tensor((16, 32), "float32"), B: T.Tensor((16, 32), "float32")):
        with T.Kernel(1, threads=128):
            S = T.alloc_shared((16, 32), "float32")
            T.copy(A, S)
            T.cummax(S, dim=dim)
            T.copy(S, B)

    return main


@pytest.mark.parametrize("dim", [0, 1])
@pytest.mark.parametrize("target,backend", BACKENDS)
def test_forward_cummax_leading_nan_gives_the_identity(dim, target, backend):
    # TileLang's scan combines each element with a carry, -inf before the first: max(NaN, -inf)
    # ignores the NaN, so a line starting with NaN starts with -inf. The CPU kept the NaN.
    a = np.random.default_rng(5).standard_normal((16, 32)).astype(np.float32)
    a[0, :] = np.nan
    a[:, 0] = np.nan
    got = np.asarray(tilewise.compile(_cummax_kernel(dim), out_idx=[1], target=target, execution_backend=backend)(a))
    want = np.fmax.accumulate(np.concatenate([np.full_like(a, -np.inf).take([0], axis=dim), a], axis=dim),
                              axis=dim)[1:] if dim == 0 else np.fmax.accumulate(
        np.concatenate([np.full((16, 1), -np.inf, np.float32), a], axis=1), axis=1)[:, 1:]
    np.testing.assert_array_equal(got, want)
