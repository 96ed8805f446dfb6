"""`T.cp_async_barrier_noinc` / `T.ptx_cp_async_barrier` (cp.async.mbarrier.arrive{.noinc}): a
producer warpgroup copies tiles into a two-stage shared buffer with cp.async and has the "full"
mbarrier of the stage track the copies; a consumer warpgroup waits on it, reads the tile and frees
the stage. Run by the emulator and the PTX interpreter against numpy; reading the stage without
the wait is reported; NVRTC compiles it to the SASS of the instruction."""
import numpy as np
import pytest
from conftest import nvrtc_check

import tilewise
import tilewise.language as T
from tilewise.emulator.errors import AsyncCopyError
from tilewise.errors import CompileError
from tilewise.ptx.errors import AsyncCopyError as PtxAsyncCopyError

SM90A = "cuda -arch=sm_90a"
ARCHS = ["sm_80", "sm_90a"]
ROWS = 16  # rows of 64 float16 per stage: one 16-byte cp.async per producer thread


def stream(n_rows: int, arrival: str = "noinc"):
    """B = 2 * A, A streamed through shared memory in tiles of ROWS x 64. `arrival`: how the
    producer arrives on "full": "noinc" (the tracked arrival is its only one), "inc"
    (T.ptx_cp_async_barrier and its own arrival), "untracked" (a plain arrival: the bug of
    handing the stage over before the copies land)."""

    @T.prim_func
    def main(A: T.Tensor((n_rows, 64), "float16"), B: T.Tensor((n_rows, 64), "float16")):
        with T.Kernel(1, threads=256):
            S = T.alloc_shared((2, ROWS, 64), "float16")
            full = T.alloc_barrier([128, 128])
            empty = T.alloc_barrier([128, 128])
            tx = T.get_thread_binding()
            if tx >= 128:
                t = tx - 128
                for i in T.serial(n_rows // ROWS):
                    s = i % 2
                    T.barrier_wait(empty[s], ((i // 2) & 1) ^ 1)
                    T.ptx_cp_async(T.access_ptr(S[s, t // 8, (t % 8) * 8], "w", 8),
                                   T.access_ptr(A[i * ROWS + t // 8, (t % 8) * 8], "r", 8), 8)
                    if arrival == "noinc":
                        T.cp_async_barrier_noinc(full[s])
                    elif arrival == "inc":
                        T.ptx_cp_async_barrier(full[s])
                        T.barrier_arrive(full[s])
                    else:
                        T.barrier_arrive(full[s])
            else:
                for i in T.serial(n_rows // ROWS):
                    s = i % 2
                    T.barrier_wait(full[s], (i // 2) & 1)
                    # each consumer thread reads the 16 bytes another thread's cp.async brought
                    for j in T.serial(8):
                        B[i * ROWS + tx // 8, (tx % 8) * 8 + j] = S[s, tx // 8, (tx % 8) * 8 + j] * T.float16(2)
                    T.barrier_arrive(empty[s])

    return main


def _data(rng, n_rows=64):
    a = rng.standard_normal((n_rows, 64)).astype(np.float16)
    return a, np.zeros_like(a)


@pytest.mark.parametrize("arrival", ["noinc", "inc"])
@pytest.mark.parametrize("backend", ["emulator", "ptx"])
@pytest.mark.parametrize("arch", ARCHS)
def test_producer_consumer_through_cp_async_mbarrier(rng, arch, backend, arrival):
    a, b = _data(rng)
    k = tilewise.compile(stream(64, arrival), target=f"cuda -arch={arch}", execution_backend=backend)
    k(a, b)
    b = b.numpy() if hasattr(b, "numpy") else b
    np.testing.assert_array_equal(b, a * np.float16(2))


@pytest.mark.parametrize("backend,error", [("emulator", AsyncCopyError), ("ptx", PtxAsyncCopyError)])
@pytest.mark.parametrize("arch", ARCHS)
def test_reading_copies_no_wait_covers_is_reported(rng, arch, backend, error):
    """A plain arrival hands the stage over when the copies are issued, not when they land: the
    consumer's wait returns and its reads meet copies in flight."""
    a, b = _data(rng)
    k = tilewise.compile(stream(64, "untracked"), target=f"cuda -arch={arch}", execution_backend=backend)
    with pytest.raises(error, match="cp.async"):
        k(a, b)


def test_source_and_sass():
    src = tilewise.lower(stream(64), target=SM90A).kernel_source
    assert "tw::cp_async_mbarrier_arrive_noinc(" in src
    src = tilewise.lower(stream(64, "inc"), target=SM90A).kernel_source
    assert "tw::cp_async_mbarrier_arrive(" in src
    # cuobjdump: .noinc is ARRIVES.LDGSTSBAR.64.ARVCNT after the LDGSTS; without it, a
    # SYNCS.ARRIVE.TRANS64.RED (the increment) and ARRIVES.LDGSTSBAR.64.TRANSCNT
    # (sm_80 the same: mbarriers, cp.async and their arrivals are Ampere's)
    for arrival in ("noinc", "inc"):
        nvrtc_check(stream(64, arrival), expect=("LDGSTS", "ARRIVES"), archs=ARCHS)


def tx_count():
    @T.prim_func
    def main(A: T.Tensor((64,), "float16")):
        with T.Kernel(1, threads=128):
            bar = T.alloc_barrier(128)
            T.mbarrier_arrive_expect_tx(bar, 128)

    return main


def test_the_tx_count_needs_sm90():
    with pytest.raises(CompileError, match=r"tx-count \(expect_tx\) needs sm_90 or newer; the target is sm_80"):
        tilewise.lower(tx_count(), target="cuda -arch=sm_80")


def by_id():
    """TVM's spelling: barriers by index, initialised and fenced by the program itself."""

    @T.prim_func
    def main(A: T.Tensor((128,), "float32"), B: T.Tensor((128,), "float32")):
        with T.Kernel(1, threads=128):
            S = T.alloc_shared((128,), "float32")
            T.create_barriers(1)
            tx = T.get_thread_binding()
            if tx == 0:
                T.ptx_init_barrier_thread_count(0, 64)
            T.ptx_fence_barrier_init()
            T.tvm_storage_sync("shared")
            if tx < 64:
                T.ptx_cp_async(T.access_ptr(S[tx * 2], "w", 2), T.access_ptr(A[tx * 2], "r", 2), 2)
                T.cp_async_barrier_noinc(0)
            else:
                T.ptx_wait_barrier(0)
                B[(tx - 64) * 2] = S[127 - (tx - 64) * 2]
                B[(tx - 64) * 2 + 1] = S[126 - (tx - 64) * 2]

    return main


@pytest.mark.parametrize("arch", ARCHS)
def test_barriers_by_id_on_each_arch(arch):
    """On sm_80 the program's fence.mbarrier_init (sm_90) is dropped: nothing there needs it."""
    a = np.arange(128, dtype=np.float32)
    b = np.zeros_like(a)
    k = tilewise.compile(by_id(), target=f"cuda -arch={arch}", execution_backend="emulator")
    k(a, b)
    np.testing.assert_array_equal(b, a[::-1])
    assert ("fence_barrier_init" in k.get_kernel_source()) == (arch == "sm_90a")
    nvrtc_check(by_id(), expect=("ARRIVES",), archs=(arch,))
