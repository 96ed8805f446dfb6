"""Every tile operator through every target, against numpy (in the spirit of tinygrad's
test_ops.py): natively on the CPU, thread-exactly in the CUDA emulator, and compiled by NVRTC for
sm_80 and sm_90a without spills. A new operator gets its cross-target test by adding an entry to
CASES; shapes that do not divide the tiles are the rule here, not the exception."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import tilewise
import tilewise.language as T

M, N = 40, 72  # the global tensors: neither divides the 16 x 32 tiles
BM, BN = 16, 32
GRID = (-(-N // BN), -(-M // BM))


@dataclass
class Case:
    kernel: Callable  # () -> prim_func; tensors (inputs..., output), the output last
    inputs: Callable  # rng -> list of arrays
    reference: Callable  # *inputs -> expected output
    tol: float = 0.0  # absolute and relative tolerance (0: exact)


def _tiled(body, dtype="float32", out_dtype=None, out_shape=(M, N), extra_in=()):
    """A kernel over (M, N) in BM x BN tiles: body(A, *extra, O, bx, by) in the T namespace."""
    out_dtype = out_dtype or dtype

    @T.prim_func
    def k(A: T.Tensor((M, N), dtype), O: T.Tensor(out_shape, out_dtype)):
        with T.Kernel(*GRID, threads=128) as (bx, by):
            body(A, O, bx, by)

    return k


def _copy_through(scope: str):
    def body(A, O, bx, by):
        t = T.alloc_shared((BM, BN), "float32") if scope == "shared" else T.alloc_fragment((BM, BN), "float32")
        T.copy(A[by * BM, bx * BN], t)
        T.copy(t, O[by * BM, bx * BN])

    return lambda: _tiled(body)


def _fill_then_add():
    @T.prim_func
    def k(A: T.Tensor((M, N), "float32"), O: T.Tensor((M, N), "float32")):
        with T.Kernel(*GRID, threads=128) as (bx, by):
            t = T.alloc_fragment((BM, BN), "float32")
            T.fill(t, 1.5)
            for i, j in T.Parallel(BM, BN):
                t[i, j] += A[by * BM + i, bx * BN + j]
            T.copy(t, O[by * BM, bx * BN])

    return k


def _reduce(kind: str, scope: str, dim: int):
    rows = dim == 1

    @T.prim_func
    def k(A: T.Tensor((M, N), "float32"), O: T.Tensor((M, GRID[0]) if rows else (GRID[1], N), "float32")):
        with T.Kernel(*GRID, threads=128) as (bx, by):
            t = T.alloc_shared((BM, BN), "float32") if scope == "shared" else T.alloc_fragment((BM, BN), "float32")
            r = T.alloc_fragment((BM,) if rows else (BN,), "float32")
            T.copy(A[by * BM, bx * BN], t)
            T.reduce(t, r, kind, dim=dim, clear=True)
            if rows:
                for i in T.Parallel(BM):
                    if by * BM + i < M:
                        O[by * BM + i, bx] = r[i]
            else:
                for j in T.Parallel(BN):
                    if bx * BN + j < N:
                        O[by, bx * BN + j] = r[j]

    return k


def _np_reduce(kind: str, dim: int):
    f = {"sum": np.sum, "max": np.max, "min": np.min, "abssum": np.sum, "absmax": np.max}[kind]

    def ref(a):
        # out-of-bounds elements of a tile read as zero
        pad = np.zeros((GRID[1] * BM, GRID[0] * BN), np.float32)
        pad[:M, :N] = a
        x = np.abs(pad) if kind.startswith("abs") else pad
        tiles = x.reshape(GRID[1], BM, GRID[0], BN)
        out = f(tiles, axis=3 if dim == 1 else 1)  # (GRID1, BM, GRID0) or (GRID1, GRID0, BN)
        return out.reshape(GRID[1] * BM, GRID[0])[:M] if dim == 1 else out.reshape(GRID[1], GRID[0] * BN)[:, :N]

    return ref


def _cumsum(scope: str, reverse: bool):
    def body(A, O, bx, by):
        t = T.alloc_shared((BM, BN), "float32") if scope == "shared" else T.alloc_fragment((BM, BN), "float32")
        T.copy(A[by * BM, bx * BN], t)
        T.cumsum(t, dim=1, reverse=reverse)
        T.copy(t, O[by * BM, bx * BN])

    return lambda: _tiled(body)


def _np_cumsum(reverse: bool):
    def ref(a):
        pad = np.zeros((GRID[1] * BM, GRID[0] * BN), np.float32)
        pad[:M, :N] = a
        tiles = pad.reshape(GRID[1] * BM, GRID[0], BN)
        out = np.flip(np.cumsum(np.flip(tiles, 2), 2), 2) if reverse else np.cumsum(tiles, 2)
        return out.reshape(GRID[1] * BM, GRID[0] * BN)[:M, :N]

    return ref


def _cummax(scope: str, reverse: bool):
    def body(A, O, bx, by):
        t = T.alloc_shared((BM, BN), "float32") if scope == "shared" else T.alloc_fragment((BM, BN), "float32")
        T.copy(A[by * BM, bx * BN], t)
        T.cummax(t, dim=1, reverse=reverse)
        T.copy(t, O[by * BM, bx * BN])

    return lambda: _tiled(body)


def _np_cummax(reverse: bool):
    def ref(a):
        pad = np.zeros((GRID[1] * BM, GRID[0] * BN), np.float32)
        pad[:M, :N] = a
        tiles = pad.reshape(GRID[1] * BM, GRID[0], BN)
        acc = np.maximum.accumulate
        out = np.flip(acc(np.flip(tiles, 2), 2), 2) if reverse else acc(tiles, 2)
        return out.reshape(GRID[1] * BM, GRID[0] * BN)[:M, :N]

    return ref


def _reduce_bitxor_rows():
    @T.prim_func
    def k(A: T.Tensor((M, N), "int32"), O: T.Tensor((M, GRID[0]), "int32")):
        with T.Kernel(*GRID, threads=128) as (bx, by):
            t = T.alloc_fragment((BM, BN), "int32")
            r = T.alloc_fragment((BM,), "int32")
            T.copy(A[by * BM, bx * BN], t)
            T.reduce_bitxor(t, r, dim=1)
            for i in T.Parallel(BM):
                if by * BM + i < M:
                    O[by * BM + i, bx] = r[i]

    return k


def _np_bitxor_rows(a):
    pad = np.zeros((GRID[1] * BM, GRID[0] * BN), np.int32)
    pad[:M, :N] = a
    return np.bitwise_xor.reduce(pad.reshape(GRID[1] * BM, GRID[0], BN), axis=2)[:M]


def _atomic_add_tiles():
    """Every block adds its tile, doubled, into one (BM, BN) output: a reduction over blocks."""

    @T.prim_func
    def k(A: T.Tensor((M, N), "float32"), O: T.Tensor((BM, BN), "float32")):
        with T.Kernel(*GRID, threads=128) as (bx, by):
            t = T.alloc_fragment((BM, BN), "float32")
            T.copy(A[by * BM, bx * BN], t)
            for i, j in T.Parallel(BM, BN):
                t[i, j] = t[i, j] * 2
            T.atomic_add(O, t)

    return k


def _np_tile_sum(a):
    pad = np.zeros((GRID[1] * BM, GRID[0] * BN), np.float32)
    pad[:M, :N] = a
    return 2 * pad.reshape(GRID[1], BM, GRID[0], BN).sum(axis=(0, 2))


def _atomic_max_elements():
    @T.prim_func
    def k(A: T.Tensor((M, N), "int32"), O: T.Tensor((N,), "int32")):
        with T.Kernel(*GRID, threads=128) as (bx, by):
            for i, j in T.Parallel(BM, BN):
                if by * BM + i < M and bx * BN + j < N:
                    T.atomic_max(O[bx * BN + j], A[by * BM + i, bx * BN + j])

    return k


def _gemm(dtype: str, acc: str, K: int = 48, BK: int = 16, rs: bool = False, trans_b: bool = False):
    b_shape = (N, K) if trans_b else (K, N)
    b_tile = (BN, BK) if trans_b else (BK, BN)

    @T.prim_func
    def k(A: T.Tensor((M, K), dtype), B: T.Tensor(b_shape, dtype), C: T.Tensor((M, N), acc)):
        with T.Kernel(*GRID, threads=128) as (bx, by):
            a_s = T.alloc_shared((BM, BK), dtype)
            b_s = T.alloc_shared(b_tile, dtype)
            c = T.alloc_fragment((BM, BN), acc)
            T.clear(c)
            for ko in T.Pipelined(T.ceildiv(K, BK), num_stages=2):
                T.copy(A[by * BM, ko * BK], a_s)
                if trans_b:
                    T.copy(B[bx * BN, ko * BK], b_s)
                else:
                    T.copy(B[ko * BK, bx * BN], b_s)
                if rs:
                    a_r = T.alloc_fragment((BM, BK), dtype)
                    T.copy(a_s, a_r)
                    T.gemm(a_r, b_s, c, transpose_B=trans_b)
                else:
                    T.gemm(a_s, b_s, c, transpose_B=trans_b)
            T.copy(c, C[by * BM, bx * BN])

    return k


def _gemm_inputs(dtype: str, K: int = 48, trans_b: bool = False):
    def make(rng):
        if dtype == "int8":
            a = rng.integers(-8, 8, (M, K)).astype(np.int8)
            b = rng.integers(-8, 8, (N, K) if trans_b else (K, N)).astype(np.int8)
            return [a, b]
        np_dt = tilewise.ir.dtype.as_dtype(dtype).numpy
        a = rng.standard_normal((M, K)).astype(np.float32).astype(np_dt)
        b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32).astype(np_dt)
        return [a, b]

    return make


def _np_gemm(trans_b: bool = False):
    def ref(a, b):
        wide = np.int64 if a.dtype == np.int8 else np.float64
        bb = b.astype(wide).T if trans_b else b.astype(wide)
        return a.astype(wide) @ bb

    return ref


def _f32(rng):
    return [rng.standard_normal((M, N)).astype(np.float32)]


CASES: dict[str, Case] = {
    "copy_shared": Case(_copy_through("shared"), _f32, lambda a: a),
    "copy_fragment": Case(_copy_through("fragment"), _f32, lambda a: a),
    "fill": Case(_fill_then_add, _f32, lambda a: a + 1.5),
    **{f"reduce_{kind}_{scope}_dim{dim}": Case(lambda kind=kind, scope=scope, dim=dim: _reduce(kind, scope, dim), _f32,
                                              _np_reduce(kind, dim), tol=1e-5)
       for kind in ("sum", "max", "min", "abssum", "absmax") for scope in ("fragment", "shared") for dim in (0, 1)
       if scope == "fragment" or kind in ("sum", "max")},
    **{f"cumsum_{scope}{'_reverse' if rev else ''}": Case(_cumsum(scope, rev), _f32, _np_cumsum(rev), tol=1e-5)
       for scope in ("fragment", "shared") for rev in (False, True)},
    **{f"cummax_{scope}{'_reverse' if rev else ''}": Case(_cummax(scope, rev), _f32, _np_cummax(rev))
       for scope, rev in (("fragment", False), ("shared", True))},
    "reduce_bitxor_rows": Case(_reduce_bitxor_rows,
                               lambda rng: [rng.integers(-(2**31), 2**31 - 1, (M, N)).astype(np.int32)],
                               _np_bitxor_rows),
    "atomic_add_tiles": Case(_atomic_add_tiles, _f32, _np_tile_sum, tol=1e-5),
    "atomic_max_elements": Case(_atomic_max_elements, lambda rng: [rng.integers(-1000, 1000, (M, N)).astype(np.int32)],
                                lambda a: np.maximum(a.max(axis=0), 0)),
    "gemm_f16": Case(lambda: _gemm("float16", "float32"), _gemm_inputs("float16"), _np_gemm(), tol=1e-2),
    "gemm_bf16": Case(lambda: _gemm("bfloat16", "float32"), _gemm_inputs("bfloat16"), _np_gemm(), tol=2e-2),
    "gemm_f32_tf32": Case(lambda: _gemm("float32", "float32", BK=8), _gemm_inputs("float32"), _np_gemm(), tol=5e-2),
    "gemm_i8": Case(lambda: _gemm("int8", "int32", K=64, BK=32, trans_b=True), _gemm_inputs("int8", K=64, trans_b=True),
                    _np_gemm(trans_b=True)),
    "gemm_f16_registers": Case(lambda: _gemm("float16", "float32", rs=True), _gemm_inputs("float16"), _np_gemm(),
                               tol=1e-2),
}

TARGETS = ("cpu", "emulator")


def _check(out, expected, tol):
    if tol == 0:
        np.testing.assert_array_equal(out, expected)
    else:
        np.testing.assert_allclose(out.astype(np.float64), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", list(CASES))
def test_operator_against_numpy(name, target):
    case = CASES[name]
    ins = case.inputs(np.random.default_rng(0))
    func = case.kernel()
    out_param = func.params[-1]
    out = np.zeros([int(d) for d in out_param.shape], out_param.dtype.numpy)
    if target == "cpu":
        k = tilewise.compile(func, target="cpu")
    else:
        k = tilewise.compile(func, target="cuda", execution_backend="emulator")
    k(*ins, out)
    _check(out, case.reference(*ins), case.tol)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
@pytest.mark.parametrize("name", list(CASES))
def test_operator_compiles_without_spills(name, arch):
    k = tilewise.compile(CASES[name].kernel(), target=f"cuda -arch={arch}", execution_backend="emulator")
    use = k.resource_usage()
    assert use["spill_bytes"] == 0 and 0 < use["registers"] <= 255, (name, arch, use)


# every operator runs on the HIP target too (T.gemm through MFMA; float32 operands through FMAs)
HIP_CASES = list(CASES)


@pytest.mark.parametrize("name", HIP_CASES)
def test_operator_on_hip(name):
    """gfx942: 64-lane wavefronts in the emulator against numpy, and clang-19's code object with
    no scratch (spilled) memory."""
    case = CASES[name]
    ins = case.inputs(np.random.default_rng(0))
    func = case.kernel()
    out_param = func.params[-1]
    out = np.zeros([int(d) for d in out_param.shape], out_param.dtype.numpy)
    k = tilewise.compile(func, target="hip -arch=gfx942", execution_backend="emulator")
    k(*ins, out)
    _check(out, case.reference(*ins), case.tol)
    use = k.resource_usage()
    assert use["scratch_bytes"] == 0 and use["vgpr_spills"] == 0, (name, use)
