"""T.atomic_add / atomic_max / atomic_min on the CPU. Blocks run in parallel on OpenMP threads, so
these tests race for real: a split-K GEMM whose blocks add into the same output tiles, and
counters hammered by every block in every supported type (sub-word types share 32-bit words)."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise import CompileError


def split_k_gemm(M, N, K, bm, bn, bk, splits, dtype, out_dtype, form):
    k_tiles = -(-K // (bk * splits))  # K tiles per split

    @T.prim_func
    def main(A: T.Tensor((M, K), dtype), B: T.Tensor((K, N), dtype), C: T.Tensor((M, N), out_dtype)):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), splits) as (bx, by, bz):
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

    return main


@pytest.mark.parametrize(
    "dtype, out_dtype, form, tol",
    [
        ("float32", "float32", "tile", 1e-4),
        ("float16", "float32", "element", 1e-3),
        ("bfloat16", "bfloat16", "tile", 3e-2),
    ],
)
def test_split_k_gemm(dtype, out_dtype, form, tol, rng):
    M, N, K = 65, 33, 200
    kernel = tilewise.compile(split_k_gemm(M, N, K, 32, 16, 16, 4, dtype, out_dtype, form), target="cpu")
    npd = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
    a = rng.standard_normal((M, K)).astype(npd[dtype])
    b = rng.standard_normal((K, N)).astype(npd[dtype])
    c0 = rng.standard_normal((M, N)).astype(npd[out_dtype])
    c = c0.copy()
    kernel(a, b, c)
    ref = c0.astype(np.float64) + a.astype(np.float64) @ b.astype(np.float64)
    scale = np.abs(ref).max()
    np.testing.assert_allclose(c.astype(np.float64), ref, atol=tol * scale, rtol=tol)
    if form == "tile":
        # float32 rows go 16 bytes per exchange (transform/atomic_add_runs.py), bfloat16 element-wise
        run = "tw::atomic_add_run((&C[" if out_dtype == "float32" else "tw::atomic_add((&C["
        assert run in kernel.get_kernel_source()


COUNTER_TYPES = ("float32", "float64", "float16", "bfloat16", "float8_e4m3", "int8", "uint8", "int16", "int32",
                 "int64", "uint32")
BLOCKS = 64
PAIRS = 3000  # per block: +1 then -1, so totals stay small and exact in every type


@pytest.fixture(scope="module")
def counters_kernel():
    """Every block adds +1 and -1 PAIRS times, then +1, to counter bx // 2 % 4 (blocks
    running at the same time share it): any lost update shows.
    Four counters of a sub-word type share one 32-bit word, which the CAS loop must respect."""
    types = COUNTER_TYPES

    @T.prim_func
    def main(
        C0: T.Tensor((4,), types[0]), C1: T.Tensor((4,), types[1]), C2: T.Tensor((4,), types[2]),
        C3: T.Tensor((4,), types[3]), C4: T.Tensor((4,), types[4]), C5: T.Tensor((4,), types[5]),
        C6: T.Tensor((4,), types[6]), C7: T.Tensor((4,), types[7]), C8: T.Tensor((4,), types[8]),
        C9: T.Tensor((4,), types[9]), C10: T.Tensor((4,), types[10]),
    ):  # fmt: skip
        with T.Kernel(BLOCKS) as bx:
            for _ in T.serial(PAIRS):
                for buf, t in zip((C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10), types):
                    T.atomic_add(buf[bx // 2 % 4], 1)
                    # unsigned types wrap: adding the maximum value subtracts one
                    T.atomic_add(buf[bx // 2 % 4], T.max_value(t) if t.startswith("uint") else -1)
            for buf in (C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10):
                T.atomic_add(buf[bx // 2 % 4], 1)

    return tilewise.compile(main, target="cpu")


def test_atomic_add_counters_every_type(counters_kernel):
    dts = [tilewise.ir.dtype.as_dtype(t).numpy for t in COUNTER_TYPES]
    for _ in range(2):
        cs = [np.zeros(4, dtype=d) for d in dts]
        counters_kernel(*cs)
        for t, c in zip(COUNTER_TYPES, cs):
            np.testing.assert_array_equal(c.astype(np.float64), np.full(4, BLOCKS // 4), err_msg=t)


@pytest.fixture(scope="module")
def minmax_kernel():
    @T.prim_func
    def main(
        A: T.Tensor((BLOCKS, 5), "float32"),
        H: T.Tensor((BLOCKS,), "float16"),
        I: T.Tensor((BLOCKS,), "int32"),
        MX: T.Tensor((2,), "float32"),
        MH: T.Tensor((2,), "float16"),
        MI: T.Tensor((2,), "int32"),
        TileMax: T.Tensor((5,), "float32"),
        TileMin: T.Tensor((3,), "float32"),
        S: T.Tensor((3, 4), "float32"),
    ):
        with T.Kernel(BLOCKS) as bx:
            a = T.alloc_fragment((5,), "float32")
            s = T.alloc_shared((3, 4), "float32")
            T.copy(A[bx, 0], a)
            T.atomic_max(MX[0], A[bx, 0])
            T.atomic_min(MX[1], A[bx, 0])
            T.atomic_max(MH[0], H[bx])
            T.atomic_min(MH[1], H[bx])
            T.atomic_max(MI[0], I[bx])
            T.atomic_min(MI[1], I[bx])
            T.atomic_max(TileMax, a)  # whole tiles, element-wise
            T.atomic_min(TileMin[0:3], a[1:4])
            # shared destination and a scalar added to every element of a slice
            T.clear(s)
            T.atomic_add(s[1:3, 0:4], 2.5)
            T.atomic_add(s[0, 1], 1)
            if bx == 0:
                T.copy(s, S)

    return tilewise.compile(main, target="cpu")


def test_atomic_max_min_and_scalar_tiles(minmax_kernel, rng):
    a = rng.standard_normal((BLOCKS, 5)).astype(np.float32)
    h = rng.standard_normal(BLOCKS).astype(np.float16)
    i = rng.integers(-(10**6), 10**6, size=BLOCKS).astype(np.int32)
    mx = np.array([-np.inf, np.inf], np.float32)
    mh = np.array([-np.inf, np.inf], np.float16)
    mi = np.array([np.iinfo(np.int32).min, np.iinfo(np.int32).max], np.int32)
    tmax = np.full(5, -np.inf, np.float32)
    tmin = np.full(3, np.inf, np.float32)
    s = np.zeros((3, 4), np.float32)
    minmax_kernel(a, h, i, mx, mh, mi, tmax, tmin, s)
    np.testing.assert_array_equal(mx, [a[:, 0].max(), a[:, 0].min()])
    np.testing.assert_array_equal(mh, np.array([h.max(), h.min()], np.float16))
    np.testing.assert_array_equal(mi, [i.max(), i.min()])
    np.testing.assert_array_equal(tmax, a.max(0))
    np.testing.assert_array_equal(tmin, a[:, 1:4].min(0))
    np.testing.assert_array_equal(s, [[0, 1, 0, 0], [2.5] * 4, [2.5] * 4])


def test_atomic_tile_guards_global_bounds(rng):
    """A tile hanging over the edge of the destination adds only the elements inside it."""

    @T.prim_func
    def main(V: T.Tensor((8, 8), "float32"), C: T.Tensor((7, 5), "float32")):
        with T.Kernel(3):
            v = T.alloc_fragment((8, 8), "float32")
            T.copy(V, v)
            T.atomic_add(C[2, 1], v)

    kernel = tilewise.compile(main, target="cpu")
    v = rng.standard_normal((8, 8)).astype(np.float32)
    c = np.zeros((7, 5), np.float32)
    kernel(v, c)
    ref = np.zeros((7, 5), np.float32)
    ref[2:, 1:] = 3 * v[:5, :4]
    np.testing.assert_allclose(c, ref, rtol=1e-6)


def _parse(body):
    @T.prim_func
    def main(C: T.Tensor((8, 16), "float32"), M: T.Tensor((8,), "bool")):
        with T.Kernel(1):
            f = T.alloc_fragment((8, 16), "float32")
            g = T.alloc_fragment((4, 4), "float32")
            body(C, M, f, g)

    return main


@pytest.mark.parametrize(
    "body, match",
    [
        (lambda C, M, f, g: T.atomic_add(f[0, 0], 1.0), r"destination f is a local.fragment buffer"),
        (lambda C, M, f, g: T.atomic_add(f, C), r"destination f is a local.fragment buffer"),
        (lambda C, M, f, g: T.atomic_add(M[0], True), r"destination M has type bool"),
        (lambda C, M, f, g: T.atomic_add(C[0, 0], 1.0, memory_order="strong"), r"unknown memory_order 'strong'"),
        (lambda C, M, f, g: T.atomic_add(C[0:4, 0:8], g), r"source g region has shape \(4, 4\) but the destination C region has shape \(4, 8\)"),
        (lambda C, M, f, g: T.atomic_max(C[0, 0], "x"), r"the value must be a scalar expression or a tile"),
        (lambda C, M, f, g: T.atomic_add(3, 1.0), r"the destination must be a buffer element"),
    ],
)
def test_atomic_errors(body, match):
    with pytest.raises(CompileError, match=match):
        _parse(body)
