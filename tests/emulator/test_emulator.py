"""Emulator semantics on hand-built thread IR: C arithmetic per dtype, casts, lazy selects, math,
divergent control flow, memory scopes, atomics, batching."""
import functools
import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ir_builders import addr, call, intrin, kernel

from tilewise.emulator import run
from tilewise.ir import (
    Allocate,
    BinOp,
    Break,
    Buffer,
    BufferLoad,
    BufferStore,
    Cast,
    For,
    IfThenElse,
    LetStmt,
    Select,
    Var,
    While,
)
from tilewise.ir import dtype as dt
from tilewise.ir.expr import logical_and

N = 64


def _wrap(x, bits=32):
    return ((x + 2 ** (bits - 1)) % 2**bits) - 2 ** (bits - 1)


def _tdiv(a, b):
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


INT_OPS = {
    "add": lambda a, b: _wrap(a + b),
    "sub": lambda a, b: _wrap(a - b),
    "mul": lambda a, b: _wrap(a * b),
    "div": lambda a, b: _tdiv(a, b),
    "truncmod": lambda a, b: a - b * _tdiv(a, b),
    "floordiv": lambda a, b: a // b,
    "floormod": lambda a, b: a % b,
    "bitand": lambda a, b: a & b,
    "bitor": lambda a, b: a | b,
    "bitxor": lambda a, b: a ^ b,
    "min": min,
    "max": max,
}


def test_int32_semantics(rng):
    a = rng.integers(-(2**31), 2**31, N).astype(np.int32)
    a[:4] = [2**31 - 1, -(2**31) + 1, 7, -7]
    b = rng.integers(-1000, 1000, N).astype(np.int32)
    b[b == 0] = 3
    b[:4] = [1, -1, 2, 2]
    sh = rng.integers(0, 40, N).astype(np.int32)
    ops = list(INT_OPS)
    A, B, S = Buffer("A", (N,), "int32"), Buffer("B", (N,), "int32"), Buffer("S", (N,), "int32")
    O = Buffer("O", (len(ops) + 2, N), "int32")

    def build(b_, t):
        tx = t[0]
        x, y, s = BufferLoad(A, [tx]), BufferLoad(B, [tx]), BufferLoad(S, [tx])
        out = [BufferStore(O, [k, tx], BinOp(op, x, y, dt.int32)) for k, op in enumerate(ops)]
        out.append(BufferStore(O, [len(ops), tx], BinOp("shl", x, s, dt.int32)))
        out.append(BufferStore(O, [len(ops) + 1, tx], BinOp("shr", x, s, dt.int32)))
        return out

    o = np.zeros((len(ops) + 2, N), np.int32)
    run(kernel([A, B, S, O], [1], [N], build), [a, b, sh, o])
    for k, op in enumerate(ops):
        want = [INT_OPS[op](int(x), int(y)) for x, y in zip(a, b)]
        np.testing.assert_array_equal(o[k], np.array(want, np.int64).astype(np.int32), err_msg=op)
    want_shl = [0 if s >= 32 else _wrap(int(x) << int(s)) for x, s in zip(a, sh)]
    want_shr = [(-1 if x < 0 else 0) if s >= 32 else int(x) >> int(s) for x, s in zip(a, sh)]
    np.testing.assert_array_equal(o[len(ops)], want_shl)
    np.testing.assert_array_equal(o[len(ops) + 1], want_shr)


def test_narrow_int_and_unsigned_wrap():
    A = Buffer("A", (N,), "uint8")
    O8 = Buffer("O8", (N,), "uint8")
    O16 = Buffer("O16", (N,), "int16")
    a = np.arange(N, dtype=np.uint8) * 7

    def build(b_, t):
        x = BufferLoad(A, [t[0]])
        return [
            BufferStore(O8, [t[0]], x * Cast(dt.uint8(200), dt.uint8) - dt.uint8(3)),
            BufferStore(O16, [t[0]], Cast(x, dt.int16) * dt.int16(1000)),
        ]

    o8, o16 = np.zeros(N, np.uint8), np.zeros(N, np.int16)
    run(kernel([A, O8, O16], [1], [N], build), [a, o8, o16])
    np.testing.assert_array_equal(o8, [(int(x) * 200 - 3) % 256 for x in a])
    np.testing.assert_array_equal(o16, [_wrap(int(x) * 1000, 16) for x in a])


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_low_precision_rounds_every_operation(rng, name):
    npdt = dt.as_dtype(name).numpy
    a = (rng.standard_normal(N) * 3).astype(npdt)
    b = (rng.standard_normal(N) * 3 + 0.1).astype(npdt)
    c = (rng.standard_normal(N) * 1000).astype(npdt)
    A, B, C, O = (Buffer(x, (N,), name) for x in "ABCO")

    def build(b_, t):
        x, y, z = (BufferLoad(buf, [t[0]]) for buf in (A, B, C))
        return [BufferStore(O, [t[0]], (x + y) * z - x / y + z)]

    o = np.zeros(N, npdt)
    run(kernel([A, B, C, O], [1], [N], build), [a, b, c, o])
    f = np.float32

    def r(v):
        return np.asarray(v, np.float32).astype(npdt)

    want = r(r(r(r(a.astype(f) + b.astype(f)).astype(f) * c.astype(f)).astype(f)
               - r(a.astype(f) / b.astype(f)).astype(f)).astype(f) + c.astype(f))
    np.testing.assert_array_equal(o.astype(f), want.astype(f))
    once = r((a.astype(f) + b.astype(f)) * c.astype(f) - a.astype(f) / b.astype(f) + c.astype(f))
    assert (once.astype(f) != want.astype(f)).any(), "inputs too easy: per-op rounding not exercised"


def test_casts():
    fvals = np.array([1.7, -1.7, 3e9, -3e9, np.nan, np.inf, 0.5, -0.0] * 8, np.float32)
    A = Buffer("A", (N,), "float32")
    I = Buffer("I", (N,), "int32")
    U = Buffer("U", (N,), "uint8")
    H = Buffer("H", (N,), "float16")
    BF = Buffer("BF", (N,), "bfloat16")
    BO = Buffer("BO", (N,), "bool")
    I8 = Buffer("I8", (N,), "int8")

    def build(b_, t):
        x = BufferLoad(A, [t[0]])
        i = t[0] * 37 + 100
        return [
            BufferStore(I, [t[0]], Cast(x, dt.int32)),
            BufferStore(U, [t[0]], Cast(x, dt.uint8)),
            BufferStore(H, [t[0]], Cast(x * dt.float32(20000.0), dt.float16)),
            BufferStore(BF, [t[0]], Cast(x / dt.float32(3.0), dt.bfloat16)),
            BufferStore(BO, [t[0]], Cast(x, dt.bool_)),
            BufferStore(I8, [t[0]], Cast(i, dt.int8)),
        ]

    outs = [np.zeros(N, d) for d in (np.int32, np.uint8, np.float16, ml_dtypes.bfloat16, np.bool_, np.int8)]
    run(kernel([A, I, U, H, BF, BO, I8], [1], [N], build), [fvals, *outs])
    i32, u8, h, bf, bo, i8 = outs
    np.testing.assert_array_equal(i32[:8], [1, -1, 2**31 - 1, -(2**31), 0, 2**31 - 1, 0, 0])
    np.testing.assert_array_equal(u8[:8], [1, 0, 255, 0, 0, 255, 0, 0])
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(h, (fvals * np.float32(20000)).astype(np.float16))
    np.testing.assert_array_equal(bf.astype(np.float32), (fvals / np.float32(3)).astype(ml_dtypes.bfloat16).astype(np.float32))
    np.testing.assert_array_equal(bo, fvals != 0)
    np.testing.assert_array_equal(i8, [_wrap(t * 37 + 100, 8) for t in range(N)])


def test_select_and_logical_and_are_lazy():
    """Threads past n read nothing: the unselected side would be out of bounds."""
    n = 40
    A = Buffer("A", (n,), "float32")
    O = Buffer("O", (N,), "float32")
    P = Buffer("P", (N,), "bool")
    a = np.arange(n, dtype=np.float32) + 1

    def build(b_, t):
        tx = t[0]
        return [
            BufferStore(O, [tx], Select(tx < n, BufferLoad(A, [tx]), Select(tx >= 2 * n, BufferLoad(A, [tx]), dt.float32(-1.0)))),
            BufferStore(P, [tx], logical_and(tx < n, BufferLoad(A, [tx]) > dt.float32(20.0))),
        ]

    o, p = np.zeros(N, np.float32), np.zeros(N, bool)
    run(kernel([A, O, P], [1], [N], build), [a, o, p])
    np.testing.assert_array_equal(o, np.r_[a, -np.ones(N - n, np.float32)])
    np.testing.assert_array_equal(p, np.r_[a > 20, np.zeros(N - n, bool)])


MATH = [
    ("exp", np.exp), ("log", lambda x: np.log(np.abs(x))), ("sqrt", lambda x: np.sqrt(np.abs(x))),
    ("rsqrt", lambda x: 1 / np.sqrt(np.abs(x))), ("tanh", np.tanh), ("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
    ("erf", np.vectorize(math.erf)), ("floor", np.floor), ("round", lambda x: np.where(np.abs(x - np.trunc(x)) >= 0.5, np.trunc(x) + np.sign(x), np.trunc(x))),
    ("nearbyint", np.rint), ("abs", np.abs), ("sin", np.sin), ("exp2", np.exp2),
]  # fmt: skip


@pytest.mark.parametrize("name", ["float32", "float16"])
def test_math_calls(rng, name):
    npdt = dt.as_dtype(name).numpy
    x = (rng.standard_normal(N) * 2).astype(npdt)
    x[:4] = [0.5, -0.5, 2.5, -1.5]
    A = Buffer("A", (N,), name)
    O = Buffer("O", (len(MATH) + 2, N), name)

    def build(b_, t):
        v = BufferLoad(A, [t[0]])
        out = []
        for k, (fn, _) in enumerate(MATH):
            arg = call("abs", name, v) if fn in ("log", "sqrt", "rsqrt") else v
            out.append(BufferStore(O, [k, t[0]], call(fn, name, arg)))
        nan = Cast(dt.float32(float("nan")), dt.as_dtype(name))
        out.append(BufferStore(O, [len(MATH), t[0]], call("max", name, v, nan)))
        out.append(BufferStore(O, [len(MATH) + 1, t[0]], call("pow", name, call("abs", name, v), dt.as_dtype(name)(1.5))))
        return out

    o = np.zeros((len(MATH) + 2, N), npdt)
    run(kernel([A, O], [1], [N], build), [x, o])
    xf = x.astype(np.float64)
    for k, (fn, ref) in enumerate(MATH):
        want = ref(xf).astype(np.float32).astype(npdt)
        np.testing.assert_allclose(o[k].astype(np.float64), want.astype(np.float64), rtol=2e-3 if name == "float16" else 2e-6,
                                   atol=1e-6, err_msg=fn)
    np.testing.assert_array_equal(o[len(MATH)], x)  # maxNum ignores the NaN
    np.testing.assert_allclose(o[len(MATH) + 1].astype(np.float64), np.abs(xf) ** 1.5, rtol=2e-3)


def test_divergent_if_else_and_thread_dependent_loops():
    """Per thread t: odd threads store -t; even threads sum k for k < t % 7 in a loop whose trip
    count depends on the thread, count Collatz steps of t + 1 in a while loop, and find the first
    k with k * k > t with a break."""
    O = Buffer("O", (4, N), "int32")

    def build(b_, t):
        tx = t[0]
        acc = Buffer("acc", (1,), "int32", scope="local.var")
        x = Buffer("x", (1,), "int32", scope="local.var")
        steps = Buffer("steps", (1,), "int32", scope="local.var")
        first = Buffer("first", (1,), "int32", scope="local.var")
        k, k2 = Var("k"), Var("k2")
        xv = BufferLoad(x, [0])
        return [
            Allocate(acc, dt.int32(0)), Allocate(x), Allocate(steps, dt.int32(0)), Allocate(first, dt.int32(-1)),
            IfThenElse(
                tx % 2 == 1,
                BufferStore(O, [0, tx], -tx),
                For(k, 0, tx % 7, "serial", BufferStore(acc, [0], BufferLoad(acc, [0]) + k)),
            ),
            IfThenElse(tx % 2 == 0, BufferStore(O, [0, tx], BufferLoad(acc, [0]))),
            BufferStore(x, [0], tx + 1),
            While(xv != 1, seq_([
                IfThenElse(xv % 2 == 0, BufferStore(x, [0], xv // 2), BufferStore(x, [0], xv * 3 + 1)),
                BufferStore(steps, [0], BufferLoad(steps, [0]) + 1),
            ])),
            BufferStore(O, [1, tx], BufferLoad(steps, [0])),
            For(k2, 0, 100, "serial", IfThenElse(k2 * k2 > tx, seq_([BufferStore(first, [0], k2), Break()]))),
            BufferStore(O, [2, tx], BufferLoad(first, [0])),
            # a loop starting at a thread-dependent value with a uniform trip count
            For(k, tx, 3, "serial", BufferStore(O, [3, tx], BufferLoad(O, [3, tx]) + k)),
        ]

    o = np.zeros((4, N), np.int32)
    run(kernel([O], [1], [N], build), [o])

    def collatz(v):
        n = 0
        while v != 1:
            v = v // 2 if v % 2 == 0 else 3 * v + 1
            n += 1
        return n

    np.testing.assert_array_equal(o[0], [-t if t % 2 else sum(range(t % 7)) for t in range(N)])
    np.testing.assert_array_equal(o[1], [collatz(t + 1) for t in range(N)])
    np.testing.assert_array_equal(o[2], [next(k for k in range(100) if k * k > t) for t in range(N)])
    np.testing.assert_array_equal(o[3], [3 * t + 3 for t in range(N)])


def seq_(stmts):
    from tilewise.ir import seq

    return seq(stmts)


@pytest.mark.parametrize("max_lanes", [64, 100000])
def test_shared_memory_blocks_and_batches(max_lanes):
    """Reverse each block's 64 elements through shared memory (2-D grid, 2-D thread block), in one
    batch or one block at a time."""
    nbx, nby = 3, 2
    A = Buffer("A", (nby, nbx, 64), "float32")
    O = Buffer("O", (nby, nbx, 64), "float32")
    a = np.random.default_rng(1).standard_normal((nby, nbx, 64)).astype(np.float32)

    def build(b, t):
        S = Buffer("S", (64,), "float32", scope="shared")
        i = t[0] + t[1] * 16
        return [
            Allocate(S),
            BufferStore(S, [i], BufferLoad(A, [b[1], b[0], i])),
            intrin("syncthreads"),
            BufferStore(O, [b[1], b[0], i], BufferLoad(S, [63 - i]) + Cast(b[0] * 100 + b[1], dt.float32)),
        ]

    o = np.zeros_like(a)
    run(kernel([A, O], [nbx, nby], [16, 4], build), [a, o], max_lanes=max_lanes)
    want = a[:, :, ::-1] + (np.arange(nbx)[None, :, None] * 100 + np.arange(nby)[:, None, None]).astype(np.float32)
    np.testing.assert_array_equal(o, want)


def test_dynamic_dims_and_scalar_params():
    n = Var("n")
    A = Buffer("A", (n,), "float32")
    O = Buffer("O", (n,), "float32")
    alpha = Var("alpha", dt.float32)

    def build(b, t):
        i = b[0] * 32 + t[0]
        return [IfThenElse(i < n, BufferStore(O, [i], BufferLoad(A, [i]) * alpha))]

    f = kernel([A, O, alpha], [(n + 31) // 32], [32], build)
    for size in (5, 70):
        a = np.arange(size, dtype=np.float32)
        o = np.zeros(size, np.float32)
        run(f, [a, o, 2.5])
        np.testing.assert_array_equal(o, a * 2.5)
        o[:] = 0
        run(f, [a, o, np.float32(3.0)], [size])
        np.testing.assert_array_equal(o, a * 3)


@pytest.mark.parametrize("scope", ["global", "shared"])
def test_atomics_serialise(scope):
    """512 threads add into 4 addresses: every add lands; each thread gets a distinct old value."""
    T = 256
    O = Buffer("O", (4,), "int32")
    F = Buffer("F", (4,), "float32")
    M = Buffer("M", (4,), "int32")
    OLD = Buffer("OLD", (2, T), "int32")

    def build(b, t):
        tx = t[0]
        out = []
        if scope == "shared":
            S = Buffer("S", (4,), "int32", scope="shared")
            out += [Allocate(S), IfThenElse(tx < 4, BufferStore(S, [tx], dt.int32(0))), intrin("syncthreads")]
            tgt = S
        else:
            tgt = O
        old = Var("old")
        out += [
            LetStmt(old, call("atomic_add", "int32", addr(tgt, tx % 4), dt.int32(1))),
            BufferStore(OLD, [b[0], tx], old),
            intrin("atomic_add", addr(F, tx % 4), dt.float32(0.5)),
            intrin("atomic_max", addr(M, tx % 4), tx * 3 % 97),
        ]
        if scope == "shared":
            out += [intrin("syncthreads"), IfThenElse(tx < 4, intrin("atomic_add", addr(O, tx), BufferLoad(S, [tx])))]
        return out

    o, f, m = np.zeros(4, np.int32), np.zeros(4, np.float32), np.zeros(4, np.int32)
    old = np.zeros((2, T), np.int32)
    run(kernel([O, F, M, OLD], [2], [T], build), [o, f, m, old])
    np.testing.assert_array_equal(o, [2 * T // 4] * 4)
    np.testing.assert_array_equal(f, [T // 4] * 4)
    np.testing.assert_array_equal(m, [max(t * 3 % 97 for t in range(T) if t % 4 == j) for j in range(4)])
    for blk in range(2):
        for j in range(4):
            got = sorted(old[blk, j::4])
            base = 0 if scope == "shared" else None
            if base is None:
                assert len(set(got)) == len(got)
            else:
                assert got == list(range(T // 4))
    if scope == "global":
        assert sorted(old[:, 0::4].ravel()) == list(range(2 * T // 4))


def test_atomic_add_float16_rounds_each_add():
    F = Buffer("F", (1,), "float16")

    def build(b, t):
        return [intrin("atomic_add", addr(F, 0), dt.float16(1.0))]

    f = np.array([2048.0], np.float16)  # 2048 + 1 rounds back to 2048 in float16
    run(kernel([F], [1], [64], build), [f])
    assert f[0] == 2048.0


def test_copy_vec_and_reinterpret():
    A = Buffer("A", (4, 32), "float16")
    O = Buffer("O", (4, 32), "float16")
    BITS = Buffer("BITS", (32,), "int32")
    a = np.arange(128, dtype=np.float16).reshape(4, 32)

    def build(b, t):
        tx = t[0]
        S = Buffer("S", (4, 32), "float16", scope="shared")
        R = Buffer("R", (8,), "float16", scope="local")
        r, c = tx // 4, (tx % 4) * 8
        return [
            Allocate(S), Allocate(R),
            intrin("copy_vec", addr(S, r, c), addr(A, r, c), bytes=16),
            intrin("syncthreads"),
            intrin("copy_vec", addr(R, 0), addr(S, 3 - r, c), bytes=16),
            intrin("copy_vec", addr(O, r, c), addr(R, 0), bytes=16),
            BufferStore(BITS, [tx], call("reinterpret", "int32", Cast(tx, dt.float32))),
        ]

    o, bits = np.zeros_like(a), np.zeros(32, np.int32)
    run(kernel([A, O, BITS], [1], [16], build), [a, o, bits])
    np.testing.assert_array_equal(o, a[::-1])
    np.testing.assert_array_equal(bits[:16], np.arange(16, dtype=np.float32).view(np.int32))


def test_dp4a():
    X = Buffer("X", (N,), "int32")
    O = Buffer("O", (N,), "int32")
    x = np.random.default_rng(5).integers(-(2**31), 2**31, N).astype(np.int32)

    def build(b, t):
        v = BufferLoad(X, [t[0]])
        return [BufferStore(O, [t[0]], call("dp4a", "int32", v, BufferLoad(X, [(t[0] + 1) % N]), t[0]))]

    o = np.zeros(N, np.int32)
    run(kernel([X, O], [1], [N], build), [x, o])
    xb = x.view(np.int8).reshape(N, 4).astype(np.int64)
    np.testing.assert_array_equal(o, (xb * np.roll(xb, -1, axis=0)).sum(axis=1) + np.arange(N))


def test_print(capsys):
    def build(b, t):
        return [IfThenElse(t[0] == 1, intrin("print", b[0], dt.int32(0), dt.int32(0), t[0] * 10, msg="hi", label="v", kind="scalar"))]

    run(kernel([], [2], [4], build), [])
    assert capsys.readouterr().out.splitlines() == ["hi: block (0, 0, 0) v = 10", "hi: block (1, 0, 0) v = 10"]


# ------------------------------------------------------------------------------ property tests


@functools.cache
def _int_ops_kernel():
    ops = list(INT_OPS)
    A, B = Buffer("A", (32,), "int32"), Buffer("B", (32,), "int32")
    O = Buffer("O", (len(ops), 32), "int32")

    def build(b_, t):
        x, y = BufferLoad(A, [t[0]]), BufferLoad(B, [t[0]])
        return [BufferStore(O, [k, t[0]], BinOp(op, x, y, dt.int32)) for k, op in enumerate(ops)]

    return ops, kernel([A, B, O], [1], [32], build)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(-(2**31), 2**31 - 1), st.integers(-(2**31), 2**31 - 1).filter(lambda v: v != 0)),
                min_size=32, max_size=32))
def test_int_ops_property(pairs):
    ops, f = _int_ops_kernel()
    pairs = [(a, b) for a, b in pairs if not (a == -(2**31) and b == -1)] + [(1, 1)] * 32
    a = np.array([p[0] for p in pairs[:32]], np.int32)
    b = np.array([p[1] for p in pairs[:32]], np.int32)
    o = np.zeros((len(ops), 32), np.int32)
    run(f, [a, b, o])
    for k, op in enumerate(ops):
        want = np.array([INT_OPS[op](int(x), int(y)) for x, y in zip(a, b)], np.int64)
        np.testing.assert_array_equal(o[k], _wrap(want).astype(np.int32), err_msg=op)


@functools.cache
def _transpose_kernel():
    """O[N, M] = A[M, N]^T through a padded 16 x 17 shared tile, 16 x 4 threads, guarded edges."""
    m, n = Var("m"), Var("n")
    A = Buffer("A", (m, n), "float32")
    O = Buffer("O", (n, m), "float32")

    def build(b, t):
        tx, ty = t
        S = Buffer("S", (16, 17), "float32", scope="shared")
        r = Var("r")
        row = ty + r * 4
        load = IfThenElse(logical_and(b[1] * 16 + row < m, b[0] * 16 + tx < n),
                          BufferStore(S, [row, tx], BufferLoad(A, [b[1] * 16 + row, b[0] * 16 + tx])))
        store = IfThenElse(logical_and(b[0] * 16 + row < n, b[1] * 16 + tx < m),
                           BufferStore(O, [b[0] * 16 + row, b[1] * 16 + tx], BufferLoad(S, [tx, row])))
        return [Allocate(S), For(r, 0, 4, "unroll", load), intrin("syncthreads"), For(r, 0, 4, "unroll", store)]

    return kernel([A, O], [(n + 15) // 16, (m + 15) // 16], [16, 4], build)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 70), st.integers(1, 70))
def test_tiled_transpose_random_shapes(mm, nn):
    a = np.arange(mm * nn, dtype=np.float32).reshape(mm, nn)
    o = np.zeros((nn, mm), np.float32)
    run(_transpose_kernel(), [a, o], check_uninit=True)
    np.testing.assert_array_equal(o, a.T)


def test_three_dimensional_grid_and_block_indices():
    O = Buffer("O", (2, 3, 2, 2, 3, 4), "int32")

    def build(b, t):
        bx, by, bz = b
        tx, ty, tz = t
        return [BufferStore(O, [bz, by, bx, tz, ty, tx], tx + ty * 10 + tz * 100 + bx * 1000 + by * 10000 + bz * 100000)]

    o = np.zeros((2, 3, 2, 2, 3, 4), np.int32)
    run(kernel([O], [2, 3, 2], [4, 3, 2], build), [o], max_lanes=50)
    bz, by, bx, tz, ty, tx = np.indices(o.shape)
    np.testing.assert_array_equal(o, tx + ty * 10 + tz * 100 + bx * 1000 + by * 10000 + bz * 100000)
