"""T.reduce and T.reduce_{sum,abssum,max,min,absmax} on the CPU against numpy: every kind, both
dims of 2-D tiles, clear=True/False, 1-D and 3-D tiles, shared and fragment operands, integer
and low-precision types, and the argument errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tilewise
import tilewise.language as T
from tilewise import CompileError

KINDS = ("sum", "abssum", "max", "min", "absmax")
COMBOS = [(k, c) for k in KINDS for c in (True, False)]


def np_reduce(x: np.ndarray, kind: str, axis: int, keepdims: bool = False) -> np.ndarray:
    if kind.startswith("abs"):
        x = np.abs(x)
    op = {"sum": np.sum, "abssum": np.sum, "max": np.max, "min": np.min, "absmax": np.max}[kind]
    return op(x, axis=axis, keepdims=keepdims)


def np_combine(old: np.ndarray, red: np.ndarray, kind: str) -> np.ndarray:
    """clear=False: the reduction combined with dst's previous values (TileLang's rules)."""
    if kind in ("sum", "abssum"):
        return old + red
    if kind == "max":
        return np.maximum(old, red)
    if kind == "min":
        return np.minimum(old, red)
    return np.maximum(old, red)  # absmax: dst as it is (TileLang: max(dst, max|x|)), not |dst|


# ---------------------------------------------------------------------------- property test
# One kernel per (types, tile) computes every kind x clear x dim; the global shapes are symbolic,
# so hypothesis varies them (including shapes the tile does not divide) without recompiling.

CONFIGS = {
    "f32": ("float32", "float32", 7, 33),
    "f16->f32": ("float16", "float32", 16, 65),
    "i8->i32": ("int8", "int32", 5, 12),
}
_kernels: dict = {}


def all_reductions(dtype: str, acc: str, bm: int, bn: int):
    M, N = T.symbolic("M"), T.symbolic("N")
    GX, GY = T.ceildiv(N, bn), T.ceildiv(M, bm)
    Q = len(COMBOS)

    @T.prim_func
    def main(
        A: T.Tensor((M, N), dtype),
        I1: T.Tensor((Q, M, GX), acc),
        O1: T.Tensor((Q, M, GX), acc),
        I0: T.Tensor((Q, GY, N), acc),
        O0: T.Tensor((Q, GY, N), acc),
    ):
        with T.Kernel(GX, GY) as (bx, by):
            a = T.alloc_fragment((bm, bn), dtype)
            rows = T.alloc_fragment((Q, bm), acc)
            cols = T.alloc_shared((Q, bn), acc)
            T.copy(A[by * bm, bx * bn], a)
            T.copy(I1[0:Q, by * bm : (by + 1) * bm, bx], rows)
            T.copy(I0[0:Q, by, bx * bn : (bx + 1) * bn], cols)
            for q, (kind, clear) in enumerate(COMBOS):
                T.reduce(a, rows[q, :], kind, dim=1, clear=clear)
                T.reduce(a, cols[q, :], kind, dim=-2, clear=clear)
            T.copy(rows, O1[0:Q, by * bm : (by + 1) * bm, bx])
            T.copy(cols, O0[0:Q, by, bx * bn : (bx + 1) * bn])

    return main


def kernel_for(config: str):
    if config not in _kernels:
        _kernels[config] = tilewise.compile(all_reductions(*CONFIGS[config]), target="cpu")
    return _kernels[config]


def random_tile(rng, shape, dtype: str) -> np.ndarray:
    if dtype.startswith("int"):
        return rng.integers(-100, 100, size=shape).astype(dtype)
    return (rng.standard_normal(shape) * 4).astype(dtype)


@settings(max_examples=15, deadline=None)
@given(
    config=st.sampled_from(sorted(CONFIGS)),
    M=st.integers(1, 70),
    N=st.integers(1, 140),
    seed=st.integers(0, 2**31 - 1),
)
def test_reduce_property(config, M, N, seed):
    dtype, acc, bm, bn = CONFIGS[config]
    rng = np.random.default_rng(seed)
    gx, gy = -(-N // bn), -(-M // bm)
    Q = len(COMBOS)
    a = random_tile(rng, (M, N), dtype)
    i1 = random_tile(rng, (Q, M, gx), acc)
    i0 = random_tile(rng, (Q, gy, N), acc)
    o1 = np.zeros_like(i1)
    o0 = np.zeros_like(i0)
    kernel_for(config)(a, i1, o1, i0, o0)

    # the kernel reduces the zero-padded tiles it loaded; accumulation happens in acc's type
    pad = np.zeros((gy * bm, gx * bn), dtype=np.float64)
    pad[:M, :N] = a.astype(acc)
    by_row = pad.reshape(gy * bm, gx, bn)
    by_col = pad.reshape(gy, bm, gx * bn)
    tol = dict(rtol=1e-5, atol=1e-4) if acc.startswith("float") else dict(rtol=0, atol=0)
    for q, (kind, clear) in enumerate(COMBOS):
        r1 = np_reduce(by_row, kind, axis=2)[:M]
        r0 = np_reduce(by_col, kind, axis=1)[:, :N]
        if not clear:
            r1 = np_combine(i1[q].astype(np.float64), r1, kind)
            r0 = np_combine(i0[q].astype(np.float64), r0, kind)
        np.testing.assert_allclose(o1[q], r1, err_msg=f"{kind} clear={clear} dim=1", **tol)
        np.testing.assert_allclose(o0[q], r0, err_msg=f"{kind} clear={clear} dim=0", **tol)


# ---------------------------------------------------------------------------- shapes and operands


@pytest.fixture(scope="module")
def nd_kernel():
    """1-D and 3-D tiles, every dim, dst with the dim removed or kept as extent 1, and a slice."""

    @T.prim_func
    def main(
        A: T.Tensor((3, 5, 7), "float32"),
        V: T.Tensor((65,), "float32"),
        R0: T.Tensor((5, 7), "float32"),
        R1: T.Tensor((3, 1, 7), "float32"),
        R2: T.Tensor((3, 5), "float32"),
        RS: T.Tensor((2,), "float32"),
        RT: T.Tensor((2, 7), "float32"),
        RV: T.Tensor((1,), "float32"),
    ):
        with T.Kernel(1):
            a = T.alloc_shared((3, 5, 7), "float32")
            v = T.alloc_fragment((65,), "float32")
            r0 = T.alloc_fragment((5, 7), "float32")
            r1 = T.alloc_fragment((3, 1, 7), "float32")
            r2 = T.alloc_shared((3, 5), "float32")
            rs = T.alloc_fragment((2,), "float32")
            rt = T.alloc_fragment((2, 7), "float32")
            rv = T.alloc_fragment((1,), "float32")
            T.copy(A, a)
            T.copy(V, v)
            T.reduce_max(a, r0, dim=0)
            T.reduce_sum(a, r1, dim=1)
            T.reduce_absmax(a, r2, dim=-1)
            T.reduce_min(a[1:3, 2, 1:7], rs, dim=2)  # slices: dim counts the buffer's dimensions
            T.reduce_sum(a[0:2, 1:4, :], rt, dim=1)
            T.reduce_sum(v, rv, dim=0)
            T.copy(r0, R0)
            T.copy(r1, R1)
            T.copy(r2, R2)
            T.copy(rs, RS)
            T.copy(rt, RT)
            T.copy(rv, RV)

    return tilewise.compile(main, target="cpu", out_idx=[2, 3, 4, 5, 6, 7])


def test_reduce_nd(nd_kernel, rng):
    a = rng.standard_normal((3, 5, 7)).astype(np.float32)
    v = rng.standard_normal(65).astype(np.float32)
    r0, r1, r2, rs, rt, rv = nd_kernel(a, v)
    np.testing.assert_allclose(r0, a.max(0), rtol=1e-6)
    np.testing.assert_allclose(r1, a.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r2, np.abs(a).max(-1), rtol=1e-6)
    np.testing.assert_allclose(rs, a[1:3, 2, 1:7].min(-1), rtol=0)
    np.testing.assert_allclose(rt, a[0:2, 1:4, :].sum(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv, [v.sum()], rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def limits_kernel():
    """Identities at the edges of each type: integer minima and maxima, infinities, booleans,
    and accumulation in float16 / bfloat16."""

    @T.prim_func
    def main(
        X: T.Tensor((4, 9), "int32"),
        U: T.Tensor((4, 9), "uint8"),
        F: T.Tensor((4, 9), "float32"),
        H: T.Tensor((4, 40), "float16"),
        Bf: T.Tensor((4, 40), "bfloat16"),
        Bo: T.Tensor((4, 9), "bool"),
        RX: T.Tensor((4,), "int32"),
        RU: T.Tensor((4,), "uint8"),
        RFmax: T.Tensor((4,), "float32"),
        RFmin: T.Tensor((9,), "float32"),
        RH: T.Tensor((4,), "float16"),
        RB: T.Tensor((40,), "bfloat16"),
        RBo: T.Tensor((4,), "int32"),
    ):
        with T.Kernel(1):
            x = T.alloc_fragment((4, 9), "int32")
            u = T.alloc_fragment((4, 9), "uint8")
            f = T.alloc_fragment((4, 9), "float32")
            h = T.alloc_fragment((4, 40), "float16")
            b = T.alloc_fragment((4, 40), "bfloat16")
            bo = T.alloc_fragment((4, 9), "bool")
            rx = T.alloc_fragment((4,), "int32")
            ru = T.alloc_fragment((4,), "uint8")
            rfmax = T.alloc_fragment((4,), "float32")
            rfmin = T.alloc_fragment((9,), "float32")
            rh = T.alloc_fragment((4,), "float16")
            rb = T.alloc_fragment((40,), "bfloat16")
            rbo = T.alloc_fragment((4,), "int32")
            T.copy(X, x)
            T.copy(U, u)
            T.copy(F, f)
            T.copy(H, h)
            T.copy(Bf, b)
            T.copy(Bo, bo)
            T.reduce_max(x, rx)
            T.reduce_min(u, ru)
            T.reduce_max(f, rfmax, dim=1)
            T.reduce_min(f, rfmin, dim=0)
            T.reduce_sum(h, rh)
            T.reduce_absmax(b, rb, dim=0)
            T.reduce_sum(bo, rbo)
            T.copy(rx, RX)
            T.copy(ru, RU)
            T.copy(rfmax, RFmax)
            T.copy(rfmin, RFmin)
            T.copy(rh, RH)
            T.copy(rb, RB)
            T.copy(rbo, RBo)

    return tilewise.compile(main, target="cpu", out_idx=list(range(6, 13)))


def test_reduce_type_limits(limits_kernel, rng):
    import ml_dtypes

    x = rng.integers(-(2**31), -1000, size=(4, 9)).astype(np.int32)
    u = rng.integers(200, 256, size=(4, 9)).astype(np.uint8)
    u[2] = 255
    f = rng.standard_normal((4, 9)).astype(np.float32)
    f[0] = -np.inf
    f[1] = np.inf
    f[:, 3] = np.inf
    h = rng.uniform(-1, 1, size=(4, 40)).astype(np.float16)
    b = rng.standard_normal((4, 40)).astype(ml_dtypes.bfloat16)
    bo = rng.random((4, 9)) < 0.5
    rx, ru, rfmax, rfmin, rh, rb, rbo = limits_kernel(x, u, f, h, b, bo)
    np.testing.assert_array_equal(rx, x.max(1))
    np.testing.assert_array_equal(ru, u.min(1))
    np.testing.assert_array_equal(rfmax, f.max(1))
    np.testing.assert_array_equal(rfmin, f.min(0))
    # float16 accumulation rounds after every step; a row longer than 32 is folded as a warp
    # would: 32 lanes take every 32nd value, then combine pairwise
    def add(a, b):
        return np.float16(np.float32(a) + np.float32(b))

    ref = []
    for row in h:
        lanes = list(row[:32])
        for i in range(32, len(row)):
            lanes[i % 32] = add(lanes[i % 32], row[i])
        w = 16
        while w:
            lanes[:w] = [add(lanes[k], lanes[k + w]) for k in range(w)]
            w //= 2
        ref.append(add(np.float16(0), lanes[0]))
    np.testing.assert_array_equal(rh, np.array(ref, dtype=np.float16))
    np.testing.assert_array_equal(rb.astype(np.float32), np.abs(b.astype(np.float32)).max(0))
    np.testing.assert_array_equal(rbo, bo.sum(1))


def test_reduce_lowering_vectorises():
    """The last dim reduces through the runtime's row reductions (16 short rows at a time here);
    another dim reduces with the contiguous dst row innermost (an ivdep loop). The tiles are
    elided on the input side: the reductions read A directly."""

    @T.prim_func
    def main(A: T.Tensor((16, 64), "float32"), R: T.Tensor((16,), "float32"), C: T.Tensor((64,), "float32")):
        with T.Kernel(1):
            a = T.alloc_fragment((16, 64), "float32")
            r = T.alloc_fragment((16,), "float32")
            c = T.alloc_fragment((64,), "float32")
            T.copy(A, a)
            T.reduce_sum(a, r, dim=1)
            T.reduce_max(a, c, dim=0)
            T.copy(r, R)
            T.copy(c, C)

    src = tilewise.lower(main, target="cpu").kernel_source
    assert "tw::rows_sum((&r[0]), (&A[0]), 16, 64, 64, 0, 0.0f);" in src
    lines = src.splitlines()
    k = next(i for i, s in enumerate(lines) if "tw::max(c[" in s)
    assert "#pragma GCC ivdep" in lines[k - 2] and "< 64" in lines[k - 1], "\n".join(lines[k - 6 : k + 1])


# ---------------------------------------------------------------------------- argument errors


def _parse(body):
    """Parse a kernel whose only statement is body(a, r, s) on fragments a (8, 16), r (8,)
    and s (16,)."""

    @T.prim_func
    def main(A: T.Tensor((8, 16), "float32")):
        with T.Kernel(1):
            a = T.alloc_fragment((8, 16), "float32")
            r = T.alloc_fragment((8,), "float32")
            s = T.alloc_fragment((16,), "float32")
            body(A, a, r, s)

    return main


@pytest.mark.parametrize(
    "body, match",
    [
        (lambda A, a, r, s: T.reduce_sum(a, s), r"reducing a of shape \(8, 16\) along dim 1 gives shape \(8,\)"),
        (lambda A, a, r, s: T.reduce_sum(a, r, dim=0), r"gives shape \(16,\).*r has shape \(8,\)"),
        (lambda A, a, r, s: T.reduce_max(a, r, dim=2), r"dim=2 is out of range for the 2-D tile a"),
        (lambda A, a, r, s: T.reduce(a, r, "mean", 1), r"unknown reduce_type 'mean'"),
        (lambda A, a, r, s: T.reduce_sum(A, r), r"A is a global buffer"),
        (lambda A, a, r, s: T.reduce_sum(a, a), r"same buffer a"),
        (lambda A, a, r, s: T.reduce_sum(a, r, dim=a[0, 0]), r"dim must be a compile-time integer"),
        (lambda A, a, r, s: T.reduce_sum(a, r, clear=a[0, 0] > 0), r"clear must be a Python bool"),
        (lambda A, a, r, s: T.reduce_sum(a, 3.0), r"the destination must be a buffer"),
    ],
)
def test_reduce_errors(body, match):
    with pytest.raises(CompileError, match=match):
        _parse(body)


def test_reduce_error_dtype_and_scope():
    with pytest.raises(CompileError, match=r"destination m has type bool"):

        @T.prim_func
        def bad_bool(A: T.Tensor((8, 16), "float32")):
            with T.Kernel(1):
                a = T.alloc_fragment((8, 16), "float32")
                m = T.alloc_fragment((8,), "bool")
                T.reduce_max(a, m)

    with pytest.raises(CompileError, match=r"inside `with T.Kernel"):

        @T.prim_func
        def outside(A: T.Tensor((8, 16), "float32")):
            T.reduce_max(A, A)
