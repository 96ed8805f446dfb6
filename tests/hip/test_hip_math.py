"""The HIP target's math library (backend/hip/include/tw_hip_math.h).

The header is plain C++: it is compiled for the host (TW_DEV as `inline`, TW_HIP_MATH_HOST) into
a shared library, and every function is evaluated on ~1e5 inputs (uniform over the interesting
range, log-uniform over the whole exponent range with both signs, special values) and compared
with numpy in float64: errors in ulps of the result type are bounded, special values (NaN, ±inf,
the sign of zero) must match exactly. Then a kernel per function is compiled for gfx942 (the
header's device code: no scratch memory) and run in the emulator against numpy."""
from __future__ import annotations

import ctypes
import math
import shutil
import subprocess

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.backend.hip.clang import INCLUDE_DIR

N = 100_000

UNARY_F32 = ("sin", "cos", "tan", "fast_sin", "fast_cos", "fast_tan", "asin", "acos", "atan", "sinh", "cosh",
             "asinh", "acosh", "atanh", "erf", "log1p", "expm1")
BINARY_F32 = ("pow", "atan2", "hypot", "nextafter")
UNARY_F64 = ("exp", "exp2", "exp10", "log", "log2", "log10", "expm1", "log1p", "tanh", "sigmoid", "sinh", "cosh",
             "asinh", "acosh", "atanh", "atan", "asin", "acos", "fast_exp", "fast_exp10", "fast_log",
             "fast_log2", "fast_log10")
BINARY_F64 = ("atan2", "hypot", "nextafter")

_erf = np.frompyfunc(math.erf, 1, 1)
REFERENCE = {
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
    "sinh": np.sinh, "cosh": np.cosh, "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
    "erf": lambda x: _erf(x).astype(np.float64), "log1p": np.log1p, "expm1": np.expm1, "exp": np.exp,
    "exp2": np.exp2, "exp10": lambda x: np.power(10.0, x), "log": np.log, "log2": np.log2, "log10": np.log10,
    "tanh": np.tanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "pow": np.power, "atan2": np.arctan2, "hypot": np.hypot, "nextafter": np.nextafter,
}  # fmt: skip
for _f in ("sin", "cos", "tan", "exp", "exp10", "log", "log2", "log10"):
    REFERENCE[f"fast_{_f}"] = REFERENCE[_f]

# the ulp bounds asserted, against the unrounded float64 reference for float (evaluated in double,
# the results are the correctly rounded ones but for rare double roundings) and against numpy's own
# float64 results (themselves within an ulp) for double
F32_ULP = 0.501
F32_ULP_ERF = 2.5  # float arithmetic (tw_hip_math.h erf_float; 1.81 measured)
F64_ULP = {"exp": 2, "exp2": 2, "exp10": 2, "log": 2, "log2": 2, "log10": 3, "expm1": 3, "log1p": 3, "tanh": 3,
           "sigmoid": 5, "sinh": 3, "cosh": 2, "asinh": 3, "acosh": 3, "atanh": 3, "atan": 4, "asin": 5,
           "acos": 5, "atan2": 5, "hypot": 2, "nextafter": 0}  # fmt: skip


_SOURCE = r"""
#include <stdint.h>
#define TW_DEV inline
#define TW_HIP_MATH_HOST
#include "tw_hip_math.h"
#define U(T, name) extern "C" void name##_##T(const T* x, T* y, long n) { for (long i = 0; i < n; ++i) y[i] = tw::name(x[i]); }
#define B(T, name) extern "C" void name##_##T(const T* a, const T* b, T* y, long n) { for (long i = 0; i < n; ++i) y[i] = tw::name(a[i], b[i]); }
"""


def _host_compiler() -> str:
    for cc in ("clang++-19", "g++"):
        if shutil.which(cc):
            return cc
    pytest.skip("no host C++ compiler (clang++-19 or g++)")


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    src = _SOURCE + "".join(f"U(float, {f})\n" for f in UNARY_F32) + "".join(f"B(float, {f})\n" for f in BINARY_F32)
    src += "".join(f"U(double, {f})\n" for f in UNARY_F64) + "".join(f"B(double, {f})\n" for f in BINARY_F64)
    d = tmp_path_factory.mktemp("hipmath")
    (d / "m.cpp").write_text(src)
    out = d / "libhipmath.so"
    cmd = [_host_compiler(), "-std=c++20", "-O2", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC",
           f"-I{INCLUDE_DIR}", str(d / "m.cpp"), "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    return ctypes.CDLL(str(out))


def _call(lib, name, dt, *args):
    args = [np.ascontiguousarray(a, dt) for a in args]
    y = np.empty_like(args[0])
    ptr = [a.ctypes.data_as(ctypes.c_void_p) for a in (*args, y)]
    getattr(lib, f"{name}_{np.dtype(dt).name.replace('float32', 'float').replace('float64', 'double')}")(
        *ptr, ctypes.c_long(len(y)))
    return y


def _ulp(ref: np.ndarray, mant_bits: int, min_exp: int) -> np.ndarray:
    """The spacing of the result type at |ref| (ref in float64, not rounded to the type)."""
    _, e = np.frexp(np.abs(ref))
    return np.ldexp(1.0, np.maximum(e - 1 - mant_bits, min_exp))


def _check(got: np.ndarray, ref: np.ndarray, bound: float, what: str, inputs) -> float:
    """ulp error of got (float32 or float64) against the float64 reference; exact special values."""
    f32 = got.dtype == np.float32
    with np.errstate(all="ignore"):
        r_t = ref.astype(got.dtype)  # the reference rounded to the result type (for overflow, NaN)
    g = got.astype(np.float64)
    special = ~np.isfinite(r_t) | ~np.isfinite(g)
    bad = special & ~((np.isnan(r_t) & np.isnan(g)) | (r_t == g))
    zero = (ref == 0) & ~special
    bad |= zero & ((g != 0) | (np.signbit(g) != np.signbit(ref)))
    ok = ~special & ~zero
    err = np.abs(g[ok] - ref[ok]) / _ulp(ref[ok], 23 if f32 else 52, -149 if f32 else -1074)
    worst = float(err.max()) if err.size else 0.0
    if worst > bound:
        i = np.flatnonzero(ok)[int(np.argmax(err))]
        bad[i] = True
    if bad.any():
        i = np.flatnonzero(bad)[:5]
        pytest.fail(f"{what}: max {worst:.3g} ulp (bound {bound}); e.g. inputs {[tuple(a[j] for a in inputs) for j in i]} "
                    f"gave {got[i]} expected {ref[i]}")
    return worst


def _inputs(name: str, dt, rng) -> np.ndarray:
    info = np.finfo(dt)
    lo_exp, hi_exp = (-149, 128) if dt == np.float32 else (-1074, 1024)
    n = N // 2
    mag = np.exp2(rng.uniform(lo_exp, hi_exp, n)) * rng.choice([-1.0, 1.0], n)
    ranges = {"asin": (-1, 1), "acos": (-1, 1), "atanh": (-1, 1), "acosh": (1, 20), "log1p": (-1, 10),
              "erf": (-6, 6), "tanh": (-20, 20), "sigmoid": (-40, 40), "sinh": (-90, 90), "cosh": (-90, 90),
              "expm1": (-40, 90), "exp": (-750, 710), "exp2": (-1080, 1024), "exp10": (-330, 310),
              "log": (0, 1e4), "log2": (0, 1e4), "log10": (0, 1e4)}  # fmt: skip
    lo, hi = ranges.get(name.removeprefix("fast_"), (-10, 10))
    uni = rng.uniform(lo, hi, N - n)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5, 2.0, float(info.max),
                        -float(info.max), float(info.smallest_subnormal), -float(info.smallest_subnormal),
                        float(info.tiny), 1e-30, 100.0, 1000.0, math.pi / 2, math.pi, 1e22, 3e38])
    with np.errstate(over="ignore"):
        return np.concatenate([special, mag, uni]).astype(dt)


@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["float32", "float64"])
def test_unary_against_numpy(lib, dt, rng):
    names = UNARY_F32 if dt == np.float32 else UNARY_F64
    for name in names:
        x = _inputs(name, dt, rng)
        got = _call(lib, name, dt, x)
        with np.errstate(all="ignore"):
            ref = REFERENCE[name](x.astype(np.float64))
        if dt == np.float32:
            bound = F32_ULP_ERF if name == "erf" else F32_ULP
        else:
            bound = F64_ULP[name.removeprefix("fast_")]
        _check(got, ref, bound, f"{name}({np.dtype(dt).name})", (x,))


def test_trig_float_large_arguments(lib, rng):
    """Payne-Hanek: every binade up to FLT_MAX, and the float closest to a multiple of pi/2."""
    x = np.concatenate([np.exp2(rng.uniform(0, 128, N)).astype(np.float32),
                        np.float32([16367173 * 2.0**72, 13176795 * 2.0**-2, 1.5707964, 3.1415927, 4.7123890])])
    for name in ("sin", "cos", "tan"):
        for s in (1, -1):
            _check(_call(lib, name, np.float32, s * x), REFERENCE[name](s * x.astype(np.float64)), F32_ULP,
                   f"{name} large", (s * x,))


def _pairs(dt, rng) -> tuple[np.ndarray, np.ndarray]:
    info = np.finfo(dt)
    sp = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, 0.25,
                   float(info.smallest_subnormal), float(info.max), -float(info.max)])
    a, b = (g.ravel() for g in np.meshgrid(sp, sp))
    n = N // 2
    ea = np.exp2(rng.uniform(-40, 40, n)) * rng.choice([-1.0, 1.0], n)
    eb = np.exp2(rng.uniform(-140, 120, n)) * rng.choice([-1.0, 1.0], n)
    with np.errstate(over="ignore"):
        return np.concatenate([a, ea, eb]).astype(dt), np.concatenate([b, rng.uniform(-40, 40, n),
                                                                       eb * rng.uniform(0.5, 2, n)]).astype(dt)


@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["float32", "float64"])
def test_binary_against_numpy(lib, dt, rng):
    a, b = _pairs(dt, rng)
    names = BINARY_F32 if dt == np.float32 else BINARY_F64
    for name in names:
        got = _call(lib, name, dt, a, b)
        if name == "nextafter":
            with np.errstate(over="ignore"):
                ref = np.nextafter(a, b).astype(np.float64)  # in the type itself
        else:
            with np.errstate(all="ignore"):
                ref = REFERENCE[name](a.astype(np.float64), b.astype(np.float64))
        bound = F32_ULP if dt == np.float32 else F64_ULP[name]
        _check(got, ref, bound, f"{name}({np.dtype(dt).name})", (a, b))


def test_pow_float_integer_exponents(lib, rng):
    """Negative bases with odd and even integer exponents, results near overflow and underflow."""
    a = (rng.uniform(0.5, 2, N) * rng.choice([-1, 1], N)).astype(np.float32)
    b = rng.integers(-200, 200, N).astype(np.float32)
    with np.errstate(all="ignore"):
        _check(_call(lib, "pow", np.float32, a, b), np.power(a.astype(np.float64), b.astype(np.float64)), F32_ULP,
               "pow integer exponents", (a, b))


# ---------------------------------------------------------------- kernels for gfx942
DEVICE_CASES = [(f, "float32") for f in (*UNARY_F32, *BINARY_F32)] + [(f, "float64") for f in (*UNARY_F64, *BINARY_F64)]
DEVICE_CASES += [(f, "float16") for f in ("sin", "erf", "atan2", "pow")]  # through float
_T_NAME = {f"fast_{f}": f"__{f}" for f in ("sin", "cos", "tan", "exp", "exp10", "log", "log2", "log10")}


def _math_kernel(name: str, dtype: str, binary: bool, n: int = 256):
    fn = getattr(T, _T_NAME.get(name, name))

    if binary:
        @T.prim_func
        def k2(A: T.Tensor((n,), dtype), B: T.Tensor((n,), dtype), C: T.Tensor((n,), dtype)):
            with T.Kernel(1, threads=n) as _:
                for i in T.Parallel(n):
                    C[i] = fn(A[i], B[i])

        return k2

    @T.prim_func
    def k1(A: T.Tensor((n,), dtype), C: T.Tensor((n,), dtype)):
        with T.Kernel(1, threads=n) as _:
            for i in T.Parallel(n):
                C[i] = fn(A[i])

    return k1


@pytest.mark.usefixtures("clang19")
@pytest.mark.parametrize("name, dtype", DEVICE_CASES, ids=[f"{f}-{d}" for f, d in DEVICE_CASES])
def test_kernel_for_gfx942(name, dtype, rng):
    binary = name in BINARY_F32
    k = tilewise.compile(_math_kernel(name, dtype, binary), out_idx=[-1], target="hip -arch=gfx942",
                         execution_backend="emulator")
    assert f"tw::{name}(" in k.get_kernel_source()
    usage = k.resource_usage()
    assert usage["scratch_bytes"] == 0 and usage["vgpr_spills"] == 0 and usage["sgpr_spills"] == 0, usage
    lo, hi = {"acosh": (1, 10), "asin": (-1, 1), "acos": (-1, 1), "atanh": (-0.99, 0.99), "log1p": (-0.9, 10)}.get(
        name, (0.01, 10) if "log" in name else (-10, 10))
    args = [rng.uniform(lo, hi, 256).astype(dtype) for _ in range(2 if binary else 1)]
    if name == "pow":
        args[0] = np.abs(args[0])
    with np.errstate(all="ignore"):
        ref = (np.nextafter(*args) if name == "nextafter"
               else REFERENCE[name](*(a.astype(np.float64) for a in args)).astype(dtype))
    rtol = {"float16": 1e-3, "float32": 2e-6, "float64": 1e-14}[dtype]
    np.testing.assert_allclose(k(*args).astype(np.float64), ref.astype(np.float64), rtol=rtol, atol=0)
