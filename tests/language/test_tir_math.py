"""The TIR math names TileLang re-exports (language/tir_math.py) on every target against numpy:
natively on the CPU, in the CUDA emulator (each run repeated by the PTX interpreter on what NVRTC
compiled), and compiled by NVRTC for sm_80. The vectors are 50 long in tiles of 32 (the last
tile is partly outside)."""
from __future__ import annotations

import functools
import math

import ml_dtypes
import numpy as np
import pytest

import tilewise
import tilewise.language as T

N, BN = 50, 32
GRID = -(-N // BN)

FLOAT_FNS = {
    "atan2": (lambda a, b: T.atan2(a, b), np.arctan2),
    "hypot": (lambda a, b: T.hypot(a, b), np.hypot),
    "copysign": (lambda a, b: T.copysign(a, b), np.copysign),
    "nextafter": (lambda a, b: T.nextafter(a, b), np.nextafter),
    "ldexp": (lambda a, b: T.ldexp(a, T.cast(b * 4, "int32")), lambda a, b: np.ldexp(a, (b * 4).astype(np.int32))),
    "asinh": (lambda a, b: T.asinh(a), np.arcsinh),
    "acosh": (lambda a, b: T.acosh(T.abs(a) + 1), lambda a, b: np.arccosh(np.abs(a) + 1)),
    "atanh": (lambda a, b: T.atanh(a * 0.25), lambda a, b: np.arctanh(a * np.float32(0.25))),
    "fabs": (lambda a, b: T.fabs(a), np.abs),
    "__exp": (lambda a, b: T.__exp(a), np.exp),
    "__exp10": (lambda a, b: T.__exp10(a * 0.5), lambda a, b: np.power(np.float32(10), a * np.float32(0.5))),
    "__log": (lambda a, b: T.__log(T.abs(a) + 0.5), lambda a, b: np.log(np.abs(a) + 0.5)),
    "__log2": (lambda a, b: T.__log2(T.abs(a) + 0.5), lambda a, b: np.log2(np.abs(a) + 0.5)),
    "__log10": (lambda a, b: T.__log10(T.abs(a) + 0.5), lambda a, b: np.log10(np.abs(a) + 0.5)),
    "__sin": (lambda a, b: T.__sin(a), np.sin),
    "__cos": (lambda a, b: T.__cos(a), np.cos),
    "__tan": (lambda a, b: T.__tan(a * 0.5), lambda a, b: np.tan(a * np.float32(0.5))),
    "fast_rcp": (lambda a, b: T.fast_rcp(a), lambda a, b: np.float32(1) / a),
}
TESTS = {"isnan": np.isnan, "isinf": np.isinf, "isfinite": np.isfinite}


@functools.cache
def float_kernel():
    """O[k, i] = the k-th float function of (A[i], B[i]); P[k, i] = the k-th float test of A[i]
    (as 0 / 1) and of A[i] in float16 (row k + 3)."""
    fns = [f for f, _ in FLOAT_FNS.values()]
    tests = [getattr(T, name) for name in TESTS]
    m, t = len(fns), len(tests)

    @T.prim_func
    def float_math(A: T.Tensor((N,), "float32"), B: T.Tensor((N,), "float32"), O: T.Tensor((m, N), "float32"),
                   P: T.Tensor((2 * t, N), "int32")):
        with T.Kernel(GRID, threads=128) as bx:
            for i in T.Parallel(BN):
                for k, fn in enumerate(fns):
                    O[k, bx * BN + i] = fn(A[bx * BN + i], B[bx * BN + i])
                for k, test in enumerate(tests):
                    P[k, bx * BN + i] = T.if_then_else(test(A[bx * BN + i]), 1, 0)
                    P[k + t, bx * BN + i] = T.if_then_else(test(T.cast(A[bx * BN + i], "float16")), 1, 0)

    return float_math


def _float_inputs():
    rng = np.random.default_rng(1)
    a = rng.uniform(-3, 3, N).astype(np.float32)
    b = rng.uniform(-3, 3, N).astype(np.float32)
    a[:6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 70000.0]  # 70000 is infinite in float16
    b[3:5] = [-1.0, 1.0]
    return a, b


def _check_float(o, p, a, b):
    finite = np.isfinite(a)
    with np.errstate(all="ignore"):
        for k, (name, (_, ref)) in enumerate(FLOAT_FNS.items()):
            exp = ref(a, b).astype(np.float32)
            got = o[k]
            sel = finite & np.isfinite(exp)
            tol = 2e-6 if name in ("copysign", "nextafter", "ldexp", "fabs") else 2e-5
            np.testing.assert_allclose(got[sel], exp[sel], rtol=tol, atol=tol, err_msg=name)
            if name in ("copysign", "nextafter", "ldexp", "fabs", "hypot", "atan2"):
                np.testing.assert_array_equal(np.isnan(got), np.isnan(exp), err_msg=name)
        for k, (name, ref) in enumerate(TESTS.items()):
            np.testing.assert_array_equal(p[k], ref(a).astype(np.int32), err_msg=name)
            np.testing.assert_array_equal(p[k + len(TESTS)], ref(a.astype(np.float16)).astype(np.int32), err_msg=name)


@pytest.mark.parametrize("target", ["cpu", "emulator"])
def test_float_math_against_numpy(target, emu):
    func = float_kernel()
    k = tilewise.compile(func, target="cpu") if target == "cpu" else emu(func)
    a, b = _float_inputs()
    o = np.zeros((len(FLOAT_FNS), N), np.float32)
    p = np.zeros((2 * len(TESTS), N), np.int32)
    k(a, b, o, p)
    _check_float(o, p, a, b)


INT_DTYPES = ("int32", "int8", "uint8", "int64", "uint16")


@functools.cache
def int_kernel():
    """For each integer type: Pc = popcount, Cz = clz (int32), Nt = bitwise_not."""
    @T.prim_func
    def bit_counts(X0: T.Tensor((N,), INT_DTYPES[0]), X1: T.Tensor((N,), INT_DTYPES[1]),
                   X2: T.Tensor((N,), INT_DTYPES[2]), X3: T.Tensor((N,), INT_DTYPES[3]),
                   X4: T.Tensor((N,), INT_DTYPES[4]), Pc: T.Tensor((5, N), "int64"),
                   Cz: T.Tensor((5, N), "int32"), Nt: T.Tensor((5, N), "int64")):
        with T.Kernel(GRID, threads=128) as bx:
            for i in T.Parallel(BN):
                for k, X in enumerate((X0, X1, X2, X3, X4)):
                    Pc[k, bx * BN + i] = T.popcount(X[bx * BN + i])
                    Cz[k, bx * BN + i] = T.clz(X[bx * BN + i])
                    Nt[k, bx * BN + i] = T.bitwise_not(X[bx * BN + i])

    return bit_counts


def _int_inputs():
    rng = np.random.default_rng(2)
    xs = []
    for d in INT_DTYPES:
        info = np.iinfo(d)
        x = rng.integers(info.min, info.max, N, dtype=d, endpoint=True)
        x[:4] = [0, 1, info.max, info.min if info.min else 2]
        xs.append(x)
    return xs


def _ref_popcount(x):
    bits = x.dtype.itemsize * 8
    return np.array([bin(int(v) & ((1 << bits) - 1)).count("1") for v in x], np.int64)


def _ref_clz(x):
    bits = x.dtype.itemsize * 8
    return np.array([bits - (int(v) & ((1 << bits) - 1)).bit_length() for v in x], np.int32)


@pytest.mark.parametrize("target", ["cpu", "emulator"])
def test_bit_counts_against_python(target, emu):
    func = int_kernel()
    k = tilewise.compile(func, target="cpu") if target == "cpu" else emu(func)
    xs = _int_inputs()
    pc = np.zeros((5, N), np.int64)
    cz = np.zeros((5, N), np.int32)
    nt = np.zeros((5, N), np.int64)
    k(*xs, pc, cz, nt)
    for r, x in enumerate(xs):
        np.testing.assert_array_equal(pc[r], _ref_popcount(x), err_msg=str(x.dtype))
        np.testing.assert_array_equal(cz[r], _ref_clz(x), err_msg=str(x.dtype))
        np.testing.assert_array_equal(nt[r], (~x).astype(np.int64), err_msg=str(x.dtype))


@functools.cache
def lowp_kernel(dtype: str):
    """Fast math and ldexp on a low-precision type: computed in float32, rounded once."""

    @T.prim_func
    def lowp(A: T.Tensor((N,), dtype), O: T.Tensor((3, N), dtype)):
        with T.Kernel(GRID, threads=128) as bx:
            for i in T.Parallel(BN):
                O[0, bx * BN + i] = T.__exp(A[bx * BN + i])
                O[1, bx * BN + i] = T.ldexp(A[bx * BN + i], 3)
                O[2, bx * BN + i] = T.atan2(A[bx * BN + i], 0.5)

    return lowp


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("target", ["cpu", "emulator"])
def test_low_precision_math(dtype, target, emu):
    func = lowp_kernel(dtype)
    k = tilewise.compile(func, target="cpu") if target == "cpu" else emu(func)
    npdt = np.float16 if dtype == "float16" else ml_dtypes.bfloat16
    a = np.random.default_rng(3).uniform(-2, 2, N).astype(np.float32).astype(npdt)
    o = np.zeros((3, N), npdt)
    k(a, o)
    af = a.astype(np.float32)
    np.testing.assert_allclose(o[0].astype(np.float32), np.exp(af).astype(npdt).astype(np.float32), rtol=1e-2)
    np.testing.assert_array_equal(o[1].astype(np.float32), np.ldexp(af, 3).astype(npdt).astype(np.float32))
    np.testing.assert_allclose(o[2].astype(np.float32), np.arctan2(af, 0.5).astype(npdt).astype(np.float32), rtol=1e-2)


def test_kernels_compile_with_nvrtc(nvrtc_check):
    """The fast-math names are the SFU's approximations (MUFU); popcount and clz are POPC / FLO."""
    nvrtc_check(float_kernel(), expect=("MUFU",), archs=("sm_80",))
    nvrtc_check(int_kernel(), expect=("POPC", "FLO"), archs=("sm_80",))
    nvrtc_check(lowp_kernel("float16"), archs=("sm_80",))


def test_python_values_fold():
    assert T.isnan(float("nan")) and not T.isinf(1.0) and T.isfinite(2) and T.isinf(-math.inf)
    assert T.atan2(1.0, 1.0) == math.atan2(1.0, 1.0)
    assert T.ldexp(1.5, 3) == 12.0
    assert T.bitwise_not(5) == ~5
    assert T.likely(True) is True


def test_bad_operands_name_the_line():
    @T.macro
    def use(fn, x):
        return fn(x)

    cases = [
        (lambda x: T.popcount(x), "float32", "T.popcount: expected an integer"),
        (lambda x: T.clz(x), "float32", "T.clz: expected an integer"),
        (lambda x: T.__exp(x), "int32", "T.__exp only supports floating-point inputs, but got int32"),
        (lambda x: T.__sin(x), "float8_e5m2", "T.__sin only supports floating-point inputs, but got float8_e5m2"),
        (lambda x: T.nextafter(x, x), "float16", "T.nextafter: float16 is not supported"),
        (lambda x: T.ldexp(x, 1.5), "float32", "T.ldexp: the exponent must be an integer"),
    ]
    for fn, dtype, msg in cases:
        with pytest.raises(tilewise.CompileError, match=msg) as info:

            @T.prim_func
            def bad(A: T.Tensor((4,), dtype), B: T.Tensor((4,), dtype)):
                with T.Kernel(1):
                    for i in T.Parallel(4):
                        B[i] = fn(A[i])

        assert "test_tir_math.py" in str(info.value)


def test_fast_math_dtype_error_is_a_type_error():
    """TileLang raises TypeError for T.__exp on a non-float16/32/64 operand; so does tilewise
    (a CompileError too)."""
    from tilewise.ir.expr import Var

    with pytest.raises(TypeError, match=r"T\.__log2 only supports floating-point inputs, but got uint8"):
        T.__log2(Var("v", "uint8"))
    assert T.__exp(Var("v", "bfloat16")).dtype == "bfloat16"


@pytest.mark.parametrize("spelling", ["float8_e4m3fn", "float8_e4m3"])
def test_fast_math_error_spells_e4m3_as_tilelang(spelling):
    """TileLang's e4m3 fp8 type is float8_e4m3fn; the message names it so (TileLang 0.1.13's
    fastmath test matches that), whichever alias the program used."""
    from tilewise.ir.expr import Var

    with pytest.raises(TypeError, match=r"T\.__exp only supports floating-point inputs, but got float8_e4m3fn\b"):
        T.__exp(Var("v", spelling))
    with pytest.raises(TypeError, match=r"but got float8_e5m2\b"):
        T.__cos(Var("v", "float8_e5m2"))
