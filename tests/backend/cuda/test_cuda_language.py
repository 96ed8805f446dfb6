"""The language on the CUDA target: copies between every pair of scopes, fill/clear, T.Parallel
over fragments and shared tiles, scalar code, control flow, grids, dynamic shapes, T.print and
T.any_of/all_of, run in the thread-exact emulator against numpy and compiled with NVRTC for
sm_80 and sm_90a (no spills)."""
from __future__ import annotations

import functools

import ml_dtypes
import numpy as np
import pytest

import tilewise
import tilewise.language as T

# ------------------------------------------------------------------------------- copies

BM, BN = 16, 32


@functools.cache
def copy_scopes():
    """global -> shared -> fragment -> fragment -> shared -> global, global <-> fragment,
    global <-> local, shared -> shared, global -> global, with f16 <-> f32 conversions, corner
    and slice operands, and dynamic shapes the tile does not divide."""
    M, N = T.symbolic("M"), T.symbolic("N")

    @T.prim_func
    def copies(A: T.Tensor((M, N), "float16"), B: T.Tensor((M, N), "float32"), C: T.Tensor((M, N), "float16"),
               D: T.Tensor((M, N), "float32"), E: T.Tensor((M, N), "float16"), L: T.Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(N, BN), T.ceildiv(M, BM), threads=128) as (bx, by):
            s = T.alloc_shared((BM, BN), "float16")
            s2 = T.alloc_shared((BM, BN), "float32")
            s3 = T.alloc_shared((BM, BN), "float16")
            f = T.alloc_fragment((BM, BN), "float32")
            f2 = T.alloc_fragment((BM, BN), "float32")
            loc = T.alloc_local((8,), "float32")
            T.copy(A[by * BM, bx * BN], s)  # corner: the tile's shape comes from s
            T.copy(s, f)  # f16 -> f32
            T.copy(f, f2)
            T.copy(f2, s2)
            T.copy(s2, B[by * BM:(by + 1) * BM, bx * BN:(bx + 1) * BN])
            T.copy(A[by * BM, bx * BN], f)  # global -> fragment, f16 -> f32
            for i, j in T.Parallel(BM, BN):
                f[i, j] = f[i, j] * 2
            T.copy(f, D[by * BM, bx * BN])  # fragment -> global
            T.copy(s, s3)  # shared -> shared
            T.copy(s3, C[by * BM, bx * BN])
            T.copy(A[by * BM:(by + 1) * BM, bx * BN:(bx + 1) * BN], E[by * BM:(by + 1) * BM, bx * BN:(bx + 1) * BN])
            T.copy(A[by * BM + 3, bx * BN:bx * BN + 8], loc)  # global row -> local, f16 -> f32
            for j in T.serial(8):
                loc[j] = loc[j] + 1
            T.copy(loc, L[by * BM + 3, bx * BN:bx * BN + 8])

    return copies


@pytest.mark.parametrize("M,N", [(16, 32), (37, 70), (5, 3)])
def test_copies_between_scopes(emu, M, N, rng):
    k = emu(copy_scopes())
    a = rng.standard_normal((M, N)).astype(np.float16)
    b, d, l_out = (np.zeros((M, N), np.float32) for _ in range(3))
    c, e = np.zeros((M, N), np.float16), np.zeros((M, N), np.float16)
    k(a, b, c, d, e, l_out)
    a32 = a.astype(np.float32)
    np.testing.assert_array_equal(b, a32)
    np.testing.assert_array_equal(c, a)
    np.testing.assert_array_equal(d, 2 * a32)
    np.testing.assert_array_equal(e, a)
    ref = np.zeros((M, N), np.float32)
    for by in range(-(-M // BM)):
        r = by * BM + 3
        if r < M:
            for bx in range(-(-N // BN)):
                cols = slice(bx * BN, min(bx * BN + 8, N))
                ref[r, cols] = a32[r, cols] + 1
    np.testing.assert_array_equal(l_out, ref)


def test_copies_compile_clean(nvrtc_check):
    nvrtc_check(copy_scopes(), expect=("STS", "LDS"))


@functools.cache
def fill_kernel():
    M = T.symbolic("M")

    @T.prim_func
    def fills(A: T.Tensor((M, 24), "float32"), B: T.Tensor((M, 24), "int32"), C: T.Tensor((M, 24), "float32")):
        with T.Kernel(T.ceildiv(M, 8), threads=64) as bx:
            f = T.alloc_fragment((8, 24), "float32")
            s = T.alloc_shared((8, 24), "int32")
            loc = T.alloc_local((4,), "float32")
            T.fill(f, 1.5)
            T.copy(f, A[bx * 8, 0])
            T.clear(s)
            T.fill(s[2:4, :], 7)  # a slice of a shared tile
            T.copy(s, B[bx * 8, 0])
            T.fill(loc, -2.0)
            T.fill(C[bx * 8:(bx + 1) * 8, 4:8], loc[1])  # a global slice, guarded at the end
            T.clear(C[bx * 8:(bx + 1) * 8, 8:12])

    return fills


def test_fill_and_clear(emu, nvrtc_check, rng):
    k = emu(fill_kernel())
    for M in (8, 13):
        a = np.zeros((M, 24), np.float32)
        b = np.full((M, 24), 3, np.int32)
        c = np.full((M, 24), 9, np.float32)
        k(a, b, c)
        np.testing.assert_array_equal(a, np.full((M, 24), 1.5, np.float32))
        ref_b = np.zeros((M, 24), np.int32)
        for r in range(M):
            if r % 8 in (2, 3):
                ref_b[r] = 7
        np.testing.assert_array_equal(b, ref_b)
        ref_c = np.full((M, 24), 9, np.float32)
        ref_c[:, 4:8] = -2
        ref_c[:, 8:12] = 0
        np.testing.assert_array_equal(c, ref_c)
    nvrtc_check(fill_kernel())


# ------------------------------------------------------------------------------- T.Parallel


@functools.cache
def parallel_kernel(threads):
    M, N, BMp, BNp = 64, 48, 32, 16

    @T.prim_func
    def par(A: T.Tensor((M, N), "float32"), R: T.Tensor((M,), "float32"), Cv: T.Tensor((N,), "float32"),
            B: T.Tensor((M, N), "float32"), S: T.Tensor((M, N), "float32")):
        with T.Kernel(N // BNp, M // BMp, threads=threads) as (bx, by):
            a = T.alloc_fragment((BMp, BNp), "float32")
            row = T.alloc_fragment((BMp,), "float32")
            col = T.alloc_shared((BNp,), "float32")
            s = T.alloc_shared((BMp, BNp), "float32")
            T.copy(A[by * BMp, bx * BNp], a)
            for i in T.Parallel(BMp):
                row[i] = R[by * BMp + i] * 3
            for j in T.Parallel(BNp):
                col[j] = Cv[bx * BNp + j]
            # a row broadcast from a fragment and a column broadcast from shared memory
            for i, j in T.Parallel(BMp, BNp):
                a[i, j] = a[i, j] * 2 + row[i] - col[j]
            T.copy(a, B[by * BMp, bx * BNp])
            # a shared tile written and read element-wise, transposed indexing
            for i, j in T.Parallel(BMp, BNp):
                s[i, j] = A[by * BMp + i, bx * BNp + j]
            for i, j in T.Parallel(BMp, BNp):
                S[by * BMp + i, bx * BNp + j] = s[i, BNp - 1 - j] + s[BMp - 1 - i, j] * 0.5

    return par


@pytest.mark.parametrize("threads", [32, 128, 256])
def test_parallel_broadcasts(emu, threads, rng):
    k = emu(parallel_kernel(threads))
    M, N = 64, 48
    a = rng.standard_normal((M, N)).astype(np.float32)
    r = rng.standard_normal(M).astype(np.float32)
    c = rng.standard_normal(N).astype(np.float32)
    b, s = np.zeros((M, N), np.float32), np.zeros((M, N), np.float32)
    k(a, r, c, b, s)
    np.testing.assert_allclose(b, a * 2 + 3 * r[:, None] - c[None, :], rtol=1e-6, atol=1e-6)
    t = a.reshape(2, 32, 3, 16)
    ref = t[:, :, :, ::-1] + t[:, ::-1, :, :] * 0.5
    np.testing.assert_allclose(s, ref.reshape(M, N), rtol=1e-6)


def test_parallel_compiles_clean(nvrtc_check):
    nvrtc_check(parallel_kernel(128))


@functools.cache
def local_in_parallel_kernel():
    """A T.Parallel loop that writes a thread-private local tile: every thread computes all of
    it (a replicated partition), so later block-level code sees the whole tile."""

    @T.prim_func
    def locpar(A: T.Tensor((4, 16), "float32"), O: T.Tensor((4, 16), "float32"), S: T.Tensor((4,), "float32")):
        with T.Kernel(1, threads=64) as _:
            v = T.alloc_local((16,), "float32")
            tot = T.alloc_var("float32", init=0)
            for r in T.serial(4):
                for j in T.Parallel(16):
                    v[j] = A[r, j] * 2
                for j in T.Parallel(16):
                    O[r, j] = v[15 - j]
                for j in T.serial(16):
                    tot = tot + v[j]
                S[r] = tot

    return locpar


def test_local_tile_written_in_parallel(emu, nvrtc_check, rng):
    a = rng.standard_normal((4, 16)).astype(np.float32)
    o, s = np.zeros((4, 16), np.float32), np.zeros(4, np.float32)
    emu(local_in_parallel_kernel())(a, o, s)
    np.testing.assert_allclose(o, 2 * a[:, ::-1], rtol=1e-6)
    np.testing.assert_allclose(s, np.cumsum((2 * a).sum(1)), rtol=1e-5)
    nvrtc_check(local_in_parallel_kernel())


# ------------------------------------------------------------------------------- scalar code


@functools.cache
def scalar_kernel():
    N = 10

    @T.prim_func
    def scal(A: T.Tensor((N,), "float32"), O: T.Tensor((8,), "float32"), I: T.Tensor((8,), "int32")):
        with T.Kernel(1, threads=32) as _:
            acc = T.alloc_var("float32", init=0.5)
            cnt = T.alloc_var("int32")
            cnt = 0
            best = T.alloc_var(T.float32, init=-T.infinity("float32"))
            loc = T.alloc_local((3,), "int32")
            for i in T.serial(N):
                acc = acc + A[i]
                cnt += 1
                best[0] = T.max(best[0], A[i])
                if A[i] > 0:
                    loc[0] = loc[0] + 1 if i > 0 else 1
                elif A[i] < -1:
                    loc[1] = i
                else:
                    loc[2] = -1
            O[0] = acc
            O[1] = cnt
            O[2] = best
            O[3] = T.if_then_else(acc > 0, 1.0, -1.0)
            j = T.alloc_var("int32", init=0)
            while j < 5:
                j += 2
            O[4] = j
            for i in T.serial(8):
                if i == 3:
                    break
                O[5] = i
            for i in T.unroll(3):
                I[i] = loc[i]
            I[3] = cnt * 3 // 2

    return scal


def test_scalar_code_and_control_flow(emu, nvrtc_check, rng):
    a = rng.standard_normal(10).astype(np.float32)
    a[0], a[4], a[6] = 1.0, -3.0, -0.5
    o, i_out = np.zeros(8, np.float32), np.zeros(8, np.int32)
    i_out[:] = 0
    emu(scalar_kernel())(a, o, i_out)
    acc = np.float32(0.5) + a.sum(dtype=np.float32)
    np.testing.assert_allclose(o[:6], [acc, 10, a.max(), 1 if acc > 0 else -1, 6, 2], rtol=1e-5)
    pos = int((a > 0).sum())
    last_neg = max(i for i in range(10) if a[i] < -1)
    np.testing.assert_array_equal(i_out[:4], [pos, last_neg, -1, 15])
    nvrtc_check(scalar_kernel())


@functools.cache
def branch_kernel():
    n = T.symbolic("n")

    @T.prim_func
    def branches(A: T.Tensor((n,), "float32"), B: T.Tensor((n,), "float32")):
        with T.Kernel(T.ceildiv(n, 64), threads=64) as bx:
            for i in T.Parallel(64):
                g = bx * 64 + i
                if g < n:
                    if A[g] > 1:
                        B[g] = 1.0
                    elif A[g] < -1 or A[g] == 0:
                        B[g] = -1.0
                    else:
                        B[g] = A[g] * 0.5
                    if not (A[g] >= 0):
                        B[g] = B[g] - 10

    return branches


def test_if_else_on_device_values(emu, nvrtc_check, rng):
    a = rng.uniform(-3, 3, 141).astype(np.float32)
    a[[3, 7]] = 0
    b = emu(branch_kernel(), out_idx=1)(a)
    ref = np.where(a > 1, 1.0, np.where((a < -1) | (a == 0), -1.0, a * 0.5)).astype(np.float32)
    np.testing.assert_allclose(b, np.where(a >= 0, ref, ref - 10))
    nvrtc_check(branch_kernel())


# ------------------------------------------------------------------------------- grids, dynamic shapes


@functools.cache
def grid_kernel(ndim):
    @T.prim_func
    def g1(O: T.Tensor((2, 3, 4), "int32")):
        with T.Kernel(24, threads=32) as bx:
            O[bx // 12, (bx // 4) % 3, bx % 4] = bx

    @T.prim_func
    def g2(O: T.Tensor((2, 3, 4), "int32")):
        with T.Kernel(4, 6, threads=(32, 2)) as (bx, by):
            O[by // 3, by % 3, bx] = bx + 4 * by

    @T.prim_func
    def g3(O: T.Tensor((2, 3, 4), "int32")):
        with T.Kernel(4, 3, 2, threads=[8, 2, 2]) as (bx, by, bz):
            O[bz, by, bx] = bx + 4 * by + 12 * bz

    return {1: g1, 2: g2, 3: g3}[ndim]


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_grids(emu, nvrtc_check, ndim):
    o = np.full((2, 3, 4), -1, np.int32)
    emu(grid_kernel(ndim))(o)
    np.testing.assert_array_equal(o, np.arange(24).reshape(2, 3, 4))
    nvrtc_check(grid_kernel(ndim))


@functools.cache
def dynamic_kernel():
    M, N = T.symbolic("M"), T.symbolic("N")

    @T.prim_func
    def dyn(A: T.Tensor((M, N), "float32"), B: T.Tensor((M, N), "float32"), scale: T.float32):
        with T.Kernel(T.ceildiv(N, 32), T.ceildiv(M, 8), threads=64) as (bx, by):
            f = T.alloc_fragment((8, 32), "float32")
            T.copy(A[by * 8, bx * 32], f)
            for i, j in T.Parallel(8, 32):
                f[i, j] = f[i, j] * scale + 1
            T.copy(f, B[by * 8, bx * 32])

    return dyn


@pytest.mark.parametrize("M,N", [(1, 1), (8, 32), (13, 45), (40, 7)])
def test_dynamic_shapes(emu, M, N, rng):
    a = rng.standard_normal((M, N)).astype(np.float32)
    b = np.zeros_like(a)
    emu(dynamic_kernel())(a, b, 2.0)
    np.testing.assert_allclose(b, a * 2 + 1, rtol=1e-6)


def test_dynamic_compiles_clean(nvrtc_check):
    nvrtc_check(dynamic_kernel())


@functools.cache
def half_scalar_kernel():
    @T.prim_func
    def halves(A: T.Tensor((8,), "float32"), n: T.int32, scale: T.float32, lo: T.float16, big: T.int64):
        with T.Kernel(1, threads=32) as _:
            for i in T.serial(n):
                A[i] = A[i] * scale + lo + T.cast(big // 1000000000, "float32")

    return halves


def test_scalar_parameters_of_every_width(emu, nvrtc_check):
    a = np.ones(8, np.float32)
    emu(half_scalar_kernel())(a, 5, 2.5, 0.25, 3 * 10**9)
    np.testing.assert_array_equal(a, [5.75] * 5 + [1] * 3)
    nvrtc_check(half_scalar_kernel())


# ------------------------------------------------------------------------------- T.use_swizzle


@functools.cache
def swizzle_kernel(order):
    @T.prim_func
    def swz(O: T.Tensor((5, 7), "int32"), A: T.Tensor((40, 56), "float32"), B: T.Tensor((40, 56), "float32")):
        with T.Kernel(7, 5, threads=64) as (bx, by):
            T.use_swizzle(panel_size=2, order=order)
            f = T.alloc_fragment((8, 8), "float32")
            T.copy(A[by * 8, bx * 8], f)
            for i, j in T.Parallel(8, 8):
                f[i, j] += 1
            T.copy(f, B[by * 8, bx * 8])
            O[by, bx] = O[by, bx] + 1

    return swz


@pytest.mark.parametrize("order", ["row", "col"])
def test_use_swizzle_visits_every_tile_once(emu, nvrtc_check, order, rng):
    o = np.zeros((5, 7), np.int32)
    a = rng.standard_normal((40, 56)).astype(np.float32)
    b = np.zeros_like(a)
    emu(swizzle_kernel(order))(o, a, b)
    np.testing.assert_array_equal(o, np.ones((5, 7), np.int32))
    np.testing.assert_allclose(b, a + 1)
    nvrtc_check(swizzle_kernel(order))


# ------------------------------------------------------------------------------- T.print, any/all


@functools.cache
def print_kernel():
    @T.prim_func
    def prints(A: T.Tensor((4, 4), "float32"), H: T.Tensor((3,), "float16")):
        with T.Kernel(2, threads=64) as bx:
            f = T.alloc_fragment((4, 4), "float32")
            s = T.alloc_shared((3,), "float16")
            v = T.alloc_var("int32", init=5)
            T.copy(A, f)
            T.copy(H, s)
            T.print(f, msg="frag")
            T.print(f[1, 1:3], msg="slice")  # a part of a fragment
            T.print(s)
            T.print(v + bx, msg="var")

    return prints


def test_print_from_every_scope(emu, nvrtc_check, capfd, rng):
    a = rng.standard_normal((4, 4)).astype(np.float32)
    h = np.array([1.5, -2.0, 0.25], np.float16)
    k = emu(print_kernel())
    capfd.readouterr()
    k(a, h)
    lines = capfd.readouterr().out.splitlines()
    for b in range(2):
        for i in range(4):
            for j in range(4):
                want = [ln for ln in lines if f"block ({b}, 0, 0) f[{i}, {j}] = " in ln and ln.startswith("frag")]
                assert len(want) == 1, (b, i, j, lines[:20])
                assert float(want[0].split("=")[-1]) == pytest.approx(float(a[i, j]), rel=1e-5)
        for j in range(3):
            want = [ln for ln in lines if f"block ({b}, 0, 0) s[{j}] = " in ln]
            assert len(want) == 1 and float(want[0].split("=")[-1]) == float(h[j]), want
        want = [ln for ln in lines if ln.startswith("var") and f"block ({b}, 0, 0)" in ln]
        assert len(want) == 1 and want[0].split("=")[-1].strip() == str(5 + b), want
        want = [ln for ln in lines if ln.startswith("slice") and f"block ({b}, 0, 0)" in ln]
        assert [ln.split(")", 1)[1].split("=")[0].strip() for ln in want] == ["f[1, 1]", "f[1, 2]"], want
        assert [float(ln.split("=")[-1]) for ln in want] == pytest.approx([a[1, 1], a[1, 2]], rel=1e-5)
    assert len(lines) == 2 * (16 + 2 + 3 + 1), lines
    nvrtc_check(print_kernel(), allow_stack=True)


@functools.cache
def any_all_kernel():
    ROWS = 9

    @T.prim_func
    def anyall(M: T.Tensor((ROWS, 7), "bool"), V: T.Tensor((ROWS, 2, 3), "int32"), Out: T.Tensor((ROWS, 6), "int32")):
        with T.Kernel(ROWS, threads=32) as bx:
            m = T.alloc_fragment((7,), "bool")
            v = T.alloc_local((2, 3), "int32")
            for j in T.Parallel(7):
                m[j] = M[bx, j]
            for i, j in T.Parallel(2, 3):
                v[i, j] = V[bx, i, j]
            Out[bx, 0] = T.if_then_else(T.any_of(m), 1, 0)
            Out[bx, 1] = T.if_then_else(T.all_of(m), 1, 0)
            if T.all_of(m[2:5]):
                Out[bx, 2] = 1
            else:
                Out[bx, 2] = 0
            Out[bx, 3] = T.if_then_else(T.any_of(v), 1, 0)
            Out[bx, 4] = T.if_then_else(T.all_of(v), 1, 0)
            Out[bx, 5] = T.if_then_else(T.any_of(v[1, :]) and not T.all_of(m[0:1]), 1, 0)

    return anyall


def test_any_all(emu, nvrtc_check, rng):
    rows = 9
    m = rng.random((rows, 7)) < 0.8
    m[0], m[1] = True, False
    v = (rng.random((rows, 2, 3)) < 0.7).astype(np.int32) * rng.integers(-5, 5, size=(rows, 2, 3)).astype(np.int32)
    v[2], v[3] = 0, 7
    out = emu(any_all_kernel(), out_idx=[2])(m, v)
    flat = v.reshape(rows, 6) != 0
    ref = np.stack([m.any(1), m.all(1), m[:, 2:5].all(1), flat.any(1), flat.all(1), (v[:, 1] != 0).any(1) & ~m[:, 0]],
                   axis=1).astype(np.int32)
    np.testing.assert_array_equal(out, ref)
    nvrtc_check(any_all_kernel())


@functools.cache
def fragment_slice_kernel():
    @T.prim_func
    def fslice(A: T.Tensor((8, 8), "float32"), B: T.Tensor((8, 8), "float32")):
        with T.Kernel(1, threads=32) as _:
            f = T.alloc_fragment((8, 8), "float32")
            T.fill(f, -1)
            T.copy(A[2:6, :], f[0:4, :])
            T.copy(f[0:4, :], B[4:8, :])
            T.copy(f[4:8, 2:4], B[0:4, 0:2])

    return fslice


def test_fragment_slices_in_copies(emu, nvrtc_check, rng):
    a = rng.standard_normal((8, 8)).astype(np.float32)
    b = np.zeros((8, 8), np.float32)
    emu(fragment_slice_kernel())(a, b)
    ref = np.zeros((8, 8), np.float32)
    ref[4:8] = a[2:6]
    ref[0:4, 0:2] = -1
    np.testing.assert_array_equal(b, ref)
    nvrtc_check(fragment_slice_kernel())


# ------------------------------------------------------------------------------- more constructs


@functools.cache
def pipelined_parallel_kernel(stages):
    """A software pipeline whose consumer is a T.Parallel loop over the shared tile (not a
    GEMM), with 96 threads (three warps)."""
    N = T.symbolic("N")

    @T.prim_func
    def colsum(A: T.Tensor((N, 32), "float16"), S: T.Tensor((16, 32), "float32")):
        with T.Kernel(1, threads=96) as _:
            a = T.alloc_shared((16, 32), "float16")
            acc = T.alloc_fragment((16, 32), "float32")
            T.clear(acc)
            for k in T.Pipelined(T.ceildiv(N, 16), num_stages=stages):
                T.copy(A[k * 16, 0], a)
                for i, j in T.Parallel(16, 32):
                    acc[i, j] += T.cast(a[i, j], "float32") * (k + 1)
            T.copy(acc, S)

    return colsum


@pytest.mark.parametrize("stages", [2, 3, 4])
def test_pipelined_parallel_consumer(emu, nvrtc_check, stages, rng):
    k = emu(pipelined_parallel_kernel(stages), out_idx=[1])
    for n in (16, 70):
        a = rng.standard_normal((n, 32)).astype(np.float16)
        pad = np.zeros((-(-n // 16) * 16, 32), np.float32)
        pad[:n] = a
        ref = (pad.reshape(-1, 16, 32) * np.arange(1, pad.shape[0] // 16 + 1)[:, None, None]).sum(0)
        np.testing.assert_allclose(k(a), ref, rtol=1e-5, atol=1e-4)
    nvrtc_check(pipelined_parallel_kernel(stages))


@functools.cache
def pipelined_slices_kernel():
    """Two producers filling the two halves of one 3-D shared buffer, consumed by a copy into a
    fragment and a T.Parallel loop."""

    @T.prim_func
    def halves(A: T.Tensor((128, 64), "float16"), B: T.Tensor((128, 64), "float16"), O: T.Tensor((16, 32), "float32")):
        with T.Kernel(1, threads=64) as _:
            s = T.alloc_shared((2, 16, 32), "float16")
            f = T.alloc_fragment((16, 32), "float32")
            g = T.alloc_fragment((16, 32), "float32")
            T.clear(g)
            for k in T.Pipelined(8, num_stages=3):
                T.copy(A[k * 16:(k + 1) * 16, 0:32], s[0, :, :])
                T.copy(B[k * 16:(k + 1) * 16, 32:64], s[1, :, :])
                T.copy(s[0, :, :], f)
                for i, j in T.Parallel(16, 32):
                    g[i, j] += f[i, j] * s[1, i, j]
            T.copy(g, O)

    return halves


def test_pipelined_copies_into_slices_of_one_buffer(emu, nvrtc_check, rng):
    a = rng.standard_normal((128, 64)).astype(np.float16)
    b = rng.standard_normal((128, 64)).astype(np.float16)
    o = emu(pipelined_slices_kernel(), out_idx=[2])(a, b)
    ref = (a[:, :32].astype(np.float32) * b[:, 32:].astype(np.float32)).reshape(8, 16, 32).sum(0)
    np.testing.assert_allclose(o, ref, rtol=1e-5, atol=1e-5)
    # cp.async on Ampere; on Hopper the copy engine (TMA), completing on mbarriers
    nvrtc_check(pipelined_slices_kernel(), expect={"sm_80": ("LDGSTS",), "sm_90a": ("UTMALDG", "SYNCS")})


@functools.cache
def two_kernels():
    @T.prim_func
    def twice(A: T.Tensor((64,), "float32"), B: T.Tensor((64,), "float32"), C: T.Tensor((4,), "float32")):
        with T.Kernel(4, threads=32) as bx:
            f = T.alloc_fragment((16,), "float32")
            T.copy(A[bx * 16], f)
            for i in T.Parallel(16):
                f[i] = f[i] * f[i]
            T.copy(f, B[bx * 16])
        with T.Kernel(1, threads=32) as _:  # runs after the first kernel: sees all of B
            s = T.alloc_fragment((4, 16), "float32")
            r = T.alloc_fragment((4,), "float32")
            for i, j in T.Parallel(4, 16):
                s[i, j] = B[i * 16 + j]
            T.reduce_sum(s, r, dim=1)
            T.copy(r, C)

    return twice


def test_kernels_run_in_order(emu, nvrtc_check, rng):
    a = rng.standard_normal(64).astype(np.float32)
    b, c = emu(two_kernels(), out_idx=[1, 2])(a)
    np.testing.assert_allclose(b, a * a, rtol=1e-6)
    np.testing.assert_allclose(c, (a * a).reshape(4, 16).sum(1), rtol=1e-5)
    nvrtc_check(two_kernels())


@functools.cache
def narrowing_kernel():
    @T.prim_func
    def narrow(A: T.Tensor((32, 32), "float32"), H: T.Tensor((32, 32), "float16"), Bf: T.Tensor((32, 32), "bfloat16"),
               I: T.Tensor((32, 32), "int8")):
        with T.Kernel(1, threads=128) as _:
            f = T.alloc_fragment((32, 32), "float32")
            s = T.alloc_shared((32, 32), "float32")
            h = T.alloc_shared((32, 32), "float16")
            T.copy(A, f)
            T.copy(f, H)  # fragment f32 -> global f16
            T.copy(f, s)
            T.copy(s, Bf)  # shared f32 -> global bf16
            T.copy(f, h)  # fragment f32 -> shared f16
            for i, j in T.Parallel(32, 32):
                I[i, j] = T.cast(T.clamp(h[i, j] * 10, -128, 127), "int8")

    return narrow


def test_narrowing_conversions_in_copies(emu, nvrtc_check, rng):
    a = (rng.standard_normal((32, 32)) * 4).astype(np.float32)
    h, bf, i8 = emu(narrowing_kernel(), out_idx=[1, 2, 3])(a)
    np.testing.assert_array_equal(h, a.astype(np.float16))
    np.testing.assert_array_equal(bf.astype(np.float32), a.astype(ml_dtypes.bfloat16).astype(np.float32))
    ref = np.clip(a.astype(np.float16).astype(np.float32) * 10, -128, 127).astype(np.int8)
    assert np.abs(i8.astype(np.int32) - ref.astype(np.int32)).max() <= 1
    nvrtc_check(narrowing_kernel())


def test_shared_memory_limit_is_a_clear_error(emu):
    @T.prim_func
    def huge(A: T.Tensor((256, 256), "float32")):
        with T.Kernel(1, threads=128) as _:
            s = T.alloc_shared((256, 256), "float32")
            t = T.alloc_shared((256, 256), "float32")
            T.copy(A, s)
            T.copy(s, t)
            T.copy(t, A)

    with pytest.raises(tilewise.CompileError, match=r"needs 524288 bytes of shared memory but sm_80 allows 166912"):
        emu(huge)


@functools.cache
def shared_views_kernel():
    @T.prim_func
    def views(A: T.Tensor((4, 8), "float32"), B: T.Tensor((32,), "float32"), C: T.Tensor((4, 8), "int32")):
        with T.Kernel(1, threads=64) as _:
            pad = T.alloc_shared((3,), "float32")  # the viewed tile does not start at byte 0
            s = T.alloc_shared((4, 8), "float32")
            T.fill(pad, 0)
            T.copy(A, s)
            s2 = T.reshape(s, (8, 4))
            bits = T.view(s, dtype="int32")
            for i, j in T.Parallel(8, 4):
                s2[i, j] = s2[i, j] + 1  # writes through the view ...
            for i in T.Parallel(32):
                B[i] = s[i // 8, i % 8] + pad[i % 3]  # ... are seen through the root
            for i, j in T.Parallel(4, 8):
                C[i, j] = bits[i, j]

    return views


def test_views_of_shared_tiles(emu, nvrtc_check, rng):
    a = rng.standard_normal((4, 8)).astype(np.float32)
    b, c = emu(shared_views_kernel(), out_idx=[1, 2])(a)
    np.testing.assert_array_equal(b, a.ravel() + 1)
    np.testing.assert_array_equal(c, (a + 1).view(np.int32))
    nvrtc_check(shared_views_kernel())


def test_reshapes_of_swizzled_tiles_go_through_the_layout(emu, rng):
    """A T.reshape of a swizzled gemm operand reads and writes the root's elements (each access
    through the root's swizzle); a view changing the dtype is refused."""

    @T.prim_func
    def swizzled_view(A: T.Tensor((64, 32), "float16"), C: T.Tensor((64, 64), "float32"),
                      F: T.Tensor((2048,), "float16")):  # fmt: skip
        with T.Kernel(1, threads=128) as _:
            a = T.alloc_shared((64, 32), "float16")
            flat = T.reshape(a, (2048,))
            c = T.alloc_fragment((64, 64), "float32")
            T.copy(A, a)
            flat[33] = T.float16(0)  # a[1, 1]
            T.clear(c)
            T.gemm(a, a, c, transpose_B=True)
            T.copy(c, C)
            T.copy(flat, F)

    a = rng.standard_normal((64, 32)).astype(np.float16)
    c, f = emu(swizzled_view, out_idx=[1, 2])(a)
    a[1, 1] = 0
    np.testing.assert_array_equal(f, a.ravel())
    a32 = a.astype(np.float32)
    np.testing.assert_allclose(c, a32 @ a32.T, rtol=1e-2, atol=1e-2)

    @T.prim_func
    def retyped_view(A: T.Tensor((64, 32), "float16"), C: T.Tensor((64, 64), "float32")):
        with T.Kernel(1, threads=128) as _:
            a = T.alloc_shared((64, 32), "float16")
            bits = T.view(a, dtype="int16")
            c = T.alloc_fragment((64, 64), "float32")
            T.copy(A, a)
            bits[0, 0] = T.int16(0)
            T.clear(c)
            T.gemm(a, a, c, transpose_B=True)
            T.copy(c, C)

    with pytest.raises(tilewise.CompileError, match="only a T.reshape .same dtype, static shape. of a swizzled tile"):
        emu(retyped_view)


def test_refusals_name_the_problem(emu):
    # (a T.Parallel with a run-time extent is no refusal any more: tests/transform/test_dynamic_parallel.py)
    @T.prim_func
    def custom_fragment(A: T.Tensor((32,), "float32")):
        with T.Kernel(1, threads=32) as _:
            f = T.alloc_fragment((32,), "float32")
            # thread (5 * i) % 32: a permutation of the lanes, but not a sum of digits of i
            T.annotate_layout({f: T.Fragment((32,), forward_thread_fn=lambda i: (i * 5) % 32,
                                             forward_index_fn=lambda i: 0)})
            T.copy(A, f)
            T.copy(f, A)

    with pytest.raises(tilewise.CompileError, match="its thread map is not a sum of digits"):
        emu(custom_fragment)

    @T.prim_func
    def odd_threads(A: T.Tensor((16, 16), "float16"), C: T.Tensor((16, 16), "float32")):
        with T.Kernel(1, threads=48) as _:
            a = T.alloc_shared((16, 16), "float16")
            c = T.alloc_fragment((16, 16), "float32")
            T.copy(A, a)
            T.gemm(a, a, c, clear_accum=True)
            T.copy(c, C)

    with pytest.raises(tilewise.CompileError, match="needs a multiple of 32 threads, the kernel has 48"):
        emu(odd_threads)

    @T.prim_func
    def distributed_read(A: T.Tensor((8, 32), "float32"), B: T.Tensor((32,), "float32")):
        with T.Kernel(1, threads=64) as _:
            f = T.alloc_fragment((8, 32), "float32")
            T.copy(A, f)
            for j in T.Parallel(32):
                B[j] = f[3, j]  # row 3 lives in other threads than the loop's partition gives

    with pytest.raises(tilewise.CompileError, match="layout conflict for fragment f: the T.Parallel loop makes thread"):
        emu(distributed_read)
