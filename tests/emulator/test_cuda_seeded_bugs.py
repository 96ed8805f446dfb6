"""Seeded bugs: kernels made wrong on purpose (a missing barrier, a missing cp.async wait, an
out-of-bounds index) must be caught by the emulator with a report naming the buffer, the threads
and the user's source lines; the same kernels compiled normally run clean."""
from __future__ import annotations

import functools
import re

import numpy as np
import pytest

import tilewise.language as T
import tilewise.transform.pipeline as pipeline_module
from tilewise.emulator import AsyncCopyError, OutOfBoundsError, RaceError
from tilewise.ir.stmt import Evaluate, SeqStmt, seq
from tilewise.ir.visitor import Mutator


@functools.cache
def transpose_kernel():
    @T.prim_func
    def transpose(A: T.Tensor((32, 32), "float32"), B: T.Tensor((32, 32), "float32")):
        with T.Kernel(1, threads=128) as _:
            s = T.alloc_shared((32, 32), "float32")
            for i, j in T.Parallel(32, 32):
                s[i, j] = A[i, j] * 2  # the write
            for i, j in T.Parallel(32, 32):
                B[i, j] = s[j, i]  # the read: another thread's element

    return transpose


def test_missing_barrier_is_a_race_naming_buffer_threads_and_lines(emu, rng):
    a = rng.standard_normal((32, 32)).astype(np.float32)
    b = emu(transpose_kernel(), out_idx=[1])(a)  # barriers inserted: clean
    np.testing.assert_array_equal(b, 2 * a.T)
    broken = emu(transpose_kernel(), out_idx=[1], pass_configs={"tl.disable_thread_storage_sync": True})
    with pytest.raises(RaceError) as info:
        broken(a)
    msg = str(info.value)
    assert "race on s[" in msg, msg
    assert len(re.findall(r"thread \(\d+, 0, 0\) of block \(0, 0, 0\)", msg)) == 2, msg
    assert "s[i, j] = A[i, j] * 2  # the write" in msg, msg
    assert "B[i, j] = s[j, i]  # the read" in msg, msg


@functools.cache
def pipelined_kernel():
    @T.prim_func
    def piped(A: T.Tensor((128, 16), "float16"), B: T.Tensor((16, 16), "float16"), C: T.Tensor((16, 16), "float32")):
        with T.Kernel(1, threads=32) as _:
            a = T.alloc_shared((16, 16), "float16")
            b = T.alloc_shared((16, 16), "float16")
            c = T.alloc_fragment((16, 16), "float32")
            T.clear(c)
            T.copy(B, b)
            for k in T.Pipelined(8, num_stages=3):
                T.copy(A[k * 16, 0], a)  # stage 0: cp.async
                T.gemm(a, b, c)  # reads a
            T.copy(c, C)

    return piped


class _DropWaits(Mutator):
    def visit_SeqStmt(self, s: SeqStmt):
        s = self.generic_visit(s)
        kept = [x for x in s.stmts if not (isinstance(x, Evaluate) and getattr(x.value, "name", "") == "cp_async_wait")]
        return seq(kept)


def test_missing_cp_async_wait_is_reported(emu, rng, monkeypatch):
    a = rng.standard_normal((128, 16)).astype(np.float16)
    b = rng.standard_normal((16, 16)).astype(np.float16)
    c = emu(pipelined_kernel(), out_idx=[2])(a, b)
    ref = sum(a[k * 16:(k + 1) * 16].astype(np.float32) @ b.astype(np.float32) for k in range(8))
    np.testing.assert_allclose(c, ref, rtol=1e-3, atol=1e-2)

    original = pipeline_module.inject_pipeline

    def without_waits(func, *args):
        out = original(func, *args)
        return out.with_body(_DropWaits().visit(out.body))

    monkeypatch.setattr(pipeline_module, "inject_pipeline", without_waits)  # the name the pass list calls
    broken = emu(pipelined_kernel(), out_idx=[2])
    source = broken.get_kernel_source()
    assert "cp_async_wait" not in source and "cp_async<16>(" in source, source
    with pytest.raises(AsyncCopyError) as info:
        broken(a, b)
    msg = str(info.value)
    assert "reads a[" in msg and "in flight" in msg, msg
    assert "T.gemm(a, b, c)  # reads a" in msg and "T.copy(A[k * 16, 0], a)  # stage 0: cp.async" in msg, msg


@functools.cache
def shifted_kernel(shift):
    @T.prim_func
    def shifted(A: T.Tensor((16, 16), "float32"), B: T.Tensor((16, 16), "float32")):
        with T.Kernel(1, threads=64) as _:
            s = T.alloc_shared((16, 16), "float32")
            T.copy(A, s)
            for i, j in T.Parallel(16, 16):
                B[i, j] = s[i, j + shift]  # off the end of the row when shift > 0

    return shifted


def test_out_of_bounds_shared_index_in_a_parallel_loop(emu, rng):
    a = rng.standard_normal((16, 16)).astype(np.float32)
    np.testing.assert_array_equal(emu(shifted_kernel(0), out_idx=[1])(a), a)
    with pytest.raises(OutOfBoundsError) as info:
        emu(shifted_kernel(256), out_idx=[1])(a)
    msg = str(info.value)
    assert "s" in msg and "B[i, j] = s[i, j + shift]" in msg, msg
