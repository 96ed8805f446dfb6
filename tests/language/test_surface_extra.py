"""T.transpose, T.Persistent, T.comm_reducer with T.tvm_thread_allreduce and
T.make_tensor_from_addr on the CPU, in the CUDA emulator (cross-checked by the PTX interpreter)
and through NVRTC for sm_80, against numpy; 40 x 72 tensors in 16 x 32 tiles."""
from __future__ import annotations

import functools
import warnings

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


# ---------------------------------------------------------------------------- T.transpose


@functools.cache
def transpose_kernel():
    @T.prim_func
    def transposed(A: T.Tensor((M, N), "float32"), B: T.Tensor((N, M), "float32"),
                   C: T.Tensor((2, 8, 4), "float16"), D: T.Tensor((2, 4, 8), "float32")):
        with T.Kernel(*GRID, threads=128) as (bx, by):
            s = T.alloc_shared((BM, BN), "float32")
            st = T.alloc_shared((BN, BM), "float32")
            T.copy(A[by * BM, bx * BN], s)
            T.transpose(s, st)
            T.copy(st, B[bx * BN, by * BM])
            if bx == 0 and by == 0:
                c = T.alloc_shared((2, 8, 4), "float16")
                d = T.alloc_shared((2, 4, 8), "float32")
                T.copy(C, c)
                T.transpose(c, d)  # batched, float16 -> float32
                T.copy(d, D)

    return transposed


@pytest.mark.parametrize("target", TARGETS)
def test_transpose(target):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, N)).astype(np.float32)
    c = rng.standard_normal((2, 8, 4)).astype(np.float16)
    b, d = np.zeros((N, M), np.float32), np.zeros((2, 4, 8), np.float32)
    _compile(transpose_kernel(), target)(a, b, c, d)
    np.testing.assert_array_equal(b, a.T)
    np.testing.assert_array_equal(d, c.transpose(0, 2, 1).astype(np.float32))


def test_transpose_checks_shapes_and_scopes():
    with pytest.raises(tilewise.CompileError, match=r"must have its last two dimensions swapped") as info:

        @T.prim_func
        def bad(A: T.Tensor((4, 8), "float32")):
            with T.Kernel(1):
                s = T.alloc_shared((4, 8), "float32")
                t = T.alloc_shared((4, 8), "float32")
                T.transpose(s, t)

    assert "test_surface_extra.py" in str(info.value)

    @T.prim_func
    def frag(A: T.Tensor((4, 8), "float32")):
        with T.Kernel(1):
            f = T.alloc_fragment((8, 4), "float32")
            T.transpose(A, f)

    # a fragment is spread over the block's threads on a GPU (on the CPU, one thread holds it)
    with pytest.raises(tilewise.CompileError, match="T.transpose on a GPU target: f is a local.fragment buffer"):
        _compile(frag, "emulator")


# ---------------------------------------------------------------------------- T.Persistent

WAVE = 4


@functools.cache
def persistent_kernel(group_size: int):
    tiles = [GRID[1], GRID[0]]

    @T.prim_func
    def persistent(A: T.Tensor((M, N), "float32"), B: T.Tensor((M, N), "float32"),
                   Who: T.Tensor((GRID[1], GRID[0]), "int32")):
        with T.Kernel(WAVE, threads=128) as bid:
            for by, bx in T.Persistent(tiles, WAVE, bid, group_size=group_size):
                t = T.alloc_fragment((BM, BN), "float32")
                T.copy(A[by * BM, bx * BN], t)
                for i, j in T.Parallel(BM, BN):
                    t[i, j] = t[i, j] + 1
                T.copy(t, B[by * BM, bx * BN])
                Who[by, bx] = Who[by, bx] * 10 + bid + 1

    return persistent


def _persistent_reference(domain, wave, group):
    """block -> visited tiles, TileLang's order (written from its description)."""
    last = domain[-1]
    g = max(1, min(group, last))
    grouped = [-(-last // g), *domain[:-1], g]
    padded = int(np.prod(grouped))
    who = {}
    for b in range(wave):
        for w in range(-(-padded // wave)):
            t = w * wave + b
            if t >= padded:
                break
            idx = []
            for k in range(len(grouped) - 1, 0, -1):
                idx.append(t % grouped[k])
                t //= grouped[k]
            idx.append(t)
            idx.reverse()
            coords = (*idx[1:len(domain)], idx[0] * g + idx[-1])
            if coords[-1] < last:
                assert coords not in who
                who[coords] = b
    return who


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("group_size", [2, 8])
def test_persistent_visits_every_tile_once_in_tilelang_order(group_size, target):
    a = np.random.default_rng(1).standard_normal((M, N)).astype(np.float32)
    b = np.zeros_like(a)
    who = np.zeros((GRID[1], GRID[0]), np.int32)
    _compile(persistent_kernel(group_size), target)(a, b, who)
    np.testing.assert_array_equal(b, a + 1)
    ref = _persistent_reference([GRID[1], GRID[0]], WAVE, group_size)
    assert len(ref) == GRID[0] * GRID[1]
    for (y, x), blk in ref.items():
        assert who[y, x] == blk + 1, (y, x, who)


# ---------------------------------------------------------------------------- thread all-reduce


@functools.cache
def gemv_allreduce_kernel(block_n: int, reduce_threads: int, over: str):
    """TileLang's thread-level GEMV (examples/gemv): threads (block_n, reduce_threads) with the
    reduction over threadIdx.y ("y"), or the transposed arrangement over threadIdx.x ("x")."""
    K = N
    tile_k = 2
    block_k = reduce_threads * tile_k
    threads = (block_n, reduce_threads) if over == "y" else (reduce_threads, block_n)

    @T.prim_func
    def gemv(A: T.Tensor((K,), "float32"), B: T.Tensor((M, K), "float32"), C: T.Tensor((M,), "float32")):
        with T.Kernel(T.ceildiv(M, block_n), threads=threads) as bn:
            tn = T.get_thread_binding(0 if over == "y" else 1)
            tk = T.get_thread_binding(1 if over == "y" else 0)
            acc = T.alloc_local((1,), "float32")
            T.clear(acc)
            for bk in T.serial(T.ceildiv(K, block_k)):
                for k in T.serial(tile_k):
                    kk = bk * block_k + tk * tile_k + k
                    if kk < K and bn * block_n + tn < M:
                        acc[0] += A[kk] * B[bn * block_n + tn, kk]
            red = T.alloc_local((1,), "float32")
            with T.attr(T.comm_reducer(lambda x, y: x + y, [T.cast(0, "float32")]), "reduce_scope",
                        T.reinterpret(T.uint64(0), dtype="handle")):
                T.evaluate(T.tvm_thread_allreduce(T.uint32(1), acc[0], True, red[0], tk, dtype="handle"))
            if bn * block_n + tn < M:
                C[bn * block_n + tn] = red[0]

    return gemv


@pytest.mark.parametrize("block_n,reduce_threads,over", [(8, 4, "y"), (4, 32, "y"), (8, 16, "x")])
def test_thread_allreduce_gemv(block_n, reduce_threads, over, emu):
    rng = np.random.default_rng(2)
    a = rng.standard_normal(N).astype(np.float32)
    b = rng.standard_normal((M, N)).astype(np.float32)
    out = emu(gemv_allreduce_kernel(block_n, reduce_threads, over), out_idx=[2])(a, b)
    np.testing.assert_allclose(out, b.astype(np.float64) @ a, rtol=1e-5, atol=1e-5)


def test_thread_allreduce_on_the_cpu_target_runs_in_the_emulator():
    rng = np.random.default_rng(3)
    a = rng.standard_normal(N).astype(np.float32)
    b = rng.standard_normal((M, N)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        k = tilewise.compile(gemv_allreduce_kernel(8, 4, "y"), out_idx=[2], target="cpu")
    np.testing.assert_allclose(k(a, b), b.astype(np.float64) @ a, rtol=1e-5, atol=1e-5)


def test_thread_allreduce_needs_a_reduce_scope():
    with pytest.raises(tilewise.CompileError, match="must be inside `with T.attr\\(T.comm_reducer"):

        @T.prim_func
        def bad(A: T.Tensor((4,), "float32")):
            with T.Kernel(1, threads=32):
                tx = T.get_thread_binding()
                r = T.alloc_local((1,), "float32")
                T.evaluate(T.tvm_thread_allreduce(T.uint32(1), A[0], True, r[0], tx, dtype="handle"))


# ---------------------------------------------------------------------------- make_tensor_from_addr


@functools.cache
def from_addr_kernel():
    @T.prim_func
    def from_addr(a_addr: T.uint64, b_addr: T.ptr, n: T.int32):
        A = T.make_tensor_from_addr(a_addr, (n,), "float32")
        B = T.make_tensor_from_addr(b_addr, (n,), "float32")
        with T.Kernel(T.ceildiv(n, BN), threads=128) as bx:
            for i in T.Parallel(BN):
                B[bx * BN + i] = A[bx * BN + i] * 3

    return from_addr


@pytest.mark.parametrize("target", TARGETS)
def test_make_tensor_from_addr(target):
    a = np.arange(M, dtype=np.float32)
    b = np.zeros_like(a)
    _compile(from_addr_kernel(), target)(a.ctypes.data, b.ctypes.data, M)
    np.testing.assert_array_equal(b, a * 3)


def test_make_tensor_from_addr_inside_a_kernel_is_refused():
    with pytest.raises(tilewise.CompileError, match="addresses computed inside a kernel are not supported") as info:

        @T.prim_func
        def bad(P: T.Tensor((4,), "uint64")):
            with T.Kernel(1):
                T.make_tensor_from_addr(P[0], (4,), "float32")

    assert "test_surface_extra.py" in str(info.value)


def test_kernels_compile_with_nvrtc(nvrtc_check):
    for func in (transpose_kernel(), persistent_kernel(2), gemv_allreduce_kernel(8, 4, "y"),
                 gemv_allreduce_kernel(8, 16, "x"), from_addr_kernel()):
        nvrtc_check(func, archs=("sm_80",))
