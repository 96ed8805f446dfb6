"""The CPU backend's speed-oriented code generation keeps results exact on edge shapes: loops
split at constant divisors (split_div_loops), tiles as stack arrays or in the heap workspace,
float16 element copies through their bits, and the per-call fast path (pointers straight to
the kernel's direct entry) with its fallbacks to the checking path."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tilewise
import tilewise.language as T
from tilewise.backend.cpu.codegen import STACK_TILE_BYTES


# ---------------------------------------------------------------- split_div_loops
def unpack_kernel(block: int, div: int, offset: int = 0):
    """Out[r, j] = nibble j % div of Packed[r, (j + offset) // div], one T.Parallel loop."""
    m, n = T.symbolic("m"), T.symbolic("n")
    bits = 8 // div

    @T.prim_func
    def main(Packed: T.Tensor((m, n), "uint8"), Out: T.Tensor((m, n * div), "int32")):
        with T.Kernel(T.ceildiv(n * div, block), m) as (bx, by):
            p = T.alloc_fragment((block // div + 1,), "uint8")
            o = T.alloc_fragment((block,), "int32")
            T.copy(Packed[by, bx * (block // div)], p)
            for j in T.Parallel(block):
                o[j] = T.cast((p[(j + offset) // div] >> ((j + offset) % div * bits)) & ((1 << bits) - 1), "int32")
            T.copy(o, Out[by, bx * block])

    return tilewise.compile(main, target="cpu")


def unpack_ref(packed: np.ndarray, div: int, offset: int, block: int) -> np.ndarray:
    bits = 8 // div
    m, n = packed.shape
    padded = np.concatenate([packed, np.zeros((m, block), np.uint8)], axis=1)  # T.copy reads zeros past the end
    out = np.zeros((m, n * div), np.int32)
    for bx in range(-(-n * div // block)):
        for j in range(min(block, n * div - bx * block)):
            src = bx * (block // div) + (j + offset) // div
            out[:, bx * block + j] = (padded[:, src] >> ((j + offset) % div * bits)) & ((1 << bits) - 1)
    return out


@pytest.fixture(scope="module")
def unpack_kernels():
    return {(b, d, o): unpack_kernel(b, d, o) for b, d, o in [(64, 2, 0), (64, 4, 0), (64, 2, 1), (62, 4, 0)]}


@pytest.mark.parametrize("block,div,offset,split", [(64, 2, 0, True), (64, 4, 0, True), (64, 2, 1, True),
                                                    (62, 4, 0, False)])
def test_split_div_loops(unpack_kernels, rng, block, div, offset, split):
    k = unpack_kernels[(block, div, offset)]
    # the loop is split (and vectorisable) exactly when the divisor divides the extent
    assert ("j_o" in k.get_kernel_source()) == split
    for m, n in [(1, 1), (3, 17), (2, 64)]:
        packed = rng.integers(0, 256, size=(m, n), dtype=np.uint8)
        out = np.full((m, n * div), -1, np.int32)
        k(packed, out)
        np.testing.assert_array_equal(out, unpack_ref(packed, div, offset, block))


@settings(max_examples=10, deadline=None)
@given(m=st.integers(1, 4), n=st.integers(1, 70), seed=st.integers(0, 2**32 - 1))
def test_split_div_loops_shapes(unpack_kernels, m, n, seed):
    packed = np.random.default_rng(seed).integers(0, 256, size=(m, n), dtype=np.uint8)
    for (block, div, offset), k in unpack_kernels.items():
        out = np.full((m, n * div), -1, np.int32)
        k(packed, out)
        np.testing.assert_array_equal(out, unpack_ref(packed, div, offset, block))


# ---------------------------------------------------------------- tiles: stack and workspace
@pytest.mark.parametrize("rows", [4, STACK_TILE_BYTES // (4 * 256) + 8])
def test_tiles_on_stack_and_in_workspace(rng, rows):
    """A small tile set lives on the stack; one past the budget puts the largest in the heap.
    (B is float64 so that `big` is a tile of its own, not computed in B's memory.)"""
    n = 256

    @T.prim_func
    def main(A: T.Tensor((rows * 3, n), "float32"), B: T.Tensor((rows * 3, n), "float64")):
        with T.Kernel(3) as bx:
            big = T.alloc_fragment((rows, n), "float32")
            small = T.alloc_fragment((n,), "float32")
            s = T.alloc_fragment((1,), "float32")
            T.copy(A[bx * rows, 0], big)
            T.reduce_sum(big, small, dim=0)
            T.reduce_max(small, s, dim=0)
            for i, j in T.Parallel(rows, n):
                big[i, j] = big[i, j] * small[j] - s[0]
            T.copy(big, B[bx * rows, 0])

    k = tilewise.compile(main, target="cpu")
    assert ("tw_ws" in k.get_kernel_source()) == (rows * n * 4 > STACK_TILE_BYTES)
    a = rng.standard_normal((rows * 3, n), dtype=np.float32)
    b = np.empty(a.shape, np.float64)
    k(a, b)
    blocks = a.reshape(3, rows, n)
    small = blocks.sum(axis=1, dtype=np.float32)
    ref = blocks * small[:, None, :] - small.max(axis=1)[:, None, None]
    np.testing.assert_allclose(b.reshape(3, rows, n), ref, rtol=1e-4, atol=1e-3)


# ---------------------------------------------------------------- float16 element copies
def test_float16_transposing_copy(rng):
    m, n = 48, 80

    @T.prim_func
    def main(A: T.Tensor((m, n), "float16"), B: T.Tensor((n, m), "float16")):
        with T.Kernel(1):
            t = T.alloc_shared((m, n), "float16")
            T.copy(A, t)
            for j, i in T.Parallel(n, m):
                B[j, i] = t[i, j]

    k = tilewise.compile(main, target="cpu")
    assert ".bits = " in k.get_kernel_source()
    a = rng.standard_normal((m, n)).astype(np.float16)
    a.view(np.uint16)[0, :4] = [0x7C00, 0xFC00, 0x7E01, 0x8000]  # inf, -inf, a NaN payload, -0
    b = np.empty((n, m), np.float16)
    k(a, b)
    np.testing.assert_array_equal(b.view(np.uint16), a.T.view(np.uint16))


# ---------------------------------------------------------------- the per-call fast path
@pytest.fixture(scope="module")
def scale_kernel():
    m = T.symbolic("m")

    @T.prim_func
    def main(A: T.Tensor((m, 32), "float32"), s: T.float32, B: T.Tensor((m, 32), "float32")):
        with T.Kernel(T.ceildiv(m, 8)) as bx:
            t = T.alloc_fragment((8, 32), "float32")
            T.copy(A[bx * 8, 0], t)
            for i, j in T.Parallel(8, 32):
                t[i, j] = t[i, j] * s + 1
            T.copy(t, B[bx * 8, 0])

    return tilewise.compile(main, out_idx=[-1], target="cpu")


def test_fast_call_numpy_and_torch(scale_kernel, rng):
    assert scale_kernel._fast is not None
    for m in (1, 8, 13):
        a = rng.standard_normal((m, 32), dtype=np.float32)
        out = scale_kernel(a, 2.5)
        assert isinstance(out, np.ndarray) and out.shape == (m, 32)
        np.testing.assert_allclose(out, a * np.float32(2.5) + 1, rtol=1e-6, atol=1e-6)
        t = torch.from_numpy(a)
        out_t = scale_kernel(t, 2.5)
        assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float32
        np.testing.assert_allclose(out_t.numpy(), a * np.float32(2.5) + 1, rtol=1e-6, atol=1e-6)
    # keyword arguments take the checking path, with the same result
    np.testing.assert_allclose(scale_kernel(A=a, s=2.5), a * np.float32(2.5) + 1, rtol=1e-6, atol=1e-6)
    # read-only arrays and ml_dtypes-free zero-row inputs
    ro = a.copy()
    ro.flags.writeable = False
    np.testing.assert_allclose(scale_kernel(ro, 1.0), ro + 1, rtol=1e-6)


def test_fast_call_falls_back_to_checks(scale_kernel, rng):
    a = rng.standard_normal((16, 32), dtype=np.float32)
    with pytest.raises(TypeError, match="argument A: expected dtype float32, found float64"):
        scale_kernel(a.astype(np.float64), 1.0)
    with pytest.raises(ValueError, match="contiguous"):
        scale_kernel(np.asfortranarray(a), 1.0)
    with pytest.raises(ValueError, match="argument A: expected shape"):
        scale_kernel(a[:, :16].copy(), 1.0)
    with pytest.raises(TypeError, match="argument s"):
        scale_kernel(a, "x")
    with pytest.raises(TypeError, match="takes 2 argument"):
        scale_kernel(a)
    with pytest.raises(TypeError, match="expected a numpy array or torch tensor"):
        scale_kernel(a.tolist(), 1.0)
    # a non-contiguous torch view: refused, not silently copied
    with pytest.raises(ValueError, match="contiguous"):
        scale_kernel(torch.from_numpy(a).t().contiguous().t(), 1.0)


# ---------------------------------------------------------------- row reductions of long rows
@pytest.mark.parametrize("n,dtype", [(128, "float32"), (200, "float32"), (1000, "float64"), (4099, "float32"),
                                     (300, "int32")])
def test_long_row_reductions(rng, n, dtype):
    """Rows of at least 8 vectors reduce with four vector accumulators: every kind, a tail that
    is not a whole vector, NaN (ignored by max/min, as on GPUs), infinities and signed zeros."""
    rows = 5

    @T.prim_func
    def main(A: T.Tensor((rows, n), dtype), Out: T.Tensor((5, rows), dtype)):
        with T.Kernel(1):
            a = T.alloc_fragment((rows, n), dtype)
            r = T.alloc_fragment((5, rows), dtype)
            T.copy(A, a)
            T.reduce_sum(a, r[0, :], dim=1)
            T.reduce_max(a, r[1, :], dim=1)
            T.reduce_min(a, r[2, :], dim=1)
            T.reduce_abssum(a, r[3, :], dim=1)
            T.reduce_absmax(a, r[4, :], dim=1)
            T.copy(r, Out)

    k = tilewise.compile(main, target="cpu")
    if dtype == "int32":
        a = rng.integers(-1000, 1000, size=(rows, n)).astype(np.int32)
    else:
        a = rng.standard_normal((rows, n)).astype(dtype)
        a[1, 3] = np.nan  # ignored by max/min
        a[2, n - 1] = np.inf
        a[3, :] = -0.0
        a[4, n // 2] = -np.inf
    out = np.empty((5, rows), dtype)
    k(a, out)
    with np.errstate(invalid="ignore"):
        ref = [a.sum(1, dtype=np.float64), np.fmax.reduce(a, axis=1), np.fmin.reduce(a, axis=1),
               np.abs(a).sum(1, dtype=np.float64), np.fmax.reduce(np.abs(a), axis=1)]
    for kind, got, want in zip(("sum", "max", "min", "abssum", "absmax"), out, ref):
        if kind in ("max", "min", "absmax"):
            np.testing.assert_array_equal(got, want.astype(dtype), err_msg=kind)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, err_msg=kind)


# ---------------------------------------------------------------- fuse_loops
def _loops_in(kernel) -> int:
    return kernel.get_kernel_source().count("for (int32_t")


def test_fused_elementwise_on_ragged_shapes(rng):
    """T.copy in, T.Parallel, T.copy out: one loop nest, also where copies are masked."""
    m, n = T.symbolic("m"), T.symbolic("n")

    @T.prim_func
    def main(A: T.Tensor((m, n), "float32"), B: T.Tensor((m, n), "float16"), C: T.Tensor((m, n), "float32")):
        with T.Kernel(T.ceildiv(n, 32), T.ceildiv(m, 4)) as (bx, by):
            a = T.alloc_fragment((4, 32), "float32")
            b = T.alloc_fragment((4, 32), "float16")
            c = T.alloc_fragment((4, 32), "float32")
            T.copy(A[by * 4, bx * 32], a)
            T.copy(B[by * 4, bx * 32], b)
            for i, j in T.Parallel(4, 32):
                c[i, j] = a[i, j] * 2 + b[i, j]
            T.copy(c, C[by * 4, bx * 32])

    k = tilewise.compile(main, target="cpu")
    assert _loops_in(k) == 2  # one nest of two loops
    for shape in [(4, 32), (5, 33), (1, 1), (9, 70)]:
        a = rng.standard_normal(shape, dtype=np.float32)
        b = rng.standard_normal(shape).astype(np.float16)
        c = np.full(shape, -7.0, np.float32)
        k(a, b, c)
        np.testing.assert_allclose(c, a * 2 + b.astype(np.float32), rtol=1e-6, atol=1e-6)


def test_loops_that_must_not_fuse(rng):
    """A shifted, a transposed and an accumulated access each keep their own loop."""
    n = 16

    @T.prim_func
    def main(A: T.Tensor((n, n), "float32"), S: T.Tensor((n, n), "float32"), Tr: T.Tensor((n, n), "float32"),
             R: T.Tensor((n,), "float32")):
        with T.Kernel(1):
            x = T.alloc_fragment((n, n), "float32")
            y = T.alloc_fragment((n, n), "float32")
            acc = T.alloc_fragment((n,), "float32")
            for i, j in T.Parallel(n, n):
                x[i, j] = A[i, j] + 1
            for i, j in T.Parallel(n, n):
                y[i, j] = x[i, (j + 1) % n]  # the neighbour: written later in a fused loop
            T.copy(y, S)
            for i, j in T.Parallel(n, n):
                y[i, j] = x[j, i]
            T.copy(y, Tr)
            T.clear(acc)
            for i, j in T.Parallel(n, n):
                x[i, j] = x[i, j] * 2
            for i in T.Parallel(n):
                for j in T.serial(n):
                    acc[i] += x[i, j]
            T.copy(acc, R)

    k = tilewise.compile(main, target="cpu")
    a = rng.standard_normal((n, n), dtype=np.float32)
    s, tr, r = np.empty_like(a), np.empty_like(a), np.empty(n, np.float32)
    k(a, s, tr, r)
    x = a + 1
    np.testing.assert_allclose(s, np.roll(x, -1, axis=1), rtol=1e-6)
    np.testing.assert_allclose(tr, x.T, rtol=1e-6)
    np.testing.assert_allclose(r, (x * 2).sum(1), rtol=1e-5)


def test_fusion_through_unit_loops(rng):
    """A 1-row tile: the copies' single loop fuses with T.Parallel(1, n)'s two. (Y is float64 so
    that the tile is not computed in Y's memory, which leaves no copy to fuse.)"""
    n = 300

    @T.prim_func
    def main(X: T.Tensor((7, n), "float32"), Y: T.Tensor((7, n), "float64")):
        with T.Kernel(7) as bx:
            x = T.alloc_fragment((1, n), "float32")
            T.copy(X[bx, 0], x)
            for i, j in T.Parallel(1, n):
                x[i, j] = T.exp(x[i, j]) - x[i, j]
            T.copy(x, Y[bx, 0])

    k = tilewise.compile(main, target="cpu")
    assert _loops_in(k) == 1
    x = rng.standard_normal((7, n), dtype=np.float32)
    y = np.empty(x.shape, np.float64)
    k(x, y)
    np.testing.assert_allclose(y, np.exp(x) - x, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- many short rows at once
@pytest.mark.parametrize("rows,n,dtype", [(16, 16, "float32"), (40, 64, "float32"), (128, 64, "float32"),
                                          (33, 256, "int32")])
def test_short_row_reductions(rng, rows, n, dtype):
    """Sixteen rows at a time (and the rows past the last sixteen one by one): every kind, with
    and without clear (absmax then compares |dst| too), into a column of a wider tile (not
    consecutive: the per-row path) and into consecutive elements."""

    @T.prim_func
    def main(A: T.Tensor((rows, n), dtype), Init: T.Tensor((rows,), dtype), Out: T.Tensor((10, rows), dtype),
             Col: T.Tensor((rows, 2), dtype)):
        with T.Kernel(1):
            a = T.alloc_fragment((rows, n), dtype)
            r = T.alloc_fragment((10, rows), dtype)
            col = T.alloc_fragment((rows, 2), dtype)
            T.copy(A, a)
            for k in T.serial(5):
                T.copy(Init, r[5 + k, :])
            T.reduce_sum(a, r[0, :], dim=1)
            T.reduce_max(a, r[1, :], dim=1)
            T.reduce_min(a, r[2, :], dim=1)
            T.reduce_abssum(a, r[3, :], dim=1)
            T.reduce_absmax(a, r[4, :], dim=1)
            T.reduce_sum(a, r[5, :], dim=1, clear=False)
            T.reduce_max(a, r[6, :], dim=1, clear=False)
            T.reduce_min(a, r[7, :], dim=1, clear=False)
            T.reduce_abssum(a, r[8, :], dim=1, clear=False)
            T.reduce_absmax(a, r[9, :], dim=1, clear=False)
            T.clear(col)
            T.reduce_max(a, col[:, 1], dim=1)
            T.copy(r, Out)
            T.copy(col, Col)

    k = tilewise.compile(main, target="cpu")
    assert "tw::rows_max(" in k.get_kernel_source()
    if dtype == "int32":
        a = rng.integers(-100, 100, size=(rows, n)).astype(np.int32)
        init = rng.integers(-100, 100, size=rows).astype(np.int32)
    else:
        a = rng.standard_normal((rows, n)).astype(np.float32)
        init = rng.standard_normal(rows).astype(np.float32) * 3
        a[1, 5] = np.nan
        a[2, :] = np.nan  # a row of NaN: max/min keep their start (-inf / inf with clear, dst without)
        a[3, 0] = np.inf
        a[min(20, rows - 1), n - 1] = -np.inf
    out = np.empty((10, rows), dtype)
    col = np.empty((rows, 2), dtype)
    k(a, init, out, col)
    with np.errstate(invalid="ignore"):
        fmax, fmin = np.fmax.reduce(a, axis=1), np.fmin.reduce(a, axis=1)
        absmax = np.fmax.reduce(np.abs(a), axis=1)
        lo, hi = (np.iinfo(np.int32).min, np.iinfo(np.int32).max) if dtype == "int32" else (-np.inf, np.inf)
        ref = [a.sum(1, dtype=np.float64), np.fmax(lo, fmax), np.fmin(hi, fmin), np.abs(a).sum(1, dtype=np.float64),
               np.fmax(0, absmax),
               init + a.sum(1, dtype=np.float64), np.fmax(init, fmax), np.fmin(init, fmin),
               init + np.abs(a).sum(1, dtype=np.float64),
               np.fmax(np.fmax(init, 0), absmax)]  # TileLang's absmax with clear=False: max(dst, 0, |x|...)
    for i, want in enumerate(ref):
        if i in (0, 3, 5, 8):
            np.testing.assert_allclose(out[i], want, rtol=1e-5, atol=1e-4, err_msg=str(i))
        else:
            np.testing.assert_array_equal(out[i], want.astype(dtype), err_msg=str(i))
    np.testing.assert_array_equal(col[:, 1], np.fmax(lo, fmax).astype(dtype))


@pytest.mark.parametrize("extent,split", [(128, True), (100, False)])
def test_split_large_divisor_groups(rng, extent, split):
    """One scale per group of 32 (`j // 32`, also written `j * 2 // 64`): the loop splits into
    an outer loop over groups and an inner vectorisable loop over each group."""
    m = T.symbolic("m")

    @T.prim_func
    def main(X: T.Tensor((m, extent), "float32"), S: T.Tensor((m, 4), "float32"), Y: T.Tensor((m, extent), "float32"),
             Z: T.Tensor((m, extent), "float32")):
        with T.Kernel(m) as bx:
            x = T.alloc_fragment((extent,), "float32")
            s = T.alloc_fragment((4,), "float32")
            T.copy(X[bx, 0], x)
            T.copy(S[bx, 0], s)
            for j in T.Parallel(extent):
                Y[bx, j] = x[j] * s[j // 32]
            for j in T.Parallel(extent):
                Z[bx, j] = x[j] + s[j * 2 // 64] + j % 32

    k = tilewise.compile(main, target="cpu")
    assert ("j_i" in k.get_kernel_source()) == split
    x = rng.standard_normal((3, extent), dtype=np.float32)
    s = rng.standard_normal((3, 4), dtype=np.float32)
    y, z = np.empty_like(x), np.empty_like(x)
    k(x, s, y, z)
    j = np.arange(extent)
    np.testing.assert_allclose(y, x * s[:, j // 32], rtol=1e-6)
    np.testing.assert_allclose(z, x + s[:, j // 32] + j % 32, rtol=1e-6)


# ---------------------------------------------------------------- block_rows
def _scaled_add(m, n, swizzle=0, bm=4, bn=32):
    @T.prim_func
    def main(A: T.Tensor((m, n), "float32"), B: T.Tensor((m, n), "float32"), C: T.Tensor((m, n), "float32")):
        with T.Kernel(T.ceildiv(n, bn), T.ceildiv(m, bm)) as (bx, by):
            if swizzle:
                T.use_swizzle(swizzle)
            a = T.alloc_fragment((bm, bn), "float32")
            b = T.alloc_fragment((bm, bn), "float32")
            T.copy(A[by * bm, bx * bn], a)
            T.copy(B[by * bm, bx * bn], b)
            for i, j in T.Parallel(bm, bn):
                a[i, j] = a[i, j] * 3 - b[i, j]
            T.copy(a, C[by * bm, bx * bn])

    return tilewise.compile(main, target="cpu")


@pytest.mark.parametrize("m,n,swizzle", [(64, 256, 0), (64, 256, 3), (36, 200, 0), (8, 32, 0)])
def test_block_rows(rng, m, n, swizzle):
    """Element-wise kernels walk rows across consecutive blocks (static shapes that the tiles
    divide), with rasterisation, and on shapes whose masked copies keep the per-block walk."""
    k = _scaled_add(m, n, swizzle)
    assert ("tw_first" in k.get_kernel_source()) == (m % 4 == 0 and n % 32 == 0 and n // 32 > 1)
    a = rng.standard_normal((m, n), dtype=np.float32)
    b = rng.standard_normal((m, n), dtype=np.float32)
    c = np.full_like(a, np.nan)
    k(a, b, c)
    np.testing.assert_allclose(c, a * 3 - b, rtol=1e-6, atol=1e-6)


def test_block_rows_needs_private_tiles(rng):
    """A tile read before the nest writes it (filled by a reduction first) keeps blocks apart."""
    m, n = 16, 64

    @T.prim_func
    def main(A: T.Tensor((m, n), "float32"), C: T.Tensor((m, n), "float32")):
        with T.Kernel(2, 4) as (bx, by):
            a = T.alloc_fragment((4, 32), "float32")
            s = T.alloc_fragment((4,), "float32")
            T.copy(A[by * 4, bx * 32], a)
            T.reduce_sum(a, s, dim=1)
            for i, j in T.Parallel(4, 32):
                C[by * 4 + i, bx * 32 + j] = a[i, j] - s[i]

    k = tilewise.compile(main, target="cpu")
    assert "tw_first" not in k.get_kernel_source()
    a = rng.standard_normal((m, n), dtype=np.float32)
    c = np.empty_like(a)
    k(a, c)
    ref = a - a.reshape(m, 2, 32).sum(-1, keepdims=True).repeat(32, -1).reshape(m, n)
    np.testing.assert_allclose(c, ref, rtol=1e-5, atol=1e-5)
