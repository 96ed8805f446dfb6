"""Shared-memory planning on the CUDA target: tiles with disjoint lifetimes share bytes (with a
barrier where one takes over another's bytes), reduction workspaces share one scratch area, and
the results stay right in the race-checking emulator."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import tilewise
import tilewise.language as T

ROOT = Path(__file__).resolve().parents[2]


def _source(func, arch="sm_80") -> str:
    return tilewise.compile(func, target=f"cuda -arch={arch}", execution_backend="emulator").get_kernel_source()


def staged(M=64, N=64, overlap=False):
    """X goes through A_s before the loop; Y through B_s after it (or while A_s is still in use)."""

    @T.prim_func
    def staged_copy(X: T.Tensor((M, N), "float32"), Y: T.Tensor((M, N), "float32"),
                    O1: T.Tensor((M, N), "float32"), O2: T.Tensor((M, N), "float32")):
        with T.Kernel(1, threads=128):
            A_s = T.alloc_shared((M, N), "float32")
            B_s = T.alloc_shared((M, N), "float32")
            acc = T.alloc_fragment((M, N), "float32")
            T.copy(X, A_s)
            T.copy(A_s, acc)
            for i, j in T.Parallel(M, N):
                acc[i, j] = acc[i, j] * 2.0
            if overlap:
                T.copy(Y, B_s)
                T.copy(A_s, O1)
            else:
                T.copy(A_s, O1)
                T.copy(Y, B_s)
            T.copy(B_s, acc)
            T.copy(acc, O2)

    return staged_copy


def test_tiles_with_disjoint_lifetimes_share_bytes_behind_a_barrier(emu):
    k = emu(staged())
    assert k.resource_usage()["shared_bytes"] == 64 * 64 * 4
    x = np.random.rand(64, 64).astype(np.float32)
    y = np.random.rand(64, 64).astype(np.float32)
    o1, o2 = np.zeros_like(x), np.zeros_like(x)
    k(x, y, o1, o2)  # the emulator's race check would report a missing barrier here
    np.testing.assert_array_equal(o1, x)
    np.testing.assert_array_equal(o2, y)
    src = k.get_kernel_source()
    assert "B_s = (float*)smem;" in src and "A_s = (float*)smem;" in src


def test_tiles_alive_together_do_not_share(emu):
    k = emu(staged(overlap=True))
    assert k.resource_usage()["shared_bytes"] == 2 * 64 * 64 * 4
    x = np.random.rand(64, 64).astype(np.float32)
    y = np.random.rand(64, 64).astype(np.float32)
    o1, o2 = np.zeros_like(x), np.zeros_like(x)
    k(x, y, o1, o2)
    np.testing.assert_array_equal(o1, x)
    np.testing.assert_array_equal(o2, y)


def test_a_tile_used_in_a_loop_lives_for_the_whole_loop(emu):
    M = N = 32

    @T.prim_func
    def loop_tiles(X: T.Tensor((4, M, N), "float32"), O: T.Tensor((4, M, N), "float32")):
        with T.Kernel(1, threads=64):
            A_s = T.alloc_shared((M, N), "float32")
            B_s = T.alloc_shared((M, N), "float32")
            for s in T.serial(4):
                T.copy(X[s, :, :], A_s)
                T.copy(A_s, B_s)
                T.copy(B_s, O[s, :, :])

    k = emu(loop_tiles)
    assert k.resource_usage()["shared_bytes"] == 2 * M * N * 4
    x = np.random.rand(4, M, N).astype(np.float32)
    o = np.zeros_like(x)
    k(x, o)
    np.testing.assert_array_equal(o, x)


def test_reductions_share_one_compact_workspace(emu, nvrtc_check):
    M, N = 64, 64

    @T.prim_func
    def two_reduces(X: T.Tensor((M, N), "float32"), Mx: T.Tensor((M,), "float32"), S: T.Tensor((M,), "float32")):
        with T.Kernel(1, threads=256):
            A_s = T.alloc_shared((M, N), "float16")
            B_s = T.alloc_shared((N, N), "float16")
            acc = T.alloc_fragment((M, N), "float32")
            mx = T.alloc_fragment((M,), "float32")
            sm = T.alloc_fragment((M,), "float32")
            T.copy(X, A_s)
            for i, j in T.Parallel(N, N):
                B_s[i, j] = T.if_then_else(i == j, 1.0, 0.0)
            # the identity gemm gives acc the mma layout, which spreads a row over warps
            T.gemm(A_s, B_s, acc, clear_accum=True, policy=T.GemmWarpPolicy.FullCol)
            T.reduce_max(acc, mx, dim=1)
            T.reduce_sum(acc, sm, dim=1)
            T.copy(mx, Mx)
            T.copy(sm, S)

    k = emu(two_reduces)
    x = np.random.rand(M, N).astype(np.float16).astype(np.float32)
    mx, s = np.zeros(M, np.float32), np.zeros(M, np.float32)
    k(x, mx, s)
    np.testing.assert_allclose(mx, x.max(1), rtol=1e-6)
    np.testing.assert_allclose(s, x.sum(1), rtol=1e-5)
    # both workspaces (one lane of each group of shuffled lanes writes) take the bytes of the
    # operand tiles, dead once the gemm is done
    assert k.resource_usage()["shared_bytes"] == (M * N + N * N) * 2
    src = k.get_kernel_source()
    assert "float* mx_red_ws = (float*)smem;" in src and "float* sm_red_ws = (float*)smem;" in src
    nvrtc_check(two_reduces, archs=("sm_80",))


def _mla():
    spec = importlib.util.spec_from_file_location("mla", ROOT / "examples/deepseek_mla/example_mla_decode.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


@pytest.mark.parametrize("arch,stages", [("sm_90a", 2), ("sm_80", 1)])
def test_mla_decode_fits_at_its_default_tiles(arch, stages):
    """DeepSeek's dims (512 + 64, 64 heads x 64 keys per block) only fit because the output tile
    reuses the bytes of the loop's operand tiles."""
    from tilewise.ir.machine import cuda_machine

    func = _mla().mla_decode(1, 64, 256, 512, 64, num_stages=stages)
    k = tilewise.compile(func, target=f"cuda -arch={arch}", execution_backend="emulator")
    assert k.resource_usage()["shared_bytes"] <= cuda_machine(arch).max_shared_bytes + 1024


def test_a_kernel_that_cannot_fit_names_its_tiles():
    @T.prim_func
    def too_big(X: T.Tensor((256, 256), "float32"), O: T.Tensor((256, 256), "float32")):
        with T.Kernel(1, threads=128):
            A_s = T.alloc_shared((256, 256), "float32")
            B_s = T.alloc_shared((256, 256), "float32")
            T.copy(X, A_s)
            T.copy(X, B_s)
            for i, j in T.Parallel(256, 256):
                O[i, j] = A_s[i, j] + B_s[i, j]

    with pytest.raises(tilewise.CompileError, match=r"A_s \(262144 B\), B_s \(262144 B\)"):
        _source(too_big)
