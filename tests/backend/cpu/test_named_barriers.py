"""Named barriers among part of a block on the CPU target (issue #14).

A kernel that programs its threads runs on the CPU target as its CUDA program in the emulator
(sm_80), which schedules warps apart when a barrier is among part of the block
(emulator/schedule.py, emulator/named_barriers.py). The same kernels run in the emulator and the
PTX interpreter as `cuda -arch=sm_80`, and each result is checked against numpy. Counts that are
not whole warps or exceed the block are CompileErrors at the line. Kernels waiting on mbarriers
run there as sm_90a."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T

pytestmark = pytest.mark.filterwarnings("ignore:.*programs its threads:UserWarning")

BACKENDS = [("cpu", None), ("cuda -arch=sm_80", "emulator"), ("cuda -arch=sm_80", "ptx")]
IDS = ["cpu", "emulator", "ptx"]
N = 256  # two warpgroups


def two_groups():
    """Each warpgroup writes its half of a shared vector, waits on its own barrier (1 and 2, 128
    threads each) and reads its half back reversed; then warpgroup 1 writes a second vector and
    arrives (bar.arrive 3, 256) while warpgroup 0 waits there (bar.sync 3, 256) and reads it."""

    @T.prim_func
    def main(A: T.Tensor((4, N), T.float32), B: T.Tensor((4, N), T.float32), C: T.Tensor((4, 128), T.float32)):
        with T.Kernel(4, threads=N) as bx:
            tx = T.get_thread_binding()
            S = T.alloc_shared((N,), T.float32)
            H = T.alloc_shared((128,), T.float32)
            if tx < 128:
                S[tx] = A[bx, tx] * 2.0
                T.sync_threads(1, 128)
                B[bx, tx] = S[127 - tx]
                T.sync_threads(3, 256)
                C[bx, tx] = H[(tx + 1) % 128]
            else:
                S[tx] = A[bx, tx] + 1.0
                T.sync_threads(2, 128)
                B[bx, tx] = S[383 - tx]
                H[tx - 128] = S[tx] * 3.0
                T.named_barrier_arrive(3, 256)

    return main


def _two_groups_reference(a):
    b = np.empty_like(a)
    b[:, :128] = (a[:, :128] * 2)[:, ::-1]
    b[:, 128:] = (a[:, 128:] + 1)[:, ::-1]
    c = np.roll((a[:, 128:] + 1) * 3, -1, axis=1)
    return b, c


@pytest.mark.parametrize("target, backend", BACKENDS, ids=IDS)
def test_two_warpgroups_on_their_own_barriers(target, backend):
    k = tilewise.compile(two_groups(), target=target, execution_backend=backend)
    a = np.random.default_rng(0).random((4, N)).astype(np.float32)
    b = np.zeros_like(a)
    c = np.zeros((4, 128), np.float32)
    k(a, b, c)
    rb, rc = _two_groups_reference(a)
    np.testing.assert_array_equal(b, rb)
    np.testing.assert_array_equal(c, rc)


def test_the_cpu_target_says_it_runs_the_kernel_thread_exactly():
    with pytest.warns(UserWarning, match="thread-exactly in the CUDA emulator"):
        tilewise.compile(two_groups(), target="cpu")


def ws_tiles():
    """Tile operators inside `with T.ws(i):` hand shared memory to each other within their
    warpgroup: the compiler places a named barrier per warpgroup (range_barriers.py)."""

    @T.prim_func
    def main(A: T.Tensor((64, 64), T.float32), B: T.Tensor((64, 64), T.float32)):
        with T.Kernel(1, threads=256):
            S0 = T.alloc_shared((32, 64), T.float32)
            S1 = T.alloc_shared((32, 64), T.float32)
            with T.ws(0):
                T.copy(A[0:32, :], S0)
                for i, j in T.Parallel(32, 64):
                    B[i, j] = S0[31 - i, j] * 2.0
            with T.ws(1):
                T.copy(A[32:64, :], S1)
                for i, j in T.Parallel(32, 64):
                    B[32 + i, j] = S1[31 - i, 63 - j] + 1.0

    return main


@pytest.mark.parametrize("target, backend", BACKENDS, ids=IDS)
def test_tile_operators_in_warpgroup_blocks(target, backend):
    k = tilewise.compile(ws_tiles(), target=target, execution_backend=backend)
    assert "named_barrier" in k.get_kernel_source()
    a = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    b = np.zeros_like(a)
    k(a, b)
    ref = np.concatenate([a[:32][::-1] * 2, a[32:][::-1, ::-1] + 1])
    np.testing.assert_array_equal(b, ref)


def _bad_count(count):
    @T.prim_func
    def main(A: T.Tensor((N,), T.float32)):
        with T.Kernel(1, threads=N):
            tx = T.get_thread_binding()
            if tx < 128:
                T.sync_threads(1, count)
                A[tx] = 1.0

    return main


@pytest.mark.parametrize("count, message", [(100, "must be a multiple of 32"), (512, "thread count"),
                                            (16, "thread count")])
def test_bad_counts_are_compile_errors(count, message):
    with pytest.raises(tilewise.CompileError, match=message) as e:
        tilewise.compile(_bad_count(count), target="cpu")
    assert "test_named_barriers.py:" in str(e.value)


def mbarrier_handover():
    """Warpgroup 1 writes shared memory and arrives on an mbarrier (128 arrivals); warpgroup 0
    waits for the phase, then reads what the other wrote."""

    @T.prim_func
    def main(A: T.Tensor((2, 128), T.float32), B: T.Tensor((2, 128), T.float32)):
        with T.Kernel(2, threads=N) as bx:
            tx = T.get_thread_binding()
            S = T.alloc_shared((128,), T.float32)
            bars = T.alloc_barrier([128])
            if tx >= 128:
                S[tx - 128] = A[bx, tx - 128] * 3.0
                T.mbarrier_arrive(bars[0])
            else:
                T.barrier_wait(bars[0], 0)
                B[bx, tx] = S[127 - tx]

    return main


@pytest.mark.parametrize("target, backend", [("cpu", None), ("cuda -arch=sm_90a", "emulator"),
                                             ("cuda -arch=sm_90a", "ptx")], ids=IDS)
def test_mbarriers_run_as_sm90a(target, backend):
    """mbarriers need sm_90: on the CPU target such a kernel runs in the emulator as sm_90a."""
    k = tilewise.compile(mbarrier_handover(), target=target, execution_backend=backend)
    if target == "cpu":
        assert k.build.machine.name == "sm_90a"
    a = np.random.default_rng(2).random((2, 128)).astype(np.float32)
    b = np.zeros_like(a)
    k(a, b)
    np.testing.assert_array_equal(b, (a * 3)[:, ::-1])
