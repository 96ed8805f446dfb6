"""T.reduce_bitand / reduce_bitor / reduce_bitxor and T.cummax on the CPU, in the CUDA emulator
(cross-checked by the PTX interpreter) and through NVRTC for sm_80, against numpy, over a tensor
the 16 x 32 tiles do not divide (elements outside it read as zero)."""
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


def _compile(func, target):
    if target == "cpu":
        return tilewise.compile(func, target="cpu")
    return tilewise.compile(func, target="cuda", execution_backend="emulator")


def _tiles(a, fill=0):
    pad = np.full((GRID[1] * BM, GRID[0] * BN), fill, a.dtype)
    pad[:M, :N] = a
    return pad.reshape(GRID[1], BM, GRID[0], BN)


@functools.cache
def bitwise_kernel(kind: str, scope: str, dim: int, dtype: str = "int32", clear: bool = True):
    rows = dim == 1
    out_shape = (M, GRID[0]) if rows else (GRID[1], N)

    @T.prim_func
    def bitwise(A: T.Tensor((M, N), dtype), O: T.Tensor(out_shape, dtype)):
        with T.Kernel(*GRID, threads=128) as (bx, by):
            t = T.alloc_shared((BM, BN), dtype) if scope == "shared" else T.alloc_fragment((BM, BN), dtype)
            r = T.alloc_fragment((BM,) if rows else (BN,), dtype)
            T.copy(A[by * BM, bx * BN], t)
            if not clear:
                T.fill(r, 6)
            getattr(T, f"reduce_{kind}")(t, r, dim=dim, clear=clear)
            if rows:
                for i in T.Parallel(BM):
                    if by * BM + i < M:
                        O[by * BM + i, bx] = r[i]
            else:
                for j in T.Parallel(BN):
                    if bx * BN + j < N:
                        O[by, bx * BN + j] = r[j]

    return bitwise


def _np_bitwise(a, kind, dim, clear=True):
    f = {"bitand": np.bitwise_and, "bitor": np.bitwise_or, "bitxor": np.bitwise_xor}[kind]
    tiles = _tiles(a)
    out = f.reduce(tiles, axis=3 if dim == 1 else 1)
    if not clear:
        out = f(out, a.dtype.type(6))
    return out.reshape(GRID[1] * BM, GRID[0])[:M] if dim == 1 else out.reshape(GRID[1], GRID[0] * BN)[:, :N]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kind,scope,dim", [
    ("bitand", "fragment", 1), ("bitor", "fragment", 0), ("bitxor", "fragment", 1), ("bitxor", "shared", 0),
    ("bitand", "shared", 1),
])
def test_bitwise_reductions(kind, scope, dim, target):
    rng = np.random.default_rng(0)
    # and-reductions of random words are 0: mostly-set bits keep it interesting
    a = rng.integers(0, 2**31 - 1, (M, N)).astype(np.int32)
    if kind == "bitand":
        a |= 0x7FFF0F0F
    out_shape = (M, GRID[0]) if dim == 1 else (GRID[1], N)
    out = np.zeros(out_shape, np.int32)
    _compile(bitwise_kernel(kind, scope, dim), target)(a, out)
    np.testing.assert_array_equal(out, _np_bitwise(a, kind, dim))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", ["uint8", "int64"])
def test_bitwise_reductions_of_other_widths_without_clear(dtype, target):
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max, (M, N), dtype=dtype, endpoint=True)
    out = np.zeros((M, GRID[0]), dtype)
    _compile(bitwise_kernel("bitor", "fragment", 1, dtype, clear=False), target)(a, out)
    np.testing.assert_array_equal(out, _np_bitwise(a, "bitor", 1, clear=False))


@functools.cache
def cummax_kernel(scope: str, reverse: bool, dim: int):
    @T.prim_func
    def running_max(A: T.Tensor((M, N), "float32"), O: T.Tensor((M, N), "float32")):
        with T.Kernel(*GRID, threads=128) as (bx, by):
            t = T.alloc_shared((BM, BN), "float32") if scope == "shared" else T.alloc_fragment((BM, BN), "float32")
            T.copy(A[by * BM, bx * BN], t)
            T.cummax(t, dim=dim, reverse=reverse)
            T.copy(t, O[by * BM, bx * BN])

    return running_max


def _np_cummax(a, reverse, dim):
    tiles = _tiles(a).transpose(0, 2, 1, 3)  # (gy, gx, BM, BN)
    ax = 3 if dim == 1 else 2
    if reverse:
        out = np.flip(np.maximum.accumulate(np.flip(tiles, ax), axis=ax), ax)
    else:
        out = np.maximum.accumulate(tiles, axis=ax)
    return out.transpose(0, 2, 1, 3).reshape(GRID[1] * BM, GRID[0] * BN)[:M, :N]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("scope,reverse,dim", [("fragment", False, 1), ("shared", True, 1), ("fragment", True, 0),
                                               ("shared", False, 0)])
def test_cummax(scope, reverse, dim, target):
    a = np.random.default_rng(2).standard_normal((M, N)).astype(np.float32) - 0.5
    out = np.zeros_like(a)
    _compile(cummax_kernel(scope, reverse, dim), target)(a, out)
    np.testing.assert_array_equal(out, _np_cummax(a, reverse, dim))


def test_cummax_into_another_tile_and_int_types():
    @T.prim_func
    def k(A: T.Tensor((BN,), "int16"), O: T.Tensor((BN,), "int16")):
        with T.Kernel(1, threads=32):
            s = T.alloc_shared((BN,), "int16")
            d = T.alloc_shared((BN,), "int16")
            T.copy(A, s)
            T.cummax(s, d)
            T.copy(d, O)

    a = np.random.default_rng(3).integers(-1000, 1000, BN).astype(np.int16)
    for target in TARGETS:
        out = np.zeros_like(a)
        _compile(k, target)(a, out)
        np.testing.assert_array_equal(out, np.maximum.accumulate(a))


def test_kernels_compile_with_nvrtc(nvrtc_check):
    nvrtc_check(bitwise_kernel("bitxor", "fragment", 1), expect=("SHFL",), archs=("sm_80",))
    nvrtc_check(bitwise_kernel("bitand", "shared", 1), archs=("sm_80",))
    nvrtc_check(cummax_kernel("fragment", True, 0), expect=("FMNMX",), archs=("sm_80",))


def test_bad_operands_name_the_line():
    with pytest.raises(tilewise.CompileError, match="a bitwise reduction needs integer or bool tiles") as info:

        @T.prim_func
        def bad(A: T.Tensor((4, 4), "float32")):
            with T.Kernel(1):
                t = T.alloc_fragment((4, 4), "float32")
                r = T.alloc_fragment((4,), "float32")
                T.copy(A, t)
                T.reduce_bitor(t, r, dim=1)

    assert "test_bitwise_reduce_cummax.py" in str(info.value)
    with pytest.raises(tilewise.CompileError, match="T.cummax: dim=2 is out of range"):

        @T.prim_func
        def bad2(A: T.Tensor((4, 4), "float32")):
            with T.Kernel(1):
                t = T.alloc_shared((4, 4), "float32")
                T.cummax(t, dim=2)
