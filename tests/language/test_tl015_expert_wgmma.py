"""TileLang 0.1.15's hand-driven wgmma (language/wgmma_intrinsics.py) on sm_90a: descriptors in a
register (T.alloc_wgmma_desc, T.initialize_wgmma_descriptor, T.increase_descriptor_offset) and
T.ptx_wgmma_ss / T.ptx_wgmma_rs, run by the emulator against numpy, with its wgmma checks."""
import numpy as np
import pytest
from conftest import nvrtc_check

import tilewise
import tilewise.language as T
from tilewise.emulator.errors import AsyncAccessError

M, N, K = 64, 8, 32
LBO, SBO = 128, 512  # K-major, no swizzle: core matrices of 8 rows x 16 bytes, 4 along K, then the next 8 rows


def core(r, k):
    """Element offset of (row, k) in the core-matrix arrangement the descriptors describe."""
    return (r // 8) * (SBO // 2) + (k // 8) * (LBO // 2) + (r % 8) * 8 + k % 8


def wgmma_kernel(a_in_registers=False, skip_wait=False):
    """C (64 x 8) = A (64 x 32) @ B (8 x 32).T in two k16 steps: A's second step by the
    instruction's descriptor offset (16-byte units), B's by T.increase_descriptor_offset."""

    @T.prim_func
    def g(A: T.Tensor((M, K), "float16"), B: T.Tensor((N, K), "float16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(1, threads=128):
            As = T.alloc_shared((M * K,), "float16")
            Ar = T.alloc_shared((M, K), "float16")
            Bs = T.alloc_shared((N * K,), "float16")
            a = T.alloc_local((8,), "float16")
            c = T.alloc_local((4,), "float32")
            da = T.alloc_wgmma_desc()
            db = T.alloc_descriptor("wgmma")
            tx = T.get_thread_binding()
            lane = tx % 32
            for i in T.serial(16):
                As[core((tx * 16 + i) // K, (tx * 16 + i) % K)] = A[(tx * 16 + i) // K, (tx * 16 + i) % K]
                Ar[(tx * 16 + i) // K, (tx * 16 + i) % K] = A[(tx * 16 + i) // K, (tx * 16 + i) % K]
            if tx < N * K // 8:
                for i in T.serial(8):
                    Bs[core((tx * 8 + i) // K, (tx * 8 + i) % K)] = B[(tx * 8 + i) // K, (tx * 8 + i) % K]
            T.fence_proxy_async()
            T.initialize_wgmma_descriptor(da, T.access_ptr(As[0], "r"), 0, LBO >> 4, SBO >> 4)
            T.initialize_wgmma_descriptor(db, T.access_ptr(Bs[0], "r"), 0, LBO >> 4, SBO >> 4)
            for ks in T.unroll(2):
                if a_in_registers:
                    T.ptx_ldmatrix(False, 4, T.access_ptr(Ar[(tx // 32) * 16 + lane % 16, ks * 16 + (lane // 16) * 8],
                                                          "r"), T.access_ptr(a[0], "w"))
                T.warpgroup_arrive()
                if a_in_registers:
                    T.ptx_wgmma_rs("float32", "m64n8k16", True, "fp16", "fp16", "fp32", a.data, 0, db.data, 0, c.data, 0,
                                   T.Select(ks == 0, 0, 1), 1, 1)
                else:
                    T.ptx_wgmma_ss("float32", "m64n8k16", True, True, "fp16", "fp16", "fp32", da.data, ks * (256 >> 4),
                                   db.data, 0, c.data, 0, T.Select(ks == 0, 0, 1), 1, 1)
                T.warpgroup_commit_batch()
                if not skip_wait:
                    T.warpgroup_wait(0)
                T.increase_descriptor_offset(db, 256)
            T.mma_store("float32", 16, 8, T.access_ptr(C[(tx // 32) * 16, 0], "w"), c.data, 0, N)

    return g


def _run(f, rng):
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((N, K)).astype(np.float16)
    c = np.zeros((M, N), np.float32)
    tilewise.compile(f, target="cuda -arch=sm_90a", execution_backend="emulator")(a, b, c)
    return c, a.astype(np.float64) @ b.astype(np.float64).T


@pytest.mark.parametrize("regs", [False, True])
def test_hand_driven_wgmma_matches_numpy(rng, regs):
    c, ref = _run(wgmma_kernel(a_in_registers=regs), rng)
    np.testing.assert_allclose(c, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())


def test_reading_the_accumulators_before_the_wait_is_reported(rng):
    with pytest.raises(AsyncAccessError, match="belongs to the wgmma"):
        _run(wgmma_kernel(skip_wait=True), rng)


def test_hand_driven_wgmma_compiles_to_hgmma():
    nvrtc_check(wgmma_kernel(), expect={"sm_90a": ("HGMMA",)}, archs=("sm_90a",))


@pytest.mark.filterwarnings("ignore:.*programs its threads")
@pytest.mark.parametrize("target", ["cuda -arch=sm_80", "cpu"])
def test_wgmma_needs_sm90a(target):
    with pytest.raises(tilewise.CompileError, match="wgmma needs sm_90a"):
        tilewise.compile(wgmma_kernel(), target=target)


def test_wgmma_forms_tilewise_refuses():
    with pytest.raises(tilewise.CompileError, match="Blackwell"):
        @T.prim_func
        def k1(A: T.Tensor((4,), "float32")):
            with T.Kernel(1, threads=128):
                T.alloc_descriptor("tcgen05_smem")

    with pytest.raises(tilewise.CompileError, match="negated"):
        @T.prim_func
        def k2(A: T.Tensor((4,), "float32")):
            with T.Kernel(1, threads=128):
                d = T.alloc_wgmma_desc()
                c = T.alloc_local((4,), "float32")
                T.ptx_wgmma_ss("float32", "m64n8k16", True, True, "fp16", "fp16", "fp32", d.data, 0, d.data, 0, c.data,
                               0, 1, -1, 1)

    with pytest.raises(tilewise.CompileError, match="T.alloc_wgmma_desc"):
        @T.prim_func
        def k3(A: T.Tensor((4,), "float32")):
            with T.Kernel(1, threads=128):
                S = T.alloc_shared((64,), "float16")
                T.initialize_wgmma_descriptor(T.alloc_local((1,), "uint64"), T.access_ptr(S[0], "r"))
