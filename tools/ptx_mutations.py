#!/usr/bin/env python
"""Mutation evidence for the PTX interpreter: seeded single-line bugs in the CUDA renderer and in
tw_cuda.h (and, as a second list, in the lowering and layout code) must be caught by the differential check (the PTX that NVRTC compiles, executed by
tilewise.ptx, against numpy and against the thread-IR emulator, which never sees the renderer or
the header and so stays right).

The package is copied to a scratch directory once; each mutation edits one line there, and a
child process (PYTHONPATH = the scratch copy, a fresh compile cache) runs the probe kernels. A
mutation is killed when some probe computes a value that differs from numpy or from the emulator
(`values`), or when the interpreter reports a fault such as an out-of-bounds access, a read of
cp.async data before its wait or a shared-memory race (`fault`); NVRTC rejecting the mutated
source is reported separately (`compile`), as is a probe that never finishes (`timeout`). An
instruction the interpreter does not implement (`unsupported`) does not count as caught.

    .venv/bin/python tools/ptx_mutations.py                 # every mutation, every probe
    .venv/bin/python tools/ptx_mutations.py --quick         # each mutation against its own probes
    .venv/bin/python tools/ptx_mutations.py --only ldmatrix-x4-trans-order,atomic-byte-lane
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = "tilewise/backend/cuda/include/tw_cuda.h"
RENDERER = "tilewise/backend/cuda/renderer.py"
LAYOUT_TV = "tilewise/layout/tv.py"
REDUCE = "tilewise/tileop/reduce.py"
PIPELINE = "tilewise/transform/inject_pipeline.py"


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str  # must occur exactly once in the file
    new: str
    why: str
    probes: tuple = field(default=())  # the probes that exercise the mutated line (--quick)


MUTATIONS = [
    Mutation("mma-f16-operands-swapped", HEADER,
             '"r"(A[0]), "r"(A[1]), "r"(A[2]), "r"(A[3]), "r"(B[0]), "r"(B[1]));                \\\n  }\nTW_MMA_F32_ACC',
             '"r"(A[1]), "r"(A[0]), "r"(A[2]), "r"(A[3]), "r"(B[0]), "r"(B[1]));                \\\n  }\nTW_MMA_F32_ACC',
             "two A registers of the f32-accumulator mma wrappers exchanged", ("gemm_f16", "gemm_bf16", "gemm_tf32")),
    Mutation("mma-int8-operand-order", HEADER,
             '"r"(A[0]), "r"(A[1]), "r"(A[2]), "r"(A[3]), "r"(B[0]), "r"(B[1]));                \\\n  }\nTW_MMA_INT8',
             '"r"(B[0]), "r"(B[1]), "r"(A[2]), "r"(A[3]), "r"(A[0]), "r"(A[1]));                \\\n  }\nTW_MMA_INT8',
             "the int8 mma's A and B operands in the wrong registers", ("gemm_s8", "gemm_u8s8")),
    Mutation("mma-s8u8-variant", HEADER, 'TW_MMA_INT8(mma_m16n8k32_s32_u8_s8, "u8", "s8")',
             'TW_MMA_INT8(mma_m16n8k32_s32_u8_s8, "s8", "u8")', "the u8 x s8 wrapper issues the s8 x u8 mma",
             ("gemm_u8s8",)),
    Mutation("mma-f16-accumulator-order", HEADER,
             '               : "+r"(C[0]), "+r"(C[1])\n               : "r"(A[0]), "r"(A[1]), "r"(A[2]), "r"(A[3])',
             '               : "+r"(C[1]), "+r"(C[0])\n               : "r"(A[0]), "r"(A[1]), "r"(A[2]), "r"(A[3])',
             "the two packed f16 accumulator registers exchanged", ("gemm_f16acc",)),
    Mutation("ldmatrix-x4-trans-order", HEADER,
             'asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\\n"',
             'asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %2, %1, %3}, [%4];\\n"',
             "ldmatrix.x4.trans delivers matrices 1 and 2 in each other's registers", ("gemm_f16",)),
    Mutation("ldmatrix-x4-order", HEADER,
             'asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\\n"',
             'asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%1, %0, %2, %3}, [%4];\\n"',
             "ldmatrix.x4 delivers matrices 0 and 1 swapped", ("gemm_f16", "gemm_bf16")),
    Mutation("ldmatrix-trans-flag", RENDERER, 'trans = "true" if e.attrs.get("trans", False) else "false"',
             'trans = "false" if e.attrs.get("trans", False) else "true"', "the renderer inverts ldmatrix's .trans",
             ("gemm_f16",)),
    # 32- and 64-bit shuffles print CUDA's own __shfl_*_sync (renderer._shfl); narrower types go
    # through tw_cuda.h's wrapper
    Mutation("shuffle-width", RENDERER,
             'return f"{_SHFL_NATIVE_NAMES[e.name]}(0xffffffffu, {args[0]}, {args[1]}, {width})"',
             'return f"{_SHFL_NATIVE_NAMES[e.name]}(0xffffffffu, {args[0]}, {args[1]}, ({width}) / 4)"',
             "shuffles use a quarter of the requested width", ("reduce",)),
    Mutation("shuffle-xor-mask", RENDERER,
             'return f"{_SHFL_NATIVE_NAMES[e.name]}(0xffffffffu, {args[0]}, {args[1]}, {width})"',
             'return f"{_SHFL_NATIVE_NAMES[e.name]}(0xffffffffu, {args[0]}, ({args[1]}) >> 1, {width})"',
             "the renderer halves every lane mask", ("reduce",)),
    Mutation("cp-async-no-zero-fill", HEADER,
             'asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\\n" ::"r"(d), "l"(s), "r"(src_bytes) : "memory");',
             'asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\\n" ::"r"(d), "l"(s) : "memory");',
             "16-byte cp.async ignores src-size: tiles past the tensor's end are copied, not zero-filled",
             ("gemm_f16", "gemm_s8", "gemm_bf16", "gemm_tf32", "gemm_f16acc")),
    Mutation("cp-async-wait-n-plus-1", RENDERER, "return f\"tw::cp_async_wait<{int(e.attrs.get('n', 0))}>()\"",
             "return f\"tw::cp_async_wait<{int(e.attrs.get('n', 0)) + 1}>()\"",
             "the renderer waits for one group too few", ("gemm_f16", "gemm_s8")),
    Mutation("cp-async-commit-dropped", HEADER, 'TW_DEV void cp_async_commit() { asm volatile("cp.async.commit_group;\\n" ::: "memory"); }',
             "TW_DEV void cp_async_commit() {}", "commit_group is never issued: waits cover nothing",
             ("gemm_f16",)),
    Mutation("atomic-byte-lane", HEADER, "const int shift = (int)((a & 3) * 8);  // little-endian: the byte at a & 3",
             "const int shift = (int)((3 - (a & 3)) * 8);  // little-endian: the byte at a & 3",
             "1-byte atomics update the mirrored byte of their word", ("atomics",)),
    Mutation("bf16-widening", HEADER, "TW_DEV float bf16_to_f32(uint16_t b) { return __uint_as_float((uint32_t)b << 16); }",
             "TW_DEV float bf16_to_f32(uint16_t b) { return __uint_as_float((uint32_t)b << 15); }",
             "bfloat16 -> float shifts by 15", ("convert",)),
    Mutation("f16-rounding", HEADER, 'asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));',
             'asm("cvt.rz.f16.f32 %0, %1;" : "=h"(h) : "f"(f));', "float -> half truncates", ("convert",)),
    Mutation("bf16-rounding", HEADER, 'asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(b) : "f"(f));',
             'asm("cvt.rz.bf16.f32 %0, %1;" : "=h"(b) : "f"(f));', "float -> bfloat16 truncates", ("convert",)),
    Mutation("e4m3-operand-order", HEADER,
             'asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(0.0f), "f"(f));  // f -> the low byte',
             'asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(f), "f"(0.0f));  // f -> the low byte',
             "float -> e4m3 packs the value into the byte that is thrown away", ("convert_sm89",)),
    Mutation("exp-is-exp2", HEADER, "TW_MATH1(exp, expf, exp)", "TW_MATH1(exp, exp2f, exp)", "tw::exp calls exp2f",
             ("convert",)),
    Mutation("copy-vec-half", RENDERER, 'return f"tw::copy_vec<{n}>({args[0]}, {args[1]})"',
             'return f"tw::copy_vec<{max(1, n // 2)}>({args[0]}, {args[1]})"', "vector copies move half their bytes",
             ("copy", "gemm_tf32")),
    Mutation("floordiv-pow2-shift", RENDERER, 'return a if c == 1 else f"({a} >> {c.bit_length() - 1})"',
             'return a if c == 1 else f"({a} >> {c.bit_length()})"', "x // 2^k renders as a shift by k + 1",
             ("intdiv", "copy", "reduce")),
    Mutation("global-offsets-32-bit", RENDERER, "return shape is None or math.prod(shape) >= 2**31",
             "return False", "global offsets in 32 bits even for dynamic shapes (overflows only past 2^31 elements)",
             ("copy",)),
    # a cp.async source in an unrolled steady state renders as (thread part) + (rest); the
    # constant belongs to the rest only
    Mutation("split-offset-constant-twice", RENDERER, "        mine.const = 0\n",
             "        mine.const = lin.const\n", "the thread's part of a cp.async source offset keeps the constant too",
             ("gemm_f16_tiles",)),
    Mutation("barrier-dropped", RENDERER, 'return "__syncthreads()"', 'return "__syncwarp()"',
             "__syncthreads becomes a warp barrier (a race, not a wrong value, in a lockstep interpreter)",
             ("reduce", "gemm_f16")),
    # the lowering and layout code: both executors see these bugs, and numpy or the emulator's
    # own checks (races) catch them
    Mutation("c-fragment-lane-modes-swapped", LAYOUT_TV,
             "tm = [Mode(4, 1, 2), Mode(8, 0, 1), Mode(warp_n, 1, WN), Mode(warp_m, 0, WM)]",
             "tm = [Mode(8, 0, 1), Mode(4, 1, 2), Mode(warp_n, 1, WN), Mode(warp_m, 0, WM)]",
             "the mma accumulator's lane modes in the wrong order (lane = row * 4 + col / 2 broken)",
             ("gemm_f16", "gemm_s8")),
    Mutation("unrolled-pipeline-slot", PIPELINE, "slot = Const((slot0 - st) % S, _dt.int32)",
             "slot = Const((slot0 + st) % S, _dt.int32)",
             "a consumer in the pipeline's unrolled steady state reads the wrong stage's buffer",
             ("gemm_f16", "gemm_bf16")),
    Mutation("reduce-butterfly-skips-steps", REDUCE, "                off *= 2", "                off *= 4",
             "the shuffle butterfly of a reduction skips every other step", ("reduce",)),
]


# ---------------------------------------------------------------------------- probes (child side)

def _probes():
    """name -> fn() returning [(label, interpreter output, numpy reference, emulator output, relative
    tolerance against numpy or None for equality, ulps allowed against the emulator)]."""
    import functools

    import ml_dtypes
    import numpy as np

    import tilewise
    import tilewise.language as T

    rng = np.random.default_rng(0)

    def cuda(func, out_idx, arch="sm_80"):
        return tilewise.compile(func, out_idx=out_idx, target=f"cuda -arch={arch}", execution_backend="emulator")

    def both(k, *args):
        emu = k(*[a.copy() for a in args])
        got = k.with_execution_backend("ptx")(*[a.copy() for a in args])
        return got, emu

    @functools.cache
    def gemm(in_dtype, acc, trans_B, stages, bm=64, bn=64, bk=32, a_dtype=None, M=80, N=72, K=100):
        # static shapes: cp.async needs rows of a known length; none divides its tile, so the last
        # tiles are clamped and zero-filled through cp.async's src-size
        a_dtype = a_dtype or in_dtype
        b_shape, b_tile = ((N, K), (bn, bk)) if trans_B else ((K, N), (bk, bn))

        @T.prim_func
        def g(A: T.Tensor((M, K), a_dtype), B: T.Tensor(b_shape, in_dtype), C: T.Tensor((M, N), acc)):
            with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
                A_s = T.alloc_shared((bm, bk), a_dtype)
                B_s = T.alloc_shared(b_tile, in_dtype)
                C_f = T.alloc_fragment((bm, bn), acc)
                T.clear(C_f)
                for k in T.Pipelined(T.ceildiv(K, bk), num_stages=stages):
                    T.copy(A[by * bm, k * bk], A_s)
                    if trans_B:
                        T.copy(B[bx * bn, k * bk], B_s)
                    else:
                        T.copy(B[k * bk, bx * bn], B_s)
                    T.gemm(A_s, B_s, C_f, transpose_B=trans_B)
                T.copy(C_f, C[by * bm, bx * bn])

        return cuda(g, [2])

    def rand(shape, dtype):
        if dtype in ("int8", "uint8"):
            info = np.iinfo(dtype)
            return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
        np_t = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32}[dtype]
        return rng.standard_normal(shape).astype(np.float32).astype(np_t)

    def gemm_probe(in_dtype, acc, trans_B, stages, a_dtype=None, tf32=False, M=80, N=72, K=100):
        def run():
            k = gemm(in_dtype, acc, trans_B, stages, a_dtype=a_dtype, M=M, N=N, K=K)
            a = rand((M, K), a_dtype or in_dtype)
            b = rand((N, K) if trans_B else (K, N), in_dtype)
            got, emu = both(k, a, b)
            am, bm = a.astype(np.float64), (b.astype(np.float64).T if trans_B else b.astype(np.float64))
            if tf32:
                # the lowering rounds operands with cvt.rna.tf32.f32: nearest, ties away from zero
                def rna(x):
                    return ((x.view(np.uint32) + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)

                am = rna(a).astype(np.float64)
                bt = rna(b).astype(np.float64)
                bm = bt.T if trans_B else bt
            ref = am @ bm
            if acc == "int32":
                ref = ref.astype(np.int64).astype(np.int32)
            return [("C", got, ref, emu, None if acc == "int32" else (0.02 if acc == "float16" else 1e-5), 0)]

        return run

    @functools.cache
    def reduce_kernel():
        @T.prim_func
        def red(A: T.Tensor((64, 64), "float32"), S: T.Tensor((64,), "float32"), X: T.Tensor((64,), "float32")):
            with T.Kernel(1, threads=128) as _:
                f = T.alloc_fragment((64, 64), "float32")
                s = T.alloc_fragment((64,), "float32")
                x = T.alloc_fragment((64,), "float32")
                T.copy(A, f)
                T.reduce_sum(f, s, dim=1)
                T.reduce_max(f, x, dim=1)
                T.copy(s, S)
                T.copy(x, X)

        return cuda(red, [1, 2])

    def reduce_probe():
        a = rng.integers(-8, 8, (64, 64)).astype(np.float32)  # sums exact in any order
        got, emu = both(reduce_kernel(), a)
        return [("S", got[0], a.sum(axis=1), emu[0], None, 0), ("X", got[1], a.max(axis=1), emu[1], None, 0)]

    @functools.cache
    def atomic_kernel():
        @T.prim_func
        def at(V: T.Tensor((256,), "int32"), C8: T.Tensor((8,), "int8"), U8: T.Tensor((8,), "uint8"),
               H: T.Tensor((8,), "float16"), I: T.Tensor((8,), "int32")):
            with T.Kernel(2, threads=128) as bx:
                for i in T.Parallel(128):
                    T.atomic_add(C8[V[bx * 128 + i] % 8], 1)
                    T.atomic_add(U8[V[bx * 128 + i] % 8], 3)
                    T.atomic_add(H[V[bx * 128 + i] % 8], 0.5)
                    T.atomic_add(I[V[bx * 128 + i] % 8], V[bx * 128 + i])

        return cuda(at, [])

    def atomic_probe():
        v = rng.integers(0, 1000, 256).astype(np.int32)
        outs_p = [np.zeros(8, np.int8), np.zeros(8, np.uint8), np.zeros(8, np.float16), np.zeros(8, np.int32)]
        outs_e = [o.copy() for o in outs_p]
        k = atomic_kernel()
        k(v, *outs_e)
        k.with_execution_backend("ptx")(v, *outs_p)
        cnt = np.bincount(v % 8, minlength=8)
        refs = [cnt.astype(np.int8), (3 * cnt).astype(np.uint8), (0.5 * cnt).astype(np.float16),
                np.bincount(v % 8, weights=v, minlength=8).astype(np.int32)]
        return [(n, p, r, e, None, 0) for n, p, r, e in zip(("C8", "U8", "H", "I"), outs_p, refs, outs_e)]

    @functools.cache
    def convert_kernel(arch):
        fp8 = arch != "sm_80"

        @T.prim_func
        def cv(F: T.Tensor((256,), "float32"), Bf: T.Tensor((256,), "bfloat16"), H: T.Tensor((256,), "float16"),
               Bo: T.Tensor((256,), "bfloat16"), W: T.Tensor((256,), "float32"), E: T.Tensor((256,), "float32"),
               F8: T.Tensor((256,), "float8_e4m3")):
            with T.Kernel(2, threads=128) as bx:
                for i in T.Parallel(128):
                    g = bx * 128 + i
                    H[g] = T.cast(F[g] * 3.0, "float16")
                    Bo[g] = T.cast(F[g] * 3.0, "bfloat16")
                    W[g] = T.cast(Bf[g], "float32") * 2.0
                    E[g] = T.exp(F[g])
                    if fp8:
                        F8[g] = T.cast(F[g] * 3.0, "float8_e4m3")

        return cuda(cv, [2, 3, 4, 5, 6], arch)

    def convert_probe(arch="sm_80"):
        def run():
            f = rng.standard_normal(256).astype(np.float32)
            bf = rng.standard_normal(256).astype(ml_dtypes.bfloat16)
            got, emu = both(convert_kernel(arch), f, bf)
            f3 = f * np.float32(3)
            refs = [f3.astype(np.float16), f3.astype(ml_dtypes.bfloat16), bf.astype(np.float32) * 2,
                    np.exp(f.astype(np.float64)).astype(np.float32), f3.astype(ml_dtypes.float8_e4m3fn)]
            names = ["H", "Bo", "W", "E", "F8"]
            tols = [None, None, None, 1e-6, None]  # expf: ex2.approx inside, a few ulp
            ulps = [0, 0, 0, 2, 0]
            out = [(n, g, r, e, t, u) for n, g, r, e, t, u in zip(names, got, refs, emu, tols, ulps)]
            return out if arch != "sm_80" else out[:4]

        return run

    @functools.cache
    def copy_kernel():
        M, N = 64, 96  # static: vector copies

        @T.prim_func
        def cp(A: T.Tensor((M, N), "float32"), B: T.Tensor((M, N), "float32")):
            with T.Kernel(T.ceildiv(N, 32), T.ceildiv(M, 32), threads=64) as (bx, by):
                s = T.alloc_shared((32, 32), "float32")
                T.copy(A[by * 32, bx * 32], s)
                T.copy(s, B[by * 32, bx * 32])

        return cuda(cp, [1])

    def copy_probe():
        a = rng.standard_normal((64, 96)).astype(np.float32)
        got, emu = both(copy_kernel(), a)
        return [("B", got, a, emu, None, 0)]

    def intdiv_kernel():
        @T.prim_func
        def dv(A: T.Tensor((256,), "int32"), Q: T.Tensor((256,), "int32"), R: T.Tensor((256,), "int32")):
            with T.Kernel(2, threads=128) as bx:
                for i in T.Parallel(128):
                    Q[bx * 128 + i] = A[bx * 128 + i] // 8  # floor division of signed values
                    R[bx * 128 + i] = A[bx * 128 + i] % 8

        return cuda(dv, [1, 2])

    def intdiv_probe():
        a = rng.integers(-1000, 1000, size=256).astype(np.int32)
        (q, r), (eq, er) = both(intdiv_kernel(), a)
        return [("Q", q, a // 8, eq, None, 0), ("R", r, a % 8, er, None, 0)]

    return {
        "intdiv": intdiv_probe,
        # K = 200: 7 steps, so 3 stages run one unrolled trip of the steady state and 2 left over
        "gemm_f16": gemm_probe("float16", "float32", False, 3, K=200),
        # whole tiles: cp.async sources unclamped (in the unrolled steady state: thread part + rest)
        "gemm_f16_tiles": gemm_probe("float16", "float32", False, 3, M=128, N=64, K=224),
        "gemm_bf16": gemm_probe("bfloat16", "float32", True, 2),
        "gemm_s8": gemm_probe("int8", "int32", True, 3),
        "gemm_u8s8": gemm_probe("int8", "int32", True, 2, a_dtype="uint8"),
        "gemm_tf32": gemm_probe("float32", "float32", False, 2, tf32=True),
        "gemm_f16acc": gemm_probe("float16", "float16", False, 2),
        "reduce": reduce_probe,
        "atomics": atomic_probe,
        "convert": convert_probe(),
        "convert_sm89": convert_probe("sm_89"),
        "copy": copy_probe,
    }


def _ulps(a, b):
    """Distance in units in the last place between two arrays of one float format."""
    import numpy as np

    n = a.dtype.itemsize
    ints = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}[n]
    top = np.int64(1) << np.int64(8 * n - 1)

    def ordered(x):
        i = np.ascontiguousarray(x).view(ints).astype(np.int64)
        return np.where(i < 0, -(i + top), i)

    return np.abs(ordered(a) - ordered(b))


def _compare(label, got, ref, emu, ref_tol, emu_ulps=0):
    """None if the interpreter's output matches numpy (exactly, or within relative ref_tol) and
    the emulator (within emu_ulps); else a description of the first difference."""
    import numpy as np

    got, ref, emu = np.asarray(got), np.asarray(ref), np.asarray(emu)
    g, r, e = (x.astype(np.float64).reshape(-1) for x in (got, ref, emu))
    if ref_tol is None:
        ok_ref = (g == r) | (np.isnan(g) & np.isnan(r))
    else:
        ok_ref = np.isclose(g, r, rtol=ref_tol, atol=ref_tol * max(1.0, float(np.abs(r).max())))
    floating = got.dtype.kind == "f" or got.dtype.name in ("bfloat16", "float8_e4m3fn")
    if floating:
        ok_emu = (_ulps(got, emu) <= emu_ulps).reshape(-1) | (np.isnan(g) & np.isnan(e))
    else:
        ok_emu = g == e
    for ok, what in ((ok_ref, "numpy"), (ok_emu, "the emulator")):
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            return (f"{label}: differs from {what} at flat index {i} ({int((~ok).sum())} elements): interpreter "
                    f"{g[i]!r}, numpy {r[i]!r}, emulator {e[i]!r}")
    return None


def child(names: list[str]) -> int:
    import numpy as np

    np.seterr(all="ignore")
    probes = _probes()
    for name in names:
        t0 = time.time()
        rec = {"probe": name}
        try:
            outs = probes[name]()
            problems = [p for p in (_compare(*o) for o in outs) if p]
            rec["status"] = "values" if problems else "ok"
            if problems:
                rec["detail"] = problems[0]
        except Exception as e:  # noqa: BLE001 - classify every failure of a probe
            from tilewise.backend.cuda.nvrtc import NvrtcError
            from tilewise.emulator.errors import EmulatorError
            from tilewise.ptx.errors import PtxSyntaxError, PtxUnsupportedError

            if isinstance(e, NvrtcError):
                kind = "compile"
            elif isinstance(e, (PtxUnsupportedError, PtxSyntaxError)):
                kind = "unsupported"  # the interpreter cannot tell: not counted as caught
            elif isinstance(e, EmulatorError):
                kind = "fault"
            else:
                kind = "error"
            rec["status"] = kind
            rec["detail"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
        rec["seconds"] = round(time.time() - t0, 2)
        print("PROBE " + json.dumps(rec), flush=True)
    return 0


# ---------------------------------------------------------------------------- driver (parent side)

def _run_probes(scratch: str, names: list[str], timeout: float) -> list[dict]:
    env = dict(os.environ)
    env["PYTHONPATH"] = scratch
    env["TILEWISE_CACHE_DIR"] = tempfile.mkdtemp(prefix="ptxmut-cache-")
    env["TILEWISE_EMULATOR_CROSSCHECK"] = ""  # the probes compare the two executors themselves
    try:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", ",".join(names)], env=env,
                              capture_output=True, text=True, timeout=timeout, cwd=scratch)
    except subprocess.TimeoutExpired:
        return [{"probe": ",".join(names), "status": "timeout", "detail": f"no answer within {timeout:.0f} s"}]
    finally:
        shutil.rmtree(env["TILEWISE_CACHE_DIR"], ignore_errors=True)
    recs = [json.loads(line[6:]) for line in proc.stdout.splitlines() if line.startswith("PROBE ")]
    if len(recs) != len(names):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        recs.append({"probe": "?", "status": "error", "detail": " | ".join(tail)})
    return recs


def make_scratch() -> str:
    scratch = tempfile.mkdtemp(prefix="ptxmut-")
    shutil.copytree(os.path.join(ROOT, "tilewise"), os.path.join(scratch, "tilewise"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    return scratch


def apply(scratch: str, m: Mutation) -> str:
    """Edit the scratch copy; returns the original text (to restore)."""
    path = os.path.join(scratch, m.path)
    with open(path) as f:
        text = f.read()
    n = text.count(m.old)
    if n != 1:
        raise SystemExit(f"mutation {m.name}: the line to mutate occurs {n} times in {m.path}")
    with open(path, "w") as f:
        f.write(text.replace(m.old, m.new))
    return text


def run_mutations(mutations: list[Mutation], quick: bool, timeout: float = 600, log=print) -> dict:
    """Baseline, then every mutation; returns {"baseline": [...], "results": {name: (verdict, detail)}}."""
    scratch = make_scratch()
    try:
        all_probes = sorted({p for m in mutations for p in m.probes}) if quick else list(_PROBE_NAMES)
        base = _run_probes(scratch, all_probes, timeout)
        bad = [r for r in base if r["status"] != "ok"]
        if bad:
            raise SystemExit(f"the unmutated package fails probes: {bad}")
        log(f"baseline: {len(base)} probes clean")
        results = {}
        for m in mutations:
            original = apply(scratch, m)
            try:
                names = list(m.probes) if quick else list(_PROBE_NAMES)
                t0 = time.time()
                recs = _run_probes(scratch, names, timeout)
            finally:
                with open(os.path.join(scratch, m.path), "w") as f:
                    f.write(original)
            caught = [r for r in recs if r["status"] not in ("ok", "unsupported")]
            verdict = "survived" if not caught else caught[0]["status"]
            detail = caught[0].get("detail", "") if caught else ""
            results[m.name] = (verdict, detail, [r["probe"] for r in caught])
            log(f"{m.name:28s} {verdict:9s} {time.time() - t0:6.1f}s  {detail[:150]}")
        return {"baseline": base, "results": results}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


_PROBE_NAMES = ("gemm_f16", "gemm_f16_tiles", "gemm_bf16", "gemm_s8", "gemm_u8s8", "gemm_tf32", "gemm_f16acc", "reduce", "atomics",
                "convert", "convert_sm89", "copy", "intdiv")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="run each mutation against its own probes only")
    ap.add_argument("--only", help="comma-separated mutation names")
    ap.add_argument("--list", action="store_true", help="list the mutations")
    args = ap.parse_args(argv)
    if args.child:
        return child(args.child.split(","))
    muts = MUTATIONS
    if args.list:
        for m in muts:
            print(f"{m.name:28s} {m.path.split('/')[-1]:12s} {m.why}")
        return 0
    if args.only:
        want = set(args.only.split(","))
        muts = [m for m in muts if m.name in want]
        if len(muts) != len(want):
            raise SystemExit(f"unknown mutations: {want - {m.name for m in muts}}")
    t0 = time.time()
    out = run_mutations(muts, args.quick)
    res = out["results"]
    killed = [n for n, (v, _, _) in res.items() if v != "survived"]
    by_values = [n for n, (v, _, _) in res.items() if v in ("values", "fault")]
    print(f"\nkilled {len(killed)} of {len(res)} mutations ({100 * len(killed) / max(1, len(res)):.0f}%); "
          f"by computed values or interpreter faults: {len(by_values)}; {time.time() - t0:.0f} s")
    for n, (v, _, _) in res.items():
        if v == "survived":
            m = next(x for x in muts if x.name == n)
            print(f"  survived: {n}: {m.why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
