"""The paper's expert (thread-level) tier: TensorCoreIntrinEmitter GEMMs, warp shuffles and warp
reductions per lane, T.call_extern / T.import_source, T.alloc_global. Kernels run in the emulator
(every run repeated by the PTX interpreter, conftest.py), on the CPU target (thread-exactly) and
compile through NVRTC with the intended SASS."""
import numpy as np
import pytest
from conftest import emu, nvrtc_check

import tilewise
import tilewise.language as T
from tilewise.emulator.errors import DivergenceError, OutOfBoundsError, RaceError, UnsupportedError
from tilewise.intrinsics import TensorCoreIntrinEmitter, make_mma_swizzle_layout
from tilewise.intrinsics.mma_layout import (
    ldmatrix_32x8_to_shared_16x16_layout,
    mma_load_a_32x8_to_shared_16x16_layout,
    mma_store_32x8_to_shared_16x16_layout,
    shared_16x16_to_mma_32x8_layout,
)
from tilewise.intrinsics.utils import get_ldmatrix_offset, get_mma_micro_size

# ------------------------------------------------------------------ the emitter GEMM


def emitter_gemm(M, N, K, dtype, accum, out_dtype, a_t=False, b_t=True, warps=(2, 2), warp_tile=(32, 32),
                 chunk=32, to_global=False):
    """C = op(A) @ op(B) with A (M, K) or (K, M) when a_t, and B (N, K) when b_t else (K, N); the
    warps own warp_tile pieces of a block tile, which goes through shared memory or (to_global)
    straight from the accumulators into C."""
    rw, cw = warps
    bm, bn = rw * warp_tile[0], cw * warp_tile[1]
    e = TensorCoreIntrinEmitter(a_dtype=dtype, b_dtype=dtype, accum_dtype=accum, a_transposed=a_t, b_transposed=b_t,
                                block_row_warps=rw, block_col_warps=cw, warp_row_tiles=warp_tile[0],
                                warp_col_tiles=warp_tile[1], chunk=chunk)
    a_shape, a_tile = ((K, M), (chunk, bm)) if a_t else ((M, K), (bm, chunk))
    b_shape, b_tile = ((N, K), (bn, chunk)) if b_t else ((K, N), (chunk, bn))
    regs_a = e.warp_rows * e.local_size_a
    regs_b = e.warp_cols * e.local_size_b
    regs_c = e.warp_rows * e.warp_cols * e.local_size_out

    @T.prim_func
    def gemm(A: T.Tensor(a_shape, dtype), B: T.Tensor(b_shape, dtype), C: T.Tensor((M, N), out_dtype)):
        with T.Kernel(N // bn, M // bm, threads=32 * rw * cw) as (bx, by):
            As = T.alloc_shared(a_tile, dtype)
            Bs = T.alloc_shared(b_tile, dtype)
            Cs = T.alloc_shared((bm // 16, bn // e.micro_size_y, 16, e.micro_size_y), out_dtype)
            a_regs = T.alloc_local((regs_a,), dtype)
            b_regs = T.alloc_local((regs_b,), dtype)
            acc = T.alloc_local((regs_c,), accum)
            T.annotate_layout({As: make_mma_swizzle_layout(As), Bs: make_mma_swizzle_layout(Bs)})
            T.clear(acc)
            for ko in T.Pipelined(K // chunk, num_stages=2):
                if a_t:
                    T.copy(A[ko * chunk, by * bm], As)
                else:
                    T.copy(A[by * bm, ko * chunk], As)
                if b_t:
                    T.copy(B[bx * bn, ko * chunk], Bs)
                else:
                    T.copy(B[ko * chunk, bx * bn], Bs)
                for ki in T.serial(chunk // e.micro_size_k):
                    e.ldmatrix_a(a_regs, As, ki)
                    e.ldmatrix_b(b_regs, Bs, ki)
                    e.mma(a_regs, b_regs, acc)
            if to_global:
                e.stmatrix(acc, C, pid_m=by, pid_n=bx)
            else:
                e.stmatrix(acc, Cs)
                for i, j in T.Parallel(bm, bn):
                    C[by * bm + i, bx * bn + j] = Cs[i // 16, j // e.micro_size_y, i % 16, j % e.micro_size_y]

    return gemm


def _operands(rng, M, N, K, dtype, a_t, b_t):
    if dtype == "int8":
        a = rng.integers(-128, 128, (M, K)).astype(np.int8)
        b = rng.integers(-128, 128, (K, N)).astype(np.int8)
    else:
        a = rng.standard_normal((M, K)).astype(np.float32)
        b = rng.standard_normal((K, N)).astype(np.float32)
    A = a.T.copy() if a_t else a
    B = b.T.copy() if b_t else b
    return a, b, A, B


def _cast(x, dtype):
    if dtype == "bfloat16":
        import ml_dtypes

        return x.astype(ml_dtypes.bfloat16)
    return x.astype(dtype)


@pytest.mark.parametrize("dtype,accum,out,a_t,b_t,tol", [
    ("float16", "float32", "float32", False, True, 1e-3),
    ("float16", "float16", "float16", False, True, 5e-2),
    ("float16", "float32", "float32", True, False, 1e-3),   # ldmatrix.trans for both operands
    ("bfloat16", "float32", "float32", False, True, 1e-2),
    ("int8", "int32", "int32", False, True, 0),
    ("float32", "float32", "float32", False, True, 5e-2),   # tf32: scalar register loads
])  # fmt: skip
def test_emitter_gemm_matches_numpy(rng, dtype, accum, out, a_t, b_t, tol):
    M = N = 64
    K = 64
    f = emitter_gemm(M, N, K, dtype, accum, out, a_t, b_t, chunk=32 if dtype != "float32" else 16)
    a, b, A, B = _operands(rng, M, N, K, dtype, a_t, b_t)
    A, B = _cast(A, dtype), _cast(B, dtype)
    C = emu(f, out_idx=[2])(A, B)
    ref = _cast(a, dtype).astype(np.float64) @ _cast(b, dtype).astype(np.float64)
    if tol == 0:
        np.testing.assert_array_equal(C, ref.astype(np.int32))
    else:
        np.testing.assert_allclose(np.asarray(C, np.float64), ref, rtol=tol, atol=tol * np.abs(ref).max())


def test_emitter_gemm_n8_tiles_and_global_store(rng):
    """warp_col_tiles of 8 (one m16n8 tile per mma, ldmatrix.x2 for B), the accumulators stored
    straight into the global matrix with pid_m / pid_n."""
    M, N, K = 64, 32, 32
    f = emitter_gemm(M, N, K, "float16", "float32", "float32", warps=(2, 2), warp_tile=(16, 8), to_global=True)
    a, b, A, B = _operands(rng, M, N, K, "float16", False, True)
    C = emu(f, out_idx=[2])(A.astype(np.float16), B.astype(np.float16))
    ref = a.astype(np.float16).astype(np.float64) @ b.astype(np.float16).astype(np.float64)
    np.testing.assert_allclose(C, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())


def test_emitter_gemm_on_the_cpu_target_runs_thread_exactly(rng):
    f = emitter_gemm(64, 64, 32, "float16", "float32", "float32")
    a, b, A, B = _operands(rng, 64, 64, 32, "float16", False, True)
    with pytest.warns(UserWarning, match="thread-exactly"):
        k = tilewise.compile(f, out_idx=[2], target="cpu")
    C = k(A.astype(np.float16), B.astype(np.float16))
    ref = a.astype(np.float16).astype(np.float64) @ b.astype(np.float16).astype(np.float64)
    np.testing.assert_allclose(C, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())


def test_emitter_gemm_compiles_to_hmma_and_ldsm():
    nvrtc_check(emitter_gemm(128, 128, 64, "float16", "float32", "float32"), expect=("HMMA", "LDSM"))
    nvrtc_check(emitter_gemm(128, 128, 64, "int8", "int32", "int32"), expect=("IMMA", "LDSM"), archs=("sm_80",))


def test_emitter_checks_are_the_emulators():
    """A warp grid larger than the block's shared tile: the emulator reports the accesses out of
    bounds, naming the buffer, as for tile-level code."""
    e = TensorCoreIntrinEmitter("float16", "float16", "float32", b_transposed=True, block_row_warps=2,
                                block_col_warps=1, warp_row_tiles=16, warp_col_tiles=16, chunk=16)

    @T.prim_func
    def small(A: T.Tensor((16, 16), "float16"), B: T.Tensor((16, 16), "float16"), C: T.Tensor((32, 16), "float32")):
        with T.Kernel(1, threads=64):
            As = T.alloc_shared((16, 16), "float16")  # rows for one warp only
            Bs = T.alloc_shared((16, 16), "float16")
            a = T.alloc_local((8,), "float16")
            b = T.alloc_local((8,), "float16")
            c = T.alloc_local((8,), "float32")
            T.copy(A, As)
            T.copy(B, Bs)
            T.clear(c)
            e.ldmatrix_a(a, As, 0)
            e.ldmatrix_b(b, Bs, 0)
            e.mma(a, b, c)
            e.stmatrix(c, C)

    z = np.zeros((16, 16), np.float16)
    with pytest.raises(OutOfBoundsError, match="As"):
        tilewise.compile(small, out_idx=[2], target="cuda", execution_backend="emulator")(z, z)


def test_emitter_arguments_are_checked():
    with pytest.raises(tilewise.CompileError, match="float8"):
        TensorCoreIntrinEmitter("float8_e4m3", "float8_e4m3", "float32", chunk=32, warp_row_tiles=16,
                                warp_col_tiles=16)
    with pytest.raises(tilewise.CompileError, match="warp_row_tiles"):
        TensorCoreIntrinEmitter(warp_row_tiles=8, warp_col_tiles=16, chunk=16)
    e = TensorCoreIntrinEmitter(block_row_warps=2, block_col_warps=2, warp_row_tiles=16, warp_col_tiles=16, chunk=16)

    with pytest.raises(tilewise.CompileError, match="needs 128 threads"):
        @T.prim_func
        def few_threads(A: T.Tensor((32, 16), "float16")):
            with T.Kernel(1, threads=64):
                As = T.alloc_shared((32, 16), "float16")
                a = T.alloc_local((8,), "float16")
                T.copy(A, As)
                e.ldmatrix_a(a, As, 0)


def test_mma_layout_helpers_are_the_ptx_fragments():
    """The index maps are bijections onto the tile and agree with each other (the A fragment map
    and its inverse; the accumulator store map covers the 16 x 16 pair of n8 tiles once)."""
    seen = set()
    for t in range(32):
        for v in range(8):
            i, j = mma_load_a_32x8_to_shared_16x16_layout(t, v)
            assert shared_16x16_to_mma_32x8_layout(i, j) == (t, v)
            seen.add(mma_store_32x8_to_shared_16x16_layout(t, v))
    assert seen == {(i, j) for i in range(16) for j in range(16)}
    from tilewise.intrinsics import mma_layout as L

    for load, sr, n in ((L.mma_load_b_32x8_to_shared_16x16_layout, L.shared_16x16_to_mma_32x8_layout_sr_b, 8),
                        (L.mma_load_a_32x16_to_shared_16x32_layout, L.shared_16x32_to_mma_32x16_layout_sr_a, 16),
                        (L.mma_load_b_32x16_to_shared_16x32_layout, L.shared_16x32_to_mma_32x16_layout_sr_b, 16),
                        (L.mma_load_a_32x4_to_shared_16x8_layout, L.shared_16x8_to_mma_32x4_layout_sr_a, 4),
                        (L.mma_load_b_32x4_to_shared_16x8_layout, L.shared_16x8_to_mma_32x4_layout_sr_b, 4)):
        assert all(sr(*load(t, v)) == (t, v) for t in range(32) for v in range(n)), load.__name__
    assert L.shared_16x16_to_mma_32x8_layout_rs_a(3, 9) == L.shared_16x16_to_mma_32x8_layout_sr_a(9, 3)
    assert get_ldmatrix_offset("A", 17, 0, 16, "float16") == ldmatrix_32x8_to_shared_16x16_layout(17, 0) == (1, 8)
    assert get_mma_micro_size("int8") == (16, 16, 32) and get_mma_micro_size("float16") == (16, 16, 16)


# ------------------------------------------------------------------ shuffles and warp reductions


def _shuffles(width):
    @T.prim_func
    def shuffles(x: T.Tensor((64,), "int32"), out: T.Tensor((5, 64), "int32")):
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding()
            v = x[tx]
            out[0, tx] = T.shfl_xor(v, 5, width)
            out[1, tx] = T.shfl_down(v, 3, width)
            out[2, tx] = T.shfl_up(v, 2, width)
            out[3, tx] = T.shfl_sync(v, tx % 3, width)
            out[4, tx] = T.tvm_warp_shuffle(0xFFFFFFFF, v, (tx + 1) % 32, width, width)

    return shuffles


def _expected_shuffles(x, width):
    lane = np.arange(64) % 32
    base = np.arange(64) - lane % width  # first thread of the lane's group
    pos = lane % width
    out = np.empty((5, 64), np.int32)
    out[0] = x[base + (pos ^ 5)]
    down = pos + 3
    out[1] = np.where(down < width, x[np.minimum(base + down, 63)], x)
    up = pos - 2
    out[2] = np.where(up >= 0, x[np.maximum(base + up, 0)], x)
    out[3] = x[base + (np.arange(64) % 3) % width]
    out[4] = x[base + ((np.arange(64) + 1) % 32) % width]
    return out


@pytest.mark.parametrize("width", [32, 8])
def test_shuffles_per_lane_match_numpy(rng, width):
    x = rng.integers(-1000, 1000, 64).astype(np.int32)
    out = emu(_shuffles(width), out_idx=[1])(x)
    np.testing.assert_array_equal(out, _expected_shuffles(x, width))


@T.prim_func
def warp_reductions(x: T.Tensor((128,), "float32"), bits: T.Tensor((128,), "int32"), out: T.Tensor((3, 128), "float32"),
                    iout: T.Tensor((2, 128), "int32")):
    with T.Kernel(1, threads=128):
        tx = T.get_thread_binding()
        out[0, tx] = T.warp_reduce_sum(x[tx])
        out[1, tx] = T.warp_reduce_max(x[tx])
        out[2, tx] = T.warp_reduce_min(x[tx])
        iout[0, tx] = T.warp_reduce_bitand(bits[tx])
        iout[1, tx] = T.warp_reduce_bitor(bits[tx])


def _expected_reductions(x, bits):
    xw, bw = x.reshape(4, 32), bits.reshape(4, 32)
    f = np.repeat(np.stack([xw.sum(1), xw.max(1), xw.min(1)]), 32, axis=1)
    i = np.repeat(np.stack([np.bitwise_and.reduce(bw, 1), np.bitwise_or.reduce(bw, 1)]), 32, axis=1)
    return f, i


@pytest.mark.parametrize("target", ["cuda", "cpu"])
def test_warp_reductions_per_lane_match_numpy(rng, target):
    x = rng.integers(-50, 50, 128).astype(np.float32)  # exact sums in any order
    bits = (rng.integers(0, 2**31 - 1, 128) | 0x0F0F).astype(np.int32)
    if target == "cuda":
        k = emu(warp_reductions, out_idx=[2, 3])
    else:
        with pytest.warns(UserWarning, match="thread-exactly"):
            k = tilewise.compile(warp_reductions, out_idx=[2, 3], target="cpu")
    out, iout = k(x, bits)
    f, i = _expected_reductions(x, bits)
    np.testing.assert_array_equal(out, f)
    np.testing.assert_array_equal(iout, i)


def test_warp_primitives_compile_to_shfl():
    nvrtc_check(warp_reductions, expect=("SHFL",))


def test_partial_warp_shuffle_and_partial_mask_are_errors():
    @T.prim_func
    def partial(x: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding()
            if tx < 16:
                x[tx] = T.shfl_xor(x[tx], 1)

    with pytest.raises(DivergenceError, match="32 lanes"):
        emu(partial)(np.zeros(64, np.float32))

    with pytest.raises(tilewise.CompileError, match="mask"):
        @T.prim_func
        def masked(x: T.Tensor((32,), "float32")):
            with T.Kernel(1, threads=32):
                tx = T.get_thread_binding()
                x[tx] = T.shfl_xor(x[tx], 1, 32, 0xFFFF)


def test_thread_level_race_is_reported():
    """Two threads store to one shared element with nothing ordering them: the emulator's race check
    applies to hand-written thread code as to tile operators."""

    @T.prim_func
    def racy(x: T.Tensor((64,), "float32"), y: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding()
            s = T.alloc_shared((32,), "float32")
            s[tx // 2] = x[tx]
            y[tx] = s[tx // 2]

    with pytest.raises(RaceError, match="s"):
        tilewise.compile(racy, out_idx=[1], target="cuda", execution_backend="emulator")(np.zeros(64, np.float32))


# ------------------------------------------------------------------ T.call_extern / T.import_source

CUDA_SRC = "__device__ __forceinline__ float axpy2(float x, float y) { return 2.0f * x + y; }\n"
CPU_SRC = "static inline float axpy2(float x, float y) { return 2.0f * x + y; }\n"


def _imported(src):
    @T.prim_func
    def imported(x: T.Tensor((64,), "float32"), y: T.Tensor((64,), "float32"), z: T.Tensor((64,), "float32")):
        T.import_source(src)
        with T.Kernel(2, threads=32) as bx:
            for i in T.Parallel(32):
                z[bx * 32 + i] = T.call_extern("float32", "axpy2", x[bx * 32 + i], y[bx * 32 + i])

    return imported


@T.prim_func
def cuda_math(x: T.Tensor((64,), "float32"), z: T.Tensor((64,), "float32"), c: T.Tensor((64,), "int32")):
    with T.Kernel(2, threads=32) as bx:
        for i in T.Parallel(32):
            z[bx * 32 + i] = T.call_extern("float32", "__expf", x[bx * 32 + i]) + T.call_extern(
                "float32", "fmaxf", x[bx * 32 + i], 0.5)
            c[bx * 32 + i] = T.call_extern("int32", "__popc", T.cast(bx * 32 + i, "uint32"))


@pytest.mark.parametrize("target", ["cuda", "cpu"])
def test_call_extern_of_cuda_math(rng, target):
    x = rng.random(64).astype(np.float32)
    k = emu(cuda_math, out_idx=[1, 2]) if target == "cuda" else tilewise.compile(cuda_math, out_idx=[1, 2],
                                                                                  target="cpu")
    z, c = k(x)
    np.testing.assert_allclose(z, np.exp(x) + np.maximum(x, 0.5), rtol=1e-6)
    np.testing.assert_array_equal(c, [bin(i).count("1") for i in range(64)])
    if target == "cuda":
        assert "__expf(" in k.get_kernel_source() and "__popc(" in k.get_kernel_source()


def test_import_source_runs_in_the_ptx_interpreter_and_on_the_cpu(rng):
    x, y = rng.random(64).astype(np.float32), rng.random(64).astype(np.float32)
    k = tilewise.compile(_imported(CUDA_SRC), out_idx=[2], target="cuda", execution_backend="ptx")
    assert CUDA_SRC.strip() in k.get_kernel_source()
    np.testing.assert_allclose(k(x, y), 2 * x + y, rtol=1e-6)
    np.testing.assert_allclose(tilewise.compile(_imported(CPU_SRC), out_idx=[2], target="cpu")(x, y), 2 * x + y,
                               rtol=1e-6)


def test_call_extern_of_unknown_code_is_a_clear_error():
    x = np.zeros(64, np.float32)
    with pytest.raises(UnsupportedError, match="axpy2.*execution_backend='ptx'"):
        tilewise.compile(_imported(CUDA_SRC), out_idx=[2], target="cuda", execution_backend="emulator")(x, x)
    with pytest.raises(tilewise.CompileError, match="T.import_source / T.call_extern"):
        tilewise.compile(_imported("static inline float nope(float x) { return x; }\n"), out_idx=[2], target="cpu")


def test_tvm_call_extern_is_t_call_extern():
    from tilewise import tvm

    @T.prim_func
    def k(x: T.Tensor((32,), "float32"), z: T.Tensor((32,), "float32")):
        with T.Kernel(1, threads=32):
            for i in T.Parallel(32):
                z[i] = tvm.tir.call_extern("float32", "sqrtf", x[i])

    x = np.arange(32, dtype=np.float32)
    np.testing.assert_allclose(emu(k, out_idx=[1])(x), np.sqrt(x), rtol=1e-6)


# ------------------------------------------------------------------ T.alloc_global


def _workspace_kernel():
    N = 256

    @T.prim_func
    def staged(x: T.Tensor((N,), "float32"), y: T.Tensor((N,), "float32")):
        # the first kernel fills the scratch buffer, the second reads it in another order: the
        # buffer lives for the whole call and is shared by every block of both kernels
        ws = T.alloc_global((N,), "float32")
        with T.Kernel(N // 64, threads=64) as bx:
            for i in T.Parallel(64):
                ws[bx * 64 + i] = x[bx * 64 + i] * 2
        with T.Kernel(N // 64, threads=64) as bx:
            for i in T.Parallel(64):
                y[bx * 64 + i] = ws[N - 1 - (bx * 64 + i)] + 1

    return staged


@pytest.mark.parametrize("target,backend", [("cuda", "emulator"), ("cuda", "ptx"), ("cpu", None)])
def test_alloc_global_is_a_per_call_scratch_buffer(target, backend):
    k = tilewise.compile(_workspace_kernel(), out_idx=[-1], target=target, execution_backend=backend)
    assert [p.name for p in k.params] == ["x", "y"] and k.out_idx == [1]
    x = np.arange(256, dtype=np.float32)
    np.testing.assert_array_equal(k(x), x[::-1] * 2 + 1)
    np.testing.assert_array_equal(k(x + 1), (x + 1)[::-1] * 2 + 1)  # a second call: a fresh buffer, same result


# ------------------------------------------------------------------ T.sync_warp


def _warp_exchange(sync: bool):
    @T.prim_func
    def exchange(x: T.Tensor((64,), "float32"), y: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding()
            s = T.alloc_shared((64,), "float32")
            s[tx] = x[tx]
            if sync:
                T.call_extern("handle", "__nanosleep", 10)  # a delay: no effect on values
                T.sync_warp()
            y[tx] = s[tx ^ 1]  # the neighbour's element, in the same warp

    return exchange


def test_sync_warp_orders_the_warps_shared_accesses():
    """With the compiler's barriers off, the exchange inside a warp races unless __syncwarp
    orders it; with it the emulator (and the PTX interpreter) agree with numpy."""
    no_sync = {"tl.disable_thread_storage_sync": True}
    x = np.arange(64, dtype=np.float32)
    with pytest.raises(RaceError, match="s"):
        emu(_warp_exchange(False), out_idx=[1], pass_configs=no_sync)(x)
    k = emu(_warp_exchange(True), out_idx=[1], pass_configs=no_sync)
    np.testing.assert_array_equal(k(x), x[np.arange(64) ^ 1])
    assert "__syncwarp()" in k.get_kernel_source()


def test_alloc_global_with_a_dynamic_dimension_and_in_the_eager_style():
    m = T.dynamic("m")

    @T.prim_func
    def mirrored(x: T.Tensor((m,), "float32"), y: T.Tensor((m,), "float32")):
        ws = T.alloc_global((m,), "float32")
        with T.Kernel(T.ceildiv(m, 64), threads=64) as bx:
            for i in T.Parallel(64):
                if bx * 64 + i < m:
                    ws[bx * 64 + i] = x[bx * 64 + i] * 2
        with T.Kernel(T.ceildiv(m, 64), threads=64) as bx:
            for i in T.Parallel(64):
                if bx * 64 + i < m:
                    y[bx * 64 + i] = ws[m - 1 - (bx * 64 + i)]

    x = np.arange(100, dtype=np.float32)
    np.testing.assert_array_equal(emu(mirrored, out_idx=[1])(x), x[::-1] * 2)

    @tilewise.jit(target="cpu")
    def scaled(x, block=64):
        N = T.const("N")
        x: T.Tensor((N,), "float32")
        y = T.empty((N,), "float32")
        ws = T.alloc_global((N,), "float32")
        with T.Kernel(T.ceildiv(N, block), threads=block) as bx:
            for i in T.Parallel(block):
                ws[bx * block + i] = x[bx * block + i] * 3
            for i in T.Parallel(block):
                y[bx * block + i] = ws[bx * block + i] + 1
        return y

    x = np.arange(256, dtype=np.float32)
    np.testing.assert_array_equal(scaled(x), x * 3 + 1)


def test_call_extern_with_pointers_from_access_ptr(rng):
    """An imported function writing through T.access_ptr pointers (TileLang's decode idiom)."""
    src = "__device__ void twice4(const float* a, float* b) { for (int k = 0; k < 4; ++k) b[k] = 2.0f * a[k]; }\n"
    cpu_src = src.replace("__device__ ", "static ")

    def make(text):
        @T.prim_func
        def k(x: T.Tensor((128,), "float32"), y: T.Tensor((128,), "float32")):
            T.import_source(text)
            with T.Kernel(1, threads=32):
                tx = T.get_thread_binding()
                a = T.alloc_local((4,), "float32")
                b = T.alloc_local((4,), "float32")
                for j in T.serial(4):
                    a[j] = x[tx * 4 + j]
                T.call_extern("handle", "twice4", T.access_ptr(a, "r"), T.access_ptr(b, "w"))
                for j in T.serial(4):
                    y[tx * 4 + j] = b[j]

        return k

    x = rng.random(128).astype(np.float32)
    k = tilewise.compile(make(src), out_idx=[1], target="cuda", execution_backend="ptx")
    np.testing.assert_array_equal(k(x), 2 * x)
    # on the CPU target the kernel (it programs its threads) runs as CUDA in the PTX interpreter
    # (tests/backend/cpu/test_imported_cuda.py), so the imported code must be CUDA
    np.testing.assert_array_equal(tilewise.compile(make(src), out_idx=[1], target="cpu")(x), 2 * x)
    with pytest.raises(tilewise.CompileError, match="twice4.*must be CUDA device code"):
        tilewise.compile(make(cpu_src), out_idx=[1], target="cpu")


def test_sync_warp_orders_global_memory_between_lanes():
    """TileLang's warp_sync test: lane 0 writes a global element, `T.sync_warp()`, lane 1 reads
    it. __syncwarp orders memory among the warp's lanes, so this is no race (emulator)."""

    @T.prim_func
    def k(A: T.Tensor((1,), "int32"), B: T.Tensor((1,), "int32")):
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding()
            if tx == 0:
                A[0] = -1
            T.sync_warp()
            if tx == 1:
                B[0] = A[0]

    a, b = np.zeros(1, np.int32), np.zeros(1, np.int32)
    tilewise.compile(k, target="cuda -arch=sm_80", execution_backend="emulator")(a, b)
    assert a[0] == -1 and b[0] == -1
