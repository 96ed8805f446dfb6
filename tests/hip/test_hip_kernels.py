"""Kernels without T.gemm compiled for an AMD MI300X ("hip -arch=gfx942"): each is compiled by
clang-19 into a code object whose AMDGPU instructions show the intended lowering (vector global
loads, DPP / ds_swizzle / ds_bpermute shuffles for reductions inside a 64-lane wavefront, s_barrier around the
LDS round across wavefronts) with no scratch (spilled) memory, and each is run by the thread-IR
emulator with 64-lane wavefronts against numpy."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import tilewise
import tilewise.language as T

pytestmark = pytest.mark.usefixtures("clang19")


def _compile(func, out_idx):
    return tilewise.compile(func, out_idx=out_idx, target="hip -arch=gfx942", execution_backend="emulator")


def _shuffles(isa: str) -> bool:
    """Lanes of a wavefront exchanging values: DPP, ds_swizzle or ds_bpermute."""
    return "_dpp " in isa or "ds_swizzle_b32" in isa or "ds_bpermute_b32" in isa


def _no_scratch(kernel):
    usage = kernel.resource_usage()
    assert usage["scratch_bytes"] == 0 and usage["vgpr_spills"] == 0 and usage["sgpr_spills"] == 0, usage
    return usage


def test_elementwise_add_vectorised(rng):
    M, N, bm, bn = 64, 512, 8, 256

    @T.prim_func
    def add(A: T.Tensor((M, N), "float32"), B: T.Tensor((M, N), "float32"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(N // bn, M // bm, threads=128) as (bx, by):
            a = T.alloc_fragment((bm, bn), "float32")
            b = T.alloc_fragment((bm, bn), "float32")
            T.copy(A[by * bm, bx * bn], a)
            T.copy(B[by * bm, bx * bn], b)
            for i, j in T.Parallel(bm, bn):
                a[i, j] = a[i, j] + b[i, j]
            T.copy(a, C[by * bm, bx * bn])

    k = _compile(add, [2])
    src = k.get_kernel_source()
    assert '#include "tw_hip.h"' in src and "__builtin_amdgcn_workitem_id_x()" in src
    isa = k.get_isa()
    assert "global_load_dwordx4" in isa and "global_store_dwordx4" in isa
    _no_scratch(k)
    a = rng.standard_normal((M, N)).astype(np.float32)
    b = rng.standard_normal((M, N)).astype(np.float32)
    np.testing.assert_array_equal(k(a, b), a + b)


def test_copy_through_lds(rng):
    """global -> LDS -> global with a transpose in between: ds_write_b128 from global_load_dwordx4,
    the LDS size in the code object's group segment."""
    M, N, bm, bn = 128, 128, 64, 64

    @T.prim_func
    def transpose(A: T.Tensor((M, N), "float16"), B: T.Tensor((N, M), "float16")):
        with T.Kernel(N // bn, M // bm, threads=256) as (bx, by):
            s = T.alloc_shared((bm, bn), "float16")
            t = T.alloc_fragment((bn, bm), "float16")
            T.copy(A[by * bm, bx * bn], s)
            for i, j in T.Parallel(bn, bm):
                t[i, j] = s[j, i]
            T.copy(t, B[bx * bn, by * bm])

    k = _compile(transpose, [1])
    isa = k.get_isa()
    assert "global_load_dwordx4" in isa and "ds_write_b128" in isa and "s_barrier" in isa
    usage = _no_scratch(k)
    assert usage["lds_bytes"] >= 64 * 64 * 2
    a = rng.standard_normal((M, N)).astype(np.float16)
    np.testing.assert_array_equal(k(a), a.T)


def _example(relpath: str):
    """A module of examples/ (the softmax and RMSNorm kernels TileLang users write)."""
    path = Path(__file__).resolve().parents[2] / "examples" / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("block_m", [4, 1])
def test_softmax(block_m, rng):
    """128 threads: with 4 rows a block, each row's 512 elements are over 32 lanes of a wavefront;
    with one row, over both wavefronts (then also the LDS round across them)."""
    M, N = 8, 512
    k = _compile(_example("softmax/example_softmax.py").softmax(M, N, block_m, dtype="float32"), [1])
    isa = k.get_isa()
    # the butterfly over 64 lanes: DPP quad permutations for masks 1 and 2, ds_swizzle for 4 to
    # 16, ds_bpermute across the two halves (mask 32)
    assert "quad_perm:[1,0,3,2]" in isa and "swizzle(SWAP,16)" in isa
    if block_m == 1:
        assert "ds_bpermute_b32" in isa and "s_barrier" in isa
    _no_scratch(k)
    x = rng.standard_normal((M, N)).astype(np.float32) * 4
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(k(x), e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_rms_norm_half(rng):
    M, N = 16, 256
    k = _compile(_example("norm/example_rms_norm.py").rms_norm(M, N, 2), [2])
    assert _shuffles(k.get_isa())
    _no_scratch(k)
    x = rng.standard_normal((M, N)).astype(np.float16)
    w = rng.standard_normal(N).astype(np.float16)
    xf = x.astype(np.float32)
    ref = xf / np.sqrt((xf * xf).mean(axis=1, keepdims=True) + 1e-6) * w.astype(np.float32)
    np.testing.assert_allclose(k(x, w).astype(np.float32), ref, rtol=2e-3, atol=2e-3)


def test_reduce_without_clear_accumulates(rng):
    """clear=False adds the row maxima / sums to what the destination held."""
    M, N = 64, 128

    @T.prim_func
    def red(X: T.Tensor((M, N), "float32"), S: T.Tensor((M,), "float32"), Mx: T.Tensor((M,), "float32")):
        with T.Kernel(1, threads=256) as _:
            x = T.alloc_fragment((M, N), "float32")
            s = T.alloc_fragment((M,), "float32")
            m = T.alloc_fragment((M,), "float32")
            T.copy(X, x)
            T.fill(s, 1.5)
            T.fill(m, 0.25)
            T.reduce_sum(x, s, dim=1, clear=False)
            T.reduce_max(x, m, dim=1, clear=False)
            T.copy(s, S)
            T.copy(m, Mx)

    k = _compile(red, [1, 2])
    assert _shuffles(k.get_isa())
    _no_scratch(k)
    x = rng.standard_normal((M, N)).astype(np.float32)
    s, m = k(x)
    np.testing.assert_allclose(s, x.sum(axis=1) + 1.5, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(m, np.maximum(x.max(axis=1), 0.25))


def test_cumsum_over_wavefronts(rng):
    M, N = 8, 512

    @T.prim_func
    def cs(X: T.Tensor((M, N), "float32"), Y: T.Tensor((M, N), "float32")):
        with T.Kernel(M // 2, threads=256) as bx:
            s = T.alloc_shared((2, N), "float32")
            T.copy(X[bx * 2, 0], s)
            T.cumsum(s, dim=1)
            T.copy(s, Y[bx * 2, 0])

    k = _compile(cs, [1])
    assert "ds_bpermute_b32" in k.get_isa()
    _no_scratch(k)
    x = rng.standard_normal((M, N)).astype(np.float32)
    np.testing.assert_allclose(k(x), np.cumsum(x, axis=1), rtol=1e-5, atol=1e-4)


def test_atomics(rng):
    """Every block adds its tile into one output (global_atomic_add_f32) and counts itself."""
    M, N, bm = 64, 64, 16

    @T.prim_func
    def acc(X: T.Tensor((M, N), "float32"), Y: T.Tensor((bm, N), "float32"), C: T.Tensor((1,), "int32"),
            Mx: T.Tensor((N,), "int32")):
        with T.Kernel(M // bm, threads=128) as bx:
            x = T.alloc_fragment((bm, N), "float32")
            T.copy(X[bx * bm, 0], x)
            T.atomic_add(Y[0, 0], x)
            for i, j in T.Parallel(bm, N):
                T.atomic_max(Mx[j], T.cast(x[i, j] * 100, "int32"))
            T.atomic_add(C[0], 1)

    k = tilewise.compile(acc, target="hip -arch=gfx942", execution_backend="emulator")
    isa = k.get_isa()
    assert "global_atomic_add_f32" in isa and "global_atomic_smax" in isa
    _no_scratch(k)
    x = rng.standard_normal((M, N)).astype(np.float32)
    y = np.zeros((bm, N), np.float32)
    c = np.zeros(1, np.int32)
    mx = np.full(N, -(2**31), np.int32)
    k(x, y, c, mx)
    np.testing.assert_allclose(y, x.reshape(M // bm, bm, N).sum(axis=0), rtol=1e-5, atol=1e-5)
    assert c[0] == M // bm
    np.testing.assert_array_equal(mx, (x * 100).astype(np.int32).max(axis=0))


def test_pipelined_loop_without_cp_async(rng):
    """gfx942 has no cp.async: T.Pipelined stages its copy through registers (the next tile's
    loads before the loop body, their LDS stores after it; tests/hip/test_hip_pipeline.py), and
    the result is the sum over the K tiles."""
    M, K, bk = 64, 512, 64

    @T.prim_func
    def rowsum(A: T.Tensor((M, K), "float16"), S: T.Tensor((M,), "float32")):
        with T.Kernel(1, threads=128) as _:
            a = T.alloc_shared((M, bk), "float16")
            x = T.alloc_fragment((M, bk), "float32")
            part = T.alloc_fragment((M,), "float32")
            acc = T.alloc_fragment((M,), "float32")
            T.fill(acc, 0)
            for ko in T.Pipelined(K // bk, num_stages=2):
                T.copy(A[0, ko * bk], a)
                T.copy(a, x)
                T.reduce_sum(x, part, dim=1)
                for i in T.Parallel(M):
                    acc[i] = acc[i] + part[i]
            T.copy(acc, S)

    k = _compile(rowsum, [1])
    src = k.get_kernel_source()
    assert "cp_async" not in src and "a_stage" in src
    _no_scratch(k)
    a = rng.standard_normal((M, K)).astype(np.float16)
    np.testing.assert_allclose(k(a), a.astype(np.float32).sum(axis=1), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("dtype", ["float64", "float16", "int64", "bfloat16"])
def test_row_max_in_other_types(dtype, rng):
    """Shuffles of 8- and 2-byte values (two dwords, or the low half of one) compile and reduce."""
    M, N = 4, 256

    @T.prim_func
    def rowmax(X: T.Tensor((M, N), dtype), Y: T.Tensor((M,), dtype)):
        with T.Kernel(1, threads=256) as _:
            x = T.alloc_fragment((M, N), dtype)
            m = T.alloc_fragment((M,), dtype)
            T.copy(X, x)
            T.reduce_max(x, m, dim=1)
            T.copy(m, Y)

    k = _compile(rowmax, [1])
    assert _shuffles(k.get_isa())
    _no_scratch(k)
    np_dt = {"bfloat16": ml_dtypes.bfloat16}.get(dtype, dtype)
    x = (rng.standard_normal((M, N)) * 100).astype(np_dt)
    np.testing.assert_array_equal(k(x), x.max(axis=1))


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32", "uint32", "int64", "float16", "bfloat16",
                                   "float32", "float64"])
def test_elementwise_arithmetic_in_every_type(dtype, rng):
    """Arithmetic, min / max, division and modulo, casts through float: the header's overloads
    for each scalar type compile, and the emulator gives numpy's answer."""
    n = 256
    is_float = dtype.startswith(("float", "bfloat"))

    @T.prim_func
    def ops(A: T.Tensor((n,), dtype), B: T.Tensor((n,), dtype), C: T.Tensor((n,), dtype), D: T.Tensor((n,), "float32")):
        with T.Kernel(2, threads=128) as bx:
            for i in T.Parallel(128):
                a = A[bx * 128 + i]
                b = B[bx * 128 + i]
                C[bx * 128 + i] = T.max(a, b) - T.min(a, b) + (a // b if not is_float else a * b)
                D[bx * 128 + i] = T.cast(a, "float32") + T.cast(T.abs(b), "float32")

    k = _compile(ops, [2, 3])
    _no_scratch(k)
    np_dt = {"bfloat16": ml_dtypes.bfloat16}.get(dtype, dtype)
    if is_float:
        a = rng.standard_normal(n).astype(np_dt)
        b = rng.standard_normal(n).astype(np_dt)
    else:
        info = np.iinfo(dtype)
        a = rng.integers(max(info.min, -100), min(info.max, 100), n).astype(dtype)
        b = rng.integers(1, min(info.max, 9), n).astype(dtype)
    c, d = k(a, b)
    f = np.float32
    if is_float:
        want = (np.maximum(a.astype(f), b.astype(f)) - np.minimum(a.astype(f), b.astype(f))).astype(np_dt)
        want = (want.astype(f) + (a.astype(f) * b.astype(f)).astype(np_dt).astype(f)).astype(np_dt)
        np.testing.assert_allclose(c.astype(np.float64), want.astype(np.float64), rtol=1e-2 if dtype != "float64" else 1e-6)
    else:
        want = (np.maximum(a, b) - np.minimum(a, b) + a // b).astype(dtype)
        np.testing.assert_array_equal(c, want)
    np.testing.assert_allclose(d, a.astype(f) + np.abs(b).astype(f), rtol=1e-6)
