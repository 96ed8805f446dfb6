"""float64 T.ieee_mul / ieee_fmaf / ieee_fdiv / ieee_frcp / ieee_fsqrt rounded toward zero, up and
down (language/float_ops.py, ir/directed64.py): on the CPU (the instruction under fesetround), in
the emulator (exact rationals) and through NVRTC in the PTX interpreter (`mul.rz.f64` ...), bit
for bit against an exact reference: each result is checked against the value computed with
fractions.Fraction by the criterion that defines the mode (the result is on the right side of
the exact value and its neighbour toward the exact value is on the wrong side), on random inputs
across the exponent range and on edge inputs: subnormal operands and results, products and
quotients that underflow to zero, overflow (to infinity, or to the largest finite value where the
mode rounds toward zero), signed zeros, infinities and NaN."""
from __future__ import annotations

import ctypes
import ctypes.util
import platform
from fractions import Fraction

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError
from tilewise.ir import directed64

MODES = ["rz", "ru", "rd"]
N = 128
MAX = float(np.finfo(np.float64).max)
TINY = 5e-324  # the smallest subnormal


def _kernel(mode: str):
    @T.prim_func
    def k(X: T.Tensor((N,), "float64"), Y: T.Tensor((N,), "float64"), Z: T.Tensor((N,), "float64"),
          O: T.Tensor((5, N), "float64")):
        with T.Kernel(1, threads=128) as _:
            for i in T.Parallel(N):
                O[0, i] = T.ieee_mul(X[i], Y[i], mode)
                O[1, i] = T.ieee_fmaf(X[i], Y[i], Z[i], mode)
                O[2, i] = T.ieee_fdiv(X[i], Y[i], mode)
                O[3, i] = T.ieee_frcp(Y[i], mode)
                O[4, i] = T.ieee_fsqrt(X[i], mode)

    return k


def _inputs(seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(N) * np.exp2(rng.integers(-500, 500, N).astype(np.float64))
    y = rng.standard_normal(N) * np.exp2(rng.integers(-500, 500, N).astype(np.float64))
    z = rng.standard_normal(N) * np.exp2(rng.integers(-500, 500, N).astype(np.float64))
    z[:64] = -x[:64] * y[:64] * (1 + rng.standard_normal(64) * 2.0**-40)  # fma with cancellation
    edges = [  # (x, y, z)
        (3e-160, 2e-160, 0.0),  # product subnormal, inexact
        (-3e-160, 2e-170, 0.0),  # product below the smallest subnormal: 0 or -TINY
        (3e-170, 2e-170, -0.0),  # product underflows; fma with -0
        (TINY, 0.5, TINY),  # half the smallest subnormal
        (-TINY, 0.75, 0.0),
        (1e300, 1e10, -MAX),  # product overflows; fma back inside the range
        (-1e300, 1e10, 1.0),  # product overflows negatively
        (MAX, 2.0, -MAX),  # fma exactly MAX
        (1.5, TINY, 0.0),  # division by a subnormal overflows; quotient 1.5 / TINY
        (MAX, 0.5, MAX),  # fma overflow
        (0.0, -3.0, 0.0),  # signed zeros: +0 * -3 + +0 = +0 (-0 in rd? no: -0 + +0)
        (-0.0, 2.0, -0.0),  # -0 * 2 + -0 = -0 in every mode
        (1.0, 1.0, -1.0),  # exact zero fma: -0 in rd only
        (2.0, 0.0, 5.0),  # division by +0
        (-0.0, -0.0, 1.0),  # 0/0 NaN, sqrt(-0) = -0
        (np.inf, 2.0, np.inf),
        (-np.inf, 0.0, 1.0),  # inf * 0: NaN
        (np.inf, -np.inf, np.inf),  # fma inf - inf: NaN
        (np.nan, 1.0, 1.0),
        (4.0, np.inf, -np.inf),  # x / inf = 0, rcp(inf) = 0
        (2.0, 3.0, TINY),  # a tiny addend decides the directed rounding of an exact product
        (2.0, 3.0, -TINY),
        (2.0**-1022, 2.0**-52, 0.0),  # exact subnormal product
        (2.0**-1022 * 1.25, 0.3, 0.0),  # subnormal result from a normal operand
        (7.0, 3.0, 0.0),
        (2.0, -7.0, 1e-300),
        (1e-310, 1e10, 0.0),  # subnormal operand
        (-1e-310, 3e-5, 1e-320),
    ]
    for i, (a, b, c) in enumerate(edges):
        x[64 + i], y[64 + i], z[64 + i] = a, b, c
    x[100:110] = np.abs(x[100:110])  # positive square roots of wide-ranged values
    x[110] = 2.0  # irrational square root
    x[111] = 4.0 * 2.0**-1074 * 9  # exact square root of a subnormal (6 * 2**-537)
    x[112] = TINY
    x[113] = MAX
    x[114] = -1.0  # sqrt of a negative: NaN
    return x, y, z


@np.errstate(over="ignore")
def _check(got: float, exact: Fraction, mode: str, where) -> None:
    """got is the rounding of the nonzero finite exact value in mode: on its side, and its
    neighbour toward the exact value beyond it (or got at the end of the finite range)."""
    if exact > Fraction(MAX) or exact < -Fraction(MAX):
        away = (mode == "ru" and exact > 0) or (mode == "rd" and exact < 0)
        want = (np.inf if away else MAX) * (1 if exact > 0 else -1)
        assert got == want, (where, got, want)
        return
    assert np.isfinite(got), (where, got)
    toward = "up" if (mode == "ru" or (mode == "rz" and exact < 0)) else "down"
    g = Fraction(got)
    if toward == "up":
        nb = np.nextafter(got, -np.inf)
        assert g >= exact and (np.isinf(nb) or Fraction(float(nb)) < exact), (where, got, float(exact))
    else:
        nb = np.nextafter(got, np.inf)
        assert g <= exact and (np.isinf(nb) or Fraction(float(nb)) > exact), (where, got, float(exact))
    if got == 0:  # a nonzero value rounded to zero keeps its sign
        assert np.signbit(got) == (exact < 0), where


def _exact_zero_sign(x, y, z, mode) -> bool:
    prod_neg = np.signbit(x) != np.signbit(y)
    if x * y == 0 and z == 0 and prod_neg == np.signbit(z):
        return bool(prod_neg)
    return mode == "rd"


def _check_all(o, x, y, z, mode):
    for i in range(N):
        a, b, c = float(x[i]), float(y[i]), float(z[i])
        cases = [
            (0, (a, b), lambda: Fraction(a) * Fraction(b), np.signbit(a) != np.signbit(b)),
            (1, (a, b, c), lambda: Fraction(a) * Fraction(b) + Fraction(c), _exact_zero_sign(a, b, c, mode)),
            (2, (a, b), lambda: Fraction(a) / Fraction(b), np.signbit(a) != np.signbit(b)),
            (3, (b,), lambda: 1 / Fraction(b), np.signbit(b)),
        ]
        for row, ops, exact_fn, zero_neg in cases:
            got = float(o[row, i])
            special = not all(np.isfinite(ops)) or (row in (2, 3) and ops[-1] == 0)
            if special:  # IEEE's special cases, against numpy's round-to-nearest ones (same there)
                with np.errstate(all="ignore"):
                    fma = c if np.isinf(c) and np.isfinite(a) and np.isfinite(b) else a * b + c
                    fa, fb = np.float64(a), np.float64(b)  # numpy's IEEE division (x / 0 = inf)
                    want = {0: a * b, 1: fma, 2: float(fa / fb), 3: float(1 / fb)}[row]
                assert (np.isnan(got) and np.isnan(want)) or (got == want and np.signbit(got) == np.signbit(want)), \
                    (row, i, ops, got, want)
                continue
            exact = exact_fn()
            if exact == 0:
                assert got == 0 and np.signbit(got) == zero_neg, (row, i, ops, got)
            else:
                _check(got, exact, mode, (row, i, ops, mode))
        got = float(o[4, i])
        if np.isnan(a) or a < 0:
            assert np.isnan(got), (4, i, a, got)
        elif a == 0 or np.isinf(a):
            assert got == a and np.signbit(got) == np.signbit(a), (4, i, a, got)
        else:  # got is the rounding of sqrt(a): compare squares exactly
            g, fa = Fraction(got), Fraction(a)
            up = mode == "ru"
            nb = Fraction(float(np.nextafter(got, -np.inf if up else np.inf)))
            if up:
                assert g * g >= fa and nb * nb < fa, (4, i, a, got)
            else:
                assert g * g <= fa and nb * nb > fa, (4, i, a, got)


@np.errstate(over="ignore")
def _fma_products_that_overflow(x, y, z):
    """Indices whose product overflows but is finite: checked as finite values (above)."""
    return [i for i in range(N) if np.isfinite(x[i]) and np.isfinite(y[i]) and not np.isfinite(x[i] * y[i])]


@pytest.mark.parametrize("mode", MODES)
def test_reference_is_the_rounding_it_claims(mode):
    """ir/directed64.py itself on the edge and random inputs."""
    x, y, z = _inputs(1)
    o = np.stack([directed64.elementwise(op, mode)(*args) for op, args in
                  (("dmul", (x, y)), ("dfma", (x, y, z)), ("ddiv", (x, y)), ("drcp", (y,)), ("dsqrt", (x,)))])
    assert _fma_products_that_overflow(x, y, z)  # the edge cases reach the finite-overflow branch
    _check_all(o, x, y, z, mode)


def _fesetround():
    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    return libm.fesetround


@pytest.mark.parametrize("mode,fe", [("rz", 0xC00), ("ru", 0x800), ("rd", 0x400)])
def test_reference_matches_the_hardware_rounding(mode, fe):
    """numpy's multiply, divide and sqrt on an x86 CPU whose rounding mode (MXCSR) is set by
    fesetround give the same bits as the exact reference."""
    setround = _fesetround()
    if setround is None:
        pytest.skip("the x86 rounding-mode constants")
    x, y, _ = _inputs(2)
    setround(fe)
    try:
        with np.errstate(all="ignore"):
            hw = [x * y, x / y, 1.0 / y, np.sqrt(x)]
    finally:
        setround(0)
    ref = [directed64.elementwise(op, mode)(*args) for op, args in
           (("dmul", (x, y)), ("ddiv", (x, y)), ("drcp", (y,)), ("dsqrt", (x,)))]
    for h, r in zip(hw, ref):
        same = (h.view(np.int64) == r.view(np.int64)) | (np.isnan(h) & np.isnan(r))
        assert same.all(), (mode, x[~same], y[~same], h[~same], r[~same])


TARGETS = [("cpu", None), ("cuda", "emulator"), ("cuda", "ptx")]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("target,backend", TARGETS)
def test_directed_float64_ops(mode, target, backend):
    x, y, z = _inputs(3)
    kernel = tilewise.compile(_kernel(mode), out_idx=[3], target=target, execution_backend=backend)
    o = np.asarray(kernel(x, y, z))
    _check_all(o, x, y, z, mode)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
def test_cuda_uses_the_intrinsics(arch):
    k = tilewise.compile(_kernel("rz"), out_idx=[3], target=f"cuda -arch={arch}", execution_backend="emulator")
    src = k.get_kernel_source()
    for name in ("dmul_rz", "dfma_rz", "ddiv_rz", "drcp_rz", "dsqrt_rz"):
        assert f"tw::{name}(" in src
    sass = k.get_sass()
    assert "DMUL.RZ" in sass and "DFMA.RZ" in sass  # the rounding mode is the instruction's
    assert k.resource_usage()["spill_bytes"] == 0


def test_hip_refuses_by_name():
    with pytest.raises(CompileError, match="dmul_ru.*not available for the HIP target"):
        @T.prim_func
        def k(X: T.Tensor((N,), "float64"), O: T.Tensor((N,), "float64")):
            with T.Kernel(1, threads=128) as _:
                for i in T.Parallel(N):
                    O[i] = T.ieee_mul(X[i], X[i], "ru")

        tilewise.compile(k, target="hip", execution_backend="emulator").get_kernel_source()
