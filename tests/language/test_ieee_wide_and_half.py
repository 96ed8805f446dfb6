"""TileLang 0.1.13's IEEE operations on float64 and on the half types (language/float_ops.py):
float64 in "rn" (all but frsqrt) and in the directed modes for ieee_add / ieee_sub (the other
float64 directed operations: test_ieee_directed_f64.py), float16 /
bfloat16 in "rn" only; the combinations TileLang refuses (or tilewise does not do) are errors
naming them. Results are checked bit for bit against exact (fractions) or float64 references."""
from fractions import Fraction

import numpy as np
import pytest
import torch

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError

TARGETS = [("cpu", None), ("cuda", "emulator")]
N = 256


def _run(func, target, backend, *args):
    return tilewise.compile(func, out_idx=[2], target=target, execution_backend=backend)(*args)


def _ops(dtype: str, mode: str, rows: int):
    @T.prim_func
    def k(X: T.Tensor((N,), dtype), Y: T.Tensor((N,), dtype), O: T.Tensor((rows, N), dtype)):
        with T.Kernel(N // 128, threads=128) as bx:
            for i in T.Parallel(128):
                j = bx * 128 + i
                O[0, j] = T.ieee_add(X[j], Y[j], mode)
                O[1, j] = T.ieee_sub(X[j], Y[j], mode)
                if rows > 2:
                    O[2, j] = T.ieee_mul(X[j], Y[j], mode)
                    O[3, j] = T.ieee_fdiv(X[j], Y[j], mode)
                    O[4, j] = T.ieee_frcp(Y[j], mode)
                    O[5, j] = T.ieee_fsqrt(T.abs(X[j]), mode)
                    O[6, j] = T.ieee_fmaf(X[j], Y[j], X[j], mode)
                if rows > 7:
                    O[7, j] = T.ieee_frsqrt(T.abs(Y[j]))

    return k


@pytest.mark.parametrize("target,backend", TARGETS)
def test_float64_round_to_nearest(target, backend, rng):
    x, y = rng.standard_normal(N), rng.standard_normal(N)
    o = _run(_ops("float64", "rn", 7), target, backend, x, y)
    exact_fma = [float(Fraction(a) * Fraction(b) + Fraction(a)) for a, b in zip(x, y)]
    want = np.stack([x + y, x - y, x * y, x / y, 1 / y, np.sqrt(np.abs(x)), exact_fma])
    np.testing.assert_array_equal(o, want)


def _directed64(v: Fraction, mode: str) -> float:
    """v rounded to float64 in a directed mode (v finite and inside float64's range)."""
    t = float(v)  # nearest
    if Fraction(t) == v:
        return t
    above = Fraction(t) > v
    if mode == "ru":
        return t if above else np.nextafter(t, np.inf)
    if mode == "rd":
        return np.nextafter(t, -np.inf) if above else t
    return np.nextafter(t, 0.0) if abs(Fraction(t)) > abs(v) else t


@pytest.mark.parametrize("mode", ["rz", "ru", "rd"])
@pytest.mark.parametrize("target,backend", TARGETS)
def test_float64_directed_add_sub_exact(mode, target, backend, rng):
    x = rng.standard_normal(N) * np.exp2(rng.integers(-60, 60, N))
    y = rng.standard_normal(N) * np.exp2(rng.integers(-60, 60, N))
    y[:8] = -x[:8]  # exact zero sums: -0 in "rd" only
    mx = np.finfo(np.float64).max
    x[8:10], y[8:10] = mx, [mx, -mx]  # the sum overflows; the difference is an exact zero or 2 max
    o = _run(_ops("float64", mode, 2), target, backend, x, y)
    for r, sign in ((0, 1), (1, -1)):
        for i in range(N):
            a, b = Fraction(x[i]), sign * Fraction(y[i])
            got = o[r, i]
            if a + b == 0:
                want = -0.0 if mode == "rd" else 0.0
                assert got == 0 and np.signbit(got) == np.signbit(want), (r, i, got)
            elif abs(a + b) > Fraction(mx):  # overflow: infinity only where the mode rounds away
                away = (mode == "ru" and a + b > 0) or (mode == "rd" and a + b < 0)
                assert got == np.copysign(np.inf if away else mx, 1.0 if a + b > 0 else -1.0), (r, i, got)
            else:
                assert got == _directed64(a + b, mode), (r, i, mode, x[i], y[i], got)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("target,backend", TARGETS)
def test_half_round_to_nearest(dtype, target, backend):
    """Each result is the float64 result rounded once to the type (float64 holds 53 >= 2p + 2 bits,
    so that is the correctly rounded value); fmaf against the exact value."""
    g = torch.Generator().manual_seed(0)
    tdt = getattr(torch, dtype)
    x = torch.randn(N, generator=g).to(tdt)
    y = (torch.randn(N, generator=g) * 4).to(tdt)
    o = _run(_ops(dtype, "rn", 8), target, backend, x, y)
    xd, yd = x.double(), y.double()
    exact_fma = torch.tensor([float(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(a)))
                              for a, b in zip(xd, yd)], dtype=torch.float64)
    want = torch.stack([xd + yd, xd - yd, xd * yd, xd / yd, 1 / yd, xd.abs().sqrt(), exact_fma,
                        1 / yd.abs().sqrt()]).to(tdt)
    torch.testing.assert_close(o, want, rtol=0, atol=0)


def test_float16_frsqrt_correctly_rounded_for_every_input():
    """Every positive finite float16: the result r is the nearest float16 to 1/sqrt(x), checked
    exactly: the midpoints lo, hi around r satisfy lo^2 x <= 1 <= hi^2 x."""
    bits = np.arange(1, 0x7C00, dtype=np.uint16)
    xs = bits.view(np.float16)
    n = len(xs)

    @T.prim_func
    def k(X: T.Tensor((n,), "float16"), O: T.Tensor((n,), "float16")):
        with T.Kernel(1, threads=128) as _:
            for i in T.Parallel(n):
                O[i] = T.ieee_frsqrt(X[i])

    o = tilewise.compile(k, out_idx=[1], target="cpu")(xs)
    for x, r in zip(xs, o):
        fr = Fraction(float(r))
        lo = (fr + Fraction(float(np.nextafter(r, np.float16(0))))) / 2
        hi = (fr + Fraction(float(np.nextafter(r, np.float16(np.inf))))) / 2
        fx = Fraction(float(x))
        assert lo * lo * fx <= 1 <= hi * hi * fx, (x, r)


def _build(fn, dtype):
    @T.prim_func
    def k(A: T.Tensor((128,), dtype), B: T.Tensor((128,), dtype)):
        with T.Kernel(1, threads=128) as _:
            for i in T.Parallel(128):
                B[i] = fn(A[i])

    return tilewise.compile(k, target="cpu")


def test_refusals_name_the_case():
    with pytest.raises(ValueError, match="Invalid rounding mode"):
        T.ieee_add(1.0, 2.0, "invalid_mode")
    for dt in ("float16", "bfloat16"):
        with pytest.raises(CompileError, match="Only rounding mode 'rn' is available for half precision"):
            _build(lambda a: T.ieee_add(a, a, "rz"), dt)
    with pytest.raises(CompileError, match="frsqrt is not supported for float64"):
        _build(T.ieee_frsqrt, "float64")
    with pytest.raises(CompileError, match="floating-point"):
        _build(lambda a: T.ieee_add(a, a), "float8_e4m3")
