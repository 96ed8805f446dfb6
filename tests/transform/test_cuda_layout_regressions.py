"""Regressions in CUDA layout inference and function-level statements, run in the emulator."""
import numpy as np
import pytest

import tilewise
import tilewise.language as T


def _run(func, *arrays):
    k = tilewise.compile(func, target="cuda", execution_backend="emulator")
    k(*arrays)


def test_fill_does_not_fix_a_reduction_result_layout():
    # TileLang's flash-attention idiom: the running max is filled with -inf before the reduction
    # decides its layout
    @T.prim_func
    def k1(X: T.Tensor((4, 64), "float32"), Y: T.Tensor((4,), "float32")):
        with T.Kernel(1, threads=128):
            x = T.alloc_fragment((4, 64), "float32")
            m = T.alloc_fragment((4,), "float32")
            T.fill(m, -T.infinity("float32"))
            T.copy(X, x)
            T.reduce_max(x, m, dim=1, clear=False)
            T.copy(m, Y)

    x = np.random.default_rng(0).random((4, 64), dtype=np.float32)
    y = np.zeros(4, np.float32)
    _run(k1, x, y)
    np.testing.assert_array_equal(y, x.max(1))


def test_reshape_before_the_kernel():
    @T.prim_func
    def k2(X: T.Tensor((8, 16), "float32"), Y: T.Tensor((128,), "float32")):
        flat = T.reshape(X, (128,))
        with T.Kernel(1, threads=128):
            for i in T.Parallel(128):
                Y[i] = flat[i] * 2

    x = np.random.default_rng(1).random((8, 16), dtype=np.float32)
    y = np.zeros(128, np.float32)
    _run(k2, x, y)
    np.testing.assert_array_equal(y, 2 * x.ravel())


def test_transposed_fragment_read_and_row_vector_broadcast():
    M, N = 32, 64

    @T.prim_func
    def k3(X: T.Tensor((N, M), "float32"), S: T.Tensor((M,), "float32"), Y: T.Tensor((M, N), "float32")):
        with T.Kernel(1, threads=128):
            x_l = T.alloc_fragment((N, M), "float32")
            scale = T.alloc_fragment((M,), "float32")
            y = T.alloc_shared((M, N), "float32")
            T.copy(X, x_l)
            for i in T.Parallel(M):
                scale[i] = S[i] * 2
            for i, j in T.Parallel(M, N):
                y[i, j] = x_l[j, i] * scale[i]
            T.copy(y, Y)

    rng = np.random.default_rng(2)
    x = rng.random((N, M), dtype=np.float32)
    s = rng.random(M, dtype=np.float32)
    y = np.zeros((M, N), np.float32)
    _run(k3, x, s, y)
    np.testing.assert_allclose(y, x.T * (2 * s)[:, None], rtol=1e-6)


def test_fragment_slices_in_copy_and_atomics():
    M, N = 32, 64

    @T.prim_func
    def k4(X: T.Tensor((M, N), "float32"), Y: T.Tensor((M, N), "float32")):
        with T.Kernel(1, threads=128):
            x_l = T.alloc_fragment((M, N), "float32")
            T.copy(X, x_l)
            T.copy(x_l[:10, 8:40], Y[3, 0])
            T.atomic_add(Y[20:30, 0:32], x_l[0:10, 32:64])

    x = np.random.default_rng(3).random((M, N), dtype=np.float32)
    y = np.zeros((M, N), np.float32)
    _run(k4, x, y)
    ref = np.zeros((M, N), np.float32)
    ref[3:13, 0:32] = x[:10, 8:40]
    ref[20:30, 0:32] += x[0:10, 32:64]
    np.testing.assert_array_equal(y, ref)


def test_uninitialised_shared_read_is_reported_when_asked(monkeypatch):
    from tilewise.emulator import EmulatorError

    @T.prim_func
    def k5(Y: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            S = T.alloc_shared((64,), "float32")
            for i in T.Parallel(64):
                Y[i] = S[i]

    y = np.zeros(64, np.float32)
    kernel = tilewise.compile(k5, target="cuda", execution_backend="emulator")
    kernel(y)  # not checked by default
    monkeypatch.setenv("TILEWISE_EMULATOR_UNINIT", "1")

    with pytest.raises(EmulatorError, match="S"):
        kernel(y)


def test_pipeline_order_that_issues_the_gemm_before_the_copies():
    # order=[1, 2, 0]: the gemm of iteration k - s is issued before this iteration's copies, so
    # the barrier it needs sits after the wait, not after the copies
    M = N = K = 128

    @T.prim_func
    def k6(A: T.Tensor((M, K), "float16"), B: T.Tensor((K, N), "float16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(N // 64, M // 64, threads=128) as (bx, by):
            a = T.alloc_shared((64, 32), "float16")
            b = T.alloc_shared((32, 64), "float16")
            c = T.alloc_fragment((64, 64), "float32")
            T.clear(c)
            for k in T.Pipelined(K // 32, order=[1, 2, 0], stage=[0, 0, 2]):
                T.copy(A[by * 64, k * 32], a)
                T.copy(B[k * 32, bx * 64], b)
                T.gemm(a, b, c)
            T.copy(c, C[by * 64, bx * 64])

    rng = np.random.default_rng(4)
    a = rng.uniform(-1, 1, (M, K)).astype(np.float16)
    b = rng.uniform(-1, 1, (K, N)).astype(np.float16)
    c = np.zeros((M, N), np.float32)
    _run(k6, a, b, c)  # the emulator raises on a race
    np.testing.assert_allclose(c, a.astype(np.float32) @ b.astype(np.float32), atol=1e-2, rtol=1e-2)


def _unpack(packed: np.ndarray) -> np.ndarray:
    lo, hi = packed & 15, packed >> 4
    return np.stack([lo, hi], axis=-1).reshape(packed.shape[0], -1).astype(np.float16)


def test_packed_fragment_read_as_j_div_2_takes_its_layout_from_the_loop():
    """B_local[i, j // 2]: a fragment of packed int4 pairs whose layout the copy into it would fix
    first; the dequantising loop is laid out so each thread holds the bytes it unpacks."""
    N, K = 32, 64

    @T.prim_func
    def unpack(B: T.Tensor((N, K // 2), "uint8"), C: T.Tensor((N, K), "float16")):
        with T.Kernel(1, threads=128):
            B_shared = T.alloc_shared((N, K // 2), "uint8")
            B_local = T.alloc_fragment((N, K // 2), "uint8")
            C_local = T.alloc_fragment((N, K), "float16")
            T.copy(B, B_shared)
            T.copy(B_shared, B_local)
            for i, j in T.Parallel(N, K):
                C_local[i, j] = T.Cast("float16", (B_local[i, j // 2] >> (4 * (j % 2))) & 15)
            T.copy(C_local, C)

    b = np.random.default_rng(1).integers(0, 256, (N, K // 2), dtype=np.uint8)
    c = np.zeros((N, K), np.float16)
    _run(unpack, b, c)
    np.testing.assert_array_equal(c, _unpack(b))


def test_packed_fragment_feeding_a_register_gemm_operand():
    """The gemm fixes the dequantised operand's layout; the packed fragment it is unpacked from
    (B_local[i, j // 2]) takes the matching layout, replicated where mma lanes share a byte."""
    N, M, K = 64, 32, 32

    @T.prim_func
    def dq_gemm(A: T.Tensor((M, K), "float16"), B: T.Tensor((N, K // 2), "uint8"),
                Ct: T.Tensor((N, M), "float32")):
        with T.Kernel(1, threads=128):
            A_shared = T.alloc_shared((M, K), "float16")
            B_shared = T.alloc_shared((N, K // 2), "uint8")
            B_local = T.alloc_fragment((N, K // 2), "uint8")
            B_dq = T.alloc_fragment((N, K), "float16")
            acc = T.alloc_fragment((N, M), "float32")
            T.clear(acc)
            T.copy(A, A_shared)
            T.copy(B, B_shared)
            T.copy(B_shared, B_local)
            for i, j in T.Parallel(N, K):
                B_dq[i, j] = T.Cast("float16", (B_local[i, j // 2] >> (4 * (j % 2))) & 15)
            T.gemm(B_dq, A_shared, acc, transpose_B=True)
            T.copy(acc, Ct)

    rng = np.random.default_rng(2)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.integers(0, 256, (N, K // 2), dtype=np.uint8)
    ct = np.zeros((N, M), np.float32)
    _run(dq_gemm, a, b, ct)
    np.testing.assert_allclose(ct, _unpack(b).astype(np.float32) @ a.astype(np.float32).T, rtol=1e-3, atol=1e-2)


def test_pipeline_stage_0_may_be_a_loop_filling_shared_tiles():
    """T.Parallel loops that fill shared tiles (with a conversion, which cp.async cannot do) run
    in stage 0, one iteration ahead, into double-buffered tiles; a stage-0 loop that writes a
    fragment is refused."""
    M = N = K = 64

    def build(bad: bool):
        @T.prim_func
        def k7(A: T.Tensor((M, K), "float32"), B: T.Tensor((K, N), "float32"), C: T.Tensor((M, N), "float32")):
            with T.Kernel(1, 1, threads=128):
                a = T.alloc_shared((M, 16), "float16")
                b = T.alloc_shared((16, N), "float16")
                f = T.alloc_fragment((M, 16), "float16")
                c = T.alloc_fragment((M, N), "float32")
                T.clear(c)
                for k in T.Pipelined(K // 16, order=[0, 1, 2], stage=[0, 0, 1]):
                    for i, j in T.Parallel(M, 16):
                        if bad:
                            f[i, j] = A[i, k * 16 + j]
                        else:
                            a[i, j] = A[i, k * 16 + j]
                    for i, j in T.Parallel(16, N):
                        b[i, j] = B[k * 16 + i, j]
                    T.gemm(a, b, c)
                T.copy(c, C)

        return k7

    rng = np.random.default_rng(5)
    a = rng.uniform(-1, 1, (M, K)).astype(np.float32)
    b = rng.uniform(-1, 1, (K, N)).astype(np.float32)
    c = np.zeros((M, N), np.float32)
    _run(build(False), a, b, c)  # the emulator raises on a race between the stages
    ref = a.astype(np.float16).astype(np.float32) @ b.astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(c, ref, atol=1e-3, rtol=1e-3)
    with pytest.raises(tilewise.CompileError, match="stage-0 statement may only fill shared tiles"):
        _run(build(True), a, b, c)


def test_fragment_flattened_by_hand_takes_its_layout_from_the_loop():
    """TileLang's composable-index idiom: B_local[i * bn + j] = A_local[i, j], then a 1-d loop
    over B_local."""
    bm, bn = 16, 24

    @T.prim_func
    def flat(A: T.Tensor((bm, bn), "float16"), B: T.Tensor((bm * bn,), "float16")):
        with T.Kernel(1, threads=64):
            A_local = T.alloc_fragment((bm, bn), "float16")
            B_local = T.alloc_fragment((bm * bn,), "float16")
            T.copy(A, A_local)
            for i, j in T.Parallel(bm, bn):
                B_local[i * bn + j] = A_local[i, j] * 2
            for i in T.Parallel(bm * bn):
                B[i] = B_local[i]

    a = np.random.default_rng(6).standard_normal((bm, bn)).astype(np.float16)
    b = np.zeros(bm * bn, np.float16)
    _run(flat, a, b)
    np.testing.assert_array_equal(b, (a * 2).ravel())
