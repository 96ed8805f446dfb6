"""TileLang 0.1.15's PTX-level intrinsic calls (language/ptx_intrinsics.py, ptx_barriers.py): a
GEMM written with T.ptx_cp_async / T.ptx_ldmatrix / T.ptx_mma / T.mma_store, cp.async groups
with a predicate, the mbarrier-by-id intrinsics on sm_90a, run by the emulator (with its race
checks) against numpy, and the forms tilewise refuses."""
import numpy as np
import pytest
from conftest import emu, nvrtc_check

import tilewise
import tilewise.language as T
from tilewise.emulator.errors import AsyncCopyError, RaceError

BM = BN = BK = 32


def ptx_gemm(M, N, K, legacy_ldmatrix=False):
    """C = A @ B.T (A M x K, B N x K, float16 -> float32): 4 warps per 32 x 32 block tile, each
    warp one 16 x 16 tile (two m16n8k16 per 16-wide k step); the tiles reach shared memory by
    cp.async, one 16-byte chunk per thread and operand."""

    @T.prim_func
    def gemm(A: T.Tensor((M, K), "float16"), B: T.Tensor((N, K), "float16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(N // BN, M // BM, threads=128) as (bx, by):
            As = T.alloc_shared((BM, BK), "float16")
            Bs = T.alloc_shared((BN, BK), "float16")
            a = T.alloc_local((8,), "float16")
            b = T.alloc_local((8,), "float16")
            c = T.alloc_local((8,), "float32")
            tx = T.get_thread_binding()
            lane = tx % 32
            wm = (tx // 32) % 2
            wn = tx // 64
            T.mma_fill("float32", 8, c.data, 0)
            for ko in T.serial(K // BK):
                T.ptx_cp_async(T.access_ptr(As[tx // 4, (tx % 4) * 8], "w", 8),
                               T.access_ptr(A[by * BM + tx // 4, ko * BK + (tx % 4) * 8], "r", 8), 8)
                T.ptx_cp_async(T.access_ptr(Bs[tx // 4, (tx % 4) * 8], "w", 8),
                               T.access_ptr(B[bx * BN + tx // 4, ko * BK + (tx % 4) * 8], "r", 8), 8)
                T.ptx_commit_group()
                T.ptx_wait_group(0)
                for ki in T.serial(BK // 16):
                    if legacy_ldmatrix:
                        T.ptx_ldmatrix("float16", False, 4, ".b16", a.data, 0,
                                       T.access_ptr(As[wm * 16 + lane % 16, ki * 16 + (lane // 16) * 8], "r"), 0)
                        T.ptx_ldmatrix("float16", False, 4, ".b16", b.data, 0,
                                       T.access_ptr(Bs[wn * 16 + (lane // 16) * 8 + lane % 8,
                                                       ki * 16 + ((lane // 8) % 2) * 8], "r"), 0)
                    else:
                        T.ptx_ldmatrix(False, 4, T.access_ptr(As[wm * 16 + lane % 16, ki * 16 + (lane // 16) * 8], "r"),
                                       T.access_ptr(a[0], "w"))
                        T.ptx_ldmatrix(False, 4, T.access_ptr(Bs[wn * 16 + (lane // 16) * 8 + lane % 8,
                                                                 ki * 16 + ((lane // 8) % 2) * 8], "r"),
                                       T.access_ptr(b[0], "w"))
                    T.ptx_mma("float32", "m16n8k16", "row", "col", "fp16", "fp16", "fp32", a.data, 0, b.data, 0, c.data,
                              0, False)
                    T.ptx_mma("float32", "m16n8k16", "row", "col", "fp16", "fp16", "fp32", a.data, 0, b.data, 4, c.data,
                              4, False)
            T.mma_store("float32", 16, 16, T.access_ptr(C[by * BM + wm * 16, bx * BN + wn * 16], "w"), c.data, 0, N)

    return gemm


def _operands(rng, M, N, K):
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((N, K)).astype(np.float16)
    return a, b, a.astype(np.float64) @ b.astype(np.float64).T


@pytest.mark.parametrize("legacy", [False, True])
def test_ptx_gemm_matches_numpy(rng, legacy):
    M, N, K = 64, 64, 64
    a, b, ref = _operands(rng, M, N, K)
    C = emu(ptx_gemm(M, N, K, legacy), out_idx=[2])(a, b)
    np.testing.assert_allclose(C, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())


def test_ptx_gemm_barriers_placed_around_cp_async():
    """The program writes no __syncthreads: the compiler places one between the cp.async data
    landing (wait_group) and the ldmatrix reads of other warps, and one before the next
    iteration's cp.async overwrites what they read (the emulator reports a race otherwise)."""
    src = tilewise.compile(ptx_gemm(64, 64, 64), target="cuda", execution_backend="emulator").get_kernel_source()
    body = src[src.index("cp_async_wait"):]
    assert "__syncthreads()" in body[:body.index("ldmatrix")]


def test_ptx_gemm_on_the_cpu_target(rng):
    a, b, ref = _operands(rng, 32, 32, 32)
    with pytest.warns(UserWarning, match="thread-exactly"):
        k = tilewise.compile(ptx_gemm(32, 32, 32), out_idx=[2], target="cpu")
    np.testing.assert_allclose(k(a, b), ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())


def test_ptx_gemm_compiles_to_hmma_ldsm_and_ldgsts():
    nvrtc_check(ptx_gemm(64, 64, 64), expect=("HMMA", "LDSM", "LDGSTS"))


def test_cp_async_predicate_zero_fills_and_wait_group_counts():
    """Two cp.async groups in flight; wait_group(1) lands the first only (the second group's bytes
    are read after wait_group(0)); a false predicate zero-fills the destination."""
    n = 200

    @T.prim_func
    def k(A: T.Tensor((n,), "float16"), B: T.Tensor((512,), "float16")):
        with T.Kernel(1, threads=32):
            S = T.alloc_shared((512,), "float16")
            tx = T.get_thread_binding()
            T.ptx_cp_async(T.access_ptr(S[tx * 8], "w", 8), T.access_ptr(A[T.min(tx * 8, n - 8)], "r", 8), 8,
                           predicate=tx * 8 < n)
            T.ptx_commit_group()
            T.ptx_cp_async(T.access_ptr(S[256 + tx * 8], "w", 8), T.access_ptr(A[0], "r", 8), 8)
            T.ptx_commit_group()
            T.ptx_wait_group(1)
            for i in T.serial(8):
                B[tx * 8 + i] = S[255 - tx * 8 - i]
            T.ptx_wait_group(0)
            for i in T.serial(8):
                B[256 + tx * 8 + i] = S[256 + tx * 8 + i]

    A = np.arange(n).astype(np.float16)
    out = np.zeros(512, np.float16)
    emu(k)(A, out)
    first = np.concatenate([A, np.zeros(56, np.float16)])
    np.testing.assert_array_equal(out[:256], first[::-1])
    np.testing.assert_array_equal(out[256:], np.tile(A[:8], 32))


def test_reading_a_cp_async_destination_before_its_wait_is_reported():
    @T.prim_func
    def k(A: T.Tensor((256,), "float16"), B: T.Tensor((256,), "float16")):
        with T.Kernel(1, threads=32):
            S = T.alloc_shared((256,), "float16")
            tx = T.get_thread_binding()
            T.ptx_cp_async(T.access_ptr(S[tx * 8], "w", 8), T.access_ptr(A[tx * 8], "r", 8), 8)
            T.ptx_commit_group()
            B[tx] = S[tx * 8]
            T.ptx_wait_group(0)

    with pytest.raises(AsyncCopyError, match="still in flight"):
        emu(k)(np.ones(256, np.float16), np.zeros(256, np.float16))


# ------------------------------------------------------------------------- mbarriers by id


def barrier_kernel(n=128, arrive_before_write=False):
    @T.prim_func
    def k(A: T.Tensor((n,), "float32"), B: T.Tensor((n,), "float32")):
        with T.Kernel(1, threads=128):
            S = T.alloc_shared((n,), "float32")
            T.create_barriers(2)
            tx = T.get_thread_binding()
            if tx == 0:
                T.ptx_init_barrier_thread_count(0, 64)
                T.ptx_init_barrier_thread_count(1, 64)
            T.ptx_fence_barrier_init()
            T.tvm_storage_sync("shared")
            if tx < 64:
                if arrive_before_write:
                    T.ptx_arrive_barrier(0)
                S[tx] = A[tx] * 2
                S[tx + 64] = A[tx + 64] * 2
                if not arrive_before_write:
                    T.ptx_arrive_barrier(0)
            else:
                T.ptx_wait_barrier(0)
                B[tx] = S[n - 1 - tx]
                B[tx - 64] = S[n - 1 - (tx - 64)]
                T.ptx_arrive_barrier_expect_tx(1, 0)
            if tx < 64:
                T.ptx_wait_barrier(1)

    return k


def test_mbarrier_by_id_orders_producer_and_consumer_on_sm90a():
    A = np.arange(128).astype(np.float32)
    B = np.zeros(128, np.float32)
    tilewise.compile(barrier_kernel(), target="cuda -arch=sm_90a", execution_backend="emulator")(A, B)
    np.testing.assert_array_equal(B, 2 * A[::-1])


def test_arriving_before_the_writes_is_a_race():
    k = tilewise.compile(barrier_kernel(arrive_before_write=True), target="cuda -arch=sm_90a",
                         execution_backend="emulator")
    with pytest.raises(RaceError, match="S"):
        k(np.ones(128, np.float32), np.zeros(128, np.float32))


def test_the_mbarrier_tx_count_needs_sm90():
    with pytest.raises(tilewise.CompileError, match="tx-count .* sm_90"):
        tilewise.compile(barrier_kernel(), target="cuda -arch=sm_80", execution_backend="emulator")


# ------------------------------------------------------------------------- refused forms


def _compile_body(body, target="cuda"):
    @T.prim_func
    def k(A: T.Tensor((64,), "float16")):
        with T.Kernel(1, threads=32):
            body(A)

    return tilewise.compile(k, target=target, execution_backend="emulator")


@pytest.mark.parametrize("call,match", [
    (lambda A, r: T.ptx_mma("float64", "m8n8k4", "row", "col", "fp64", "fp64", "fp64", r.data, 0, r.data, 0, r.data, 0,
                            False), "float64"),
    (lambda A, r: T.ptx_mma("float32", "m8n8k4", "row", "col", "fp16", "fp16", "fp32", r.data, 0, r.data, 0, r.data, 0,
                            False), "Volta"),
    (lambda A, r: T.ptx_mma("float32", "m16n8k16", "col", "col", "fp16", "fp16", "fp32", r.data, 0, r.data, 0, r.data,
                            0, False), "layouts"),
    (lambda A, r: T.ptx_mma("float32", "m16n8k16", "row", "col", "fp16", "fp16", "fp32", r.data, 0, r.data, 0, r.data,
                            0, True), "saturate"),
    (lambda A, r: T.ptx_mma("float16", "m16n8k16", "row", "col", "fp16", "fp16", "fp32", r.data, 0, r.data, 0, r.data,
                            0, False), "result type"),
    (lambda A, r: T.ptx_ldmatrix(False, 3, T.access_ptr(A[0], "r"), T.access_ptr(r[0], "w")), "num"),
    (lambda A, r: T.ptx_ldmatrix(False, 4, T.access_ptr(A[0], "r"), T.access_ptr(r[0], "w")), "shared memory"),
    (lambda A, r: T.ptx_cp_async(T.access_ptr(r[0], "w"), T.access_ptr(A[0], "r"), 4), "shared memory"),
    (lambda A, r: T.ptx_mma_sm70(), "Volta"),
    (lambda A, r: T.ptx_cp_async_bulk("float16", r.data, 0, A.data, 0, 16, 0), "bulk"),
    (lambda A, r: T.warpgroup_fence_operand(r), "T.ptx_wgmma_ss"),
    (lambda A, r: T.alloc_descriptor("tcgen05_instr"), "Blackwell"),
    (lambda A, r: T.tvm_mma_sync(), "wmma"),
    (lambda A, r: T.tvm_warp_activemask(), "active lanes"),
    (lambda A, r: T.tvm_storage_sync("global"), "T.sync_grid"),
])  # fmt: skip
def test_refused_forms_are_compile_errors(call, match):
    def body(A):
        r = T.alloc_local((8,), "float16")
        call(A, r)

    with pytest.raises(tilewise.CompileError, match=match):
        _compile_body(body)


def test_cp_async_sizes_must_be_4_8_or_16_bytes():
    def body(A):
        S = T.alloc_shared((64,), "float16")
        T.ptx_cp_async(T.access_ptr(S[0], "w"), T.access_ptr(A[0], "r"), 3)

    with pytest.raises(tilewise.CompileError, match="4, 8 or 16 bytes"):
        _compile_body(body)


def test_init_of_an_alloc_barrier_barrier_is_refused():
    def body(A):
        bar = T.alloc_barrier(32)
        T.ptx_init_barrier_thread_count(bar, 32)

    with pytest.raises(tilewise.CompileError, match="T.create_barriers"):
        _compile_body(body, target="cuda -arch=sm_90a")
