"""The T namespace as a TileLang user writes it, on the CPU target, checked against numpy."""
from __future__ import annotations

import ast
import functools
import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tilewise
import tilewise.language as T
from tilewise.ir.expr import Expr
from tilewise.ir.stmt import Stmt
from tilewise.ir.visitor import walk


def cpu(func, **kw):
    return tilewise.compile(func, target="cpu", **kw)


# ------------------------------------------------------------------------------- T.Kernel


def test_kernel_one_dim_binds_a_single_name():
    @T.prim_func
    def k(O: T.Tensor((5,), "int32")):
        with T.Kernel(5, threads=64) as bx:
            O[bx] = bx * 10

    o = np.zeros(5, np.int32)
    cpu(k)(o)
    np.testing.assert_array_equal(o, np.arange(5) * 10)


def test_kernel_two_dims_and_thread_tuple():
    @T.prim_func
    def k(O: T.Tensor((3, 4), "int32")):
        with T.Kernel(4, 3, threads=(32, 4)) as (bx, by):
            O[by, bx] = bx + 10 * by

    o = np.zeros((3, 4), np.int32)
    cpu(k)(o)
    np.testing.assert_array_equal(o, np.arange(4)[None, :] + 10 * np.arange(3)[:, None])


def test_kernel_three_dims():
    @T.prim_func
    def k(O: T.Tensor((2, 3, 4), "int32")):
        with T.Kernel(4, 3, 2, threads=[8, 2, 2]) as (bx, by, bz):
            O[bz, by, bx] = bx + 10 * by + 100 * bz

    o = np.zeros((2, 3, 4), np.int32)
    cpu(k)(o)
    ref = np.arange(4)[None, None, :] + 10 * np.arange(3)[None, :, None] + 100 * np.arange(2)[:, None, None]
    np.testing.assert_array_equal(o, ref)


def test_kernel_grid_from_symbolic_dim_and_is_cpu_keyword():
    n = T.symbolic("n")

    @T.prim_func
    def k(A: T.Tensor((n,), "float32"), B: T.Tensor((n,), "float32")):
        with T.Kernel(T.ceildiv(n, 4), is_cpu=True) as bx:
            for i in T.Parallel(4):
                if bx * 4 + i < n:
                    B[bx * 4 + i] = A[bx * 4 + i] + 1

    kern = cpu(k, out_idx=-1)
    for size in (1, 4, 7, 13):
        a = np.arange(size, dtype=np.float32)
        np.testing.assert_array_equal(kern(a), a + 1)


# ------------------------------------------------------------------------------- memory


def test_alloc_var_store_read_index_and_init():
    N = 10

    @T.prim_func
    def k(A: T.Tensor((N,), "float32"), O: T.Tensor((6,), "float32")):
        with T.Kernel(1) as _:
            acc = T.alloc_var("float32", init=0.5)
            cnt = T.alloc_var("int32")
            cnt = 0
            best = T.alloc_var(T.float32, init=-T.infinity("float32"))
            for i in T.serial(N):
                acc = acc + A[i]
                cnt += 1
                best[0] = T.max(best[0], A[i])
            O[0] = acc
            O[1] = cnt
            O[2] = cnt[0] * 2
            O[3] = best
            y = acc * 2  # a read of the var, bound to a name
            acc = 0
            O[4] = y
            O[5] = acc

    a = np.random.default_rng(1).standard_normal(N).astype(np.float32)
    o = np.zeros(6, np.float32)
    cpu(k)(a, o)
    s = 0.5 + a.sum(dtype=np.float32)
    np.testing.assert_allclose(o, [s, N, 2 * N, a.max(), 2 * s, 0], rtol=1e-5)


def test_parallel_over_shared_and_fragment_tiles():
    M, N, BM, BN = 20, 12, 8, 4

    @T.prim_func
    def k(A: T.Tensor((M, N), "float32"), B: T.Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(N, BN), T.ceildiv(M, BM), threads=128) as (bx, by):
            s = T.alloc_shared((BM, BN), "float32")
            f = T.alloc_fragment((BM, BN), "float32")
            loc = T.alloc_local((BN,), "float32")
            T.copy(A[by * BM, bx * BN], s)
            for i, j in T.Parallel(BM, BN):
                f[i, j] = s[i, j] * 2
            for j in T.Parallel(BN):
                loc[j] = f[0, j]
            for i, j in T.Parallel(BM, BN):
                s[i, j] = f[i, j] + loc[j]
            T.copy(s, B[by * BM, bx * BN])

    a = np.random.default_rng(2).standard_normal((M, N)).astype(np.float32)
    b = cpu(k, out_idx=[1])(a)
    ref = 2 * a + 2 * a[(np.arange(M) // BM) * BM][:, :]
    np.testing.assert_allclose(b, ref, rtol=1e-6)


# ------------------------------------------------------------------------------- loops


def test_loop_forms():
    @T.prim_func
    def k(A: T.Tensor((16,), "float32"), O: T.Tensor((64,), "float32")):
        with T.Kernel(1) as _:
            loc = T.alloc_local((4,), "float32")
            for i in T.serial(4):
                O[i] = A[i]
            for i in T.serial(4, 8):
                O[i] = A[i] * 2
            for i in T.serial(8, 16, 3):  # 8, 11, 14
                O[i] = -1.0
            for i in range(2, 12, 4):  # 2, 6, 10
                loc[i // 4] = A[i]
            for i in T.unroll(3):
                O[16 + i] = loc[i]
            for i, j in T.grid(2, 3):
                O[20 + i * 3 + j] = i * 10 + j
            for i in T.vectorized(4):
                O[28 + i] = A[i] + A[i + 4]
            for i in T.Pipelined(4, num_stages=2, order=[0], stage=[0]):
                O[32 + i] = A[15 - i]
            for i in T.Pipelined(2, 5, num_stages=0):
                O[36 + i] = i
            for i in range(3):
                O[42 + i] = i + 0.5
            for i in range(10, 4, -2):  # 10, 8, 6
                O[35 + i] = i
            for i in T.serial(3, step=2):  # 0, 2
                O[60 + i] = 7.0

    a = np.arange(16, dtype=np.float32) + 1
    o = np.zeros(64, np.float32)
    cpu(k)(a, o)
    ref = np.zeros(64, np.float32)
    ref[0:4] = a[0:4]
    ref[4:8] = a[4:8] * 2
    ref[[8, 11, 14]] = -1
    loc = np.array([a[2], a[6], a[10]])
    ref[16:19] = loc
    for i in range(2):
        for j in range(3):
            ref[20 + i * 3 + j] = i * 10 + j
    ref[28:32] = a[0:4] + a[4:8]
    ref[32:36] = a[15 - np.arange(4)]
    ref[38:41] = [2, 3, 4]
    ref[42:45] = [0.5, 1.5, 2.5]
    ref[[45, 43, 41]] = [10, 8, 6]
    ref[[60, 62]] = 7
    np.testing.assert_array_equal(o, ref)


def test_loop_with_symbolic_bound_and_step():
    n = T.symbolic("n")

    @T.prim_func
    def k(A: T.Tensor((n,), "int32")):
        with T.Kernel(1) as _:
            for i in T.serial(1, n, 3):
                A[i] = i
            for i in range(0, n, 5):
                A[i] = A[i] + 100

    kern = cpu(k)
    for size in (1, 2, 9, 17):
        a = np.zeros(size, np.int32)
        kern(a)
        ref = np.zeros(size, np.int32)
        ref[1::3] = np.arange(size)[1::3]
        ref[0::5] += 100
        np.testing.assert_array_equal(a, ref)


def test_while_loop_and_break():
    @T.prim_func
    def k(O: T.Tensor((8,), "int32")):
        with T.Kernel(1) as _:
            i = T.alloc_var("int32", init=0)
            while i < 8:
                O[i] = i * i
                i += 1
            for j in T.serial(8):
                if j == 5:
                    break
                O[j] = O[j] + 1

    o = np.zeros(8, np.int32)
    cpu(k)(o)
    ref = np.arange(8) ** 2
    ref[:5] += 1
    np.testing.assert_array_equal(o, ref)


# ------------------------------------------------------------------------------- control flow


def test_device_if_else_chains():
    n = T.symbolic("n")

    @T.prim_func
    def k(A: T.Tensor((n,), "float32"), B: T.Tensor((n,), "float32")):
        with T.Kernel(T.ceildiv(n, 8)) as bx:
            for i in T.Parallel(8):
                g = bx * 8 + i
                if g < n:
                    if A[g] > 1:
                        B[g] = 1.0
                    elif A[g] < -1 or A[g] == 0:
                        B[g] = -1.0
                    else:
                        B[g] = A[g] * 0.5
                    if not (A[g] >= 0):
                        B[g] = B[g] - 10

    a = np.random.default_rng(3).uniform(-3, 3, 41).astype(np.float32)
    a[[3, 7]] = 0
    b = cpu(k, out_idx=1)(a)
    ref = np.where(a > 1, 1.0, np.where((a < -1) | (a == 0), -1.0, a * 0.5)).astype(np.float32)
    ref = np.where(a >= 0, ref, ref - 10)
    np.testing.assert_allclose(b, ref)


def _const_flag_kernel(flag: bool, mode: str):
    @T.prim_func
    def k(A: T.Tensor((8,), "float32"), B: T.Tensor((8,), "float32")):
        with T.Kernel(1) as _:
            for i in T.Parallel(8):
                if flag:
                    B[i] = A[i] * 2
                else:
                    B[i] = A[i] * 3
                if mode == "add" and flag:
                    B[i] = B[i] + 1
                B[i] = B[i] + (100.0 if mode == "add" else -100.0)

    return k


@pytest.mark.parametrize("flag,mode", [(True, "add"), (False, "sub")])
def test_python_if_on_closure_constants_is_decided_while_parsing(flag, mode):
    f = _const_flag_kernel(flag, mode)
    text = str(f)
    assert " if " not in text and "if_then_else" not in text and "\n        if" not in text, text
    a = np.arange(8, dtype=np.float32)
    b = cpu(f, out_idx=1)(a)
    ref = a * 2 + 1 + 100 if flag else a * 3 - 100
    np.testing.assert_array_equal(b, ref)


def test_conditional_expression_on_device_values_becomes_select():
    @T.prim_func
    def k(A: T.Tensor((6,), "float32"), B: T.Tensor((6,), "float32")):
        with T.Kernel(1) as _:
            for i in T.Parallel(6):
                B[i] = A[i] if A[i] > 0 else -A[i] * 2
                B[i] = B[i] + (1 if i % 2 == 0 else 0)

    assert "if_then_else" in str(k)
    a = np.array([-2, -1, 0, 1, 2, 3], np.float32)
    b = cpu(k, out_idx=1)(a)
    np.testing.assert_array_equal(b, np.where(a > 0, a, -a * 2) + (np.arange(6) % 2 == 0))


def test_names_bound_to_expressions_and_rebinding():
    @T.prim_func
    def k(A: T.Tensor((8,), "float32"), B: T.Tensor((8,), "float32")):
        with T.Kernel(1) as _:
            for i in T.serial(8):
                x = A[i] * 2
                x = x + 1  # rebinding reads the old value
                j = 7 - i  # a pure index expression
                y = A[j]
                x = x * y
                B[i] = x

    a = np.arange(8, dtype=np.float32) + 1
    b = cpu(k, out_idx=1)(a)
    np.testing.assert_array_equal(b, (a * 2 + 1) * a[::-1])


def test_a_bound_load_keeps_its_value_after_the_buffer_changes():
    @T.prim_func
    def k(A: T.Tensor((4,), "float32"), B: T.Tensor((4,), "float32")):
        with T.Kernel(1) as _:
            for i in T.serial(4):
                old = A[i]
                A[i] = 0.0
                B[i] = old

    a = np.arange(4, dtype=np.float32) + 1
    b = cpu(k, out_idx=1)(a.copy())
    np.testing.assert_array_equal(b, np.arange(4) + 1)


def test_augmented_assignment_on_elements():
    @T.prim_func
    def k(F: T.Tensor((6,), "float32"), I: T.Tensor((9,), "int32")):
        with T.Kernel(1) as _:
            F[0] += 1.5
            F[1] -= 2
            F[2] *= 3
            F[3] /= 4
            F[4] **= 2
            F[5] //= 2
            I[0] += 5
            I[1] //= 3
            I[2] %= 4
            I[3] <<= 2
            I[4] >>= 1
            I[5] &= 6
            I[6] |= 8
            I[7] ^= 5
            I[8] *= -2

    f = np.array([1, 2, 3, 4, 5, -7], np.float32)
    i = np.array([1, -7, -7, 3, -9, 13, 1, 12, 4], np.int32)
    rf, ri = f.copy(), i.copy()
    cpu(k)(f, i)
    rf += [1.5, -2, 0, 0, 0, 0]
    rf[2] *= 3
    rf[3] /= 4
    rf[4] **= 2
    rf[5] //= 2
    ri[0] += 5
    ri[1] //= 3
    ri[2] %= 4
    ri[3] <<= 2
    ri[4] >>= 1
    ri[5] &= 6
    ri[6] |= 8
    ri[7] ^= 5
    ri[8] *= -2
    np.testing.assert_allclose(f, rf, rtol=1e-6)
    np.testing.assert_array_equal(i, ri)


# ------------------------------------------------------------------------------- macros and helpers


@T.macro
def _scale_tile(src: T.SharedBuffer((8, 4), "float32"), dst: T.FragmentBuffer((8, 4), "float32"), s: T.float32):
    for i, j in T.Parallel(8, 4):
        dst[i, j] = src[i, j] * s


@T.macro
def _bump(loc: T.LocalBuffer((2,), "float32"), k: T.int32):
    loc[0] = loc[0] + k
    return k * 2


@T.macro
def _first(A: T.Tensor((16, 4), "float32"), row):
    return A[row, 0]


def _helper(x, y):
    return x * 2 + y


def test_macros_with_every_annotation_kind_and_python_helpers():
    @T.prim_func
    def k(A: T.Tensor((16, 4), "float32"), B: T.Tensor((16, 4), "float32")):
        with T.Kernel(2) as bx:
            s = T.alloc_shared((8, 4), "float32")
            f = T.alloc_fragment((8, 4), "float32")
            loc = T.alloc_local((2,), "float32")
            loc[0] = 0.0
            T.copy(A[bx * 8, 0], s)
            _scale_tile(s, f, 3.0)
            r = _bump(loc, bx + 1)
            r2 = _bump(loc, k=2)
            for i, j in T.Parallel(8, 4):
                f[i, j] = _helper(f[i, j], loc[0]) + r + r2 + _first(A, 1)
            T.copy(f, B[bx * 8, 0])

    a = np.random.default_rng(4).standard_normal((16, 4)).astype(np.float32)
    b = cpu(k, out_idx=1)(a)
    bx = np.repeat(np.arange(2), 8)[:, None]
    ref = (a * 3) * 2 + (bx + 1 + 2) + (bx + 1) * 2 + 4 + a[1, 0]
    np.testing.assert_allclose(b, ref, rtol=1e-5)


def test_macro_loop_names_do_not_clash_with_the_callers():
    @T.macro
    def fill_row(O, r, v):
        for i in T.serial(4):
            O[r, i] = v + i

    @T.prim_func
    def k(O: T.Tensor((4, 4), "int32")):
        with T.Kernel(1) as _:
            for i in T.serial(4):
                fill_row(O, i, i * 10)

    text = str(k)
    assert "for i in" in text and "for i_1 in" in text, text
    o = np.zeros((4, 4), np.int32)
    cpu(k)(o)
    np.testing.assert_array_equal(o, np.arange(4)[:, None] * 10 + np.arange(4)[None, :])


def test_macro_scalar_parameter_casts_device_values():
    @T.macro
    def as_float(x: T.float32):
        return x / 2

    @T.prim_func
    def k(O: T.Tensor((3,), "float32")):
        with T.Kernel(3) as bx:
            O[bx] = as_float(bx)

    o = np.zeros(3, np.float32)
    cpu(k)(o)
    np.testing.assert_array_equal(o, [0, 0.5, 1.0])


# ------------------------------------------------------------------------------- math intrinsics

_UNARY = {
    "exp": np.exp, "exp2": np.exp2, "exp10": lambda v: 10.0**v, "log": np.log, "log2": np.log2,
    "log10": np.log10, "log1p": np.log1p, "expm1": np.expm1, "sqrt": np.sqrt,
    "rsqrt": lambda v: 1 / np.sqrt(v), "tanh": np.tanh, "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
    "erf": np.vectorize(__import__("math").erf), "floor": np.floor, "ceil": np.ceil, "trunc": np.trunc,
    "round": np.rint, "nearbyint": np.rint,  # T.round: ties to even by default (TileLang 0.1.13)
    "sin": np.sin, "cos": np.cos,
    "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh,
    "rcp": lambda v: 1 / v, "abs": np.abs,
}  # fmt: skip
_POSITIVE_ONLY = {"log", "log2", "log10", "log1p", "sqrt", "rsqrt"}
_UNIT_ONLY = {"asin", "acos"}
_BINARY = {
    "max": np.maximum, "min": np.minimum, "pow": lambda a, b: np.abs(a) ** b, "fmod": np.fmod,
    "floordiv": lambda a, b: np.floor(a / b), "floormod": lambda a, b: a - np.floor(a / b) * b,
    "ceildiv": lambda a, b: np.ceil(a / b),
}  # fmt: skip


def test_every_math_function_is_tested():
    import tilewise.language.math as tm

    public = {
        n for n, v in vars(tm).items()
        if callable(v) and not n.startswith("_") and getattr(v, "__module__", "") == tm.__name__ and getattr(T, n, None) is v
    }  # fmt: skip
    covered = set(_UNARY) | set(_BINARY) | {
        "if_then_else", "Select_", "cast", "Cast", "reinterpret", "infinity", "max_value", "min_value", "truncdiv",
        "truncmod", "clamp", "dp4a", "And", "Or", "Not", "bitwise_and", "bitwise_or", "bitwise_xor",
        "shift_left", "shift_right",
    }  # fmt: skip
    assert public <= covered, f"untested: {sorted(public - covered)}"


@functools.cache
def _math_kernel(dtype: str):
    n = T.symbolic("n")
    names = list(_UNARY)
    bnames = list(_BINARY)

    @T.prim_func
    def k(
        X: T.Tensor((n,), dtype),
        P: T.Tensor((n,), dtype),
        Y: T.Tensor((len(names), n), dtype),
        Z: T.Tensor((len(bnames), n), dtype),
    ):
        with T.Kernel(T.ceildiv(n, 16)) as bx:
            for i in T.Parallel(16):
                g = bx * 16 + i
                if g < n:
                    x = X[g]
                    for f in names:  # a Python loop: unrolled while parsing
                        arg = T.abs(x) if f in _POSITIVE_ONLY else (x if f not in _UNIT_ONLY else x / 4)
                        Y[names.index(f), g] = getattr(T, f)(arg)
                    Z[0, g] = T.max(x, P[g])
                    Z[1, g] = T.min(x, P[g])
                    Z[2, g] = T.pow(T.abs(x), P[g])
                    Z[3, g] = T.fmod(x, P[g])
                    Z[4, g] = T.floordiv(x, P[g])
                    Z[5, g] = T.floormod(x, P[g])
                    Z[6, g] = T.ceildiv(x, P[g])

    return cpu(k)


@pytest.mark.parametrize("dtype,tol", [("float32", 2e-6), ("float64", 1e-12), ("float16", 2e-3), ("bfloat16", 1.6e-2)])
def test_math_intrinsics_elementwise(dtype, tol):
    from tilewise.ir.dtype import as_dtype

    npdt = as_dtype(dtype).numpy
    rng = np.random.default_rng(5)
    x = rng.uniform(-3.5, 3.5, 53).astype(npdt)
    x[:4] = np.array([-2.5, -0.5, 0.5, 1.5], np.float32).astype(npdt)  # rounding ties
    p = rng.uniform(0.5, 2.0, 53) * rng.choice([-1, 1], 53)
    p = p.astype(npdt)
    y = np.zeros((len(_UNARY), 53), npdt)
    z = np.zeros((len(_BINARY), 53), npdt)
    _math_kernel(dtype)(x, p, y, z)
    xd, pd = x.astype(np.float64), p.astype(np.float64)
    for row, (name, ref_fn) in enumerate(_UNARY.items()):
        arg = np.abs(xd) if name in _POSITIVE_ONLY else (xd / 4 if name in _UNIT_ONLY else xd)
        if dtype in ("float16", "bfloat16"):
            arg = arg.astype(npdt).astype(np.float64)  # the kernel computes x / 4 in its own type
        ref = ref_fn(arg)
        got = y[row].astype(np.float64)
        np.testing.assert_allclose(got, ref, rtol=tol * 4, atol=tol * 4, err_msg=f"T.{name} on {dtype}")
    for row, (name, ref_fn) in enumerate(_BINARY.items()):
        ref = ref_fn(xd, pd)
        got = z[row].astype(np.float64)
        if name in ("floordiv", "ceildiv"):  # exact up to the rounding of the quotient
            ok = (got == ref) | (np.abs(xd / pd - np.round(xd / pd)) < tol * 8)
            assert ok.all(), f"T.{name} on {dtype}: {got[~ok]} vs {ref[~ok]}"
            continue
        np.testing.assert_allclose(got, ref, rtol=tol * 8, atol=tol * 8, err_msg=f"T.{name} on {dtype}")


def test_math_on_python_constants_folds_while_parsing():
    assert T.exp(0.0) == 1.0
    assert T.max(3, 7, 5) == 7
    assert T.ceildiv(-7, 2) == -3 and T.ceildiv(7, -2) == -3
    assert T.floordiv(-7, 2) == -4 and T.floormod(-7, 2) == 1
    assert T.abs(-3) == 3
    assert T.if_then_else(True, 1, 2) == 1


@functools.cache
def _int_kernel():
    n = T.symbolic("n")
    rows = 21

    @T.prim_func
    def k(A: T.Tensor((n,), "int32"), B: T.Tensor((n,), "int32"), O: T.Tensor((rows, n), "int32")):
        with T.Kernel(T.ceildiv(n, 16)) as bx:
            for i in T.Parallel(16):
                g = bx * 16 + i
                if g < n:
                    a = A[g]
                    b = B[g]
                    O[0, g] = T.floordiv(a, b)
                    O[1, g] = T.floormod(a, b)
                    O[2, g] = a // b
                    O[3, g] = a % b
                    O[4, g] = T.ceildiv(a, b)
                    O[5, g] = T.clamp(a, -3, 4)
                    O[6, g] = a & b
                    O[7, g] = a | b
                    O[8, g] = a ^ b
                    O[9, g] = a << 2
                    O[10, g] = a >> 1
                    O[11, g] = ~a
                    O[12, g] = T.dp4a(a * 12345, b * 6789, 7)
                    O[13, g] = T.reinterpret(T.cast(a, "float32"), "int32")
                    O[14, g] = T.max(a, b)
                    O[15, g] = T.min(a, b, 0)
                    O[16, g] = T.truncdiv(a, b)
                    O[17, g] = T.truncmod(a, b)
                    O[18, g] = T.if_then_else(a > b, a, b * 2)
                    O[19, g] = T.abs(a) + T.ceildiv(a, 4) * 1000
                    O[20, g] = (
                        T.bitwise_and(a, 12) + T.bitwise_or(a, 1) * 3 + T.bitwise_xor(a, b) * 5
                        + T.shift_left(T.abs(a), 1) * 7 + T.shift_right(a, 2) * 11
                    )  # fmt: skip

    return cpu(k)


def _dp4a(x, y, c):
    xb = x.astype(np.int32).view(np.int8).reshape(-1, 4).astype(np.int32)
    yb = y.astype(np.int32).view(np.int8).reshape(-1, 4).astype(np.int32)
    return (xb * yb).sum(1) + c


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 70), st.integers(0, 2**31 - 1))
def test_integer_intrinsics_use_python_semantics(size, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-60, 60, size).astype(np.int32)
    b = (rng.integers(1, 9, size) * rng.choice([-1, 1], size)).astype(np.int32)
    o = np.zeros((21, size), np.int32)
    _int_kernel()(a, b, o)
    td = (np.abs(a) // np.abs(b)) * np.sign(a) * np.sign(b)
    refs = [
        a // b, a % b, a // b, a % b, -(-a // b), np.clip(a, -3, 4), a & b, a | b, a ^ b, a << 2, a >> 1, ~a,
        _dp4a(a * 12345, b * 6789, 7), a.astype(np.float32).view(np.int32), np.maximum(a, b),
        np.minimum(np.minimum(a, b), 0), td, a - td * b, np.where(a > b, a, b * 2), np.abs(a) + -(-a // 4) * 1000,
        (a & 12) + (a | 1) * 3 + (a ^ b) * 5 + (np.abs(a) << 1) * 7 + (a >> 2) * 11,
    ]  # fmt: skip
    for row, ref in enumerate(refs):
        np.testing.assert_array_equal(o[row], ref, err_msg=f"row {row}")


def test_limits_casts_reinterpret_and_logic():
    @T.prim_func
    def k(A: T.Tensor((4,), "float32"), F: T.Tensor((12,), "float32"), I: T.Tensor((10,), "int32")):
        with T.Kernel(1) as _:
            F[0] = T.infinity("float32")
            F[1] = -T.infinity(T.float16)
            F[2] = T.max_value("float32")
            F[3] = T.min_value("float32")
            F[4] = T.max_value("float16")
            F[5] = T.min_value("bfloat16")
            F[6] = A[0].astype("float16")
            F[7] = T.cast(T.cast(A[1], "bfloat16"), "float32")
            F[8] = T.reinterpret(T.reinterpret(A[2], "int32") + 1, "float32")
            F[9] = T.Cast("float32", T.Cast("int8", A[3]))  # TVM's argument order
            F[10] = T.if_then_else(T.And(A[0] > 0, A[1] > 0, T.Not(A[2] > 100)), 1.0, 0.0)
            F[11] = T.if_then_else(T.Or(A[0] > 100, A[1] < 0), 1.0, 0.0)
            I[0] = T.max_value("int32")
            I[1] = T.min_value("int32")
            I[2] = T.cast(T.max_value("int8"), "int32") + T.cast(T.min_value("uint8"), "int32")
            I[3] = T.cast(A[0] * 10, "int32")  # truncation toward zero
            I[4] = T.cast(-A[0] * 10, "int32")
            I[5] = T.cast(T.max_value("uint16"), "int32")
            I[6] = T.reinterpret("int32", A[2])
            I[7] = T.cast(A[3], "int32") * T.int32(3)
            I[8] = T.cast(T.cast(300, "uint8"), "int32")  # wraps
            I[9] = T.cast(A[0] > 1, "int32") + T.cast(A[0] > 0, "int32")

    a = np.array([1.37, 2.71, 3.14, -5.9], np.float32)
    f = np.zeros(12, np.float32)
    i = np.zeros(10, np.int32)
    cpu(k)(a, f, i)
    import ml_dtypes

    assert f[0] == np.inf and f[1] == -np.inf
    assert f[2] == np.finfo(np.float32).max and f[3] == -np.finfo(np.float32).max
    assert f[4] == 65504.0 and f[5] == -float(ml_dtypes.finfo(ml_dtypes.bfloat16).max)
    assert f[6] == np.float32(np.float16(a[0]))
    assert f[7] == np.float32(a[1].astype(ml_dtypes.bfloat16))
    assert f[8] == (a[2:3].view(np.int32) + 1).view(np.float32)[0]
    assert f[9] == -5.0
    assert f[10] == 1.0 and f[11] == 0.0
    np.testing.assert_array_equal(
        i, [2**31 - 1, -(2**31), 127, 13, -13, 65535, a[2:3].view(np.int32)[0], -15, 300 % 256, 2]
    )


# ------------------------------------------------------------------------------- dynamic shapes, views, scalars


@functools.cache
def _dynamic_tile_kernel():
    M, N = T.symbolic("M"), T.dynamic("N")

    @T.prim_func
    def k(A: T.Tensor((M, N), "float32"), B: T.Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(N, 8), T.ceildiv(M, 8)) as (bx, by):
            s = T.alloc_shared((8, 8), "float32")
            T.copy(A[by * 8, bx * 8], s)
            for i, j in T.Parallel(8, 8):
                s[i, j] = s[i, j] * 2 + 1
            T.copy(s, B[by * 8, bx * 8])

    return cpu(k, out_idx=-1)


def test_one_compiled_kernel_serves_several_shapes():
    kern = _dynamic_tile_kernel()
    rng = np.random.default_rng(6)
    for shape in [(1, 1), (3, 5), (8, 8), (17, 9), (2, 40)]:
        a = rng.standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(kern(a), a * 2 + 1, rtol=1e-6)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40))
def test_dynamic_shapes_that_do_not_divide_the_tile(m, n):
    a = np.random.default_rng(m * 100 + n).standard_normal((m, n)).astype(np.float32)
    np.testing.assert_allclose(_dynamic_tile_kernel()(a), a * 2 + 1, rtol=1e-6)


def test_views_alias_global_and_shared_buffers():
    @T.prim_func
    def k(A: T.Tensor((4, 8), "float32"), B: T.Tensor((32,), "float32"), C: T.Tensor((4, 8), "int32")):
        with T.Kernel(1) as _:
            flat = T.view(A, (32,))
            bits = T.view(A, dtype="int32")
            s = T.alloc_shared((4, 8), "float32")
            T.copy(A, s)
            s2 = T.reshape(s, (8, 4))
            for i in T.serial(32):
                s2[i // 4, i % 4] = s2[i // 4, i % 4] + 1  # writes through the view ...
            for i in T.serial(32):
                B[i] = flat[i] + s[i // 8, i % 8]  # ... are seen through the base
            for i, j in T.Parallel(4, 8):
                C[i, j] = bits[i, j]

    a = np.random.default_rng(7).standard_normal((4, 8)).astype(np.float32)
    b = np.zeros(32, np.float32)
    c = np.zeros((4, 8), np.int32)
    cpu(k)(a, b, c)
    np.testing.assert_allclose(b, 2 * a.ravel() + 1, rtol=1e-6)
    np.testing.assert_array_equal(c, a.view(np.int32))


def test_view_of_a_symbolic_global_tensor():
    n = T.symbolic("n")

    @T.prim_func
    def k(A: T.Tensor((n, 4), "float32"), B: T.Tensor((n * 4,), "float32")):
        with T.Kernel(1) as _:
            flat = T.view(A, (n * 4,))
            for i in T.serial(n * 4):
                B[i] = flat[i]

    kern = cpu(k, out_idx=1)
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(kern(a), a.ravel())


def test_scalar_parameters():
    @T.prim_func
    def k(A: T.Tensor((8,), "float32"), n: T.int32, scale: T.float32, lo: T.float16, big: T.int64):
        with T.Kernel(1) as _:
            for i in T.serial(n):
                A[i] = A[i] * scale + lo + T.cast(big // 1000000000, "float32")

    kern = cpu(k)
    a = np.ones(8, np.float32)
    kern(a, 5, 2.5, 0.25, 3 * 10**9)
    np.testing.assert_array_equal(a, [5.75] * 5 + [1] * 3)


# ------------------------------------------------------------------------------- spans, printing, dumps


def _all_nodes(stmt):
    nodes = []
    walk(stmt, lambda n: nodes.append(n) if isinstance(n, (Expr, Stmt)) else None)
    return nodes


def _spans_kernel():
    @T.prim_func
    def spans(A: T.Tensor((16, 16), "float32"), B: T.Tensor((16, 16), "float32")):
        with T.Kernel(2, 2) as (bx, by):
            s = T.alloc_shared((8, 8), "float32")
            f = T.alloc_fragment((8, 8), "float32")
            T.copy(A[by * 8, bx * 8], s)
            for i, j in T.Parallel(8, 8):
                f[i, j] = T.exp(s[i, j]) if i > j else s[i, j]
            T.copy(f, B[by * 8, bx * 8])

    return spans


def test_every_ir_node_carries_the_users_file_and_line():
    f = _spans_kernel()
    lines, first = inspect.getsourcelines(_spans_kernel)
    this_file = inspect.getsourcefile(_spans_kernel)
    nodes = _all_nodes(f.body)
    assert len(nodes) > 30
    for n in nodes:
        assert n.span is not None, f"{type(n).__name__} {n!r} has no span"
        assert n.span.file == this_file
        assert first <= n.span.line < first + len(lines), (n, n.span)
    # the copy statement points at its own line
    copies = [n for n in nodes if type(n).__name__ == "Copy"]
    assert copies and "T.copy(A[by * 8, bx * 8], s)" in copies[0].span.source
    lowered = tilewise.lower(f, target="cpu").lowered_func
    for n in _all_nodes(lowered.body):
        assert n.span is not None and n.span.file == this_file, f"lowered {type(n).__name__} {n!r} has no span"


def test_printed_ir_is_readable_python():
    f = _spans_kernel()
    text = str(f)
    ast.parse(text)  # valid Python syntax
    for piece in (
        "@T.prim_func",
        "def spans(A: T.Tensor((16, 16), 'float32'), B: T.Tensor((16, 16), 'float32')):",
        "with T.Kernel(2, 2, threads=128) as (bx, by):",
        "s = T.alloc_shared((8, 8), 'float32')",
        "f = T.alloc_fragment((8, 8), 'float32')",
        "for i in T.Parallel(8):",
        "T.exp(s[i, j])",
        "A[by * 8:by * 8 + 8, bx * 8:bx * 8 + 8]",
    ):
        assert piece in text, f"{piece!r} not in\n{text}"
    assert f.script() == text
    assert repr(f) == text


def test_dump_ir_writes_one_file_per_pass(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEWISE_DUMP_IR", str(tmp_path))
    f = _spans_kernel()
    tilewise.lower(f, target="cpu")
    from tilewise.ir.machine import CPU
    from tilewise.transform.pipeline import loop_passes

    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == len(loop_passes(CPU)) + 1, files
    assert files[0] == "spans.00_input.py"
    for i, (name, _) in enumerate(loop_passes(CPU), 1):
        assert f"spans.{i:02d}_{name}.py" in files
    assert "T.copy" in (tmp_path / "spans.00_input.py").read_text()
    assert "T.copy" not in (tmp_path / files[-1]).read_text()
    for p in tmp_path.iterdir():
        ast.parse(p.read_text())


def test_dump_ir_also_for_a_cached_kernel(tmp_path, monkeypatch):
    f = _spans_kernel()
    tilewise.compile(f, target="cpu")  # now cached
    monkeypatch.setenv("TILEWISE_DUMP_IR", str(tmp_path))
    tilewise.compile(_spans_kernel(), target="cpu")
    assert (tmp_path / "spans.00_input.py").is_file()


def test_printed_ir_of_every_statement_kind_is_valid_python():
    @T.prim_func
    def every(A: T.Tensor((8, 8), "float32"), B: T.Tensor((8,), "int64"), n: T.int32):
        with T.Kernel(2, 2, 2, threads=(4, 2)) as (bx, by, bz):
            v = T.alloc_var("int32", init=3)
            loc = T.alloc_local((4,), "float16")
            s = T.alloc_shared((8, 8), "float32")
            flat = T.view(s, (64,))
            x = A[bx, by] * 2
            while v < n:
                v += 1
                if v > 6:
                    break
            for i in T.Pipelined(4, num_stages=2, order=[0], stage=[0]):
                loc[i] = T.float16(1.5) + T.cast(-A[i, 0], "float16")
            for i in T.unroll(2):
                B[i] = T.int64(2**40) + (~T.cast(v, "int64"))
            for i in T.vectorized(4):
                flat[i] = T.if_then_else(not (x > 0) and bz == 0, x, -x) + T.exp2(A[0, i])
            T.fill(s, 0)

    text = str(every)
    ast.parse(text)
    for piece in ("while v[0] < n:", "break", "T.Pipelined(4, num_stages=2, order=[0], stage=[0])",
                  "T.unroll(2)", "T.vectorized(4)", "flat = T.view(s, (64,), 'float32')",
                  "v = T.alloc_var('int32', init=3)", "loc = T.alloc_local((4,), 'float16')",
                  "T.int64(1099511627776) + ~T.cast(v[0], 'int64')", "x: T.float32 = A[bx, by] * 2.0",
                  "T.if_then_else(not (x > 0.0) and bz == 0, x, -x)", "with T.Kernel(2, 2, 2, threads=(4, 2))",
                  "loc[i] = T.float16(1.5) + T.cast(-A[i, 0], 'float16')"):  # fmt: skip
        assert piece in text, f"{piece!r} not in\n{text}"
    lowered = tilewise.lower(every, target="cpu").lowered_func
    ast.parse(str(lowered))
    b = np.zeros(8, np.int64)
    cpu(every)(np.ones((8, 8), np.float32), b, 10)
    np.testing.assert_array_equal(b[:2], [2**40 - 8] * 2)  # v stops at 7: ~7 == -8
