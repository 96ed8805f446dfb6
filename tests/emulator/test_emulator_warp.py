"""Warp-level instructions and cp.async against numpy: ldmatrix, mma.sync variants, shuffles,
the cp.async group queues, and a pipelined tensor-core GEMM."""
import importlib.util
import pathlib

import ml_dtypes
import numpy as np
import pytest
from ir_builders import addr, intrin, kernel

from tilewise.emulator import AsyncCopyError, run
from tilewise.ir import Allocate, Buffer, BufferLoad, BufferStore, Call, Cast, For, LetStmt, Select, Var
from tilewise.ir import dtype as dt

# ------------------------------------------------------------------------------------ ldmatrix


@pytest.mark.parametrize("num", [1, 2, 4])
@pytest.mark.parametrize("trans", [False, True])
def test_ldmatrix(num, trans):
    """Two warps; lane l supplies the row address of shared row perm(l) of its warp's 32 x 8 tile;
    lanes >= 8 * num supply garbage (out of bounds) addresses, which ldmatrix ignores."""
    G = Buffer("G", (2, 32, 8), "float16")
    O = Buffer("O", (64, 8), "float16")
    g = np.arange(512, dtype=np.float16).reshape(2, 32, 8)

    def perm(lane):
        return (lane * 5 + 3) % 32

    def build(b, t):
        tx = t[0]
        S = Buffer("S", (2, 32, 8), "float16", scope="shared")
        R = Buffer("R", (8,), "float16", scope="local")
        w, lane = tx // 32, tx % 32
        row = Select(lane < 8 * num, perm(lane), lane + 1000)
        return [
            Allocate(S), Allocate(R),
            intrin("copy_vec", addr(S, w, lane, 0), addr(G, w, lane, 0), bytes=16),
            intrin("syncthreads"),
            intrin("ldmatrix", addr(R, 0), addr(S, w, row, 0), num=num, trans=trans),
            intrin("copy_vec", addr(O, tx, 0), addr(R, 0), bytes=16),
        ]

    o = np.zeros((64, 8), np.float16)
    run(kernel([G, O], [1], [64], build), [g, o])
    want = np.zeros((64, 8), np.float16)
    for w in range(2):
        for lane in range(32):
            for j in range(num):
                for h in range(2):
                    # PTX: lane l holds row l // 4, columns 2 (l % 4) + h of matrix j (whose row r
                    # is at the address of lane 8 j + r); .trans swaps rows and columns
                    r, c = (2 * (lane % 4) + h, lane // 4) if trans else (lane // 4, 2 * (lane % 4) + h)
                    want[32 * w + lane, 2 * j + h] = g[w, perm(8 * j + r), c]
    np.testing.assert_array_equal(o, want)


# ------------------------------------------------------------------------------------ mma.sync

# Fragment coordinates re-typed from the PTX ISA sections "Matrix Fragments for mma.m16n8k16 with
# floating point type", "... for mma.m16n8k8" and "... for mma.m16n8k32" as IR expressions of the
# lane (g = groupID, t = threadID_in_group) and the element number i.
FRAG = {
    ("m16n8k16", "f16"): (lambda g, t, i: (g + 8 * ((i // 2) % 2), t * 2 + i % 2 + 8 * (i // 4)), 8,
                          lambda g, t, i: (t * 2 + i % 2 + 8 * (i // 2), g), 4),
    ("m16n8k8", "f16"): (lambda g, t, i: (g + 8 * (i // 2), t * 2 + i % 2), 4,
                         lambda g, t, i: (t * 2 + i, g), 2),
    ("m16n8k8", "tf32"): (lambda g, t, i: (g + 8 * (i % 2), t + 4 * (i // 2)), 4,
                          lambda g, t, i: (t + 4 * i, g), 2),
    ("m16n8k32", "i8"): (lambda g, t, i: (g + 8 * ((i // 4) % 2), t * 4 + i % 4 + 16 * (i // 8)), 16,
                         lambda g, t, i: (t * 4 + i % 4 + 16 * (i // 4), g), 8),
}


def _c_frag(g, t, i):
    return g + 8 * (i // 2), t * 2 + i % 2


MMA_CASES = [
    ("m16n8k16", "float16", "float16", "float32", "f16"),
    ("m16n8k16", "bfloat16", "bfloat16", "float32", "f16"),
    ("m16n8k16", "float16", "float16", "float16", "f16"),
    ("m16n8k8", "float16", "float16", "float32", "f16"),
    ("m16n8k8", "bfloat16", "bfloat16", "float32", "f16"),
    ("m16n8k8", "float16", "float16", "float16", "f16"),
    ("m16n8k8", "tf32", "tf32", "float32", "tf32"),
    ("m16n8k8", "float32", "float32", "float32", "tf32"),
    ("m16n8k32", "int8", "int8", "int32", "i8"),
    ("m16n8k32", "uint8", "int8", "int32", "i8"),
    ("m16n8k32", "uint8", "uint8", "int32", "i8"),
]

_STORE = {"tf32": "float32"}


@pytest.mark.parametrize("shape,at,bt,ct,frag", MMA_CASES)
def test_mma_sync(rng, shape, at, bt, ct, frag):
    W = 2  # two warps, different data
    m, n, k = 16, 8, int(shape.split("k")[1])
    a_store, b_store = _STORE.get(at, at), _STORE.get(bt, bt)
    A = Buffer("A", (W, m, k), a_store)
    B = Buffer("B", (W, k, n), b_store)
    C = Buffer("C", (W, m, n), ct)
    D = Buffer("D", (W, m, n), ct)
    fa, na, fb, nb = FRAG[(shape, frag)]

    def build(b_, t):
        tx = t[0]
        w, lane = tx // 32, tx % 32
        g, tg = lane // 4, lane % 4
        Af = Buffer("Af", (na,), a_store, scope="local")
        Bf = Buffer("Bf", (nb,), b_store, scope="local")
        Cf = Buffer("Cf", (4,), ct, scope="local")
        out = [Allocate(Af), Allocate(Bf), Allocate(Cf)]
        out += [BufferStore(Af, [i], BufferLoad(A, [w, *fa(g, tg, i)])) for i in range(na)]
        out += [BufferStore(Bf, [i], BufferLoad(B, [w, *fb(g, tg, i)])) for i in range(nb)]
        out += [BufferStore(Cf, [i], BufferLoad(C, [w, *_c_frag(g, tg, i)])) for i in range(4)]
        out.append(intrin("mma_sync", addr(Af, 0), addr(Bf, 0), addr(Cf, 0), shape=shape, a_dtype=at, b_dtype=bt, c_dtype=ct))
        out += [BufferStore(D, [w, *_c_frag(g, tg, i)], BufferLoad(Cf, [i])) for i in range(4)]
        return out

    def make(dtype, shape_):
        if dtype in ("int8", "uint8", "int32"):
            lo, hi = (0, 256) if dtype == "uint8" else (-128, 128)
            if dtype == "int32":
                lo, hi = -(2**31), 2**31
            return rng.integers(lo, hi, shape_).astype(dtype)
        x = rng.standard_normal(shape_)
        if dtype == "tf32" or (dtype == "float32" and shape.endswith("k8")):
            return (np.round(x * 64) / 64).astype(np.float32)  # exactly representable in tf32
        return x.astype(dt.as_dtype(dtype).numpy)

    a, b, c = make(at, (W, m, k)), make(bt, (W, k, n)), make(ct, (W, m, n))
    d = np.zeros((W, m, n), c.dtype)
    run(kernel([A, B, C, D], [1], [32 * W], build), [a, b, c, d])
    if ct == "int32":
        want = (a.astype(np.int64) @ b.astype(np.int64) + c).astype(np.int64)
        np.testing.assert_array_equal(d, _wrap32(want))
        return
    want = a.astype(np.float64) @ b.astype(np.float64) + c.astype(np.float64)
    if ct == "float16":
        np.testing.assert_array_equal(d, want.astype(np.float16))
    else:
        np.testing.assert_allclose(d, want, rtol=1e-6, atol=1e-6)


def _wrap32(x):
    return ((x + 2**31) % 2**32 - 2**31).astype(np.int32)


def test_mma_int32_accumulator_wraps():
    """The s32 accumulator wraps like the hardware (127 * 127 * 32 added to INT_MAX)."""
    shape, at, bt, ct, frag = ("m16n8k32", "int8", "int8", "int32", "i8")
    A = Buffer("A", (1, 16, 32), "int8")
    B = Buffer("B", (1, 32, 8), "int8")
    C = Buffer("C", (1, 16, 8), "int32")
    D = Buffer("D", (1, 16, 8), "int32")
    fa, na, fb, nb = FRAG[(shape, frag)]

    def build(b_, t):
        lane = t[0]
        g, tg = lane // 4, lane % 4
        Af, Bf, Cf = (Buffer(n_, (s,), d_, scope="local") for n_, s, d_ in (("Af", na, "int8"), ("Bf", nb, "int8"), ("Cf", 4, "int32")))
        out = [Allocate(Af), Allocate(Bf), Allocate(Cf)]
        out += [BufferStore(Af, [i], BufferLoad(A, [0, *fa(g, tg, i)])) for i in range(na)]
        out += [BufferStore(Bf, [i], BufferLoad(B, [0, *fb(g, tg, i)])) for i in range(nb)]
        out += [BufferStore(Cf, [i], BufferLoad(C, [0, *_c_frag(g, tg, i)])) for i in range(4)]
        out.append(intrin("mma_sync", addr(Af, 0), addr(Bf, 0), addr(Cf, 0), shape=shape, a_dtype=at, b_dtype=bt, c_dtype=ct))
        out += [BufferStore(D, [0, *_c_frag(g, tg, i)], BufferLoad(Cf, [i])) for i in range(4)]
        return out

    a = np.full((1, 16, 32), 127, np.int8)
    b = np.full((1, 32, 8), 127, np.int8)
    c = np.full((1, 16, 8), 2**31 - 1, np.int32)
    d = np.zeros_like(c)
    run(kernel([A, B, C, D], [1], [32], build), [a, b, c, d])
    assert (d == _wrap32(np.int64(2**31 - 1) + 127 * 127 * 32)).all()


# ------------------------------------------------------------------------------------ shuffles

SHFL_CASES = [("shfl_xor", m, w) for w in (32, 16, 4) for m in (1, 5, 16)] + \
    [("shfl_down", d, w) for w in (32, 8) for d in (1, 3)] + \
    [("shfl_up", d, w) for w in (32, 8) for d in (1, 2)] + \
    [("shfl_idx", s, w) for w in (32, 16) for s in (0, 7, "lane")]  # fmt: skip


def _shfl_ref(name, arg, width, lane):
    seg = lane - lane % width
    if name == "shfl_xor":
        p = lane ^ arg
        return p if p < seg + width else lane
    if name == "shfl_down":
        return lane + arg if lane % width + arg < width else lane
    if name == "shfl_up":
        return lane - arg if lane % width >= arg else lane
    src = (lane * 7 + 3) % 32 if arg == "lane" else arg
    return seg + src % width


@pytest.mark.parametrize("dtype", ["float32", "int32", "float16"])
def test_shuffles(dtype):
    V = Buffer("V", (64,), dtype)
    O = Buffer("O", (len(SHFL_CASES), 64), dtype)
    v = (np.arange(64) * 3 + 1).astype(dt.as_dtype(dtype).numpy)

    def build(b_, t):
        tx = t[0]
        lane = tx % 32
        x = BufferLoad(V, [tx])
        out = []
        for c, (name, arg, width) in enumerate(SHFL_CASES):
            a = (lane * 7 + 3) % 32 if arg == "lane" else dt.int32(arg)
            out.append(BufferStore(O, [c, tx], Call(name, [x, a], x.dtype, {"width": width})))
        return out

    o = np.zeros((len(SHFL_CASES), 64), v.dtype)
    run(kernel([V, O], [1], [64], build), [v, o])
    for c, (name, arg, width) in enumerate(SHFL_CASES):
        want = [v[32 * (t // 32) + _shfl_ref(name, arg, width, t % 32)] for t in range(64)]
        np.testing.assert_array_equal(o[c], want, err_msg=f"{name} {arg} width {width}")


def test_warp_reduction_with_shfl_xor():
    V = Buffer("V", (4, 32), "float32")
    O = Buffer("O", (4,), "float32")
    v = np.random.default_rng(3).standard_normal((4, 32)).astype(np.float32)

    def build(b_, t):
        acc = Buffer("acc", (1,), "float32", scope="local.var")
        out = [Allocate(acc), BufferStore(acc, [0], BufferLoad(V, [b_[0], t[0]]))]
        for m in (16, 8, 4, 2, 1):
            x = BufferLoad(acc, [0])
            out.append(BufferStore(acc, [0], x + Call("shfl_xor", [x, dt.int32(m)], dt.float32, {"width": 32})))
        from tilewise.ir import IfThenElse

        out.append(IfThenElse(t[0] == 0, BufferStore(O, [b_[0]], BufferLoad(acc, [0]))))
        return out

    o = np.zeros(4, np.float32)
    run(kernel([V, O], [4], [32], build), [v, o])
    np.testing.assert_allclose(o, v.sum(axis=1), rtol=1e-5)


# ------------------------------------------------------------------------------------ cp.async


def _cp_kernel(body_fn, T=32, rows=4):
    G = Buffer("G", (rows, T, 8), "float16")
    O = Buffer("O", (8, T, 8), "float16")

    def build(b_, t):
        tx = t[0]
        S = Buffer("S", (rows, T, 8), "float16", scope="shared")
        out = [Allocate(S)]
        for r in range(rows):  # every thread first fills its own rows with -1
            j = Var("j")
            out.append(For(j, 0, 8, "serial", BufferStore(S, [r, tx, j], dt.float16(-1.0))))
        out += body_fn(S, G, O, tx)
        return out

    return kernel([G, O], [1], [T], build)


def _snapshot(S, O, slot, row, tx):
    return intrin("copy_vec", addr(O, slot, tx, 0), addr(S, row, tx, 0), bytes=16)


def test_cp_async_lands_at_wait_group():
    """Per thread: copy row 0 (group 0) and row 1 (group 1), and row 2 left uncommitted; after
    wait_group 1 only row 0 has landed, after wait_group 0 rows 0 and 1, never row 2 (uncommitted
    copies are not waited for). Race checks off: reading early returns the old data."""

    def body(S, G, O, tx):
        cp = [intrin("cp_async", addr(S, r, tx, 0), addr(G, r, tx, 0), 16, bytes=16) for r in range(3)]
        return [
            cp[0], intrin("cp_async_commit"), cp[1], intrin("cp_async_commit"), cp[2],
            _snapshot(S, O, 0, 0, tx),
            intrin("cp_async_wait", n=1),
            _snapshot(S, O, 1, 0, tx), _snapshot(S, O, 2, 1, tx),
            intrin("cp_async_wait", n=0),
            _snapshot(S, O, 3, 1, tx), _snapshot(S, O, 4, 2, tx),
        ]

    f = _cp_kernel(body)
    g = np.arange(4 * 32 * 8, dtype=np.float16).reshape(4, 32, 8)
    o = np.zeros((8, 32, 8), np.float16)
    run(f, [g, o], check_races=False)
    neg = -np.ones((32, 8), np.float16)
    for slot, want in enumerate([neg, g[0], neg, g[1], neg]):
        np.testing.assert_array_equal(o[slot], want, err_msg=f"snapshot {slot}")
    with pytest.raises(AsyncCopyError, match=r"reads S\[0, 0, 0\].*still in flight"):
        run(f, [g, o])


def test_cp_async_queues_are_per_thread():
    """Odd threads commit an extra (empty) group: with wait_group 1 their copy has landed, the
    even threads' copy has not."""
    from tilewise.ir import IfThenElse

    def body(S, G, O, tx):
        return [
            intrin("cp_async", addr(S, 0, tx, 0), addr(G, 0, tx, 0), 16, bytes=16),
            intrin("cp_async_commit"),
            IfThenElse(tx % 2 == 1, intrin("cp_async_commit")),
            intrin("cp_async_wait", n=1),
            _snapshot(S, O, 0, 0, tx),
        ]

    g = np.arange(4 * 32 * 8, dtype=np.float16).reshape(4, 32, 8)
    o = np.zeros((8, 32, 8), np.float16)
    run(_cp_kernel(body), [g, o], check_races=False)
    odd = np.arange(32) % 2 == 1
    np.testing.assert_array_equal(o[0][odd], g[0][odd])
    assert (o[0][~odd] == -1).all()


def test_cp_async_zero_fill():
    """src_bytes 16, 6 and 0 (an out-of-bounds source with zero fill reads nothing)."""

    def body(S, G, O, tx):
        size = Select(tx % 3 == 0, dt.int32(16), Select(tx % 3 == 1, dt.int32(6), dt.int32(0)))
        row = Select(tx % 3 == 2, tx + 100, tx)  # the zero-fill threads point past the end of G
        return [
            intrin("cp_async", addr(S, 0, tx, 0), addr(G, 0, row, 0), size, bytes=16),
            intrin("cp_async_commit"),
            intrin("cp_async_wait", n=0),
            _snapshot(S, O, 0, 0, tx),
        ]

    g = np.arange(4 * 32 * 8, dtype=np.float16).reshape(4, 32, 8) + 1
    o = np.zeros((8, 32, 8), np.float16)
    run(_cp_kernel(body), [g, o])
    for t in range(32):
        want = g[0, t].copy()
        if t % 3 == 1:
            want[3:] = 0  # 6 bytes = 3 halves copied
        if t % 3 == 2:
            want[:] = 0
        np.testing.assert_array_equal(o[0, t], want)


# ------------------------------------------------------------------------------------ GEMM


def _gemm_module():
    path = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "emulator_gemm.py"
    spec = importlib.util.spec_from_file_location("emulator_gemm", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def gemm():
    return _gemm_module()


def test_pipelined_tensor_core_gemm(gemm):
    """cp.async 3-stage pipeline + ldmatrix (.trans for B) + mma.m16n8k16: 2 blocks, 3 k tiles."""
    M, N, K = 128, 256, 96
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    c = np.zeros((M, N), np.float32)
    run(gemm.build_gemm(M, N, K), [a, b, c], check_uninit=True)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-5, atol=1e-4)


def test_bf16_cast_used_by_lowering():
    """bfloat16 locals round-trip through casts as ml_dtypes does."""
    A = Buffer("A", (32,), "float32")
    O = Buffer("O", (32,), "bfloat16")
    a = np.linspace(-3, 3, 32).astype(np.float32)

    def build(b_, t):
        x = Var("x", dt.bfloat16)
        return [LetStmt(x, Cast(BufferLoad(A, [t[0]]), dt.bfloat16)), BufferStore(O, [t[0]], x * x)]

    o = np.zeros(32, ml_dtypes.bfloat16)
    run(kernel([A, O], [1], [32], build), [a, o])
    ab = a.astype(ml_dtypes.bfloat16).astype(np.float32)
    np.testing.assert_array_equal(o.astype(np.float32), (ab * ab).astype(ml_dtypes.bfloat16).astype(np.float32))
