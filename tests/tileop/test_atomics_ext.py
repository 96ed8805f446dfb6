"""T.atomic_addx2 / atomic_addx4, T.atomic_load / atomic_store, T.atomic_or and
`return_prev=True` (tileop/atomic_ext.py, atomic_add.py) on the CPU, in the CUDA emulator
(cross-checked by the PTX interpreter) and through NVRTC for sm_80, against numpy; 40 x 72
tensors in 16 x 32 tiles (the edge blocks guard their elements)."""
from __future__ import annotations

import functools

import numpy as np
import pytest

import tilewise
import tilewise.language as T

M, N = 40, 72
BM, BN = 16, 32
GRID = (-(-N // BN), -(-M // BM))
TARGETS = ("cpu", "emulator")


def _compile(func, target, out_idx=None):
    if target == "cpu":
        return tilewise.compile(func, out_idx=out_idx, target="cpu")
    return tilewise.compile(func, out_idx=out_idx, target="cuda", execution_backend="emulator")


@functools.cache
def addx_kernel(lanes: int, dtype: str, scope: str):
    """Every block adds its tile into one (BM, BN) accumulator, `lanes` elements per atomic."""

    @T.prim_func
    def addx(A: T.Tensor((M, N), dtype), O: T.Tensor((BM, BN), dtype)):
        with T.Kernel(*GRID, threads=128) as (bx, by):
            t = T.alloc_shared((BM, BN), dtype) if scope == "shared" else T.alloc_fragment((BM, BN), dtype)
            T.copy(A[by * BM, bx * BN], t)
            for i, j in T.Parallel(BM, BN // lanes):
                if lanes == 2:
                    T.atomic_addx2(O[i, j * 2], t[i, j * 2])
                else:
                    T.atomic_addx4(O[i, j * 4:j * 4 + 4], t[i, j * 4:j * 4 + 4])

    return addx


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("lanes,dtype,scope", [(2, "float32", "fragment"), (4, "float32", "shared"),
                                               (2, "float16", "shared"), (2, "int32", "fragment")])
def test_vector_atomic_adds(lanes, dtype, scope, target):
    rng = np.random.default_rng(0)
    a = (rng.integers(-50, 50, (M, N)) if dtype == "int32" else rng.integers(-8, 8, (M, N)) / 4).astype(dtype)
    out = np.zeros((BM, BN), dtype)
    _compile(addx_kernel(lanes, dtype, scope), target)(a, out)
    pad = np.zeros((GRID[1] * BM, GRID[0] * BN), np.float64)
    pad[:M, :N] = a
    exp = pad.reshape(GRID[1], BM, GRID[0], BN).sum(axis=(0, 2))
    np.testing.assert_array_equal(out.astype(np.float64), exp)  # small integers and quarters: exact


@functools.cache
def tickets_kernel():
    """Each element takes a ticket from one counter (atomic_add's old value), records the old
    running maximum and sets its bit in a word of flags (atomic_or's old value too)."""

    @T.prim_func
    def tickets(A: T.Tensor((M,), "int32"), Tk: T.Tensor((M,), "int32"), Counter: T.Tensor((1,), "int32"),
                Mx: T.Tensor((1,), "int32"), Prev: T.Tensor((M,), "int32"), Flags: T.Tensor((2,), "int64"),
                Old: T.Tensor((M,), "int64")):
        with T.Kernel(T.ceildiv(M, BN), threads=128) as bx:
            for i in T.Parallel(BN):
                r = bx * BN + i
                if r < M:
                    Tk[r] = T.atomic_add(Counter[0], 1, return_prev=True)
                    Prev[r] = T.atomic_max(Mx[0], A[r], return_prev=True)
                    Old[r] = T.atomic_or(Flags[r % 2], T.shift_left(T.cast(1, "int64"), r), return_prev=True)

    return tickets


@pytest.mark.parametrize("target", TARGETS)
def test_return_prev_gives_the_old_value(target):
    a = np.random.default_rng(1).permutation(M).astype(np.int32)
    tk, prev, old = np.zeros(M, np.int32), np.zeros(M, np.int32), np.zeros(M, np.int64)
    counter, mx, flags = np.zeros(1, np.int32), np.full(1, -1, np.int32), np.zeros(2, np.int64)
    _compile(tickets_kernel(), target)(a, tk, counter, mx, prev, flags, old)
    assert counter[0] == M and sorted(tk.tolist()) == list(range(M))
    assert mx[0] == M - 1
    # in ticket order, each element saw the maximum of the elements before it
    order = np.argsort(tk)
    np.testing.assert_array_equal(prev[order], np.maximum.accumulate(np.concatenate([[-1], a[order][:-1]])))
    bits = np.int64(1) << np.arange(M, dtype=np.int64)
    assert flags[0] == np.bitwise_or.reduce(bits[0::2]) and flags[1] == np.bitwise_or.reduce(bits[1::2])
    for r in range(M):  # the old word never holds the element's own bit
        assert old[r] & bits[r] == 0


@functools.cache
def load_store_kernel(dtype: str):
    @T.prim_func
    def load_store(A: T.Tensor((M,), dtype), B: T.Tensor((M,), dtype), Done: T.Tensor((GRID[1],), "int32")):
        with T.Kernel(GRID[1], threads=128) as bx:
            for i in T.Parallel(BM):
                if bx * BM + i < M:
                    B[bx * BM + i] = T.atomic_load(A[bx * BM + i], memory_order="acquire") * 2
            T.atomic_store(Done[bx], bx + 1, memory_order="release")
            v = T.atomic_load(Done[bx], "relaxed")
            T.atomic_store(Done[bx], v * 10)

    return load_store


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_atomic_load_and_store(dtype, target):
    a = np.random.default_rng(2).integers(-100, 100, M).astype(dtype)
    b = np.zeros_like(a)
    done = np.zeros(GRID[1], np.int32)
    _compile(load_store_kernel(dtype), target)(a, b, done)
    np.testing.assert_array_equal(b, a * 2)
    np.testing.assert_array_equal(done, (np.arange(GRID[1]) + 1) * 10)


def test_kernels_compile_with_nvrtc(nvrtc_check):
    nvrtc_check(addx_kernel(2, "float32", "fragment"), expect=(("RED", "REDG", "ATOM", "ATOMG"),), archs=("sm_80",))
    nvrtc_check(addx_kernel(2, "float16", "shared"), archs=("sm_80",))
    nvrtc_check(tickets_kernel(), expect=(("ATOM", "ATOMG"),), archs=("sm_80",))
    nvrtc_check(load_store_kernel("float16"), expect=("MEMBAR",), archs=("sm_80",))


def test_misuse_names_the_line():
    cases = [
        (lambda C, v: T.atomic_addx2(C[0], T.float32x4(v, v, v, v)), "has 4 lanes, not 2"),
        (lambda C, v: T.atomic_addx4(C[0:2], C[4:8]), "must be 4 consecutive elements"),
        (lambda C, v: T.atomic_or(C[0:2], 1), "takes scalars only"),
        (lambda C, v: T.atomic_load(C[0], memory_order="release"), "T.atomic_load does not support memory_order='release'"),
        (lambda C, v: T.atomic_store(C[0], v, memory_order="acquire"), "T.atomic_store does not support memory_order='acquire'"),
    ]
    for fn, msg in cases:
        with pytest.raises(tilewise.CompileError, match=msg) as info:

            @T.prim_func
            def bad(C: T.Tensor((8,), "int32")):
                with T.Kernel(1):
                    x = fn(C, 1)
                    if x is not None:
                        C[0] = x

        assert "test_atomics_ext.py" in str(info.value)
    with pytest.raises(tilewise.CompileError, match="has type float32; it must be an integer"):

        @T.prim_func
        def bad_or(C: T.Tensor((8,), "float32")):
            with T.Kernel(1):
                T.atomic_or(C[0], 1)


@pytest.mark.parametrize("op, expect_dst", [("atomic_add", 5.5), ("atomic_max", 3.0), ("atomic_min", 2.5)])
def test_return_prev_in_a_one_thread_block(op, expect_dst):
    """threads=1: the block is one thread, so block-level code may use the old value (TileLang's
    test_atomic_scalar_return_prev)."""
    atom = getattr(T, op)

    @T.prim_func
    def main(Dst: T.Tensor((1,), "float32"), Prev: T.Tensor((1,), "float32")):
        with T.Kernel(1, threads=1) as _:
            Prev[0] = atom(Dst[0], 2.5, return_prev=True)

    dst = np.array([3.0], np.float32)
    prev = np.zeros(1, np.float32)
    tilewise.compile(main, target="cpu")(dst, prev)
    assert prev[0] == 3.0 and dst[0] == expect_dst
