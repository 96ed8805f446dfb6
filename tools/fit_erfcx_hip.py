"""The two polynomials tilewise/backend/hip/include/tw_hip_math.h evaluates float erf with (in
double), fitted by least squares at Chebyshev nodes and printed in the power basis (coefficients
below 1.2, so Horner's rule is stable):
- erf(x) / x as a polynomial of degree 8 in z = x^2 on [0, 1] (an entire function of z);
- erfc(x) e^(x^2) on [1, 4] as a polynomial of degree 14 in t = (2x - 5) / 3 in [-1, 1].
Both are far more accurate than float's 2^-24 (the printed maximum relative errors).
Run: python tools/fit_erfcx_hip.py (needs mpmath for the reference values)."""
import mpmath as mp
import numpy as np

mp.mp.prec = 120
N = 4000


def fit(f, degree: int, name: str) -> None:
    nodes = np.cos(np.pi * (np.arange(N) + 0.5) / N)  # in [-1, 1]
    cheb = np.polynomial.chebyshev.chebfit(nodes, np.array([f(t) for t in nodes]), degree)
    power = np.polynomial.chebyshev.cheb2poly(cheb)
    check = np.linspace(-1, 1, 1001)
    ref = np.array([f(t) for t in check])
    err = np.max(np.abs(np.polynomial.polynomial.polyval(check, power) / ref - 1))
    print(f"// {name}: max relative error {err:.2g}")
    print(", ".join(float(v).hex() for v in power[::-1]))


def erf_over_x(t: float) -> float:  # z = (t + 1) / 2 in [0, 1]
    z = (t + 1) / 2
    x = mp.sqrt(z)
    return float(mp.erf(x) / x) if z > 0 else float(2 / mp.sqrt(mp.pi))


def erfcx(t: float) -> float:  # x = (3t + 5) / 2 in [1, 4]
    x = (3 * t + 5) / 2
    return float(mp.erfc(x) * mp.exp(x * x))


fit(erf_over_x, 6, "erf(x)/x in t = 2 x^2 - 1")
fit(erfcx, 12, "erfc(x) e^(x^2) in t = (2x - 5) / 3")
