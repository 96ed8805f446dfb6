"""TileLang's raw TMA primitives (language/tma_descriptor.py): `T.create_tma_descriptor` with
TileLang's argument list (CUDA's enumerations, dimensions innermost first, byte strides whose first
is the element size), `T.tma_load(desc, mbarrier, smem, coords...)` and
`T.tma_store(desc, smem, coords...)` (coordinates innermost first).

Without a GPU the evidence is: hand-written kernels in TileLang's style (descriptor, mbarrier,
tma_load, wait, compute, tma_store) run in the thread-IR emulator and, compiled by NVRTC for
sm_90a, in the PTX interpreter, against numpy, with boxes past the tensor's edges (zero fill on
load, nothing written on store); their SASS (UTMALDG, UTMASTG); and a CompileError naming the
argument for each bad descriptor, a report of the emulator for a wrong expect_tx byte count, and
CompileErrors for targets without TMA."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.backend.cuda.inspect import instruction_mix
from tilewise.errors import CompileError

SM90A = "cuda -arch=sm_90a"
F16 = 6  # CU_TENSOR_MAP_DATA_TYPE_FLOAT16
NONE, SW128 = 0, 3  # CUtensorMapSwizzle
L2_128B = 2


def shift_rows(M, N, bm=64, bn=64, expect=None, box=None, swizzle=NONE, rank=2, strides=None):
    """B[r, c] = 2 * A[r - 1, c] + 1 (A[-1] reads as zero): each block loads the box one row above
    its tile (row -1 of the first is outside A: zero fill), computes in shared memory and stores
    its tile (rows past M are not written)."""
    box = box or (bn, bm)
    strides = strides or (2, 2 * N)
    nbytes = bm * bn * 2 if expect is None else expect

    @T.prim_func
    def main(A: T.Tensor((M, N), "float16"), B: T.Tensor((M, N), "float16")):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            S = T.alloc_shared((bm, bn), "float16")
            O = T.alloc_shared((bm, bn), "float16")
            bar = T.alloc_barrier(1)
            tx = T.get_thread_binding()
            if rank == 2:
                a_desc = T.create_tma_descriptor(F16, 2, A.data, N, M, *strides, *box, 1, 1, 0, swizzle, L2_128B, 0)
            else:
                a_desc = T.create_tma_descriptor(F16, 1, A.data, N, 2, bn, 1, 0, swizzle, L2_128B, 0)
            b_desc = T.create_tma_descriptor(F16, 2, B.data, N, M, 2, 2 * N, bn, bm, 1, 1, 0, NONE, L2_128B, 0)
            if tx == 0:
                T.mbarrier_expect_tx(bar, nbytes)
                T.tma_load(a_desc, bar, S, bx * bn, by * bm - 1)
                T.mbarrier_arrive(bar)
            T.mbarrier_wait_parity(bar, 0)
            for i, j in T.Parallel(bm, bn):
                O[i, j] = S[i, j] * T.float16(2) + T.float16(1)
            T.fence_proxy_async()
            T.sync_threads()
            if tx == 0:
                T.tma_store(b_desc, O, bx * bn, by * bm)
                T.tma_store_arrive()
                T.tma_store_wait(0)

    return main


def shift_ref(a):
    ref = np.zeros_like(a)
    ref[1:] = a[:-1]
    return ref * np.float16(2) + np.float16(1)


def gemm(M, N, K, bm=64, bn=64, bk=64):
    """TileLang's hand-written Hopper GEMM shape: 128-byte swizzled descriptors for A and B, one
    mbarrier whose phase k % 2 each K step waits for, T.gemm (wgmma) on the landed tiles, the
    result staged in shared memory and written back by a TMA store."""

    @T.prim_func
    def main(A: T.Tensor((M, K), "float16"), B: T.Tensor((K, N), "float16"), C: T.Tensor((M, N), "float16")):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            A_s = T.alloc_shared((bm, bk), "float16")
            B_s = T.alloc_shared((bk, bn), "float16")
            C_s = T.alloc_shared((bm, bn), "float16")
            C_l = T.alloc_fragment((bm, bn), "float32")
            bar = T.alloc_barrier(1)
            tx = T.get_thread_binding()
            a_desc = T.create_tma_descriptor(F16, 2, A.data, K, M, 2, 2 * K, bk, bm, 1, 1, 0, SW128, L2_128B, 0)
            b_desc = T.create_tma_descriptor(F16, 2, B.data, N, K, 2, 2 * N, bn, bk, 1, 1, 0, SW128, L2_128B, 0)
            c_desc = T.create_tma_descriptor(F16, 2, C.data, N, M, 2, 2 * N, bn, bm, 1, 1, 0, SW128, L2_128B, 0)
            T.clear(C_l)
            for k in T.serial(T.ceildiv(K, bk)):
                if tx == 0:
                    T.mbarrier_expect_tx(bar, (bm * bk + bk * bn) * 2)
                    T.tma_load(a_desc, bar, A_s, k * bk, by * bm)
                    T.tma_load(b_desc, bar, B_s, bx * bn, k * bk)
                    T.mbarrier_arrive(bar)
                T.mbarrier_wait_parity(bar, k % 2)
                T.gemm(A_s, B_s, C_l)
                T.sync_threads()  # every warp's wgmma has read the tiles before the next loads land
            T.copy(C_l, C_s)
            T.fence_proxy_async()
            T.sync_threads()
            if tx == 0:
                T.tma_store(c_desc, C_s, bx * bn, by * bm)
                T.tma_store_arrive()
                T.tma_store_wait(0)

    return main


def _compile(func, backend, out_idx=(1,), target=SM90A):
    return tilewise.compile(func, out_idx=list(out_idx), target=target, execution_backend=backend)


def _a(M, N, seed=0):
    return np.random.default_rng(seed).standard_normal((M, N)).astype(np.float16)


# ---------------------------------------------------------------------------- results


@pytest.mark.parametrize("backend", ["emulator", "ptx"])
def test_load_compute_store_with_ragged_edges(backend):
    M, N = 136, 200 if backend == "emulator" else 136  # tiles past the bottom and right edges
    a = _a(M, N)
    b = _compile(shift_rows(M, N), backend)(a)
    np.testing.assert_array_equal(b, shift_ref(a))


@pytest.mark.parametrize("backend", ["emulator", "ptx"])
def test_swizzled_gemm_with_ragged_edges(backend):
    M, N, K = (72, 136, 192) if backend == "emulator" else (72, 72, 128)
    rng = np.random.default_rng(1)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    c = _compile(gemm(M, N, K), backend, out_idx=(2,))(a, b)
    np.testing.assert_allclose(c.astype(np.float64), a.astype(np.float64) @ b.astype(np.float64), rtol=2e-3, atol=2e-2)


def test_source_and_sass():
    k = _compile(gemm(128, 128, 128), "ptx", out_idx=(2,))
    src = k.get_kernel_source()
    # one kernel parameter per descriptor, the loads on the program's barrier, coordinates passed on
    for name in ("A_desc0", "B_desc1", "C_desc2"):
        assert f"const __grid_constant__ CUtensorMap {name}" in src
    assert "tw::tma_load_2d(&A_desc0, " in src and "tw::tma_store_2d(&C_desc2, " in src
    mix = instruction_mix(k.get_sass(), ["UTMALDG", "UTMASTG", "HGMMA", "SYNCS"])
    assert mix["UTMALDG"] >= 2 and mix["UTMASTG"] >= 1 and mix["HGMMA"] >= 1 and mix["SYNCS"] >= 1


def test_one_descriptor_per_distinct_map():
    @T.prim_func
    def main(A: T.Tensor((64, 64), "float16"), B: T.Tensor((64, 64), "float16")):
        with T.Kernel(1, threads=128):
            S = T.alloc_shared((64, 64), "float16")
            bar = T.alloc_barrier(1)
            tx = T.get_thread_binding()
            if tx == 0:
                T.mbarrier_expect_tx(bar, 8192)
                for h in T.serial(2):  # the same descriptor written twice is one map
                    T.tma_load(T.create_tma_descriptor(F16, 2, A.data, 64, 64, 2, 128, 64, 32, 1, 1, 0, 0, 2, 0),
                               bar, S[h * 32, 0], 0, h * 32)
                T.mbarrier_arrive(bar)
            T.mbarrier_wait_parity(bar, 0)
            T.copy(S, B)

    k = _compile(main, "emulator")
    a = _a(64, 64)
    np.testing.assert_array_equal(k(a), a)
    assert k.get_kernel_source().count("CUtensorMap A_desc") == 1


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize("kw, match", [
    ({"box": (64, 300)}, r"box_dim\[1\] must be from 1 to 256, got 300"),
    ({"box": (4, 64)}, r"box_dim\[0\] = 4 elements of float16 is 8 bytes"),
    ({"swizzle": 5}, r"swizzle 5 is not a CUtensorMapSwizzle"),
    ({"swizzle": 1}, r"swizzle 1 \(32B\) needs box rows of at most 32 bytes; box_dim\[0\] = 64"),
    ({"rank": 1}, r"rank 1 for A, a 2-d tensor"),
    ({"strides": (2, 256)}, r"global_stride\[1\] is 256 bytes, but A is row-major"),
])
def test_bad_descriptors_name_the_argument(kw, match):
    with pytest.raises(CompileError, match=match):
        shift_rows(64, 64, **kw)


def test_strides_must_be_16_byte_multiples():
    with pytest.raises(CompileError, match=r"global_stride\[1\] is 36 bytes; TMA needs strides that are multiples of 16"):
        @T.prim_func
        def main(A: T.Tensor((8, 18), "float16")):
            with T.Kernel(1, threads=32):
                T.create_tma_descriptor(F16, 2, A.data, 18, 8, 2, 36, 8, 8, 1, 1, 0, 0, 2, 0)


@pytest.mark.parametrize("args, match", [
    ((7, 2), r"data_type 7 \(FLOAT32\) does not describe A's elements \(float16\)"),
    ((6, 2, "dims"), r"global_dim\[0\] \(innermost first\) is 32, but A's dimension 1 is 64"),
    ((6, 3), r"a rank-3 descriptor takes 7 \+ 4 \* 3 = 19 arguments"),
])
def test_descriptor_arguments(args, match):
    def desc(A):
        if len(args) == 3:
            return T.create_tma_descriptor(6, 2, A.data, 32, 64, 2, 128, 32, 64, 1, 1, 0, 0, 2, 0)
        return T.create_tma_descriptor(args[0], args[1], A.data, 64, 64, 2, 128, 64, 64, 1, 1, 0, 0, 2, 0)

    with pytest.raises(CompileError, match=match):
        @T.prim_func
        def main(A: T.Tensor((64, 64), "float16")):
            with T.Kernel(1, threads=32):
                desc(A)


def test_coordinates_follow_the_rank():
    with pytest.raises(CompileError, match=r"T.tma_load: the descriptor has rank 2, so it takes 2 coordinates"):
        @T.prim_func
        def main(A: T.Tensor((64, 64), "float16")):
            with T.Kernel(1, threads=32):
                S = T.alloc_shared((64, 64), "float16")
                bar = T.alloc_barrier(1)
                d = T.create_tma_descriptor(6, 2, A.data, 64, 64, 2, 128, 64, 64, 1, 1, 0, 0, 2, 0)
                T.tma_load(d, bar, S, 0)


def test_a_box_larger_than_the_tile():
    with pytest.raises(CompileError, match=r"box \[64, 64\] \(innermost first\) is 8192 bytes, but S has 4096 bytes"):
        @T.prim_func
        def main(A: T.Tensor((64, 64), "float16")):
            with T.Kernel(1, threads=32):
                S = T.alloc_shared((32, 64), "float16")
                bar = T.alloc_barrier(1)
                d = T.create_tma_descriptor(6, 2, A.data, 64, 64, 2, 128, 64, 64, 1, 1, 0, 0, 2, 0)
                T.tma_load(d, bar, S, 0, 0)


def test_wrong_expect_tx_is_reported_by_the_emulator():
    from tilewise.emulator.errors import MbarrierError

    k = _compile(shift_rows(64, 64, expect=64 * 64 * 2 - 16), "emulator")
    with pytest.raises(MbarrierError, match=r"wrong expect_tx byte count: phase 0 of mbarrier bar\[0\].*tx-count of -16"):
        k(_a(64, 64))


def test_targets_without_tma_refuse():
    with pytest.raises(CompileError, match=r"T.tma_load needs the copy engine \(TMA\) of sm_90.*sm_80"):
        _compile(shift_rows(64, 64), "emulator", target="cuda -arch=sm_80")


def test_the_cpu_target_runs_tma_kernels_as_sm90a():
    """A block of the CPU target is one thread, so a kernel that programs TMA and mbarriers runs
    thread-exactly in the emulator, as its sm_90a program (jit/kernel.py), with the same result."""
    a = _a(64, 64)
    with pytest.warns(UserWarning, match="thread-exactly"):
        k = _compile(shift_rows(64, 64), None, target="cpu")
    assert k.build.machine.name == "sm_90a"
    np.testing.assert_array_equal(k(a), _compile(shift_rows(64, 64), "emulator")(a))


def test_dynamic_rows():
    """A symbolic dimension: the descriptor names the same variable (and strides built from the
    static ones); the map is encoded at launch from the tensor passed."""
    M = T.symbolic("M")
    N = 64

    @T.prim_func
    def main(A: T.Tensor((M, N), "float16"), B: T.Tensor((M, N), "float16")):
        with T.Kernel(T.ceildiv(M, 64), threads=128) as by:
            S = T.alloc_shared((64, N), "float16")
            bar = T.alloc_barrier(1)
            tx = T.get_thread_binding()
            a_desc = T.create_tma_descriptor(F16, 2, A.data, N, M, 2, 2 * N, N, 64, 1, 1, 0, 0, 2, 0)
            b_desc = T.create_tma_descriptor(F16, 2, B.data, N, M, 2, 2 * N, N, 64, 1, 1, 0, 0, 2, 0)
            if tx == 0:
                T.mbarrier_expect_tx(bar, 64 * N * 2)
                T.tma_load(a_desc, bar, S, 0, by * 64)
                T.mbarrier_arrive(bar)
            T.mbarrier_wait_parity(bar, 0)
            if tx == 0:
                T.tma_store(b_desc, S, 0, by * 64)
                T.tma_store_arrive()
                T.tma_store_wait(0)

    k = _compile(main, "emulator")
    for rows in (64, 100):
        a = _a(rows, N, seed=rows)
        np.testing.assert_array_equal(k(a), a)


def test_dynamic_dimension_must_be_the_tensors():
    M = T.symbolic("M")
    with pytest.raises(CompileError, match=r"global_dim\[1\] \(innermost first\) is 128, but A's dimension 0 is M"):
        @T.prim_func
        def main(A: T.Tensor((M, 64), "float16")):
            with T.Kernel(1, threads=32):
                T.create_tma_descriptor(F16, 2, A.data, 64, 128, 2, 128, 64, 64, 1, 1, 0, 0, 2, 0)


def _into(swizzle, box_inner, annotate=False):
    from tilewise.layout import make_swizzled_layout

    @T.prim_func
    def main(A: T.Tensor((64, 64), "float16"), B: T.Tensor((64, 64), "float16")):
        with T.Kernel(1, threads=128):
            S = T.alloc_shared((64, 64), "float16")
            if annotate:
                T.annotate_layout({S: make_swizzled_layout(S)})
            bar = T.alloc_barrier(1)
            tx = T.get_thread_binding()
            d = T.create_tma_descriptor(F16, 2, A.data, 64, 64, 2, 128, box_inner, 64, 1, 1, 0, swizzle, 2, 0)
            if tx == 0:
                T.mbarrier_expect_tx(bar, 64 * box_inner * 2)
                T.tma_load(d, bar, S, 0, 0)
                T.mbarrier_arrive(bar)
            T.mbarrier_wait_parity(bar, 0)
            for i, j in T.Parallel(64, 64):
                B[i, j] = S[i, j]

    return main


def test_a_swizzled_tile_reads_back_in_place():
    a = _a(64, 64)
    np.testing.assert_array_equal(_compile(_into(SW128, 64), "emulator")(a), a)


def test_a_layout_that_disagrees_with_the_descriptor():
    with pytest.raises(CompileError, match=r"T.tma_load into S: the descriptor's no swizzle puts the box's elements"):
        _compile(_into(NONE, 64, annotate=True), "emulator")


def test_a_swizzle_tilewise_cannot_lay_out():
    with pytest.raises(CompileError, match=r"T.tma_load with a 128-byte swizzle into S \[64, 64\].*box rows of exactly "
                                           r"128 bytes \(the box's are 64\)"):
        _compile(_into(SW128, 32), "emulator")


def test_an_unguarded_load_is_reported():
    """T.tma_load runs on every thread that executes it (as in TileLang): without `if tx == 0:`
    many threads issue the same box, which the emulator reports."""
    from tilewise.emulator.errors import AsyncCopyError

    @T.prim_func
    def main(A: T.Tensor((64, 64), "float16"), B: T.Tensor((64, 64), "float16")):
        with T.Kernel(1, threads=128):
            S = T.alloc_shared((64, 64), "float16")
            bar = T.alloc_barrier(1)
            tx = T.get_thread_binding()
            d = T.create_tma_descriptor(F16, 2, A.data, 64, 64, 2, 128, 64, 64, 1, 1, 0, 0, 2, 0)
            if tx == 0:
                T.mbarrier_expect_tx(bar, 8192)
                T.mbarrier_arrive(bar)
            T.tma_load(d, bar, S, 0, 0)
            T.mbarrier_wait_parity(bar, 0)
            T.copy(S, B)

    with pytest.raises(AsyncCopyError, match=r"is issued by thread .* into the same shared bytes: a TMA copy is issued "
                                             r"by one thread"):
        _compile(main, "emulator")(_a(64, 64))


def test_descriptors_that_differ_only_in_swizzle_are_different_kernels():
    """The compiled-kernel cache is keyed on the program's text: a descriptor's box and swizzle
    are part of it (a kernel built for another swizzle would read the wrong bytes)."""
    a = _a(64, 64)
    plain = _compile(_into(NONE, 64), "ptx")
    swizzled = _compile(_into(SW128, 64), "ptx")
    np.testing.assert_array_equal(plain(a), a)
    np.testing.assert_array_equal(swizzled(a), a)
    assert plain.get_kernel_source() != swizzled.get_kernel_source()
