"""The CPU backend's float math (tw_math.h: exp, exp2, exp10, log, log2, log10, tanh, erf,
sigmoid, written to vectorise) against numpy in float64: within 2 ulp of the correctly rounded
result over the whole float range, denormal inputs and results, and exact on the special values
(infinities, NaN, signed zero, overflow and underflow). Also float16/bfloat16 conversions, which
are integer arithmetic in tw_cpu.h, against numpy/ml_dtypes bit for bit."""
from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tilewise
import tilewise.language as T

FUNCS = {
    "exp": np.exp,
    "exp2": np.exp2,
    "exp10": lambda x: np.power(10.0, x),
    "log": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "tanh": np.tanh,
    "erf": np.vectorize(math.erf, otypes=[np.float64]),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
}
MAX_ULP = 2.0
BLOCK = 256


def _all_funcs_kernel():
    n = T.symbolic("n")
    names = list(FUNCS)

    @T.prim_func
    def main(X: T.Tensor((n,), "float32"), Y: T.Tensor((len(names), n), "float32")):
        with T.Kernel(T.ceildiv(n, BLOCK)) as bx:
            for i in T.Parallel(BLOCK):
                if bx * BLOCK + i < n:
                    x = X[bx * BLOCK + i]
                    for k, name in enumerate(names):
                        Y[k, bx * BLOCK + i] = getattr(T, name)(x)

    return tilewise.compile(main, target="cpu")


@pytest.fixture(scope="module")
def math_kernel():
    return _all_funcs_kernel()


def run_all(kernel, x: np.ndarray) -> dict:
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.empty((len(FUNCS), x.size), np.float32)
    kernel(x, y)
    return dict(zip(FUNCS, y))


def ulp_error(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|got - ref| in units of the float32 ulp at ref (2^-149 among the denormals)."""
    r32 = np.abs(ref).astype(np.float32)
    ulp = np.spacing(r32).astype(np.float64)
    return np.abs(got.astype(np.float64) - ref) / ulp


def check(name: str, x: np.ndarray, got: np.ndarray) -> None:
    with np.errstate(all="ignore"):
        _check(name, x, got)


def _check(name: str, x: np.ndarray, got: np.ndarray) -> None:
    ref = FUNCS[name](x.astype(np.float64))
    r32 = ref.astype(np.float32)
    special = ~np.isfinite(r32) | (r32 == 0)
    # infinities, NaN and zeros exactly (the sign of zero too)
    bad = special & ~((np.isnan(r32) & np.isnan(got)) | (r32.view(np.uint32) == got.view(np.uint32)))
    # a result that rounds to zero may also come out as the smallest denormal
    bad &= ~((r32 == 0) & (ulp_error(got, ref) <= MAX_ULP))
    assert not bad.any(), f"{name}({x[bad][:5]}) = {got[bad][:5]}, expected {r32[bad][:5]}"
    finite = ~special
    err = ulp_error(got[finite], ref[finite])
    worst = int(np.argmax(err)) if err.size else 0
    assert err.size == 0 or err[worst] <= MAX_ULP, (
        f"{name}({x[finite][worst]!r}) = {got[finite][worst]!r}, expected {ref[finite][worst]!r}: "
        f"{err[worst]:.2f} ulp"
    )


SPECIALS = np.array(
    [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 2.0, 0.5, 1e-45, -1e-45, 1.17549435e-38, 3.4028235e38,
     -3.4028235e38, 88.72283, 88.72284, -87.33654, -103.97208, -103.97209, 127.99999, 128.0, -126.0, -149.0,
     -150.0, -151.0, 38.5318, 38.53184, -44.85, -45.5, 0.625, -0.625, 0.62499994, 9.01, 0.9, 0.89999998,
     3.95, 3.9500003, -80.0, -80.00001, 80.0, 0.70710677, 1.4142135, 1e-30, -1e-30],
    dtype=np.float32,
)


def test_special_values(math_kernel):
    ys = run_all(math_kernel, SPECIALS)
    for name, y in ys.items():
        check(name, SPECIALS, y)


def test_every_binade(math_kernel, rng):
    # random mantissas in every exponent (denormals to the largest), both signs
    bits = rng.integers(0, 1 << 32, size=200_000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    ys = run_all(math_kernel, x)
    for name, y in ys.items():
        check(name, x, y)


@pytest.mark.parametrize("lo,hi", [(-1.0, 1.0), (-10.0, 10.0), (-110.0, 130.0), (0.0, 5.0), (1e-40, 1e-30)])
def test_dense_ranges(math_kernel, rng, lo, hi):
    x = rng.uniform(lo, hi, size=100_000).astype(np.float32)
    ys = run_all(math_kernel, x)
    for name, y in ys.items():
        check(name, x, y)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 3 * BLOCK + 7), seed=st.integers(0, 2**32 - 1))
def test_lengths(math_kernel, n, seed):
    # lengths that do not fill the last block
    x = np.random.default_rng(seed).normal(0, 30, size=n).astype(np.float32)
    ys = run_all(math_kernel, x)
    for name, y in ys.items():
        check(name, x, y)


def test_erf_of_large_inputs_makes_no_denormals():
    """erf(x) is +-1 for |x| > 3.95; its e^(-x^2) term is capped there so that it never becomes a
    denormal (on x86 each denormal result is a microcode assist: GEMM results through a GELU
    epilogue are mostly |x| > 9.4). The underflow flag, read through libm's fenv functions on
    the calling thread (one block: the kernel runs on it), shows no tiny intermediate."""
    import ctypes
    import ctypes.util

    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    fe_underflow, fe_all = 0x10, 0x3F  # x86 <fenv.h>
    n = 64

    @T.prim_func
    def main(X: T.Tensor((n,), "float32"), Y: T.Tensor((n,), "float32")):
        with T.Kernel(1) as bx:
            for i in T.Parallel(n):
                Y[bx * n + i] = T.erf(X[bx * n + i])

    kernel = tilewise.compile(main, target="cpu")
    x = np.concatenate([np.linspace(3.96, 1e4, n // 2), -np.geomspace(9.5, 3e38, n // 2)]).astype(np.float32)
    y = np.empty_like(x)
    kernel(x, y)  # warm-up: the first call may do other work (loading, checks)
    libm.feclearexcept(fe_all)
    kernel(x, y)
    raised = libm.fetestexcept(fe_all)
    assert not raised & fe_underflow
    np.testing.assert_array_equal(y, np.sign(x))


def test_low_precision_math_rounds_once_from_float(rng):
    """T.exp on float16/bfloat16 computes in float and rounds the float result."""
    n = 4096

    @T.prim_func
    def main(X: T.Tensor((n,), "float16"), Y: T.Tensor((n,), "float16"), Zb: T.Tensor((n,), "bfloat16"),
             Wb: T.Tensor((n,), "bfloat16")):
        with T.Kernel(n // BLOCK) as bx:
            for i in T.Parallel(BLOCK):
                Y[bx * BLOCK + i] = T.exp(X[bx * BLOCK + i])
                Wb[bx * BLOCK + i] = T.tanh(Zb[bx * BLOCK + i])

    k = tilewise.compile(main, target="cpu")
    x = rng.uniform(-11, 11, n).astype(np.float16)  # e^11 < 65504
    z = rng.uniform(-5, 5, n).astype(ml_dtypes.bfloat16)
    y = np.empty_like(x)
    w = np.empty_like(z)
    k(x, y, z, w)
    ref_y = np.exp(x.astype(np.float64)).astype(np.float32)
    ref_w = np.tanh(z.astype(np.float64)).astype(np.float32)
    # within 2 float ulp before rounding to the narrow type: equal, or one narrow ulp apart
    ulp_h = np.spacing(np.abs(ref_y.astype(np.float16))).astype(np.float64)
    ulp_b = np.spacing(np.abs(ref_w.astype(ml_dtypes.bfloat16).astype(np.float32))).astype(np.float64) * 2.0**16
    for got, ref, dt, ulp in ((y, ref_y, np.float16, ulp_h), (w, ref_w, ml_dtypes.bfloat16, ulp_b)):
        off = np.abs(got.astype(np.float64) - ref.astype(dt).astype(np.float64))
        assert np.all(off <= ulp), (got[off > ulp][:5], ref[off > ulp][:5])
        assert np.mean(off == 0) > 0.99


# ------------------------------------------------------------------- float16 / bfloat16 storage


@pytest.fixture(scope="module")
def convert_kernel():
    n = T.symbolic("n")

    @T.prim_func
    def main(F: T.Tensor((n,), "float32"), H: T.Tensor((n,), "float16"), B: T.Tensor((n,), "bfloat16"),
             HF: T.Tensor((n,), "float32"), BF: T.Tensor((n,), "float32"), HC: T.Tensor((n,), "float16")):
        with T.Kernel(T.ceildiv(n, BLOCK)) as bx:
            for i in T.Parallel(BLOCK):
                if bx * BLOCK + i < n:
                    H[bx * BLOCK + i] = F[bx * BLOCK + i]  # float -> half, round to nearest even
                    B[bx * BLOCK + i] = F[bx * BLOCK + i]
                    HF[bx * BLOCK + i] = HC[bx * BLOCK + i]  # half -> float, exact
                    BF[bx * BLOCK + i] = B[bx * BLOCK + i]

    return tilewise.compile(main, target="cpu")


def test_float16_conversions_bit_exact(convert_kernel, rng):
    f = np.concatenate([
        rng.integers(0, 1 << 32, size=300_000, dtype=np.uint64).astype(np.uint32).view(np.float32),
        rng.uniform(-70000, 70000, 50_000).astype(np.float32),
        rng.uniform(-1e-4, 1e-4, 50_000).astype(np.float32),  # half denormals
        np.array([65504, 65519.996, 65520, -65520, 2.0**-24, 2.0**-25, 2.0**-25 * 1.0000001, 2.0**-14,
                  np.inf, -np.inf, np.nan, 0.0, -0.0], np.float32),
    ])
    every_half = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    n = max(f.size, every_half.size)
    f = np.resize(f, n)
    hc = np.resize(every_half, n)
    h = np.empty(n, np.float16)
    b = np.empty(n, ml_dtypes.bfloat16)
    hf = np.empty(n, np.float32)
    bf = np.empty(n, np.float32)
    convert_kernel(f, h, b, hf, bf, hc)
    with np.errstate(all="ignore"):
        want_h = f.astype(np.float16)
        want_b = f.astype(ml_dtypes.bfloat16)
        want_hf = hc.astype(np.float32)

    def same(a, b):
        bits = np.uint16 if a.itemsize == 2 else np.uint32
        return (a.view(bits) == b.view(bits)) | (np.isnan(a) & np.isnan(b))

    assert same(h, want_h).all(), f[~same(h, want_h)][:5]
    assert same(b, want_b).all(), f[~same(b, want_b)][:5]
    assert same(hf, want_hf).all(), hc[~same(hf, want_hf)][:5]
    assert same(bf, b.astype(np.float32)).all()


def test_float16_copy_through_double_rounds_once(rng):
    """float64 -> float16 rounds once (not through float)."""
    n = 1024

    @T.prim_func
    def main(D: T.Tensor((n,), "float64"), H: T.Tensor((n,), "float16")):
        with T.Kernel(n // BLOCK) as bx:
            for i in T.Parallel(BLOCK):
                H[bx * BLOCK + i] = D[bx * BLOCK + i]

    k = tilewise.compile(main, target="cpu")
    # halfway between two halves, nudged by less than a float ulp: a double rounding would tie
    base = rng.uniform(1, 2, n).astype(np.float16).astype(np.float64)
    d = base + 2.0**-11 + (rng.integers(0, 2, n) * 2 - 1) * 2.0**-40
    h = np.empty(n, np.float16)
    k(d, h)
    assert (h == d.astype(np.float16)).all()
