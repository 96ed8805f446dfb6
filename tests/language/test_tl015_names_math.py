"""TileLang 0.1.15's arithmetic names (language/float_ops.py, packed_math.py, int_ops.py) against
exact numpy / fractions references, on the CPU target and in the emulator (the PTX interpreter
repeats every emulator run, conftest.py)."""
from fractions import Fraction

import numpy as np
import pytest
from conftest import nvrtc_check

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError

TARGETS = [("cpu", None), ("cuda", "emulator")]
N = 256


def _run(func, out_idx, target, backend, *args):
    return tilewise.compile(func, out_idx=out_idx, target=target, execution_backend=backend)(*args)


def _exact_fma32(x, y, z):
    return np.array([np.float32(float(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))))
                     for a, b, c in zip(x, y, z)], np.float32)


def _float_ops():
    @T.prim_func
    def k(X: T.Tensor((N,), "float32"), Y: T.Tensor((N,), "float32"), Z: T.Tensor((N,), "float32"),
          O: T.Tensor((9, N), "float32")):
        with T.Kernel(N // 128, threads=128) as bx:
            for i in T.Parallel(128):
                j = bx * 128 + i
                O[0, j] = T.fma(X[j], Y[j], Z[j])
                O[1, j] = T.fmul(X[j], Y[j]) + Z[j]  # the product rounded on its own: no fusion
                O[2, j] = T.ieee_add(X[j] * Y[j], Z[j])
                O[3, j] = T.ieee_sub(X[j] * Y[j], Z[j])
                O[4, j] = T.ieee_mul(X[j], Y[j]) + Z[j]
                O[5, j] = T.ieee_fdiv(X[j], Y[j]) + T.ieee_fmaf(X[j], Y[j], Z[j]) * 0
                O[6, j] = T.ieee_frcp(Y[j])
                O[7, j] = T.ieee_fsqrt(T.abs(Y[j]))
                O[8, j] = T.ieee_frsqrt(T.abs(X[j]))

    return k


@pytest.mark.parametrize("target,backend", TARGETS)
def test_fma_fmul_and_ieee_round_to_nearest(target, backend, rng):
    x, y, z = (rng.standard_normal(N).astype(np.float32) for _ in range(3))
    o = _run(_float_ops(), [3], target, backend, x, y, z)
    p = x * y  # float32: rounded once
    np.testing.assert_array_equal(o[0], _exact_fma32(x, y, z))
    np.testing.assert_array_equal(o[1], p + z)
    np.testing.assert_array_equal(o[2], p + z)
    np.testing.assert_array_equal(o[3], p - z)
    np.testing.assert_array_equal(o[4], p + z)
    np.testing.assert_array_equal(o[5], x / y)
    np.testing.assert_array_equal(o[6], np.float32(1) / y)
    np.testing.assert_array_equal(o[7], np.sqrt(np.abs(y)))
    np.testing.assert_array_equal(o[8], (1 / np.sqrt(np.abs(x).astype(np.float64))).astype(np.float32))


def test_fma_is_one_ffma_and_fmul_stays_a_multiply():
    nvrtc_check(_float_ops(), expect=["FFMA", "FMUL"])


def test_rounding_mode_and_type_errors():
    with pytest.raises(CompileError, match="Invalid rounding mode"):
        _build_with(lambda a: T.ieee_mul(a, a, "rx"), "float32")
    with pytest.raises(CompileError, match="frsqrt is not supported for float64"):  # float64 directed: test_ieee_directed_f64.py
        _build_with(T.ieee_frsqrt, "float64")
    with pytest.raises(CompileError, match="floating-point"):
        _build_with(lambda a: T.fma(a, a, a), "int32")


def _directed(mode):
    @T.prim_func
    def k(X: T.Tensor((N,), "float32"), Y: T.Tensor((N,), "float32"), Z: T.Tensor((N,), "float32"),
          O: T.Tensor((7, N), "float32")):
        with T.Kernel(N // 128, threads=128) as bx:
            for i in T.Parallel(128):
                j = bx * 128 + i
                O[0, j] = T.ieee_add(X[j], Y[j], mode)
                O[1, j] = T.ieee_sub(X[j], Y[j], mode)
                O[2, j] = T.ieee_mul(X[j], Y[j], mode)
                O[3, j] = T.ieee_fmaf(X[j], Y[j], Z[j], mode)
                O[4, j] = T.ieee_fdiv(X[j], Y[j], mode)
                O[5, j] = T.ieee_frcp(Y[j], rounding_mode=mode)
                O[6, j] = T.ieee_fsqrt(T.abs(Z[j]), rounding_mode=mode)

    return k


def _round_directed(side, t, mode):
    """t (a float32 next to the exact value) moved to the mode's float32, side = sign(exact - t)."""
    if mode == "ru" and side > 0:
        return np.nextafter(t, np.float32(np.inf))
    if mode == "rd" and side < 0:
        return np.nextafter(t, np.float32(-np.inf))
    if mode == "rz" and ((t > 0 and side < 0) or (t < 0 and side > 0)):
        return np.nextafter(t, np.float32(0))
    return t


def _exact(v: Fraction, mode, zero_sum=False):
    t = np.float32(float(v))
    if v == 0 and zero_sum:  # IEEE 754: an exact zero sum is -0 only when rounding down
        return np.float32(-0.0) if mode == "rd" else np.float32(0.0)
    return _round_directed((v > Fraction(float(t))) - (v < Fraction(float(t))), t, mode)


def _exact_sqrt(a: float, mode):
    t = np.float32(np.sqrt(a))
    sq = Fraction(float(t)) ** 2
    return _round_directed((Fraction(a) > sq) - (Fraction(a) < sq), t, mode)


@pytest.mark.parametrize("mode", ["rz", "ru", "rd"])
@pytest.mark.parametrize("target,backend", TARGETS)
def test_ieee_directed_rounding_is_exact(mode, target, backend, rng):
    """Each result bit for bit against the exact value rounded in the mode (fractions)."""
    x, y, z = ((rng.standard_normal(N) * np.exp2(rng.integers(-30, 30, N))).astype(np.float32) for _ in range(3))
    y[:8] = x[:8]  # exact zero differences
    y[8:16] = -x[8:16]  # exact zero sums
    F = [[Fraction(float(v)) for v in a] for a in (x, y, z)]
    want = np.array([
        [_exact(a + b, mode, zero_sum=True) for a, b in zip(F[0], F[1])],
        [_exact(a - b, mode, zero_sum=True) for a, b in zip(F[0], F[1])],
        [_exact(a * b, mode) for a, b in zip(F[0], F[1])],
        [_exact(a * b + c, mode, zero_sum=True) for a, b, c in zip(*F)],
        [_exact(a / b, mode) for a, b in zip(F[0], F[1])],
        [_exact(1 / b, mode) for b in F[1]],
        [_exact_sqrt(abs(float(c)), mode) for c in z]], np.float32)
    o = _run(_directed(mode), [3], target, backend, x, y, z)
    np.testing.assert_array_equal(o.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("target,backend", TARGETS)
def test_ieee_directed_rounding_at_the_edges(target, backend):
    mx, tiny = np.finfo(np.float32).max, np.float32(1e-45)
    x = np.zeros(N, np.float32)
    y = np.ones(N, np.float32)
    z = np.ones(N, np.float32)
    x[:4], y[:4], z[:4] = [mx, tiny, 0.0, np.inf], [mx, 0.5, -0.0, 1], [1, 1, 0.0, 1]
    with np.errstate(all="ignore"):
        rz, ru, rd = (_run(_directed(m), [3], target, backend, x, y, z) for m in ("rz", "ru", "rd"))
    assert rz[0, 0] == mx and ru[0, 0] == np.inf and rd[0, 0] == mx  # overflow
    assert ru[0, 1] == np.nextafter(np.float32(0.5), np.float32(1)) and rd[0, 1] == 0.5  # a subnormal's nudge
    assert np.signbit(rd[2, 2]) and not np.signbit(ru[3, 2])  # 0 * -0 = -0 in all modes; -0 + 0: +0 unless rd
    assert np.signbit(rd[3, 2]) and rz[0, 3] == np.inf and rz[1, 3] == np.inf  # infinities pass


def _build_with(fn, dtype):
    @T.prim_func
    def k(A: T.Tensor((4,), dtype), B: T.Tensor((4,), dtype)):
        with T.Kernel(1, threads=4):
            for i in T.Parallel(4):
                B[i] = fn(A[i])

    return k


def _exact_rsqrt_is_below_midpoint(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Whether 1/sqrt(x) < the midpoint between r and the next float32 up: m^2 x > 1, decided in
    integers (x and the midpoint are dyadic rationals)."""
    out = []
    for xv, rv in zip(x.tolist(), r.tolist()):
        m = (Fraction(rv) + Fraction(float(np.nextafter(np.float32(rv), np.float32(np.inf))))) / 2
        out.append(m * m * Fraction(xv) > 1)
    return np.array(out)


def test_ieee_frsqrt_float64_evaluation_is_correctly_rounded(rng):
    """The float64 form rounds to the float32 nearest 1/sqrt(x): never above the midpoint to the
    next value up nor below the one to the next value down (checked exactly on a sample of inputs
    over [1, 4), which covers every binade pair by scaling with powers of 4)."""
    bits = rng.integers(np.float32(1).view(np.uint32), np.float32(4).view(np.uint32), 20000, dtype=np.uint32)
    x = bits.view(np.float32)
    r = (1 / np.sqrt(x.astype(np.float64))).astype(np.float32)
    assert _exact_rsqrt_is_below_midpoint(x, r).all()
    lower = np.nextafter(r, np.float32(0))
    assert not _exact_rsqrt_is_below_midpoint(x, lower).any()


# ------------------------------------------------------------------ packed x2


def _packed(dtype):
    M = 64

    @T.prim_func
    def k(A: T.Tensor((2 * M,), dtype), B: T.Tensor((2 * M,), dtype), C: T.Tensor((2 * M,), dtype),
          O: T.Tensor((7, 2 * M), dtype)):
        with T.Kernel(1, threads=M):
            for t in T.Parallel(M):  # native CPU code; one pair per thread on CUDA
                i = t * 2
                O[0, i:i + 2] = T.add2(A[i:i + 2], B[i:i + 2])
                O[1, i:i + 2] = T.sub2(A[i:i + 2], B[i:i + 2])
                O[2, i:i + 2] = T.mul2(A[i:i + 2], B[i:i + 2])
                O[3, i:i + 2] = T.fma2(A[i:i + 2], B[i:i + 2], C[i:i + 2])
                O[4, i:i + 2] = T.max2(A[i:i + 2], B[i:i + 2])
                O[5, i:i + 2] = T.min2(A[i:i + 2], B[i:i + 2])
                O[6, i:i + 2] = T.abs2(A[i:i + 2])

    return k


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("target,backend", TARGETS)
def test_packed_x2_ops(dtype, target, backend, rng):
    import ml_dtypes

    npdt = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}[dtype]
    a, b, c = (rng.standard_normal(128).astype(npdt) for _ in range(3))
    o = _run(_packed(dtype), [3], target, backend, a, b, c)
    f = [v.astype(np.float64) for v in (a, b, c)]
    want = [f[0] + f[1], f[0] - f[1], f[0] * f[1], f[0] * f[1] + f[2], np.maximum(f[0], f[1]),
            np.minimum(f[0], f[1]), np.abs(f[0])]
    for k, w in enumerate(want):  # each lane rounded once from the exact value (float64 is exact here)
        np.testing.assert_array_equal(o[k].astype(np.float64), w.astype(npdt).astype(np.float64), err_msg=str(k))


def test_packed_x2_on_vector_values_from_ldg(rng):
    @T.prim_func
    def k(A: T.Tensor((64,), "float32"), B: T.Tensor((64,), "float32"), C: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=32):
            t = T.get_thread_binding()
            a = T.reinterpret(T.ldg64(A[t * 2:t * 2 + 2]), T.float32x2)
            b = T.reinterpret(T.ldg64(B[t * 2:t * 2 + 2]), T.float32x2)
            C[t * 2:t * 2 + 2] = T.fma2(a, b, a)

    a, b = rng.standard_normal(64).astype(np.float32), rng.standard_normal(64).astype(np.float32)
    c = _run(k, [2], "cuda", "emulator", a, b)
    np.testing.assert_array_equal(c, _exact_fma32(a, b, a))


def test_packed_x2_refuses_mixed_and_unpacked_operands():
    with pytest.raises(CompileError, match="same dtype"):
        @T.prim_func
        def k(A: T.Tensor((4,), "float32"), B: T.Tensor((4,), "float16"), C: T.Tensor((4,), "float32")):
            with T.Kernel(1, threads=1):
                C[0:2] = T.add2(A[0:2], B[0:2])
    with pytest.raises(CompileError, match="two contiguous"):
        @T.prim_func
        def k2(A: T.Tensor((4,), "float32"), C: T.Tensor((4,), "float32")):
            with T.Kernel(1, threads=1):
                C[0:2] = T.abs2(A[0:3])
    with pytest.raises(CompileError, match="expected dtype"):
        @T.prim_func
        def k3(A: T.Tensor((4,), "int32"), C: T.Tensor((4,), "int32")):
            with T.Kernel(1, threads=1):
                C[0:2] = T.abs2(A[0:2])


# ------------------------------------------------------------------ integer helpers


def _q_multiply_shift_ref(x, y, q, s):
    left, right = max(s, 0), max(-s, 0)
    p = (int(x) << left) * int(y)
    n = q + right
    r = (p + (1 << (n - 1))) >> n
    return np.int64(r).astype(np.int32)  # wraps like the int32 cast


def _int_ops(q, s):
    @T.prim_func
    def k(X: T.Tensor((N,), "int32"), Y: T.Tensor((N,), "int32"), S: T.Tensor((N,), "int32"),
          P: T.Tensor((N,), "int32"), O: T.Tensor((4, N), "int32")):
        with T.Kernel(N // 128, threads=128) as bx:
            for i in T.Parallel(128):
                j = bx * 128 + i
                O[0, j] = T.q_multiply_shift(X[j], Y[j], q, s)
                O[1, j] = T.q_multiply_shift(X[j], Y[j], q, S[j])
                O[2, j] = T.cdiv(P[j], 7)
                O[3, j] = T.align_up(P[j], 16)

    return k


@pytest.mark.parametrize("target,backend", TARGETS)
@pytest.mark.parametrize("q,s", [(31, -3), (31, 2), (15, 0)])
def test_q_multiply_shift_cdiv_align_up(q, s, target, backend, rng):
    x = rng.integers(-2**31, 2**31, N, dtype=np.int64).astype(np.int32)
    y = rng.integers(-2**31, 2**31, N, dtype=np.int64).astype(np.int32)
    if s > 0:  # keep the shifted product in int64, as TVM's lowering assumes
        x >>= s + 1
    sv = np.full(N, s, np.int32)
    v = rng.integers(0, 5000, N).astype(np.int32)
    o = _run(_int_ops(q, s), [4], target, backend, x, y, sv, v)
    want = np.array([_q_multiply_shift_ref(a, b, q, s) for a, b in zip(x, y)], np.int32)
    np.testing.assert_array_equal(o[0], want)
    np.testing.assert_array_equal(o[1], want)
    np.testing.assert_array_equal(o[2], -(-v // 7))
    np.testing.assert_array_equal(o[3], -(-v // 16) * 16)
    assert T.cdiv(10, 4) == 3 and T.align_up(10, 4) == 12


def test_the_same_results_on_the_hip_target(clang19, rng):
    """Compiled by clang for gfx942 and run in the wave64 emulator: bit for bit the CPU's results."""
    x, y, z = (rng.standard_normal(N).astype(np.float32) for _ in range(3))
    for func in (_directed("rd"), _float_ops()):
        hip = tilewise.compile(func, out_idx=[3], target="hip", execution_backend="emulator")(x, y, z)
        cpu = tilewise.compile(func, out_idx=[3], target="cpu")(x, y, z)
        np.testing.assert_array_equal(hip.view(np.uint32), cpu.view(np.uint32))
    a = rng.standard_normal(128).astype(np.float16)
    args = (a, a[::-1].copy(), a)
    hip = tilewise.compile(_packed("float16"), out_idx=[3], target="hip", execution_backend="emulator")(*args)
    np.testing.assert_array_equal(hip, tilewise.compile(_packed("float16"), out_idx=[3], target="cpu")(*args))


def _fma_kernel(dtype, n):
    @T.prim_func
    def k(X: T.Tensor((n,), dtype), Y: T.Tensor((n,), dtype), Z: T.Tensor((n,), dtype), O: T.Tensor((n,), dtype)):
        with T.Kernel(1, threads=n):
            for i in T.Parallel(n):
                O[i] = T.fma(X[i], Y[i], Z[i])

    return k


@pytest.mark.parametrize("target,backend", TARGETS)
def test_bfloat16_fma_rounds_once(target, backend):
    """Products exactly halfway between two bfloat16 values, plus a c far below them: one rounding
    goes toward c's side; rounding through float32 or float64 first would land on the tie."""
    import ml_dtypes

    bf = ml_dtypes.bfloat16
    pairs = [(1.734375, 1.5), (1.5, 1.3046875), (1.5, 1.890625), (1.171875, 1.25)]
    a = np.array([p[0] for p in pairs] * 2 * 16, bf)
    b = np.array([p[1] for p in pairs] * 2 * 16, bf)
    c = np.array(([1e-30] * 4 + [-1e-30] * 4) * 16, bf)
    o = _run(_fma_kernel("bfloat16", 128), [3], target, backend, a, b, c)
    p = a.astype(np.float64) * b.astype(np.float64)  # exact, a bfloat16 midpoint
    up = np.nextafter(p.astype(np.float32), np.float32(np.inf)).astype(bf)  # the neighbours of p
    down = np.nextafter(p.astype(np.float32), np.float32(-np.inf)).astype(bf)
    np.testing.assert_array_equal(o.astype(np.float64), np.where(c.astype(np.float64) > 0, up, down).astype(np.float64))
