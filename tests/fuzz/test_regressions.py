"""Bugs the differential fuzzer (tilewise/testing/fuzz, tools/fuzz.py) found, each minimised to a
small explicit kernel checked against numpy on the targets it failed on. The seed in each
docstring is the fuzz program that first showed it."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tilewise
import tilewise.language as T

SM80, SM90 = "cuda -arch=sm_80", "cuda -arch=sm_90a"


def build(func, target: str):
    if target == "cpu":
        return tilewise.compile(func, target="cpu")
    return tilewise.compile(func, target=target, execution_backend="emulator")


@pytest.mark.parametrize("target", ["cpu", SM80, SM90])
def test_partial_parallel_over_a_fragment_stays_inside_its_extent(target):
    """Seed 19: `for i, j in T.Parallel(2, 14)` over a (2, 64) fragment laid out by an earlier
    whole-tile copy took the fragment's layout whole, and on CUDA every thread updated all its
    registers, columns 14..63 included (lower_parallel_cuda now guards registers past the loop)."""

    @T.prim_func
    def k(X: T.Tensor((2, 64), "float32"), O: T.Tensor((2, 64), "float32")):
        with T.Kernel(1, threads=32) as _bx:
            f0 = T.alloc_fragment((2, 64), "float32")
            f1 = T.alloc_fragment((2, 64), "float32")
            T.copy(X, f0)
            for i, j in T.Parallel(2, 64):
                f1[i, j] = f0[i, j] + 100
            for i, j in T.Parallel(2, 14):
                f0[i, j] = f1[i, j]
            T.copy(f0, O)

    x = np.arange(128, dtype=np.float32).reshape(2, 64)
    o = np.zeros_like(x)
    build(k, target)(x, o)
    want = x.copy()
    want[:, :14] += 100
    np.testing.assert_array_equal(o, want)


@pytest.mark.parametrize("target", [SM80, SM90])
@pytest.mark.parametrize("threads", [32, 256])
def test_block_level_single_element_copy_runs_on_one_thread(target, threads):
    """Seed 28: a one-element T.copy between shared tiles outside T.Parallel is lowered to a plain
    store for an enclosing loop to distribute; at block level every thread stored it, which the
    emulator reports as a shared-memory race (guard_block_effects now keeps it to thread 0)."""

    @T.prim_func
    def k(A: T.Tensor((3, 8), "float32"), O: T.Tensor((3, 8), "float32")):
        with T.Kernel(1, threads=threads) as _bx:
            s0 = T.alloc_shared((3, 8), "float32")
            s1 = T.alloc_shared((3, 8), "float32")
            T.copy(A, s1)
            T.copy(A, s0)
            T.copy(s1[2:3, 1:2], s0[1:2, 4:5])
            T.copy(s0, O)

    a = np.arange(24, dtype=np.float32).reshape(3, 8)
    o = np.zeros_like(a)
    build(k, target)(a, o)
    want = a.copy()
    want[1, 4] = a[2, 1]
    np.testing.assert_array_equal(o, want)


@pytest.mark.parametrize("target", [SM80, SM90])
def test_converting_copy_between_shared_and_global_is_not_tma(target):
    """Seed 10: on sm_90a an int32 shared tile copied to a float16 tensor became a TMA store,
    which moves bytes: the output was the int32 bit patterns read as halves (plan_tma now
    refuses copies that convert)."""

    @T.prim_func
    def k(X: T.Tensor((16, 32), "float16"), O: T.Tensor((16, 32), "float16")):
        with T.Kernel(1, threads=32) as _bx:
            s0 = T.alloc_shared((16, 32), "int32")
            s1 = T.alloc_shared((16, 32), "float32")
            for i, j in T.Parallel(16, 32):
                s0[i, j] = i % 3 - j
            T.copy(X, s1)  # a converting load
            for i, j in T.Parallel(16, 32):
                s1[i, j] = s1[i, j] + T.cast(s0[i, j], "float32")
            T.copy(s1, O)  # a converting store

    x = (np.arange(512).reshape(16, 32) % 7).astype(np.float16)
    o = np.zeros_like(x)
    build(k, target)(x, o)
    i, j = np.indices((16, 32))
    np.testing.assert_array_equal(o, (x.astype(np.float32) + i % 3 - j).astype(np.float16))


def test_guarded_copy_out_of_a_gemm_tile_on_the_cpu():
    """Seed 12: copying a 64 x 32 gemm tile to a 32 x 31 tensor rendered `for j: if (i < 32 &&
    j < 31) O[..] = f0[..]` under `#pragma GCC ivdep`, which GCC 12 vectorises with a wrong
    store mask at -O3 -march=native: most of the output stayed unwritten. The CPU renderer now
    hoists the row test out of the loop (`if (i < 32) for j: if (j < 31)`)."""

    @T.prim_func
    def k(A: T.Tensor((32, 16), "bfloat16"), B: T.Tensor((32, 16), "bfloat16"), O: T.Tensor((32, 31), "float32")):
        with T.Kernel(1, threads=128) as _bx:
            a_s = T.alloc_shared((64, 16), "bfloat16")
            b_s = T.alloc_shared((32, 16), "bfloat16")
            c = T.alloc_fragment((64, 32), "float32")
            T.clear(c)
            T.copy(A[0, 0], a_s)
            T.copy(B, b_s)
            T.gemm(a_s, b_s, c, transpose_B=True)
            T.copy(c, O[0, 0])

    rng = np.random.default_rng(0)
    a = rng.integers(-4, 5, (32, 16)).astype(ml_dtypes.bfloat16)
    b = rng.integers(-4, 5, (32, 16)).astype(ml_dtypes.bfloat16)
    o = np.zeros((32, 31), np.float32)
    build(k, "cpu")(a, b, o)
    np.testing.assert_array_equal(o, (a.astype(np.float32) @ b.astype(np.float32).T)[:, :31])


def test_fused_guarded_copy_outs_on_the_cpu():
    """Seed 20116: a T.Parallel store and a T.copy of edge tiles fused into one loop whose body is
    two guarded stores, `if (i < 1 && j < 8)` and `if (i < 2 && j < 8)`: GCC 12 miscompiled it
    under ivdep like the single guard above (O1 stayed unwritten). Loops whose guards mix a test
    of an outer index with one of the loop's own go without the pragma."""

    @T.prim_func
    def k(X: T.Tensor((1, 1), "float32"), O0: T.Tensor((1, 8), "float32"), O1: T.Tensor((2, 8), "float32")):
        with T.Kernel(1, threads=32) as _bx:
            f0 = T.alloc_fragment((32, 16), "float32")
            f1 = T.alloc_fragment((32, 16), "float32")
            T.copy(X[0, 0], f0)
            T.cumsum(f0, f1, dim=1, reverse=True)
            for i, j in T.Parallel(32, 16):
                O0[i, j] = f1[i, j]
            T.copy(f0, O1[0, 0])

    x = np.array([[4.0]], np.float32)
    o0, o1 = np.zeros((1, 8), np.float32), np.zeros((2, 8), np.float32)
    build(k, "cpu")(x, o0, o1)
    want = np.zeros((2, 8), np.float32)
    want[0, 0] = 4.0
    np.testing.assert_array_equal(o0, want[:1])
    np.testing.assert_array_equal(o1, want)


def test_guarded_copy_out_to_a_dynamic_tensor_on_the_cpu():
    """Seed 21157: a 64 x 32 fragment copied to a shared tile and to a slice of an (m, 8)
    tensor, the two copies fused into one loop (a plain store, then a mixed guard)."""
    m = T.symbolic("m")

    @T.prim_func
    def k(A: T.Tensor((1, m), "float32"), O: T.Tensor((m, 8), "float32")):
        with T.Kernel(T.ceildiv(m, 64), threads=32) as bx:
            s0 = T.alloc_shared((8, 64), "float32")
            f0 = T.alloc_fragment((64, 32), "float32")
            s2 = T.alloc_shared((64, 32), "float32")
            T.fill(f0, -2.5)
            T.copy(A[0, bx * 64], s0)
            T.copy(f0, s2)
            T.copy(f0, O[bx * 64:bx * 64 + 64, 0:32])

    kernel = build(k, "cpu")
    for rows in (1, 3, 70):
        o = np.zeros((rows, 8), np.float32)
        kernel(np.zeros((1, rows), np.float32), o)
        np.testing.assert_array_equal(o, np.full((rows, 8), -2.5, np.float32))


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
def test_ptx_interpreter_waits_at_a_barrier_for_paths_laid_out_after_it(arch):
    """Seed 61158: NVVM compiled this kernel's selects into branches, some laid out after the
    __syncthreads they lead back to; the PTX interpreter ran the lowest PC first and reported
    the threads that reached the barrier first as a barrier in divergent code (it now parks them
    there until the rest of the block arrives)."""

    @T.prim_func
    def k(X: T.Tensor((4, 1), "float16"), O: T.Tensor((3, 32), "float32")):
        with T.Kernel(1, 2, threads=32) as (bx, by):
            f0 = T.alloc_fragment((3, 32), "float16")
            s0 = T.alloc_shared((3, 32), "float16")
            s1 = T.alloc_shared((3, 32), "float32")
            for i, j in T.Parallel(3, 32):
                f0[i, j] = X[by * 3 + 1 + i, bx * 32 + 3 + j]
            for i, j in T.Parallel(3, 32):
                s0[i, j] = T.if_then_else(bx == 0 and i <= j, T.cast(i + j, "float16"),
                                          T.if_then_else((i + j) % 3 != 0, X[by * 3 + 2 + i, bx * 32 + j], f0[i, j]))
            T.copy(f0, s1)
            if by == 0:
                T.copy(s1, O)

    x = np.arange(4, dtype=np.float16).reshape(4, 1)
    o = np.zeros((3, 32), np.float32)
    tilewise.compile(k, target=f"cuda -arch={arch}", execution_backend="ptx")(x, o)
    np.testing.assert_array_equal(o, np.zeros((3, 32), np.float32))  # X[1 + i, 3 + j] is outside X


def test_wgmma_accumulator_is_read_only_after_its_wait():
    """Seed 61302: on sm_90a the PTX NVRTC made read an accumulator register between the wgmma
    and its wgmma.wait_group (NVVM takes the asm outputs as ready at the wgmma and moved a copy of
    one up; on a GPU it reads a register the wgmma has not written yet). The renderer now pins the
    accumulators after the wait. Checked by the PTX interpreter, which reports such reads."""

    @T.prim_func
    def k(A: T.Tensor((64, 32), "bfloat16"), B: T.Tensor((64, 32), "bfloat16"), X: T.Tensor((64, 64), "bfloat16"),
          O: T.Tensor((64, 64), "float32")):
        with T.Kernel(1, threads=128) as _bx:
            s0 = T.alloc_shared((64, 32), "bfloat16")
            s1 = T.alloc_shared((64, 32), "bfloat16")
            f0 = T.alloc_fragment((64, 64), "float32")
            T.clear(f0)
            T.copy(A, s0)
            T.copy(B, s1)
            T.gemm(s0, s1, f0, transpose_B=True, clear_accum=True)
            T.copy(X[20, 8], f0[20:57, 8:64])
            T.copy(f0, O)

    rng = np.random.default_rng(1)
    a = rng.integers(-3, 4, (64, 32)).astype(ml_dtypes.bfloat16)
    b = rng.integers(-3, 4, (64, 32)).astype(ml_dtypes.bfloat16)
    x = rng.integers(-3, 4, (64, 64)).astype(ml_dtypes.bfloat16)
    o = np.zeros((64, 64), np.float32)
    kernel = tilewise.compile(k, target=SM90, execution_backend="ptx")
    assert any("wgmma" in note for note in kernel.lowering_notes())
    kernel(a, b, x, o)
    want = a.astype(np.float32) @ b.astype(np.float32).T
    want[20:57, 8:64] = x.astype(np.float32)[20:57, 8:64]
    np.testing.assert_array_equal(o, want)


@pytest.mark.parametrize("target", [SM80, SM90, "ptx"])
@pytest.mark.parametrize("threads", [48, 80])
def test_reductions_with_a_partial_last_warp(target, threads):
    """Seed 143: with threads=48 the reduction's warp shuffles named all 32 lanes in the second
    warp, which has 16 (the emulator: '__shfl_xor_sync needs all 32 lanes'); with a partial warp
    the partials are now combined through shared memory."""

    @T.prim_func
    def k(X: T.Tensor((4, 4), "float32"), O: T.Tensor((4,), "float32"), P: T.Tensor((4,), "float32")):
        with T.Kernel(1, threads=threads) as _bx:
            f0 = T.alloc_fragment((4, 4), "float32")
            f1 = T.alloc_fragment((4,), "float32")
            f2 = T.alloc_fragment((4,), "float32")
            T.copy(X, f0)
            T.reduce_absmax(f0, f1, dim=0, clear=True)
            T.reduce_sum(f0, f2, dim=1, clear=True)
            T.copy(f1, O)
            T.copy(f2, P)

    x = (np.arange(16, dtype=np.float32).reshape(4, 4) - 7.5) / 2
    o, p = np.zeros(4, np.float32), np.zeros(4, np.float32)
    if target == "ptx":
        kernel = tilewise.compile(k, target=SM80, execution_backend="ptx")
    else:
        kernel = build(k, target)
    kernel(x, o, p)
    np.testing.assert_array_equal(o, np.abs(x).max(0))
    np.testing.assert_array_equal(p, x.sum(1))


@pytest.mark.parametrize("stages", [2, 3])
def test_tma_pipeline_of_a_tile_smaller_than_128_bytes(stages):
    """Seed 45: on sm_90a a 2 x 16 float16 tile (64 bytes) filled in a T.Pipelined loop became a
    TMA pipeline whose second stage started 64 bytes in, not 128-byte aligned as a TMA
    destination must be (plan_tma now keeps such tiles on thread copies)."""

    @T.prim_func
    def k(Y: T.Tensor((2, 48), "float16"), O: T.Tensor((2, 16), "float32")):
        with T.Kernel(1, threads=32) as _bx:
            s0 = T.alloc_shared((2, 16), "float16")
            acc = T.alloc_fragment((2, 16), "float32")
            T.clear(acc)
            for k in T.Pipelined(3, num_stages=stages):
                T.copy(Y[0, k * 16], s0)
                for i, j in T.Parallel(2, 16):
                    acc[i, j] += s0[i, j]
            T.copy(acc, O)

    y = (np.arange(96).reshape(2, 48) % 11).astype(np.float16)
    o = np.zeros((2, 16), np.float32)
    build(k, SM90)(y, o)
    np.testing.assert_array_equal(o, y.astype(np.float32).reshape(2, 3, 16).sum(1))


@pytest.mark.parametrize("target", ["cpu", SM80, SM90])
def test_partial_parallel_reading_a_longer_fragment_vector(target):
    """Seed 10339: T.Parallel(4, 4) reading f3[j] of a 5-element reduction result tried to view
    f3's layout as a 4-column one ('layout modes of dimension 1 cover 5 of 4 elements', an
    error with no user line); the loop now takes the fragment's distribution whole."""

    @T.prim_func
    def k(X: T.Tensor((4, 5), "float32"), O: T.Tensor((4, 5), "float32")):
        with T.Kernel(1, threads=32) as _bx:
            f0 = T.alloc_fragment((4, 5), "float32")
            f1 = T.alloc_fragment((4, 5), "float32")
            f3 = T.alloc_fragment((5,), "float32")
            T.copy(X, f0)
            T.reduce_sum(f0, f3, dim=0, clear=True)
            T.fill(f1, 7.0)
            for i, j in T.Parallel(4, 4):
                f1[i, j] = f3[j]
            T.copy(f1, O)

    x = np.arange(20, dtype=np.float32).reshape(4, 5)
    o = np.zeros_like(x)
    build(k, target)(x, o)
    want = np.full((4, 5), 7.0, np.float32)
    want[:, :4] = x.sum(0)[:4]
    np.testing.assert_array_equal(o, want)


@pytest.mark.parametrize("target", ["cpu", SM80, SM90])
def test_fragment_first_written_by_a_partial_parallel(target):
    """The same family: a fragment whose first layout-deciding use is a T.Parallel over part of
    it got the loop's smaller layout (an InternalError, 'a layout of shape (4, 3) for f4 of shape
    (4, 5)'); it now gets the default layout of its whole shape, which the loop follows."""

    @T.prim_func
    def k(X: T.Tensor((4, 5), "float32"), O: T.Tensor((4, 5), "float32"), P: T.Tensor((4, 5), "float32")):
        with T.Kernel(1, threads=32) as _bx:
            f4 = T.alloc_fragment((4, 5), "float32")
            f5 = T.alloc_fragment((4, 5), "float32")
            T.fill(f4, 1.0)
            for i, j in T.Parallel(4, 3):
                f4[i, j] = X[i, j] * 2
            T.copy(f4, O)
            T.fill(f5, 1.0)
            for i, j in T.Parallel(3, 5):
                f5[i, j] = X[i, j] * 3
            for i, j in T.Parallel(4, 2):
                P[i, j] = f5[i, j]

    x = np.arange(20, dtype=np.float32).reshape(4, 5)
    o, p = np.zeros_like(x), np.zeros_like(x)
    build(k, target)(x, o, p)
    want_o = np.ones((4, 5), np.float32)
    want_o[:, :3] = 2 * x[:, :3]
    want_p = np.zeros((4, 5), np.float32)
    want_p[:, :2] = 1
    want_p[:3, :2] = 3 * x[:3, :2]
    np.testing.assert_array_equal(o, want_o)
    np.testing.assert_array_equal(p, want_p)


@pytest.mark.parametrize("target", [SM80, SM90])
@pytest.mark.parametrize("extent, stages", [(1, 2), (2, 2), (3, 3)])
def test_tile_filled_in_a_pipelined_loop_and_read_after_it(target, extent, stages):
    """Seed 2220, minimised: refused like the T.copy form, or the last iteration's data."""

    @T.prim_func
    def k(Y: T.Tensor((4, 64 * extent), "int32"), O: T.Tensor((4, 64), "int32")):
        with T.Kernel(1, threads=32) as _bx:
            s0 = T.alloc_shared((4, 64), "int32")
            s1 = T.alloc_shared((4, 64), "int32")
            T.clear(s1)
            for k in T.Pipelined(extent, num_stages=stages):
                T.copy(Y[0, k * 64], s0)
                for i, j in T.Parallel(4, 64):
                    s1[i, j] = s1[i, j] + s0[i, j]
            for i, j in T.Parallel(4, 64):
                O[i, j] = s0[i, j]

    y = np.arange(4 * 64 * extent, dtype=np.int32).reshape(4, 64 * extent)
    o = np.zeros((4, 64), np.int32)
    try:
        kernel = build(k, target)
    except tilewise.CompileError as e:
        assert "used outside it" in str(e)
        return
    kernel(y, o)
    np.testing.assert_array_equal(o, y[:, -64:])


@pytest.mark.xfail(strict=True, reason="a T.Parallel nest laid out from a replicated fragment (here a reduction "
                   "result read as f0[i]) is replicated over threads, and lower_parallel_cuda lets only replica 0 "
                   "store to shared memory; another statement of the same body reading that shared element in other "
                   "replicas races with the store (a barrier or store-to-load forwarding is missing)")
@pytest.mark.parametrize("target", [SM80, SM90])
@pytest.mark.parametrize("order", ["write_then_read", "read_then_write"])
def test_replicated_parallel_body_reading_and_writing_one_shared_tile(target, order):
    """Seeds 2433 (read, then write) and 2511 (write, then read), minimised."""

    @T.prim_func
    def k(X: T.Tensor((16, 16), "float32"), O: T.Tensor((16, 16), "float32"), P: T.Tensor((16, 16), "float32")):
        with T.Kernel(1, threads=32) as _bx:
            s0 = T.alloc_shared((16, 16), "float32")
            s1 = T.alloc_shared((16, 16), "float32")
            f0 = T.alloc_fragment((16,), "float32")
            f1 = T.alloc_fragment((16, 16), "float32")
            T.copy(X, s0)
            T.reduce_sum(s0, f0, dim=0)
            T.copy(X, s1)
            for i, j in T.Parallel(16, 16):
                if order == "write_then_read":
                    s1[i, j] = f0[i] * 2
                    f1[i, j] = s1[i, j] + 1
                else:
                    f1[i, j] = s1[i, j] + 1
                    s1[i, j] = f0[i] * 2
            T.copy(f1, O)
            T.copy(s1, P)

    x = (np.arange(256) % 13).astype(np.float32).reshape(16, 16)
    o, q = np.zeros_like(x), np.zeros_like(x)
    build(k, target)(x, o, q)
    col = x.sum(0)  # f0[i]: the reduction over rows, read with the row index
    new = np.repeat((2 * col)[:, None], 16, axis=1)
    np.testing.assert_array_equal(q, new)
    np.testing.assert_array_equal(o, (new if order == "write_then_read" else x) + 1)


_EVERY = ["cpu", SM80, SM90, "ptx_sm80", "ptx_sm90a"]


def _build_any(func, target: str):
    """The CPU, the emulator for sm_80 / sm_90a, or NVRTC's PTX in the PTX interpreter."""
    if target.startswith("ptx_"):
        arch = "sm_80" if target == "ptx_sm80" else "sm_90a"
        return tilewise.compile(func, target=f"cuda -arch={arch}", execution_backend="ptx")
    return build(func, target)


@pytest.mark.parametrize("target", _EVERY)
@pytest.mark.parametrize("n", [16, 6])
def test_thread_guard_of_one_parallel_loop_does_not_leak_into_the_next(target, n):
    """Seed 72074: a T.Parallel(64) storing into a (1, 1) tensor is guarded `if tx < 1` on CUDA;
    lowering that loop narrowed the thread index to 0 in a dict it shared with lower_parallel_cuda
    (RangeMutator.visit_IfThenElse narrowed in place), so the next loop's fragment coordinates
    were simplified for thread 0 only: `S1[(tx % 4) * 4 + v % 4]` became `S1[v % 4]` and columns
    4..15 of the atomic_min never happened. With n = 6 the destination is also shorter than the
    fragment's columns: the element atomic outside the tensor is skipped, like a store
    (legalize_safe_access), where CUDA wrote past the tensor's end."""

    @T.prim_func
    def k(O1: T.Tensor((1, 1), "float32"), S1: T.Tensor((n,), "float32")):
        with T.Kernel(1, threads=64) as _bx:
            f0 = T.alloc_fragment((64, 16), "float32")
            s2 = T.alloc_shared((64,), "float32")
            T.fill(s2, -1.0)
            for i, j in T.Parallel(64, 16):
                f0[i, j] = T.cast(i * 16 + j, "float32") * 0.125 - 3.0
            for i in T.Parallel(64):
                O1[0, i] = s2[i]
            for i, j in T.Parallel(64, 16):
                T.atomic_min(S1[j], f0[i, j])

    o1 = np.zeros((1, 1), np.float32)
    s1 = np.full((n,), 1.0, np.float32)
    _build_any(k, target)(o1, s1)
    f0 = (np.arange(64 * 16).reshape(64, 16) * 0.125 - 3.0).astype(np.float32)
    np.testing.assert_array_equal(o1, [[-1.0]])
    np.testing.assert_array_equal(s1, np.minimum(1.0, f0.min(axis=0)[:n]))


@pytest.mark.parametrize("target", _EVERY)
def test_element_atomic_through_a_tensor_index_outside_the_tensor_is_skipped(target):
    """The atomic's index itself reads a tensor (guarded too), and lands outside the destination
    for some rows: those updates are skipped on every target."""

    @T.prim_func
    def k(Idx: T.Tensor((32,), "int32"), V: T.Tensor((32,), "float32"), S: T.Tensor((8,), "float32")):
        with T.Kernel(1, threads=32) as _bx:
            for i in T.Parallel(32):
                T.atomic_max(S[Idx[i]], V[i])

    idx = (np.arange(32, dtype=np.int32) * 5) % 13 - 2
    v = np.arange(32, dtype=np.float32) - 10.0
    s = np.full((8,), -100.0, np.float32)
    _build_any(k, target)(idx, v, s)
    want = np.full((8,), -100.0, np.float32)
    for i in range(32):
        if 0 <= idx[i] < 8:
            want[idx[i]] = max(want[idx[i]], v[i])
    np.testing.assert_array_equal(s, want)


@pytest.mark.parametrize("target", _EVERY)
def test_element_atomic_expression_outside_the_tensor_reads_zero(target):
    """`T.atomic_add(S[i], v, return_prev=True)` past S's end is skipped and its old value reads 0,
    as a guarded load does (the CPU read and wrote past the tensor)."""

    @T.prim_func
    def k(S: T.Tensor((8,), "float32"), P: T.Tensor((16,), "float32")):
        with T.Kernel(1, threads=16) as _bx:
            for i in T.Parallel(16):
                P[i] = T.atomic_add(S[i], 1.0, return_prev=True)

    s = np.arange(8, dtype=np.float32)
    p = np.full((16,), -7.0, np.float32)
    _build_any(k, target)(s, p)
    np.testing.assert_array_equal(s, np.arange(8) + 1.0)
    np.testing.assert_array_equal(p, np.r_[np.arange(8), np.zeros(8)])


@pytest.mark.parametrize("target", _EVERY)
def test_reduce_over_a_thread_mode_whose_place_is_not_a_power_of_two(target):
    """Seed 150145: a (2, 5) fragment over 160 threads keeps its two rows 5 threads apart; reducing
    over the rows with `shfl_xor(.., 5)` paired thread 4 with 1 instead of 9 (a butterfly flips the
    digit's own bits only when its place is a power of two). Such modes go through shared memory."""

    @T.prim_func
    def k(X: T.Tensor((2, 5), "float32"), S: T.Tensor((5,), "float32"), M: T.Tensor((2, 5), "float32")):
        with T.Kernel(1, threads=160) as _bx:
            f0 = T.alloc_fragment((2, 5), "float32")
            f1 = T.alloc_fragment((5,), "float32")
            for i, j in T.Parallel(2, 5):
                f0[i, j] = X[i, j]
            T.reduce_sum(f0, f1, dim=0, clear=True)
            T.copy(f1, S)
            for i, j in T.Parallel(2, 5):
                M[i, j] = T.max(f0[i, j], f1[j])

    x = np.arange(10, dtype=np.float32).reshape(2, 5) * np.array([1, -1, 2, -3, 5], np.float32) - 7
    s = np.zeros(5, np.float32)
    m = np.zeros((2, 5), np.float32)
    _build_any(k, target)(x, s, m)
    np.testing.assert_array_equal(s, x.sum(0))
    np.testing.assert_array_equal(m, np.maximum(x, x.sum(0)))


@pytest.mark.parametrize("target", ["cpu", SM80])
def test_negated_negative_constant_renders_as_c(target):
    """Seed 4114: `-a - (-1.0) * b` becomes fma(-(-1.0), b, -a), and the C renderer printed the
    negation of the literal -1.0f as `--1.0f`, C's decrement, which g++ refuses (c_style.py now
    parenthesises a negative operand)."""

    @T.prim_func
    def k(X: T.Tensor((4, 8), "float32"), O: T.Tensor((4, 8), "float32")):
        with T.Kernel(1, threads=32) as _bx:
            for i, j in T.Parallel(4, 8):
                O[i, j] = (-(X[i, j] + 1.0)) - ((-1.0) * X[i, j])

    x = np.arange(32, dtype=np.float32).reshape(4, 8)
    o = np.zeros_like(x)
    build(k, target)(x, o)
    np.testing.assert_array_equal(o, np.full_like(x, -1.0))


def test_packed_fp4_pass_with_a_plain_integer_index():
    """Seed 10047 (the fuzz program itself, not yet minimised): an fp4 input next to reductions
    and T.atomic_addx4 crashed pack_fp4 ('int' object has no attribute '_fields'): some store
    reaches it with a Python int index, which its visitor did not accept."""
    from tilewise.testing.fuzz.program import (  # noqa: F401
        Assign,
        AtomicElem,
        Bin,
        Cast,
        Copy,
        Fill,
        Load,
        Loop,
        Parallel,
        Program,
        Reduce,
        Ref,
        Tensor,
        Tile,
    )
    from tilewise.testing.fuzz.runner import Runner

    prog = Program(seed=10047, grid=(1, 2), threads=128, tensors=[Tensor(name='X0', shape=(9, 1), dtype='bfloat16', role='in'), Tensor(name='X1', shape=(9, 1), dtype='float4_e2m1fn', role='in'), Tensor(name='Y0', shape=(9, 63), dtype='bfloat16', role='in'), Tensor(name='O0', shape=(9, 1), dtype='int32', role='out'), Tensor(name='S0', shape=(128,), dtype='float32', role='acc')], tiles=[Tile(name='s0', scope='shared', shape=(8, 32), dtype='bfloat16'), Tile(name='s1', scope='shared', shape=(8, 32), dtype='float32'), Tile(name='f0', scope='fragment', shape=(8,), dtype='float32')], body=[Fill(dst=Ref(buf='s1', kind='whole', starts=(), extents=()), value=0, clear=True), Fill(dst=Ref(buf='f0', kind='whole', starts=(), extents=()), value=0, clear=True), Loop(kind='pipelined', extent=2, stages=1, body=[Copy(src=Ref(buf='Y0', kind='corner', starts=('by * 8', 'k * 32'), extents=(8, 32)), dst=Ref(buf='s0', kind='whole', starts=(), extents=())), Parallel(extents=(8, 32), body=[Assign(dst='s1', idx=('i', 'j'), value=Bin(op='+', a=Load(buf='s1', idx=('i', 'j')), b=Cast(dtype='float32', a=Load(buf='s0', idx=('i', 'j')))))]), Reduce(kind='max', src='s0', dst='f0', dim=1, clear=False)]), Reduce(kind='abssum', src='s1', dst='f0', dim=1, clear=False), Parallel(extents=(8, 32), body=[Assign(dst='O0', idx=('by * 8 + i', 'bx * 32 + j'), value=Bin(op='*', a=Cast(dtype='int32', a=Load(buf='s1', idx=('i', 'j'))), b=Bin(op='*', a=Cast(dtype='int32', a=Load(buf='X1', idx=('by * 8 + i', 'bx * 32 + j'))), b=Cast(dtype='int32', a=Load(buf='s1', idx=('i', 'j'))))))]), Parallel(extents=(8, 32), body=[AtomicElem(op='addx4', dst='S0', idx=('j * 4',), value=Load(buf='s1', idx=('i', 'j')))])], special_values=True, dims={}, safe={})
    r = Runner(("sm_80",), batch=1)
    try:
        assert r.check_one(prog, "sm_80") is None
    finally:
        r.close()


@pytest.mark.xfail(strict=True, reason="packed fp4 storage: two writers of one byte's nibbles race (not fixed)")
@pytest.mark.parametrize("target", [SM80])
def test_two_blocks_writing_the_two_nibbles_of_one_packed_fp4_byte(target):
    """Seeds 10021, 10082, 10109, 10141 ...: an fp4 tensor is stored two values per byte, so a
    store is a read-modify-write of the byte; blocks (or threads) writing neighbouring elements
    of one byte race, and on a GPU one update can be lost (the emulator reports the race)."""

    @T.prim_func
    def k(X: T.Tensor((4, 2), "float32"), O: T.Tensor((4, 2), "float4_e2m1fn")):
        with T.Kernel(2, threads=32) as bx:
            for i, j in T.Parallel(4, 1):
                O[i, bx + j] = T.cast(X[i, bx + j], "float4_e2m1fn")

    x = np.array([[0.5, 1.0], [1.5, 2.0], [3.0, 4.0], [6.0, -1.0]], np.float32)
    o = np.zeros((4, 1), np.uint8)  # packed, as TileLang passes it
    build(k, target)(x, o)
    got = np.stack([o[:, 0] & 0xF, o[:, 0] >> 4], 1).astype(np.uint8).view(ml_dtypes.float4_e2m1fn)
    np.testing.assert_array_equal(got.astype(np.float32), x)
