"""TileLang 0.1.15's explicit asynchrony: T.gemm(wg_wait=n), T.wgmma_gemm and T.async_copy. The
CUDA programs run in the emulator (sm_90a / sm_80) against numpy, with its checks of reads
before the wait that completes them; the CPU target runs the same programs synchronously."""
import numpy as np
import pytest
from conftest import nvrtc_check

import tilewise
import tilewise.language as T
from tilewise.emulator.errors import AsyncAccessError, AsyncCopyError
from tilewise.errors import CompileError

M, N, K = 64, 64, 32
SM90A = "cuda -arch=sm_90a"


def _ab(rng):
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    return a, b, a.astype(np.float64) @ b.astype(np.float64)


def _close(c, ref):
    np.testing.assert_allclose(c, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())


def gemm_kernel(wg_wait, wait=True):
    """C = A @ B with T.gemm(wg_wait=...) and, when `wait`, T.wait_wgmma(0) before C is read."""

    @T.prim_func
    def g(A: T.Tensor((M, K), "float16"), B: T.Tensor((K, N), "float16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(1, threads=128):
            As = T.alloc_shared((M, K), "float16")
            Bs = T.alloc_shared((K, N), "float16")
            acc = T.alloc_fragment((M, N), "float32")
            T.copy(A, As)
            T.copy(B, Bs)
            T.gemm(As, Bs, acc, clear_accum=True, wg_wait=wg_wait)
            if wait:
                T.wait_wgmma(0)
            T.copy(acc, C)

    return g


def _run(f, rng, target=SM90A, backend="emulator"):
    a, b, ref = _ab(rng)
    c = np.zeros((M, N), np.float32)
    tilewise.compile(f, target=target, execution_backend=backend)(a, b, c)
    return c, ref


# ---------------------------------------------------------------------------- T.gemm(wg_wait=n)


@pytest.mark.parametrize("wg_wait", [0, -1])
def test_gemm_wg_wait_then_wait_wgmma_matches_numpy(rng, wg_wait):
    _close(*_run(gemm_kernel(wg_wait), rng))


def test_gemm_wg_wait_minus_one_reading_c_before_wait_wgmma_is_reported(rng):
    with pytest.raises(AsyncAccessError, match="wgmma"):
        _run(gemm_kernel(-1, wait=False), rng)


def test_gemm_wg_wait_emits_the_wait_group_it_asks_for():
    src = tilewise.compile(gemm_kernel(-1), target=SM90A, execution_backend="emulator").get_kernel_source()
    assert src.count("wgmma_wait<") == 1  # only the program's T.wait_wgmma(0)
    src = tilewise.compile(gemm_kernel(0, wait=False), target=SM90A, execution_backend="emulator").get_kernel_source()
    assert "wgmma_wait<0>" in src


@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(tilewise.errors, "_warned", set())


def _warnings_of(fn) -> list[str]:
    import warnings

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fn()
    return [str(x.message) for x in w]


@pytest.mark.parametrize("target, backend, how", [("cuda -arch=sm_80", "emulator", "mma.sync"),
                                                  ("cpu", "auto", "the CPU micro-kernel")])
def test_gemm_wg_wait_without_wgmma_is_synchronous_and_said_once(rng, fresh_warnings, target, backend, how):
    # tilewise.lower always lowers (a compile may find the kernel in the disk cache and skip it)
    f = gemm_kernel(-1, wait=False)  # no T.wait_wgmma: C is complete when the synchronous gemm returns
    msgs = _warnings_of(lambda: [tilewise.lower(f, target=target) for _ in range(2)])
    ours = [m for m in msgs if "T.gemm(wg_wait=-1) has no effect here" in m]
    assert len(ours) == 1 and how in ours[0], msgs
    _close(*_run(f, rng, target, backend))


def test_gemm_wg_wait_on_an_amd_gpu_is_said_once(fresh_warnings):
    msgs = _warnings_of(lambda: tilewise.lower(gemm_kernel(-1, wait=False), target="hip -arch=gfx942"))
    assert [m for m in msgs if "T.gemm(wg_wait=-1) has no effect here" in m and "AMD GPU" in m], msgs


def test_gemm_wg_wait_zero_never_warns(rng, fresh_warnings):
    msgs = _warnings_of(lambda: _run(gemm_kernel(0), rng, "cuda -arch=sm_80"))
    assert not [m for m in msgs if "wg_wait" in m], msgs


def test_gemm_wg_wait_in_annotations_is_honoured():
    src = tilewise.compile(gemm_kernel(0, wait=False), target=SM90A, execution_backend="emulator").get_kernel_source()
    assert "wgmma_wait<0>" in src

    @T.prim_func
    def g(A: T.Tensor((M, K), "float16"), B: T.Tensor((K, N), "float16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(1, threads=128):
            As = T.alloc_shared((M, K), "float16")
            Bs = T.alloc_shared((K, N), "float16")
            acc = T.alloc_fragment((M, N), "float32")
            T.copy(A, As)
            T.copy(B, Bs)
            T.gemm(As, Bs, acc, clear_accum=True, annotations={"wg_wait": -1})
            T.copy(acc, C)

    with pytest.raises(AsyncAccessError):
        _run(g, np.random.default_rng(0))


def two_gemms_kernel():
    """Two groups in flight; T.gemm(wg_wait=1) on the second completes the first only."""

    @T.prim_func
    def g(A: T.Tensor((M, K), "float16"), B: T.Tensor((K, N), "float16"), C: T.Tensor((2, M, N), "float32")):
        with T.Kernel(1, threads=128):
            As = T.alloc_shared((M, K), "float16")
            Bs = T.alloc_shared((K, N), "float16")
            c1 = T.alloc_fragment((M, N), "float32")
            c2 = T.alloc_fragment((M, N), "float32")
            T.copy(A, As)
            T.copy(B, Bs)
            T.gemm(As, Bs, c1, clear_accum=True, wg_wait=-1)
            T.gemm(As, Bs, c2, clear_accum=True, wg_wait=1)
            for i, j in T.Parallel(M, N):
                c1[i, j] = c1[i, j] * 2  # complete: only c2's group may still be in flight
            T.copy(c1, C[0, :, :])
            T.wait_wgmma(0)
            T.copy(c2, C[1, :, :])

    return g


def test_gemm_wg_wait_n_leaves_the_newest_n_groups_in_flight(rng):
    a, b, ref = _ab(rng)
    c = np.zeros((2, M, N), np.float32)
    k = tilewise.compile(two_gemms_kernel(), target=SM90A, execution_backend="emulator")
    assert "wgmma_wait<1>" in k.get_kernel_source()
    k(a, b, c)
    _close(c[0], 2 * ref)
    _close(c[1], ref)
    nvrtc_check(two_gemms_kernel(), expect={"sm_90a": ("HGMMA",)}, archs=("sm_90a",))


def chained_gemms_kernel():
    """TileLang's MLA-decode form: several gemms into one accumulator, each wg_wait=-1, one wait."""

    @T.prim_func
    def g(A: T.Tensor((M, 2 * K), "float16"), B: T.Tensor((N, 2 * K), "float16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(1, threads=128):
            A0 = T.alloc_shared((M, K), "float16")
            A1 = T.alloc_shared((M, K), "float16")
            B0 = T.alloc_shared((N, K), "float16")
            B1 = T.alloc_shared((N, K), "float16")
            acc = T.alloc_fragment((M, N), "float32")
            T.copy(A[0, 0], A0)
            T.copy(A[0, K], A1)
            T.copy(B[0, 0], B0)
            T.copy(B[0, K], B1)
            T.clear(acc)
            T.gemm(A0, B0, acc, transpose_B=True, wg_wait=-1)
            T.gemm(A1, B1, acc, transpose_B=True, wg_wait=-1)
            T.wait_wgmma(0)
            T.copy(acc, C)

    return g


def test_chained_gemms_into_one_accumulator_with_one_wait(rng):
    a = rng.standard_normal((M, 2 * K)).astype(np.float16)
    b = rng.standard_normal((N, 2 * K)).astype(np.float16)
    c = np.zeros((M, N), np.float32)
    tilewise.compile(chained_gemms_kernel(), target=SM90A, execution_backend="emulator")(a, b, c)
    _close(c, a.astype(np.float64) @ b.astype(np.float64).T)
    nvrtc_check(chained_gemms_kernel(), expect={"sm_90a": ("HGMMA",)}, archs=("sm_90a",))


def pipelined_wgmma_kernel(m=128, n=128, kk=256, bm=64, bn=64, bk=64):
    """T.Pipelined (on sm_90a: TMA stages, warp-specialised) with the wait the program writes."""

    @T.prim_func
    def g(A: T.Tensor((m, kk), "float16"), B: T.Tensor((kk, n), "float16"), C: T.Tensor((m, n), "float32")):
        with T.Kernel(T.ceildiv(n, bn), T.ceildiv(m, bm), threads=128) as (bx, by):
            As = T.alloc_shared((bm, bk), "float16")
            Bs = T.alloc_shared((bk, bn), "float16")
            acc = T.alloc_fragment((bm, bn), "float32")
            T.clear(acc)
            for ko in T.Pipelined(T.ceildiv(kk, bk), num_stages=2):
                T.copy(A[by * bm, ko * bk], As)
                T.copy(B[ko * bk, bx * bn], Bs)
                T.gemm(As, Bs, acc, wg_wait=-1)
                T.wait_wgmma(0)
            T.copy(acc, C[by * bm, bx * bn])

    return g


def test_gemm_wg_wait_in_a_pipelined_loop_matches_numpy(rng):
    a = rng.standard_normal((128, 256)).astype(np.float16)
    b = rng.standard_normal((256, 128)).astype(np.float16)
    c = np.zeros((128, 128), np.float32)
    tilewise.compile(pipelined_wgmma_kernel(), target=SM90A, execution_backend="emulator")(a, b, c)
    _close(c, a.astype(np.float64) @ b.astype(np.float64))


def test_gemm_wg_wait_must_be_an_integer_from_minus_one():
    with pytest.raises(CompileError, match="wg_wait=-2"):
        gemm_kernel(-2)


def test_gemm_wg_wait_compiles_to_hgmma_with_nvrtc():
    nvrtc_check(gemm_kernel(-1), expect={"sm_90a": ("HGMMA",)}, archs=("sm_90a",))


# ---------------------------------------------------------------------------- T.wgmma_gemm


def wgmma_gemm_kernel(wait=True, a_dtype="float16", c_dtype="float32", threads=128):
    @T.prim_func
    def g(A: T.Tensor((M, K), a_dtype), B: T.Tensor((K, N), a_dtype), C: T.Tensor((M, N), c_dtype)):
        with T.Kernel(1, threads=threads):
            As = T.alloc_shared((M, K), a_dtype)
            Bs = T.alloc_shared((K, N), a_dtype)
            acc = T.alloc_fragment((M, N), c_dtype)
            T.clear(acc)
            for _k in T.serial(2):  # the wait also frees As, Bs for the next copy
                T.copy(A, As)
                T.copy(B, Bs)
                T.wgmma_gemm(As, Bs, acc)
                if wait:
                    T.wait_wgmma(0)
            T.copy(acc, C)

    return g


def test_wgmma_gemm_with_wait_wgmma_matches_numpy(rng):
    c, ref = _run(wgmma_gemm_kernel(), rng)
    _close(c, 2 * ref)


def test_wgmma_gemm_never_waits_itself(rng):
    k = tilewise.compile(wgmma_gemm_kernel(), target=SM90A, execution_backend="emulator")
    assert k.get_kernel_source().count("wgmma_wait<") == 1  # the program's
    with pytest.raises(AsyncAccessError):
        _run(wgmma_gemm_kernel(wait=False), rng)


def test_wgmma_gemm_operands_overwritten_before_the_wait_are_reported(rng):
    """Without T.wait_wgmma the next iteration's copy overwrites As / Bs while wgmma reads them."""

    @T.prim_func
    def g(A: T.Tensor((M, K), "float16"), B: T.Tensor((K, N), "float16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(1, threads=128):
            As = T.alloc_shared((M, K), "float16")
            Bs = T.alloc_shared((K, N), "float16")
            acc = T.alloc_fragment((M, N), "float32")
            T.clear(acc)
            for _k in T.serial(2):
                T.copy(A, As)
                T.copy(B, Bs)
                T.wgmma_gemm(As, Bs, acc)
            T.wait_wgmma(0)
            T.copy(acc, C)

    with pytest.raises(AsyncAccessError, match="overwrites .* while an asynchronous wgmma operand read"):
        _run(g, rng)


def k_sliced_kernel(D=128):
    """TileLang's sparse-MLA form: K ranges of shared tiles (one in a pipeline slot), chained."""

    @T.prim_func
    def g(A: T.Tensor((M, D), "float16"), B: T.Tensor((N, D), "float16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(1, threads=128):
            As = T.alloc_shared((M, D), "float16")
            Bs = T.alloc_shared((2, N, D), "float16")
            acc = T.alloc_fragment((M, N), "float32")
            T.copy(A, As)
            T.copy(B, Bs[1, :, :])
            T.clear(acc)
            T.wgmma_gemm(As[:, : D // 2], Bs[1, :, : D // 2], acc, transpose_B=True)
            T.wgmma_gemm(As[:, D // 2:], Bs[1, :, D // 2:], acc, transpose_B=True)
            T.wait_wgmma(0)
            T.copy(acc, C)

    return g


def test_wgmma_gemm_on_k_slices_of_shared_tiles_matches_numpy(rng):
    D = 128
    a = rng.standard_normal((M, D)).astype(np.float16)
    b = rng.standard_normal((N, D)).astype(np.float16)
    c = np.zeros((M, N), np.float32)
    k = tilewise.compile(k_sliced_kernel(D), target=SM90A, execution_backend="emulator")
    k(a, b, c)
    _close(c, a.astype(np.float64) @ b.astype(np.float64).T)
    assert sum("T.wgmma_gemm 64x64x64: wgmma" in n for n in k.lowering_notes()) == 2
    c = np.zeros((M, N), np.float32)
    tilewise.compile(k_sliced_kernel(D), target=SM90A, execution_backend="ptx")(a, b, c)
    _close(c, a.astype(np.float64) @ b.astype(np.float64).T)


@pytest.mark.parametrize("target, why", [
    ("cuda -arch=sm_80", "sm_80 has no wgmma"),
    ("cuda -arch=sm_90", "sm_90 has no wgmma"),
    ("cpu", "the CPU target has no wgmma"),
    ("hip -arch=gfx942", "gfx942 (is an AMD GPU|has no wgmma)"),
])
def test_wgmma_gemm_without_wgmma_is_a_compile_error(target, why):
    with pytest.raises(CompileError, match=f"T.wgmma_gemm 64x64x32 .*cannot use wgmma: {why}"):
        tilewise.lower(wgmma_gemm_kernel(), target=target)


@pytest.mark.parametrize("kw, why", [
    ({"a_dtype": "float64", "c_dtype": "float64"}, "wgmma has no float64 x float64 -> float64 form"),
    ({"threads": 96}, "the 96 threads running it are not whole warpgroups"),
])
def test_wgmma_gemm_operands_wgmma_cannot_take_are_a_compile_error(kw, why):
    with pytest.raises(CompileError, match=f"cannot use wgmma: {why}"):
        tilewise.lower(wgmma_gemm_kernel(wait=False, **kw), target=SM90A)


# ---------------------------------------------------------------------------- T.async_copy


def async_copy_kernel(wait=True, corner=False, dst_scope="shared", dtype="float16", shape=(64, 64)):
    R, C = shape

    @T.prim_func
    def g(A: T.Tensor((2 * R, C), dtype), B: T.Tensor((R, C), dtype)):
        with T.Kernel(1, threads=128):
            S = T.alloc_shared((R, C), dtype) if dst_scope == "shared" else T.alloc_fragment((R, C), dtype)
            if corner:
                T.async_copy(A[R, 0], S)  # the corner form: the tile of S's shape at row R
            else:
                T.async_copy(A[R:2 * R, :], S)
            if wait:
                T.ptx_wait_group(0)
            for i, j in T.Parallel(R, C):
                B[i, j] = S[(i + 1) % R, j] + 1  # other threads' elements: ordered by a barrier after the wait

    return g


def _run_copy(f, target, shape=(64, 64), dtype=np.float16):
    a = np.random.default_rng(1).standard_normal((2 * shape[0], shape[1])).astype(dtype)
    b = np.zeros(shape, dtype)
    tilewise.compile(f, target=target, execution_backend="auto" if target == "cpu" else "emulator")(a, b)
    np.testing.assert_array_equal(b, np.roll(a[shape[0]:], -1, axis=0) + dtype(1))


@pytest.mark.parametrize("target", ["cuda -arch=sm_80", SM90A, "cpu"])
@pytest.mark.parametrize("corner", [False, True])
def test_async_copy_then_wait_group_matches_numpy(target, corner):
    _run_copy(async_copy_kernel(corner=corner), target)


@pytest.mark.parametrize("target", ["cuda -arch=sm_80", SM90A])
def test_async_copy_reading_the_destination_before_the_wait_is_reported(target):
    with pytest.raises(AsyncCopyError, match="while a cp.async copy into it is still in flight"):
        _run_copy(async_copy_kernel(wait=False), target)


def test_async_copy_is_cp_async_and_a_commit_without_a_wait():
    src = tilewise.compile(async_copy_kernel(), target=SM90A, execution_backend="emulator").get_kernel_source()
    assert "cp.async" in src or "cp_async" in src
    assert "tma" not in src.lower().replace("tw::", "")
    src_nowait = tilewise.compile(async_copy_kernel(wait=False), target="cuda -arch=sm_80",
                                  execution_backend="emulator").get_kernel_source()
    assert "wait" not in "".join(line for line in src_nowait.splitlines() if "cp_async" in line)


@pytest.mark.parametrize("kw, msg", [
    ({"dst_scope": "fragment"}, "destination S is in local.fragment memory"),
])
def test_async_copy_needs_global_to_shared(kw, msg):
    with pytest.raises(CompileError, match=msg):
        async_copy_kernel(**kw)


def test_async_copy_chunks_under_four_bytes_are_a_compile_error():
    with pytest.raises(CompileError, match="cp.async moves 4, 8 or 16 bytes"):
        tilewise.lower(async_copy_kernel(dtype="float16", shape=(64, 1)), target="cuda -arch=sm_80")


def test_async_copy_on_an_amd_gpu_is_a_compile_error():
    with pytest.raises(CompileError, match="T.async_copy A -> S: gfx942 .* has no cp.async"):
        tilewise.lower(async_copy_kernel(), target="hip -arch=gfx942")


def test_async_copy_on_the_cpu_is_synchronous():
    # native CPU code (no thread primitive in the kernel): the copy has landed when it returns
    _run_copy(async_copy_kernel(wait=False), "cpu")


def test_async_copy_compiles_to_ldgsts_with_nvrtc():
    nvrtc_check(async_copy_kernel(), expect=("LDGSTS",))


def pipelined_gemm(bm=64, bn=64, bk=32, size=(128, 128, 96)):
    """TileLang's sm_80 form: T.async_copy + T.ptx_wait_group(0) in a pipelined K loop."""
    m, n, k = size

    @T.prim_func
    def g(A: T.Tensor((m, k), "float16"), B: T.Tensor((k, n), "float16"), C: T.Tensor((m, n), "float32")):
        with T.Kernel(T.ceildiv(n, bn), T.ceildiv(m, bm), threads=128) as (bx, by):
            As = T.alloc_shared((bm, bk), "float16")
            Bs = T.alloc_shared((bk, bn), "float16")
            acc = T.alloc_fragment((bm, bn), "float32")
            T.clear(acc)
            for ko in T.Pipelined(T.ceildiv(k, bk), num_stages=2):
                T.async_copy(A[by * bm, ko * bk], As)
                T.ptx_wait_group(0)
                T.async_copy(B[ko * bk, bx * bn], Bs)
                T.ptx_wait_group(0)
                T.gemm(As, Bs, acc)
            T.copy(acc, C[by * bm, bx * bn])

    return g


@pytest.mark.parametrize("target", ["cuda -arch=sm_80", SM90A])
def test_async_copy_in_a_pipelined_gemm_matches_numpy(rng, target):
    m, n, k = 128, 128, 96
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((k, n)).astype(np.float16)
    c = np.zeros((m, n), np.float32)
    tilewise.compile(pipelined_gemm(), target=target, execution_backend="emulator")(a, b, c)
    _close(c, a.astype(np.float64) @ b.astype(np.float64))


# ---------------------------------------------------------------------------- the PTX NVRTC made


def test_the_ptx_interpreter_runs_the_compiled_async_forms(rng):
    """The PTX NVRTC made from them (wgmma.wait_group 1 and none, cp.async without a wait of
    its own), run by tilewise/ptx against numpy."""
    a, b, ref = _ab(rng)
    c = np.zeros((2, M, N), np.float32)
    tilewise.compile(two_gemms_kernel(), target=SM90A, execution_backend="ptx")(a, b, c)
    _close(c[0], 2 * ref)
    _close(c[1], ref)
    c = np.zeros((M, N), np.float32)
    tilewise.compile(wgmma_gemm_kernel(), target=SM90A, execution_backend="ptx")(a, b, c)
    _close(c, 2 * ref)
    x = rng.standard_normal((128, 64)).astype(np.float16)
    y = np.zeros((64, 64), np.float16)
    tilewise.compile(async_copy_kernel(), target="cuda -arch=sm_80", execution_backend="ptx")(x, y)
    np.testing.assert_array_equal(y, np.roll(x[64:], -1, axis=0) + np.float16(1))


def test_wgmma_mma_is_wgmma_gemm_and_the_sparse_form_is_refused():
    assert T.wgmma_mma is T.wgmma_gemm  # TileLang 0.1.15's alias
    with pytest.raises(tilewise.CompileError, match="T.wgmma_gemm_sp.*T.gemm_sp"):
        T.wgmma_gemm_sp()
