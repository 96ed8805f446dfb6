"""T.reduce, T.cumsum and the atomics on the CUDA target, in the emulator against numpy, and
compiled with NVRTC (sm_80, sm_90a) without spills."""
from __future__ import annotations

import functools

import ml_dtypes
import numpy as np
import pytest

import tilewise
import tilewise.language as T

KINDS = ("sum", "abssum", "max", "min", "absmax")


def np_reduce(x, kind, axis):
    if kind.startswith("abs"):
        x = np.abs(x)
    return {"sum": np.sum, "abssum": np.sum, "max": np.max, "min": np.min, "absmax": np.max}[kind](x, axis=axis)


def np_combine(old, red, kind):
    if kind in ("sum", "abssum"):
        return old + red
    if kind == "max":
        return np.maximum(old, red)
    if kind == "min":
        return np.minimum(old, red)
    return np.maximum(old, red)  # absmax: dst as it is (TileLang: max(dst, max|x|)), not |dst|


# ------------------------------------------------------------------------------- reduce

# (source dtype, accumulator dtype, tile rows, tile columns, threads, source scope)
REDUCE_CONFIGS = {
    "f32-frag-128": ("float32", "float32", 32, 64, 128, "fragment"),
    "f16-frag-64-ragged": ("float16", "float32", 24, 40, 64, "fragment"),  # 40 columns: 8-wide chunks won't do
    "f32-frag-256-crosswarp": ("float32", "float32", 8, 64, 256, "fragment"),  # dim 0 spans warps
    "i8-frag-96": ("int8", "int32", 12, 16, 96, "fragment"),  # 3 warps: non power of two
    "f32-frag-96-radix12": ("float32", "float32", 12, 32, 96, "fragment"),  # 12 threads share a column
    "f32-shared-128": ("float32", "float32", 16, 48, 128, "shared"),
}


@functools.cache
def reduce_kernel(config):
    dtype, acc, bm, bn, threads, scope = REDUCE_CONFIGS[config]
    Q = len(KINDS)

    @T.prim_func
    def red(A: T.Tensor((bm, bn), dtype), I1: T.Tensor((Q, bm), acc), O1: T.Tensor((Q, 2, bm), acc),
            I0: T.Tensor((Q, bn), acc), O0: T.Tensor((Q, 2, bn), acc), OS: T.Tensor((Q, bm), acc)):
        with T.Kernel(1, threads=threads) as _:
            if scope == "fragment":
                a = T.alloc_fragment((bm, bn), dtype)
            else:
                a = T.alloc_shared((bm, bn), dtype)
            rs = T.alloc_shared((bm,), acc)
            T.copy(A, a)
            for q, kind in enumerate(KINDS):
                r1 = T.alloc_fragment((bm,), acc)
                k1 = T.alloc_fragment((bm,), acc)
                r0 = T.alloc_fragment((bn,), acc)
                k0 = T.alloc_fragment((1, bn), acc)  # the reduced dim kept with extent 1
                T.reduce(a, r1, kind, dim=1, clear=True)
                T.copy(I1[q, :], k1)
                T.reduce(a, k1, kind, dim=1, clear=False)
                T.reduce(a, r0, kind, dim=0, clear=True)
                T.copy(I0[q:q + 1, :], k0)
                T.reduce(a, k0, kind, dim=-2, clear=False)
                T.copy(r1, O1[q, 0, :])
                T.copy(k1, O1[q, 1, :])
                T.copy(r0, O0[q, 0, :])
                T.copy(k0, O0[q:q + 1, 1, :])
                if scope == "shared":
                    T.reduce(a, rs, kind, dim=1)  # shared -> shared
                    T.copy(rs, OS[q, :])

    return red


def _random(rng, shape, dtype):
    if dtype.startswith("int"):
        return rng.integers(-100, 100, size=shape).astype(dtype)
    return (rng.standard_normal(shape) * 4).astype(dtype)


@pytest.mark.parametrize("config", sorted(REDUCE_CONFIGS))
def test_reduce_every_kind_dim_and_clear(emu, config, rng):
    dtype, acc, bm, bn, threads, scope = REDUCE_CONFIGS[config]
    Q = len(KINDS)
    a = _random(rng, (bm, bn), dtype)
    i1, i0 = _random(rng, (Q, bm), acc), _random(rng, (Q, bn), acc)
    o1, o0, os_ = np.zeros((Q, 2, bm), acc), np.zeros((Q, 2, bn), acc), np.zeros((Q, bm), acc)
    emu(reduce_kernel(config))(a, i1, o1, i0, o0, os_)
    x = a.astype(np.float64)
    tol = dict(rtol=1e-5, atol=1e-4) if acc.startswith("float") else dict(rtol=0, atol=0)
    for q, kind in enumerate(KINDS):
        r1, r0 = np_reduce(x, kind, 1), np_reduce(x, kind, 0)
        np.testing.assert_allclose(o1[q, 0], r1, err_msg=f"{kind} dim=1", **tol)
        np.testing.assert_allclose(o1[q, 1], np_combine(i1[q].astype(np.float64), r1, kind),
                                   err_msg=f"{kind} dim=1 clear=False", **tol)
        np.testing.assert_allclose(o0[q, 0], r0, err_msg=f"{kind} dim=0", **tol)
        np.testing.assert_allclose(o0[q, 1], np_combine(i0[q].astype(np.float64), r0, kind),
                                   err_msg=f"{kind} dim=0 clear=False", **tol)
        if scope == "shared":
            np.testing.assert_allclose(os_[q], r1, err_msg=f"{kind} shared", **tol)


@pytest.mark.parametrize("config", sorted(REDUCE_CONFIGS))
def test_reduce_compiles_clean(nvrtc_check, config):
    nvrtc_check(reduce_kernel(config))


@functools.cache
def crosswarp_kernel():
    """Column sums whose threads span warps (through shared memory) and row maxima by shuffles."""

    @T.prim_func
    def crosswarp(A: T.Tensor((8, 64), "float32"), S: T.Tensor((64,), "float32"), X: T.Tensor((8,), "float32")):
        with T.Kernel(1, threads=256) as _:
            a = T.alloc_fragment((8, 64), "float32")
            s = T.alloc_fragment((64,), "float32")
            x = T.alloc_fragment((8,), "float32")
            T.copy(A, a)
            T.reduce_sum(a, s, dim=0)
            T.reduce_max(a, x, dim=1)
            T.copy(s, S)
            T.copy(x, X)

    return crosswarp


def test_cross_warp_reduction_compiles_clean(emu, nvrtc_check, rng):
    a = rng.standard_normal((8, 64)).astype(np.float32)
    s, x = emu(crosswarp_kernel(), out_idx=[1, 2])(a)
    np.testing.assert_allclose(s, a.sum(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(x, a.max(1))
    nvrtc_check(crosswarp_kernel(), expect=("SHFL", "BAR"))


@functools.cache
def reduce_nd_kernel():
    @T.prim_func
    def rnd(A: T.Tensor((4, 8, 16), "float32"), V: T.Tensor((64,), "float32"), R0: T.Tensor((8, 16), "float32"),
            R1: T.Tensor((4, 1, 16), "float32"), R2: T.Tensor((4, 8), "float32"), RV: T.Tensor((1,), "float32")):
        with T.Kernel(1, threads=128) as _:
            a = T.alloc_fragment((4, 8, 16), "float32")
            v = T.alloc_fragment((64,), "float32")
            r0 = T.alloc_fragment((8, 16), "float32")
            r1 = T.alloc_fragment((4, 1, 16), "float32")
            r2 = T.alloc_fragment((4, 8), "float32")
            rv = T.alloc_fragment((1,), "float32")
            T.copy(A, a)
            T.copy(V, v)
            T.reduce_max(a, r0, dim=0)
            T.reduce_sum(a, r1, dim=1)
            T.reduce_absmax(a, r2, dim=-1)
            T.reduce_sum(v, rv, dim=0)
            T.copy(r0, R0)
            T.copy(r1, R1)
            T.copy(r2, R2)
            T.copy(rv, RV)

    return rnd


def test_reduce_1d_and_3d(emu, nvrtc_check, rng):
    a = rng.standard_normal((4, 8, 16)).astype(np.float32)
    v = rng.standard_normal(64).astype(np.float32)
    r0, r1, r2, rv = emu(reduce_nd_kernel(), out_idx=[2, 3, 4, 5])(a, v)
    np.testing.assert_allclose(r0, a.max(0))
    np.testing.assert_allclose(r1, a.sum(1, keepdims=True), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r2, np.abs(a).max(-1))
    np.testing.assert_allclose(rv, [v.sum()], rtol=1e-5, atol=1e-5)
    nvrtc_check(reduce_nd_kernel())


# ------------------------------------------------------------------------------- cumsum


@functools.cache
def cumsum_kernel():
    @T.prim_func
    def scan(A: T.Tensor((12, 40), "float32"), X: T.Tensor((6, 9), "int32"), V: T.Tensor((65,), "float32"),
             O: T.Tensor((4, 12, 40), "float32"), RX: T.Tensor((6, 9), "int32"), RS: T.Tensor((2, 9), "int32"),
             RV: T.Tensor((65,), "float32")):
        with T.Kernel(1, threads=64) as _:
            s = T.alloc_shared((12, 40), "float32")
            d = T.alloc_shared((12, 40), "float32")
            x = T.alloc_shared((6, 9), "int32")
            rs = T.alloc_shared((2, 9), "int32")
            v = T.alloc_shared((65,), "float32")
            T.copy(X, x)
            T.copy(V, v)
            for q, (dim, reverse) in enumerate(((0, False), (1, False), (0, True), (-1, True))):
                T.copy(A, s)
                if q % 2 == 0:
                    T.cumsum(s, dim=dim, reverse=reverse)  # in place
                    T.copy(s, O[q])
                else:
                    T.cumsum(s, d, dim=dim, reverse=reverse)
                    T.copy(d, O[q])
            T.cumsum(x[1:3, :], rs, dim=1)
            T.cumsum(x, dim=0)
            T.cumsum(v, reverse=True)
            T.copy(x, RX)
            T.copy(rs, RS)
            T.copy(v, RV)

    return scan


def np_cumsum(x, dim, reverse):
    if reverse:
        return np.flip(np.cumsum(np.flip(x, dim), dim), dim)
    return np.cumsum(x, dim)


def test_cumsum_shared(emu, nvrtc_check, rng):
    a = rng.standard_normal((12, 40)).astype(np.float32)
    x = rng.integers(-1000, 1000, size=(6, 9)).astype(np.int32)
    v = rng.standard_normal(65).astype(np.float32)
    o, rx, rs, rv = emu(cumsum_kernel(), out_idx=[3, 4, 5, 6])(a, x, v)
    for q, (dim, reverse) in enumerate(((0, False), (1, False), (0, True), (-1, True))):
        np.testing.assert_allclose(o[q], np_cumsum(a, dim, reverse), rtol=1e-5, atol=1e-5, err_msg=str(q))
    np.testing.assert_array_equal(rx, np.cumsum(x, 0))
    np.testing.assert_array_equal(rs, np.cumsum(x[1:3], 1))
    np.testing.assert_allclose(rv, np_cumsum(v, 0, True), rtol=1e-5, atol=1e-5)
    nvrtc_check(cumsum_kernel())


@functools.cache
def fragment_cumsum_kernel():
    @T.prim_func
    def fscan(A: T.Tensor((16, 48), "float32"), X: T.Tensor((6, 9), "int32"), O: T.Tensor((4, 16, 48), "float32"),
              RX: T.Tensor((2, 9), "int32")):
        with T.Kernel(1, threads=128) as _:
            a = T.alloc_fragment((16, 48), "float32")
            b = T.alloc_fragment((16, 48), "float32")
            s = T.alloc_shared((16, 48), "float32")
            x = T.alloc_shared((6, 9), "int32")
            rs = T.alloc_fragment((2, 9), "int32")
            for _rep in T.serial(2):  # twice: the scratch tiles are reused safely
                T.copy(A, a)
                T.cumsum(a, dim=1)  # in place in registers
                T.copy(a, O[0])
                T.copy(A, a)
                T.cumsum(a, b, dim=0, reverse=True)  # fragment -> fragment
                T.copy(b, O[1])
                T.copy(A, s)
                T.cumsum(s, b, dim=1, reverse=True)  # shared -> fragment
                T.copy(b, O[2])
                T.cumsum(a, s, dim=0)  # fragment -> shared
                T.copy(s, O[3])
            T.copy(X, x)
            T.cumsum(x[1:3, :], rs, dim=1)
            T.copy(rs, RX)

    return fscan


def test_cumsum_of_fragments(emu, nvrtc_check, rng):
    a = rng.standard_normal((16, 48)).astype(np.float32)
    x = rng.integers(-1000, 1000, size=(6, 9)).astype(np.int32)
    o, rx = emu(fragment_cumsum_kernel(), out_idx=[2, 3])(a, x)
    for q, (dim, reverse) in enumerate(((1, False), (0, True), (1, True), (0, False))):
        np.testing.assert_allclose(o[q], np_cumsum(a, dim, reverse), rtol=1e-5, atol=1e-5, err_msg=str(q))
    np.testing.assert_array_equal(rx, np.cumsum(x[1:3], 1))
    nvrtc_check(fragment_cumsum_kernel())


# ------------------------------------------------------------------------------- atomics


@functools.cache
def split_k_gemm(dtype, out_dtype, form):
    M, N, K, bm, bn, bk, splits = 65, 33, 200, 32, 16, 16, 4
    k_tiles = -(-K // (bk * splits))

    @T.prim_func
    def splitk(A: T.Tensor((M, K), dtype), B: T.Tensor((K, N), dtype), C: T.Tensor((M, N), out_dtype)):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), splits, threads=64) as (bx, by, bz):
            a = T.alloc_shared((bm, bk), dtype)
            b = T.alloc_shared((bk, bn), dtype)
            c = T.alloc_fragment((bm, bn), "float32")
            T.clear(c)
            for k in T.serial(k_tiles):
                T.copy(A[by * bm, (bz * k_tiles + k) * bk], a)
                T.copy(B[(bz * k_tiles + k) * bk, bx * bn], b)
                T.gemm(a, b, c)
            if form == "tile":
                T.atomic_add(C[by * bm, bx * bn], c)
            else:
                for i, j in T.Parallel(bm, bn):
                    if by * bm + i < M and bx * bn + j < N:
                        T.atomic_add(C[by * bm + i, bx * bn + j], c[i, j])

    return splitk


@pytest.mark.parametrize("dtype, out_dtype, form, tol", [
    ("float16", "float32", "tile", 1e-3),
    ("float16", "float32", "element", 1e-3),
    ("bfloat16", "bfloat16", "tile", 3e-2),
])
def test_split_k_gemm_atomics(emu, nvrtc_check, dtype, out_dtype, form, tol, rng):
    M, N, K = 65, 33, 200
    npd = {"float16": np.float16, "float32": np.float32, "bfloat16": ml_dtypes.bfloat16}
    a = rng.standard_normal((M, K)).astype(npd[dtype])
    b = rng.standard_normal((K, N)).astype(npd[dtype])
    c0 = rng.standard_normal((M, N)).astype(npd[out_dtype])
    c = c0.copy()
    emu(split_k_gemm(dtype, out_dtype, form))(a, b, c)
    ref = c0.astype(np.float64) + a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(c.astype(np.float64), ref, atol=tol * np.abs(ref).max(), rtol=tol)
    if form == "tile":
        # bfloat16 global atomics are a compare-and-swap loop before sm_90
        nvrtc_check(split_k_gemm(dtype, out_dtype, form), expect=("HMMA", ("RED", "REDG", "ATOMG", "ATOM")))


BLOCKS = 8


@functools.cache
def atomic_kernel():
    @T.prim_func
    def atom(A: T.Tensor((BLOCKS, 5), "float32"), H: T.Tensor((BLOCKS,), "float16"), I: T.Tensor((BLOCKS,), "int32"),
             MX: T.Tensor((2,), "float32"), MH: T.Tensor((2,), "float16"), MI: T.Tensor((2,), "int32"),
             TileMax: T.Tensor((5,), "float32"), TileMin: T.Tensor((3,), "float32"), S: T.Tensor((3, 4), "float32"),
             Cnt: T.Tensor((4,), "int32"), Edge: T.Tensor((7, 5), "float32"), V: T.Tensor((8, 8), "float32")):
        with T.Kernel(BLOCKS, threads=64) as bx:
            a = T.alloc_fragment((5,), "float32")
            s = T.alloc_shared((3, 4), "float32")
            v = T.alloc_fragment((8, 8), "float32")
            T.copy(A[bx, 0], a)
            T.atomic_max(MX[0], A[bx, 0])  # element forms at block level: once per block
            T.atomic_min(MX[1], A[bx, 0])
            T.atomic_max(MH[0], H[bx])
            T.atomic_min(MH[1], H[bx])
            T.atomic_max(MI[0], I[bx])
            T.atomic_min(MI[1], I[bx])
            T.atomic_max(TileMax, a)  # whole tiles, element-wise
            T.atomic_min(TileMin[0:3], a[1:4])
            T.clear(s)
            T.atomic_add(s[1:3, 0:4], 2.5)  # shared destination, a scalar over a slice
            T.atomic_add(s[0, 1], 1)
            if bx == 0:
                T.copy(s, S)
            for i in T.Parallel(16):  # element form inside T.Parallel: once per iteration
                T.atomic_add(Cnt[i % 4], 1)
            T.copy(V, v)
            if bx < 3:
                T.atomic_add(Edge[2, 1], v)  # a tile hanging over the edge of the destination

    return atom


def test_atomics_tile_element_shared_and_edges(emu, nvrtc_check, rng):
    a = rng.standard_normal((BLOCKS, 5)).astype(np.float32)
    h = rng.standard_normal(BLOCKS).astype(np.float16)
    i = rng.integers(-(10**6), 10**6, size=BLOCKS).astype(np.int32)
    mx = np.array([-np.inf, np.inf], np.float32)
    mh = np.array([-np.inf, np.inf], np.float16)
    mi = np.array([np.iinfo(np.int32).min, np.iinfo(np.int32).max], np.int32)
    tmax, tmin = np.full(5, -np.inf, np.float32), np.full(3, np.inf, np.float32)
    s, cnt = np.zeros((3, 4), np.float32), np.zeros(4, np.int32)
    edge = np.zeros((7, 5), np.float32)
    v = rng.standard_normal((8, 8)).astype(np.float32)
    emu(atomic_kernel())(a, h, i, mx, mh, mi, tmax, tmin, s, cnt, edge, v)
    np.testing.assert_array_equal(mx, [a[:, 0].max(), a[:, 0].min()])
    np.testing.assert_array_equal(mh, np.array([h.max(), h.min()], np.float16))
    np.testing.assert_array_equal(mi, [i.max(), i.min()])
    np.testing.assert_array_equal(tmax, a.max(0))
    np.testing.assert_array_equal(tmin, a[:, 1:4].min(0))
    np.testing.assert_array_equal(s, [[0, 1, 0, 0], [2.5] * 4, [2.5] * 4])
    np.testing.assert_array_equal(cnt, [4 * BLOCKS] * 4)
    ref = np.zeros((7, 5), np.float32)
    ref[2:, 1:] = 3 * v[:5, :4]
    np.testing.assert_allclose(edge, ref, rtol=1e-6)
    nvrtc_check(atomic_kernel(), expect=(("RED", "REDG"), "ATOMS"))


@functools.cache
def shared_atomic_kernel():
    @T.prim_func
    def histogram(V: T.Tensor((64,), "int32"), O: T.Tensor((4,), "int32")):
        with T.Kernel(1, threads=64) as _:
            s = T.alloc_shared((4,), "int32")
            T.clear(s)
            for i in T.Parallel(64):
                T.atomic_add(s[V[i] % 4], 1)  # element atomics into shared memory ...
            T.copy(s, O)  # ... must be complete (a barrier) before anyone reads s

    return histogram


def test_barrier_after_element_atomics_on_shared_memory(emu, rng):
    v = rng.integers(0, 100, size=64).astype(np.int32)
    k = emu(shared_atomic_kernel(), out_idx=[1])
    np.testing.assert_array_equal(np.asarray(k(v)), np.bincount(v % 4, minlength=4))
    # the emulator does not report a plain read after an unsynchronised atomic: check the code
    body = k.get_kernel_source().split("atomic_add", 1)[1]
    assert body.index("__syncthreads()") < body.index("copy_vec"), body


# ------------------------------------------------------------------------------- refusals


def test_refusals_name_the_problem(emu):
    # (a fragment reduced into shared memory is no refusal any more:
    # tests/tileop/test_reduce_fragment_into_memory.py)
    @T.prim_func
    def into_a_row(A: T.Tensor((8, 8), "float32"), R: T.Tensor((2, 8), "float32")):
        with T.Kernel(1, threads=32) as _:
            f = T.alloc_fragment((8, 8), "float32")
            rows = T.alloc_fragment((2, 8), "float32")
            T.copy(A, f)
            T.reduce_sum(f, rows[1, :], dim=1)
            T.copy(rows, R)

    with pytest.raises(tilewise.CompileError, match="T.reduce: on the CUDA target a fragment operand must be the whole "
                                                    "fragment rows"):
        emu(into_a_row)
