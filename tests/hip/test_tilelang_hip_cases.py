"""The non-GEMM kernels of TileLang's own HIP tests (testing/python/amd: the HIP code-generation
regressions and the HIP atomics tests), written again here for the "hip" target and run in the
emulator with 64-lane wavefronts against numpy; each also compiles with clang-19. TileLang runs
them on an MI300; the situations they probe are the same: blocks of 32 threads on a 64-lane
wavefront, 16-bit reductions, T.alloc_var initial values, T.sync_warp, T.Pipelined with several
stages, vectorised math, atomic loads / stores with memory orders."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tilewise
import tilewise.language as T

pytestmark = pytest.mark.usefixtures("clang19")


def _hip(func, out_idx=None):
    k = tilewise.compile(func, out_idx=out_idx, target="hip", execution_backend="emulator")
    assert k.resource_usage()["scratch_bytes"] == 0
    return k


@pytest.mark.parametrize("n_tok, n_exp", [(64, 8), (128, 16), (64, 32)])
def test_reduce_in_a_block_of_32_threads(n_tok, n_exp, rng):
    """32 threads fill half a wavefront: the reduction must not read the idle lanes."""

    @T.prim_func
    def gate(logits: T.Tensor((n_tok, n_exp), "float32"), out_max: T.Tensor((n_tok,), "float32"),
             out_sum: T.Tensor((n_tok,), "float32")):
        with T.Kernel(n_tok, threads=32) as pid:
            lf = T.alloc_fragment(n_exp, "float32")
            T.copy(logits[pid, 0], lf)
            mx = T.alloc_fragment(1, "float32")
            sm = T.alloc_fragment(1, "float32")
            T.reduce_max(lf, mx, dim=0)
            T.reduce_sum(lf, sm, dim=0)
            if T.get_thread_binding() == 0:
                out_max[pid] = mx[0]
                out_sum[pid] = sm[0]

    x = rng.standard_normal((n_tok, n_exp)).astype(np.float32)
    mx, sm = np.zeros(n_tok, np.float32), np.zeros(n_tok, np.float32)
    _hip(gate)(x, mx, sm)
    np.testing.assert_array_equal(mx, x.max(axis=1))
    np.testing.assert_allclose(sm, x.sum(axis=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_sixteen_bit_rows_reduced_in_float(dtype, rng):
    n_tok, n_exp = 16, 8

    @T.prim_func
    def red(x: T.Tensor((n_tok, n_exp), dtype), out: T.Tensor((n_tok,), "float32")):
        with T.Kernel(n_tok, threads=32) as pid:
            frag = T.alloc_fragment(n_exp, dtype)
            T.copy(x[pid, 0], frag)
            f = T.alloc_fragment(n_exp, "float32")
            for i in T.Parallel(n_exp):
                f[i] = T.cast(frag[i], "float32")
            s = T.alloc_fragment(1, "float32")
            T.reduce_sum(f, s, dim=0)
            if T.get_thread_binding() == 0:
                out[pid] = s[0]

    k = _hip(red)
    x = rng.standard_normal((n_tok, n_exp)).astype(np.float32)
    xs = x.astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float16)
    out = np.zeros(n_tok, np.float32)
    k(xs, out)
    np.testing.assert_allclose(out, xs.astype(np.float32).sum(axis=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("init, dtype", [(0, "int32"), (7, "int32"), (-3, "int32"), (1.0, "float32"),
                                         (-0.5, "float32"), (-np.inf, "float32")])
def test_alloc_var_initial_values(init, dtype):
    N = 32

    @T.prim_func
    def k(out: T.Tensor((N,), dtype)):
        with T.Kernel(1, threads=N) as _:
            v = T.alloc_var(dtype, init=init)
            for i in T.Parallel(N):
                out[i] = v

    kernel = _hip(k)
    out = np.zeros(N, dtype)
    kernel(out)
    np.testing.assert_array_equal(out, np.full(N, init, dtype))


def test_alloc_var_counters_and_a_thread_zero_update():
    @T.prim_func
    def k(out: T.Tensor((32,), "int32"), once: T.Tensor((32,), "int32")):
        with T.Kernel(1, threads=32) as _:
            tx = T.get_thread_binding()
            a = T.alloc_var("int32", init=3)
            count = T.alloc_var("int32", init=0)
            for _ in T.unroll(5):
                count += 1
            out[tx] = a + count
            v = T.alloc_var("int32", init=5)
            if tx == 0:
                v = v + 1
            once[tx] = v

    out, once = np.zeros(32, np.int32), np.zeros(32, np.int32)
    kernel = _hip(k)
    assert "= 3;" in kernel.get_kernel_source()
    kernel(out, once)
    np.testing.assert_array_equal(out, np.full(32, 8))
    np.testing.assert_array_equal(once, np.array([6] + [5] * 31))


def test_sync_warp_orders_shared_memory_inside_the_wavefront(rng):
    N, M = 32, 8

    @T.prim_func
    def k(x: T.Tensor((N,), "float32"), doubled: T.Tensor((N,), "float32"), head: T.Tensor((M,), "float32")):
        with T.Kernel(1, threads=N) as _:
            tx = T.get_thread_binding()
            s = T.alloc_shared((N,), "float32")
            s[tx] = x[tx]
            T.sync_warp()
            doubled[tx] = s[(tx + 1) % N] * 2.0
            h = T.alloc_shared((M,), "float32")
            if tx < M:
                h[tx] = x[tx]
            T.sync_warp()
            for i in T.Parallel(M):
                head[i] = h[i]

    kernel = _hip(k)
    assert "__syncwarp" not in kernel.get_kernel_source()
    x = rng.standard_normal(N).astype(np.float32)
    d, h = np.zeros(N, np.float32), np.zeros(M, np.float32)
    kernel(x, d, h)
    np.testing.assert_array_equal(d, np.roll(x, -1) * 2)
    np.testing.assert_array_equal(h, x[:M])


@pytest.mark.parametrize("num_stages", [1, 2, 3])
def test_pipelined_stages_without_cp_async(num_stages, rng):
    M, K, blk = 32, 256, 64

    @T.prim_func
    def k(x: T.Tensor((M, K), "float32"), out: T.Tensor((M,), "float32")):
        with T.Kernel(M, threads=64) as pid:
            acc = T.alloc_fragment((1,), "float32")
            xs = T.alloc_shared((blk,), "float32")
            xl = T.alloc_fragment((blk,), "float32")
            s = T.alloc_fragment((1,), "float32")
            T.clear(acc)
            for ko in T.Pipelined(K // blk, num_stages=num_stages):
                T.copy(x[pid, ko * blk], xs, disable_tma=True)
                T.copy(xs, xl, disable_tma=True)
                T.reduce_sum(xl, s, dim=0)
                acc[0] = acc[0] + s[0]
            out[pid] = acc[0]

    kernel = _hip(k)
    x = rng.standard_normal((M, K)).astype(np.float32)
    out = np.zeros(M, np.float32)
    kernel(x, out)
    np.testing.assert_allclose(out, x.sum(axis=1), rtol=1e-5, atol=1e-4)


def test_vectorised_exp2(rng):
    N, VEC = 256, 4

    @T.prim_func
    def k(A: T.Tensor((N,), "float32"), B: T.Tensor((N,), "float32")):
        with T.Kernel(N // VEC, threads=1) as bx:
            for v in T.vectorized(VEC):
                B[bx * VEC + v] = T.exp2(A[bx * VEC + v])

    kernel = _hip(k)
    a = (rng.standard_normal(N) * 10).astype(np.float32)
    b = np.zeros(N, np.float32)
    kernel(a, b)
    np.testing.assert_allclose(b, np.exp2(a), rtol=2e-7)


@pytest.mark.parametrize("load_order, store_order", [("relaxed", "relaxed"), ("consume", "release"),
                                                     ("acquire", "seq_cst"), ("seq_cst", "relaxed")])
def test_atomic_load_store_orders(load_order, store_order):
    @T.prim_func
    def k(source: T.Tensor((32,), "int32"), destination: T.Tensor((32,), "int32")):
        with T.Kernel(1, threads=32):
            i = T.get_thread_binding()
            value = T.atomic_load(source[i], memory_order=load_order)
            T.atomic_store(destination[i], value, memory_order=store_order)

    kernel = _hip(k, out_idx=[1])
    src = np.arange(32, dtype=np.int32)
    np.testing.assert_array_equal(kernel(src), src)
    isa = kernel.get_isa()
    assert "global_load_dword" in isa and "global_store_dword" in isa


def test_atomic_add_returns_the_previous_value():
    @T.prim_func
    def k(dst: T.Tensor((4,), "float32"), val: T.Tensor((4,), "float32"), prev: T.Tensor((4,), "float32")):
        with T.Kernel(1, threads=4):
            i = T.get_thread_binding()
            prev[i] = T.atomic_add(dst[i], val[i], return_prev=True)

    kernel = _hip(k)
    dst = np.arange(1, 5, dtype=np.float32)
    val = dst * 10
    prev = np.zeros(4, np.float32)
    kernel(dst, val, prev)
    np.testing.assert_array_equal(prev, np.arange(1, 5))
    np.testing.assert_array_equal(dst, np.arange(1, 5) * 11)
