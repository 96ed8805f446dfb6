"""One numerical model for scalar operations (ir/scalar_ops.py): the CPU target (tw_cpu.h), the
emulator (the CUDA thread IR) and constant folding must compute the same value for every operator,
on inputs chosen where the plausible alternatives differ: x / 0 and x % 0 (-1 and x, not 0 or a
trap), the most negative value / -1, shifts by the width or more (0 or the sign fill, not the
count modulo the width), floor vs truncating division of negatives, float -> integer casts out of
range (saturated, not wrapped or INT_MIN), float8 overflow (saturated), float64 -> low precision
(rounded once), integer -> bfloat16 (through float32), fp16 `a*a + b` (rounded after each op, not
fused), NaN in min/max (ignored).

Each kernel computes every operator twice: on run-time inputs (row "O") and on constants, which
the simplifier folds before code generation (row "C"); both run on the CPU target and in the
emulator, and all four must equal an independent reference written below in Python integers or
numpy, and the folder's value of each constant expression (`simplify`, `evaluate`). The CUDA
source of the same kernels goes through NVRTC, and tw_cuda.h's helpers run on the host.

A float32/float64 `a*b + c` written as one expression rounds once everywhere: the IR contracts it
into an fma (transform/contract_fma.py), the folder and `evaluate` fold it so, and NVRTC compiles
with --fmad=false."""
from __future__ import annotations

import functools
import math
import subprocess
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tilewise
import tilewise.language as T
from tilewise.backend.cpu.build import compiler
from tilewise.backend.cuda.toolkit import INCLUDE_DIR
from tilewise.emulator import arith
from tilewise.ir import dtype as dt
from tilewise.ir.evaluate import evaluate
from tilewise.ir.expr import BinOp, Cast, Compare, Const, UnaryOp
from tilewise.ir.simplify import simplify

N = 16  # values per dtype: one thread each



@pytest.fixture(autouse=True)
def _no_ptx_crosscheck(monkeypatch):
    """These tests probe edge values (overflow, NaN) and compare the targets against each other
    themselves (the CPU target still lets g++ contract a multiply-add across statements)."""
    monkeypatch.setenv("TILEWISE_EMULATOR_CROSSCHECK", "")

def _compile_both(func):
    return tilewise.compile(func, target="cpu"), tilewise.compile(func, target="cuda", execution_backend="emulator")


# ---------------------------------------------------------------------------- references


def _wrap(v: int, d) -> int:
    v &= (1 << d.bits) - 1
    return v - (1 << d.bits) if d.is_signed and v >> (d.bits - 1) else v


def _tdiv(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def ref_int(op: str, a: int, b: int, d) -> int:
    """What a GPU computes (and tw_cpu.h / tw_cuda.h define), in Python integers."""
    count = b & ((1 << d.bits) - 1)  # shift counts are unsigned
    if op == "div":
        return _wrap(-1 if b == 0 else _tdiv(a, b), d)
    if op == "truncmod":
        return a if b == 0 else _wrap(a - _tdiv(a, b) * b, d)
    if op == "floordiv":
        return _wrap(-1 if b == 0 else a // b, d)
    if op == "floormod":
        return a if b == 0 else _wrap(a % b, d)
    if op == "shl":
        return 0 if count >= d.bits else _wrap(a << count, d)
    if op == "shr":
        return (-1 if a < 0 else 0) if count >= d.bits else a >> count
    return _wrap({"add": a + b, "sub": a - b, "mul": a * b, "min": min(a, b), "max": max(a, b),
                  "bitand": a & b, "bitor": a | b, "bitxor": a ^ b}[op], d)  # fmt: skip


def _round_to(x, d):
    """float32 values rounded to the float type d; float8 saturates, as cvt.rn.satfinite."""
    npdt = d.numpy
    x = np.asarray(x, np.float32)
    if d.kind == "tfloat":  # nearest, ties away from zero, at 13 bits below float32's mantissa
        m, e = np.frexp(x.astype(np.float64))
        r = np.where(np.isfinite(x), np.ldexp(np.trunc(m * 2.0**11 + np.sign(m) * 0.5) / 2.0**11, e), x)
        with np.errstate(over="ignore"):
            return r.astype(np.float32)
    if d.kind == "float8":
        top = np.float32(ml_dtypes.finfo(npdt).max)
        return np.where(np.isnan(x), np.nan, np.clip(x, -top, top)).astype(npdt)
    with np.errstate(over="ignore"):
        return x.astype(npdt)


def ref_float(op: str, a, b, d):
    """IEEE arithmetic in float32 (float64 for float64), rounded to d after the operation."""
    work = np.float64 if d.bits == 64 else np.float32
    x, y = np.asarray(a, d.numpy).astype(work), np.asarray(b, d.numpy).astype(work)
    with np.errstate(all="ignore"):
        r = {"add": lambda: x + y, "sub": lambda: x - y, "mul": lambda: x * y, "div": lambda: x / y,
             "floordiv": lambda: np.floor(x / y), "floormod": lambda: _floormod(x, y),
             "min": lambda: np.fmin(x, y), "max": lambda: np.fmax(x, y),
             "mul_add": lambda: _mul_add(d, x, y)}[op]()  # fmt: skip
    return _as(d, r)


def _mul_add(d, x, y):
    """x * x + y: float32/float64 round once (the IR contracts it, transform/contract_fma.py),
    narrower types round the product first (their arithmetic is float32 rounded per operation)."""
    if d.bits < 32 or d.kind == "tfloat":
        return _as(d, _as(d, x * x) + y)
    if not (np.isfinite(x) and np.isfinite(y)):
        return x * x + y
    exact = Fraction(float(x)) ** 2 + Fraction(float(y))
    try:
        return np.float64(float(exact))  # rounded to float32 by the caller (exact for these values)
    except OverflowError:
        return np.float64(np.inf if exact > 0 else -np.inf)


def _floormod(x, y):
    """The exact remainder (C's fmod) moved into the divisor's sign: Python's x % y."""
    r = np.fmod(x, y)
    return r + y if r != 0 and (r < 0) != (y < 0) else r


def _as(d, v):
    v = np.asarray(v)
    return v.astype(np.float64) if d.bits == 64 else _round_to(v, d).astype(np.float32)


# ---------------------------------------------------------------------------- binary operators

INT_OPS = ["add", "sub", "mul", "div", "truncmod", "floordiv", "floormod", "shl", "shr", "min", "max",
           "bitand", "bitor", "bitxor"]  # fmt: skip
FLOAT_OPS = ["add", "sub", "mul", "div", "floordiv", "floormod", "min", "max", "mul_add"]


def _apply(op: str, a, b):
    """The IR of `a op b` (operands of one type); mul_add is a * a + b, two roundings."""
    if op == "mul_add":
        return BinOp("add", BinOp("mul", a, a, a.dtype), b, a.dtype)
    return BinOp(op, a, b, a.dtype)


I32_MIN, I32_MAX, I64_MIN = -(2**31), 2**31 - 1, -(2**63)
NAN = float("nan")
# (a, b) pairs: each tells apart two answers some implementation gave
VALUES = {
    "int32": [(7, 0), (-7, 0), (I32_MIN, -1), (-7, 2), (7, -2), (5, 33), (-5, 32), (1, 40), (-8, -1), (7, 31),
              (-8, 31), (123456789, 100), (I32_MAX, 1), (0x40000000, 1), (100, 3), (-100, 7)],
    "int8": [(7, 0), (-7, 0), (-128, -1), (-7, 2), (7, -2), (1, 7), (3, 8), (-3, 9), (-3, 100), (5, -1),
             (127, 1), (-128, 1), (100, 3), (-100, 7), (64, 1), (-1, 127)],
    "int64": [(7, 0), (-7, 0), (I64_MIN, -1), (-7, 2), (7, -2), (5, 64), (-5, 64), (1, 63), (-8, -1), (3, 65),
              (2**40, 2**30), (2**63 - 1, 1), (-(2**40), 3), (123456789123, -1000), (100, 3), (-100, 7)],
    "uint8": [(7, 0), (200, 0), (200, 3), (255, 1), (1, 8), (128, 7), (128, 8), (255, 255), (3, 200),
              (0, 0), (17, 5), (250, 10), (1, 1), (2, 7), (100, 100), (99, 9)],
    "uint32": [(7, 0), (2**32 - 1, 0), (2**31, 31), (2**31, 32), (1, 33), (2**32 - 1, 2**32 - 1), (3, 2**31),
               (2**31 + 5, 7), (100, 3), (0, 5), (12345, 678), (2**32 - 7, 2), (1, 0), (5, 1), (9, 4), (1, 31)],
    # float32: 1e8 / 3 floors to 33333334 (the quotient rounds first), not 33333333 as in double;
    # (1 + 2^-12)^2 - (1 + 2^-11) is 0 rounded per operation, 2^-24 fused into an fma
    "float32": [(1e8, 3.0), (NAN, 1.0), (1.0, NAN), (1e30, 1e30), (1.0, 0.0), (-7.5, 2.0), (7.5, -2.0),
                (1 + 2**-12, -(1 + 2**-11)), (0.1, 0.2), (-1.0, 0.0), (3.0, -0.5), (1e-30, 1e10),
                (2.5, 2.5), (-1e38, 10.0), (5.0, 3.0), (-0.0, 0.0)],
    "float64": [(1e17, 3.0), (NAN, 1.0), (1.0, NAN), (1e300, 1e300), (1.0, 0.0), (-7.5, 2.0), (7.5, -2.0),
                (1 + 2**-27, -(1 + 2**-26)), (0.1, 0.2), (-1.0, 0.0), (3.0, -0.5), (1e-300, 1e10),
                (2.5, 2.5), (-1e308, 10.0), (5.0, 3.0), (-0.0, 0.0)],
    # float16: (1 + 3*2^-10)^2 - 1 is 6*2^-10 rounded after the multiply, 6152*2^-20 in float32 at once
    "float16": [(1 + 3 * 2**-10, -1.0), (NAN, 1.0), (65504.0, 2.0), (1.0, 0.0), (-7.5, 2.0), (7.5, -2.0),
                (0.1, 0.2), (3.0, -0.5), (1000.0, 3.0), (-0.0, 0.0), (2.5, 2.5), (1e-4, 1e-4), (5.0, 3.0),
                (300.0, 300.0), (-1.0, 3.0), (0.5, 0.25)],
    "bfloat16": [(1 + 3 * 2**-7, -1.0), (NAN, 1.0), (3e38, 2.0), (1.0, 0.0), (-7.5, 2.0), (7.5, -2.0),
                 (0.1, 0.2), (3.0, -0.5), (1000.0, 3.0), (-0.0, 0.0), (2.5, 2.5), (1e-4, 1e-4), (5.0, 3.0),
                 (300.0, 300.0), (-1.0, 3.0), (0.5, 0.25)],
    # float8: 448 * 2 saturates to 448 (not NaN); 1.125^2 - 1.25 is 0 per operation, 2^-6 fused
    "float8_e4m3": [(1.125, -1.25), (NAN, 1.0), (448.0, 2.0), (1.0, 0.0), (-7.5, 2.0), (7.5, -2.0),
                    (0.1, 0.2), (3.0, -0.5), (240.0, 3.0), (-0.0, 0.0), (2.5, 2.5), (0.015625, 0.5),
                    (5.0, 3.0), (-448.0, 448.0), (-1.0, 3.0), (0.5, 0.25)],
    # TileLang's 4-bit integers wrap at four bits: -8 / -1 is -8, a count of 4 or more shifts out
    "int4": [(7, 0), (-7, 0), (-8, -1), (-7, 2), (7, -2), (1, 3), (3, 4), (-3, 5), (-3, 7), (5, -1),
             (7, 1), (-8, 1), (6, 3), (-6, 5), (4, 1), (-1, 7)],
    "uint4": [(7, 0), (15, 0), (15, 3), (15, 1), (1, 4), (8, 3), (8, 4), (15, 15), (3, 12), (0, 0),
              (13, 5), (14, 10), (1, 1), (2, 3), (10, 10), (9, 9)],
    # tfloat32 (operands exact in tf32): every result rounds to a 10-bit mantissa, ties away (1 +
    # 2^-10 + 1 is a tie), and a * a + b rounds the product first (only float32 / float64 fuse)
    "tfloat32": [(1 + 2**-10, 1.0), (NAN, 1.0), (1.5 * 2.0**127, 2.0), (1.0, 0.0), (-7.5, 2.0), (7.5, -2.0),
                 (0.75, 0.375), (3.0, -0.5), (1000.0, 3.0), (-0.0, 0.0), (1 + 3 * 2**-10, -1.0),
                 (1.5 * 2**-14, 2**-14), (5.0, 3.0), (-(1 + 2**-10), -1.0), (-1.0, 3.0), (1 + 2**-10, -(1 + 2**-9))],
}  # fmt: skip


@functools.cache
def binary_kernel(name: str):
    """O[k, i] = ops[k](A[i], B[i]) on run-time values; C[k, j] = ops[k] of constants (folded)."""
    d = dt.as_dtype(name)
    ops = FLOAT_OPS if d.is_float else INT_OPS
    pairs = VALUES[name]
    consts = [[_apply(op, Const(a, d), Const(b, d)) for a, b in pairs] for op in ops]
    fns = [functools.partial(_apply, op) for op in ops]
    m = len(ops)

    @T.prim_func
    def binary_ops(A: T.Tensor((N,), name), B: T.Tensor((N,), name), O: T.Tensor((m, N), name),
                   C: T.Tensor((m, N), name)):
        with T.Kernel(1, threads=N) as _:
            for i in T.Parallel(N):
                for k, fn in enumerate(fns):
                    O[k, i] = fn(A[i], B[i])
            for k, row in enumerate(consts):
                for j, e in enumerate(row):
                    C[k, j] = e

    return ops, consts, binary_ops, _compile_both(binary_ops)


def _inputs(name: str):
    d = dt.as_dtype(name)
    pairs = VALUES[name]
    a = np.array([p[0] for p in pairs], np.float64 if d.is_float else object)
    b = np.array([p[1] for p in pairs], np.float64 if d.is_float else object)
    if d.is_float:
        with np.errstate(over="ignore"):
            return a.astype(d.numpy), b.astype(d.numpy)
    return a.astype(d.numpy), b.astype(d.numpy)


def _run(kernels, *inputs_and_outputs):
    """The outputs of the CPU kernel and of the emulator on the same inputs."""
    got = []
    for k in kernels:
        args = [np.array(x, copy=True) for x in inputs_and_outputs]
        k(*args)
        got.append(args)
    return got


def _same(x, y, what: str):
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype.kind == "V" or y.dtype.kind == "V" or x.dtype.kind == "f" or y.dtype.kind == "f":
        np.testing.assert_array_equal(x.astype(np.float64), y.astype(np.float64), err_msg=what)
    else:
        np.testing.assert_array_equal(x.astype(object), y.astype(object), err_msg=what)


@pytest.mark.parametrize("name", list(VALUES))
def test_binary_operators_agree_everywhere(name):
    d = dt.as_dtype(name)
    ops, consts, _, kernels = binary_kernel(name)
    a, b = _inputs(name)
    m = len(ops)
    o, c = np.zeros((m, N), d.numpy), np.zeros((m, N), d.numpy)
    (_, _, o_cpu, c_cpu), (_, _, o_emu, c_emu) = _run(kernels, a, b, o, c)
    for k, op in enumerate(ops):
        if d.is_float:
            want = np.array([ref_float(op, x, y, d) for x, y in zip(a, b)], np.float64)
        else:
            want = np.array([ref_int(op, int(x), int(y), d) for x, y in zip(a, b)], object)
        folded = [simplify(e) for e in consts[k]]
        assert all(isinstance(f, Const) for f in folded), (op, folded)
        evaluated = [evaluate(e, {}, int_dtype=None) for e in consts[k]]
        checks = [("CPU", o_cpu[k]), ("emulator", o_emu[k]), ("CPU, folded", c_cpu[k]),
                  ("emulator, folded", c_emu[k]), ("simplify", [f.value for f in folded]), ("evaluate", evaluated)]
        for what, got in checks:
            _same(got, want, f"{name} {op} ({what})")


def test_distinguishing_values_pinned():
    """The answers themselves, spelled out (the reference above could share a mistake)."""
    def folded(op, a, b, name):
        d = dt.as_dtype(name)
        return simplify(_apply(op, Const(a, d), Const(b, d))).value

    assert folded("div", 7, 0, "int32") == -1 and folded("truncmod", 7, 0, "int32") == 7
    assert folded("floordiv", -7, 0, "int32") == -1 and folded("floormod", -7, 0, "int32") == -7
    assert folded("div", 7, 0, "uint32") == 2**32 - 1
    assert folded("div", I32_MIN, -1, "int32") == I32_MIN and folded("floormod", I32_MIN, -1, "int32") == 0
    assert folded("floordiv", -7, 2, "int32") == -4 and folded("div", -7, 2, "int32") == -3
    assert folded("floormod", 7, -2, "int32") == -1 and folded("truncmod", 7, -2, "int32") == 1
    assert folded("shl", 5, 33, "int32") == 0 and folded("shr", -5, 32, "int32") == -1  # x86: 10 and -5
    assert folded("shl", 3, 8, "int8") == 0 and folded("shr", -3, 100, "int8") == -1
    assert folded("shr", 2**31, 32, "uint32") == 0 and folded("shl", -8, -1, "int32") == 0
    assert folded("floordiv", 1e8, 3.0, "float32") == 33333334.0
    assert folded("max", NAN, 1.0, "float32") == 1.0 and folded("min", 1.0, NAN, "float32") == 1.0
    assert folded("mul_add", 1 + 2**-12, -(1 + 2**-11), "float32") == 2**-24  # one rounding
    assert folded("mul_add", 1 + 3 * 2**-10, -1.0, "float16") == 6 * 2**-10
    assert folded("mul", 448.0, 2.0, "float8_e4m3") == 448.0
    assert folded("add", 0.1, 0.2, "float32") == float(np.float32(0.1) + np.float32(0.2))


# ---------------------------------------------------------------------------- casts

F32_IN = [300.5, -300.7, 3e9, NAN, math.inf, -math.inf, -1e10, 0.99, -0.99, 127.9, -128.9, 255.5, -1.5,
          2.0**31, -(2.0**31), 70000.0, 1e30, 61440.0, 464.0, 2.0**32, 1e19, -0.0, 65520.0, 5e-8]  # fmt: skip
CAST_TO = ["int8", "uint8", "int16", "int32", "uint32", "int64", "uint64", "float8_e4m3", "float8_e5m2",
           "float16", "bfloat16", "bool"]  # fmt: skip


def ref_cast(x: float, to) -> float | int | bool:
    """float32 x converted as cvt does: integers truncate and saturate (NaN: 0); floats round once."""
    if to.is_bool:
        return x != 0
    if to.is_int:
        if math.isnan(x):
            return 0
        lo, hi = (-(2 ** (to.bits - 1)), 2 ** (to.bits - 1) - 1) if to.is_signed else (0, 2**to.bits - 1)
        return lo if x == -math.inf else hi if x == math.inf else min(max(math.trunc(x), lo), hi)
    return float(np.asarray(_round_to(np.float32(x), to)).astype(np.float64))


@functools.cache
def cast_kernel():
    """Row 0: float32 inputs converted at run time; row 1: the same values as folded constants."""
    consts = [[Cast(Const(x, dt.float32), dt.as_dtype(t)) for x in F32_IN] for t in CAST_TO]
    n = len(F32_IN)

    @T.prim_func
    def casts(X: T.Tensor((n,), "float32"), I8: T.Tensor((2, n), "int8"), U8: T.Tensor((2, n), "uint8"),
              I16: T.Tensor((2, n), "int16"), I32: T.Tensor((2, n), "int32"), U32: T.Tensor((2, n), "uint32"),
              I64: T.Tensor((2, n), "int64"), U64: T.Tensor((2, n), "uint64"),
              E4: T.Tensor((2, n), "float8_e4m3"), E5: T.Tensor((2, n), "float8_e5m2"),
              H: T.Tensor((2, n), "float16"), BF: T.Tensor((2, n), "bfloat16"), BO: T.Tensor((2, n), "bool")):
        with T.Kernel(1, threads=32) as _:
            outs = (I8, U8, I16, I32, U32, I64, U64, E4, E5, H, BF, BO)
            for i in T.Parallel(n):
                for k, out in enumerate(outs):
                    out[0, i] = T.Cast(CAST_TO[k], X[i])
            for k, out in enumerate(outs):
                for j, e in enumerate(consts[k]):
                    out[1, j] = e

    return consts, casts, _compile_both(casts)


def test_casts_agree_everywhere():
    consts, _, kernels = cast_kernel()
    n = len(F32_IN)
    x = np.array(F32_IN, np.float32)
    outs = [np.zeros((2, n), dt.as_dtype(t).numpy) for t in CAST_TO]
    for target, got in zip(("CPU", "emulator"), _run(kernels, x, *outs)):
        for k, t in enumerate(CAST_TO):
            to = dt.as_dtype(t)
            want = [ref_cast(float(v), to) for v in x]
            folded = [simplify(e) for e in consts[k]]
            assert all(isinstance(f, Const) for f in folded)
            for what, row in (("run time", got[1 + k][0]), ("folded", got[1 + k][1]),
                              ("simplify", [f.value for f in folded]),
                              ("evaluate", [evaluate(e, {}, int_dtype=None) for e in consts[k]])):  # fmt: skip
                _same(np.asarray(row, np.float64 if to.is_float else object),
                      np.asarray(want, np.float64 if to.is_float else object), f"float32 -> {t} ({target}, {what})")
    # the distinguishing answers, spelled out: 300.5 -> int8 saturates (a C cast on x86 wraps to 44),
    # NaN -> int32 is 0 (x86: INT_MIN), float8 saturates (ml_dtypes: NaN / inf)
    assert ref_cast(300.5, dt.int8) == 127 and ref_cast(NAN, dt.int32) == 0 and ref_cast(3e9, dt.int32) == I32_MAX
    assert ref_cast(70000.0, dt.float8_e5m2) == 57344.0 and ref_cast(math.inf, dt.float8_e4m3) == 448.0


def test_cuda_source_uses_the_defined_helpers(nvrtc_check):
    """The CUDA renderer spells out shifts and float -> int casts through tw_cuda.h's helpers
    (C leaves their out-of-range cases undefined), and NVRTC compiles them."""
    for name in ("int32", "int8", "uint32"):
        _, _, func, (_, emulated) = binary_kernel(name)
        src = emulated.get_kernel_source()
        assert "tw::shl(" in src and "tw::shr(" in src, name
        nvrtc_check(func, archs=("sm_80",))
    _, func, (_, emulated) = cast_kernel()
    src = emulated.get_kernel_source()
    assert "tw::to_int<int8_t>(" in src and "tw::to_int<uint64_t>(" in src
    nvrtc_check(func, archs=("sm_80",))


def _header_part(text: str, first: str, last: str) -> str:
    """The lines of tw_cuda.h from the one starting with `first` up to (not including) `last`."""
    start = text.index(first)
    return text[start : text.index(last, start)]


_HOST_MAIN = r"""
#include <cstdio>
int main() {
  const int32_t ia[] = {7, -7, -2147483647 - 1, -7, 5, -5, 1, -8};
  const int32_t ib[] = {0, 0, -1, 2, 33, 32, 40, -1};
  for (int k = 0; k < 8; ++k)
    std::printf("%d %d %d %d\n", tw::truncdiv(ia[k], ib[k]), tw::truncmod(ia[k], ib[k]),
                tw::shl(ia[k], ib[k]), tw::shr(ia[k], ib[k]));
  const int8_t ca[] = {3, -3, -3, 1};
  const int8_t cb[] = {8, 9, 100, 7};
  for (int k = 0; k < 4; ++k) std::printf("%d %d\n", (int)tw::shl(ca[k], cb[k]), (int)tw::shr(ca[k], cb[k]));
  const float f[] = {300.5f, -300.7f, 3e9f, __builtin_nanf(""), __builtin_inff(), -1e10f, 255.5f, -1.5f};
  for (int k = 0; k < 8; ++k)
    std::printf("%d %d %d %lld %llu\n", (int)tw::to_int<int8_t>(f[k]), (int)tw::to_int<uint8_t>(f[k]),
                tw::to_int<int32_t>(f[k]), (long long)tw::to_int<int64_t>((double)f[k] * 1e10),
                (unsigned long long)tw::to_int<uint64_t>((double)f[k] * 1e10));
}
"""


def test_cuda_header_helpers_on_the_host(tmp_path):
    """tw_cuda.h's division, shift and float -> int helpers, compiled for the host (they are plain
    C++), give the table's answers."""
    text = open(f"{INCLUDE_DIR}/tw_cuda.h").read()
    helpers = (_header_part(text, "template <typename I, typename F> TW_DEV I to_int", "// Binary math:")
               + _header_part(text, "template <typename T> TW_DEV bool is_signed_int", "// Python-style division"))
    src = tmp_path / "helpers.cpp"
    src.write_text("#include <cstdint>\n#define TW_DEV static inline\nnamespace tw {\n" + helpers + "}\n" + _HOST_MAIN)
    exe = tmp_path / "helpers"
    subprocess.run([compiler(), "-O2", "-std=c++17", "-o", str(exe), str(src)], check=True, capture_output=True)
    rows = [[int(v) for v in line.split()] for line in subprocess.run([str(exe)], check=True, capture_output=True,
                                                                       text=True).stdout.splitlines()]
    i32, i8 = dt.int32, dt.int8
    ia, ib = [7, -7, I32_MIN, -7, 5, -5, 1, -8], [0, 0, -1, 2, 33, 32, 40, -1]
    for k, (a, b) in enumerate(zip(ia, ib)):
        assert rows[k] == [ref_int(op, a, b, i32) for op in ("div", "truncmod", "shl", "shr")], (a, b)
    for k, (a, b) in enumerate(zip([3, -3, -3, 1], [8, 9, 100, 7])):
        assert rows[8 + k] == [ref_int("shl", a, b, i8), ref_int("shr", a, b, i8)], (a, b)
    f = np.array([300.5, -300.7, 3e9, NAN, math.inf, -1e10, 255.5, -1.5], np.float32)
    for k, x in enumerate(f):
        big = float(np.float64(x) * 1e10)
        want = [ref_cast(float(x), dt.int8), ref_cast(float(x), dt.uint8), ref_cast(float(x), dt.int32),
                ref_cast(big, dt.int64), ref_cast(big, dt.uint64)]
        assert rows[12 + k] == want, x


# float64 -> low precision rounds once; int32 -> low precision goes through float32 (as the headers do)
F64_IN = [1.0625 + 2**-40, 1 + 2**-8 + 2**-40, 1 + 2**-11 + 2**-40, 1e300, -1e300, NAN, 59392.0 + 2**-30, 0.1]
F64_WANT = {  # e4m3, bfloat16, float16, e5m2
    "float8_e4m3": [1.125, 1.0, 1.0, 448.0, -448.0, NAN, 448.0, 0.1015625],
    "bfloat16": [1.0625, 1.0078125, 1.0, math.inf, -math.inf, NAN, 59392.0, 0.10009765625],
    "float16": [1.0625, 1.00390625, 1.0009765625, math.inf, -math.inf, NAN, 59392.0, 0.0999755859375],
    "float8_e5m2": [1.0, 1.0, 1.0, 57344.0, -57344.0, NAN, 57344.0, 0.09375],
}
I32_IN = [2**25 + 2**17 + 1, 2049, 2**24 + 1, -(2**31), 7, -3, 100000, 1000]
I32_WANT = {
    "float8_e4m3": [448.0, 448.0, 448.0, -448.0, 7.0, -3.0, 448.0, 448.0],
    "bfloat16": [2.0**25, 2048.0, 2.0**24, -(2.0**31), 7.0, -3.0, 99840.0, 1000.0],
    "float16": [math.inf, 2048.0, math.inf, -math.inf, 7.0, -3.0, math.inf, 1000.0],
    "float8_e5m2": [57344.0, 2048.0, 57344.0, -57344.0, 7.0, -3.0, 57344.0, 1024.0],
}
LOWP = list(F64_WANT)


@functools.cache
def widening_kernel():
    n = len(F64_IN)
    consts = [[Cast(Const(x, src), dt.as_dtype(t)) for x in xs] for src, xs in ((dt.float64, F64_IN),
              (dt.int32, I32_IN)) for t in LOWP]  # fmt: skip
    # a float16 literal rounds once from the Python float (not through a float32 literal)
    lit = [Const(1 + 2**-11 + 2**-30, dt.float16), Const(-(1 + 2**-11 + 2**-30), dt.float16)]

    @T.prim_func
    def narrowing(D: T.Tensor((n,), "float64"), I: T.Tensor((n,), "int32"), E4: T.Tensor((4, n), "float8_e4m3"),
                  BF: T.Tensor((4, n), "bfloat16"), H: T.Tensor((4, n), "float16"), E5: T.Tensor((4, n), "float8_e5m2"),
                  L: T.Tensor((2,), "float16")):
        with T.Kernel(1, threads=32) as _:
            outs = (E4, BF, H, E5)
            for i in T.Parallel(n):
                for k, out in enumerate(outs):
                    out[0, i] = T.Cast(LOWP[k], D[i])
                    out[2, i] = T.Cast(LOWP[k], I[i])
            for k, out in enumerate(outs):
                for j, (from_f64, from_i32) in enumerate(zip(consts[k], consts[len(outs) + k])):
                    out[1, j] = from_f64
                    out[3, j] = from_i32
            L[0] = lit[0]
            L[1] = lit[1]

    return consts, _compile_both(narrowing)


def test_narrowing_rounds_once_everywhere():
    consts, kernels = widening_kernel()
    n = len(F64_IN)
    d, i = np.array(F64_IN, np.float64), np.array(I32_IN, np.int32)
    outs = [np.zeros((4, n), dt.as_dtype(t).numpy) for t in LOWP]
    for target, got in zip(("CPU", "emulator"), _run(kernels, d, i, *outs, np.zeros(2, np.float16))):
        for k, t in enumerate(LOWP):
            for row, want, src in ((0, F64_WANT, "float64"), (1, F64_WANT, "float64 folded"),
                                   (2, I32_WANT, "int32"), (3, I32_WANT, "int32 folded")):  # fmt: skip
                _same(got[2 + k][row], np.array(want[t]), f"{src} -> {t} ({target})")
        _same(got[-1], [1.0009765625, -1.0009765625], f"float16 literal ({target})")
    for k, t in enumerate(LOWP):
        _same([simplify(e).value for e in consts[k]], np.array(F64_WANT[t]), f"float64 -> {t} (simplify)")
        _same([simplify(e).value for e in consts[4 + k]], np.array(I32_WANT[t]), f"int32 -> {t} (simplify)")


# ---------------------------------------------------------------------------- one table, three users

PROPERTY_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16",
                   "bfloat16", "float32", "float64", "float8_e4m3", "float8_e5m2"]  # fmt: skip


def _values(d):
    if d.is_int:
        lo, hi = (-(2 ** (d.bits - 1)), 2 ** (d.bits - 1) - 1) if d.is_signed else (0, 2**d.bits - 1)
        small = st.integers(-70, 70).map(lambda v: _wrap(v, d))
        return st.one_of(st.integers(lo, hi), small, st.sampled_from([lo, hi, 0, 1, _wrap(-1, d)]))
    return st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                     st.floats(-300, 300), st.sampled_from([0.0, -0.0, 1.0, 0.5, 1e30, 65504.0, 448.0]))


@st.composite
def scalar_exprs(draw):
    """A constant expression: a binary op, comparison, unary op or cast on random values."""
    d = dt.as_dtype(draw(st.sampled_from(PROPERTY_DTYPES)))
    a, b = Const(draw(_values(d)), d), Const(draw(_values(d)), d)
    ops = INT_OPS if d.is_int else ["add", "sub", "mul", "div", "floordiv", "floormod", "min", "max"]
    kind = draw(st.sampled_from(["binary", "binary", "compare", "unary", "cast"]))
    if kind == "binary":
        return BinOp(draw(st.sampled_from(ops)), a, b, d)
    if kind == "compare":
        return Compare(draw(st.sampled_from(["lt", "le", "gt", "ge", "eq", "ne"])), a, b)
    if kind == "unary":
        return UnaryOp(draw(st.sampled_from(["neg", "bitnot"] if d.is_int else ["neg"])), a)
    return Cast(a, dt.as_dtype(draw(st.sampled_from(PROPERTY_DTYPES + ["bool"]))))


def _emulated(e):
    """The emulator's arithmetic on the expression's constants."""
    if isinstance(e, BinOp):
        return arith.binary_fn(e.op, e.dtype)(arith.const(e.a.value, e.dtype), arith.const(e.b.value, e.dtype))
    if isinstance(e, Compare):
        d = e.a.dtype
        return arith.compare_fn(e.op, d)(arith.const(e.a.value, d), arith.const(e.b.value, d))
    if isinstance(e, UnaryOp):
        return arith.unary_fn(e.op, e.a.dtype)(arith.const(e.a.value, e.a.dtype))
    return arith.cast_fn(e.value.dtype, e.dtype)(arith.const(e.value.value, e.value.dtype))


def _key(v, d):
    """Comparable form of a value of type d (NaN equal to NaN, -0.0 distinct from 0.0)."""
    if d.is_float:
        f = float(np.asarray(v).astype(np.float64))
        return "nan" if math.isnan(f) else (f, math.copysign(1.0, f))
    return int(v) if d.is_int else bool(v)


@settings(max_examples=300, deadline=None)
@given(scalar_exprs())
def test_folding_evaluating_and_emulating_agree(e):
    folded = simplify(e)
    assert isinstance(folded, Const), e
    d = e.dtype
    want = _key(folded.value, d)
    assert _key(evaluate(e, {}, int_dtype=None), d) == want, e
    with np.errstate(all="ignore"):
        assert _key(_emulated(e), d) == want, e
    if isinstance(e, BinOp) and d.is_int:
        assert want == ref_int(e.op, e.a.value, e.b.value, d), e


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(["int32", "int8", "uint32", "float32", "float16"]), st.data())
def test_random_values_on_both_targets_match_folding(name, data):
    """The kernels above on random run-time values: CPU, emulator and the folder agree per element."""
    d = dt.as_dtype(name)
    ops, _, _, kernels = binary_kernel(name)
    pairs = [(data.draw(_values(d)), data.draw(_values(d))) for _ in range(N)]
    with np.errstate(over="ignore"):
        a = np.array([arith.const(p[0], d) for p in pairs], d.numpy)
        b = np.array([arith.const(p[1], d) for p in pairs], d.numpy)
    m = len(ops)
    o = np.zeros((m, N), d.numpy)
    (_, _, o_cpu, _), (_, _, o_emu, _) = _run(kernels, a, b, o, o)
    for k, op in enumerate(ops):
        folded = [simplify(_apply(op, Const(float(x) if d.is_float else int(x), d),
                                  Const(float(y) if d.is_float else int(y), d))).value for x, y in zip(a, b)]
        _same(o_cpu[k], folded, f"{name} {op} (CPU)")
        _same(o_emu[k], folded, f"{name} {op} (emulator)")
