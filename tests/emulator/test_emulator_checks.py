"""Seeded bugs the emulator must report (races, early reads of cp.async destinations, out of
bounds, misaligned, divergent barriers, uninitialised reads), with the buffer, element, threads
and source lines in the message; the corrected kernels must run clean."""
import importlib.util
import pathlib
import re

import numpy as np
import pytest
from ir_builders import addr, intrin, kernel, located

from tilewise.emulator import (
    AsyncCopyError,
    DivergenceError,
    EmulatorError,
    MisalignedAddressError,
    OutOfBoundsError,
    RaceError,
    UninitializedReadError,
    run,
)
from tilewise.ir import Allocate, Buffer, BufferLoad, BufferStore, Call, IfThenElse
from tilewise.ir import dtype as dt

T = 64


def _exchange(barrier: bool):
    """Each thread writes S[t], then reads its neighbour's S[(t + 1) % T] (two blocks, each
    writing its own row of O)."""
    A = Buffer("A", (T,), "float32")
    O = Buffer("O", (2, T), "float32")

    def build(b, t):
        tx = t[0]
        S = Buffer("S", (T,), "float32", scope="shared")
        out = [Allocate(S)]
        out.append(located(BufferStore(S, [tx], BufferLoad(A, [tx]))))  # the write
        if barrier:
            out.append(intrin("syncthreads"))
        out.append(located(BufferStore(O, [b[0], tx], BufferLoad(S, [(tx + 1) % T]))))  # the read
        return out

    return kernel([A, O], [2], [T], build)


def test_missing_barrier_write_then_read():
    a = np.arange(T, dtype=np.float32)
    o = np.zeros((2, T), np.float32)
    with pytest.raises(RaceError) as err:
        run(_exchange(False), [a, o])
    msg = str(err.value)
    assert "S[1]" in msg
    assert "thread (1, 0, 0) of block (0, 0, 0) wrote it" in msg
    assert "thread (0, 0, 0) of block (0, 0, 0) reads it" in msg
    assert "# the write" in msg and "# the read" in msg
    assert "test_emulator_checks.py:" in msg
    run(_exchange(True), [a, o])
    np.testing.assert_array_equal(o, [np.roll(a, -1)] * 2)


def test_missing_barrier_read_then_write():
    """A thread overwrites S[t] while its neighbour may still be reading it."""
    O = Buffer("O", (T,), "float32")

    def make(barrier):
        def build(b, t):
            tx = t[0]
            S = Buffer("S", (T,), "float32", scope="shared")
            out = [Allocate(S), BufferStore(S, [tx], dt.float32(1.0)), intrin("syncthreads")]
            out.append(located(BufferStore(O, [tx], BufferLoad(S, [(tx + 1) % T]))))  # neighbour read
            if barrier:
                out.append(intrin("syncthreads"))
            out.append(located(BufferStore(S, [tx], dt.float32(2.0))))  # overwrite
            return out

        return kernel([O], [1], [T], build)

    o = np.zeros(T, np.float32)
    with pytest.raises(RaceError, match=r"S\[\d+\].*read it.*neighbour read.*writes it.*overwrite"):
        run(make(False), [o])
    run(make(True), [o])


def test_same_thread_accesses_never_race():
    O = Buffer("O", (T,), "float32")

    def build(b, t):
        tx = t[0]
        S = Buffer("S", (T,), "float32", scope="shared")
        return [
            Allocate(S),
            BufferStore(S, [tx], tx.astype("float32")),
            BufferStore(S, [tx], BufferLoad(S, [tx]) + dt.float32(1.0)),
            BufferStore(O, [tx], BufferLoad(S, [tx])),
        ]

    o = np.zeros(T, np.float32)
    run(kernel([O], [1], [T], build), [o])
    np.testing.assert_array_equal(o, np.arange(T) + 1)


def test_two_threads_write_one_element_in_one_statement():
    def build(b, t):
        S = Buffer("S", (T,), "float32", scope="shared")
        out = [Allocate(S)]
        out.append(located(BufferStore(S, [t[0] // 2], t[0].astype("float32"))))  # halves collide
        return out

    with pytest.raises(RaceError, match=r"S\[0\].*thread \(0, 0, 0\).*thread \(1, 0, 0\).*halves collide"):
        run(kernel([], [1], [T], build), [])


def test_threads_of_one_statement_writing_the_same_value_do_not_race():
    """Every thread of a group storing the value they all computed (TileLang's deepseek_v32
    producers: eight threads per row store its validity flag) leaves one defined value."""
    def build(b, t):
        S = Buffer("S", (T,), "float32", scope="shared")
        return [Allocate(S), located(BufferStore(S, [t[0] // 2], (t[0] // 2).astype("float32")))]

    run(kernel([], [1], [T], build), [])


def test_aliasing_views_race_on_bytes():
    """Two views of one shared allocation (memory reuse) overlap: a float32 write and a float16
    read of the same bytes by other threads race."""

    def build(b, t):
        tx = t[0]
        smem = Buffer("smem", (256,), "uint8", scope="shared.dyn")
        F = Buffer("F", (T,), "float32", scope="shared.dyn", base=smem)
        H = Buffer("H", (128,), "float16", scope="shared.dyn", base=smem)
        out = [Allocate(smem), Allocate(F), Allocate(H), BufferStore(F, [tx], dt.float32(0.0))]
        out.append(located(IfThenElse(tx == 0, BufferStore(F, [5], dt.float32(1.0)))))
        return out

    def build_bad(b, t):
        out = build(b, t)
        H = out[2].buffer
        out.insert(4, intrin("syncthreads"))
        out.append(located(IfThenElse(t[0] == 3, BufferStore(H, [0], BufferLoad(H, [11])))))  # alias read
        return out

    with pytest.raises(RaceError, match=r"H\[11\] \(the same bytes as F\[5\]\).*alias read"):
        run(kernel([], [1], [T], build_bad), [])


def _async(wait: bool, barrier: bool, neighbour: bool):
    G = Buffer("G", (T, 8), "float16")
    O = Buffer("O", (T, 8), "float16")

    def build(b, t):
        tx = t[0]
        S = Buffer("S", (T, 8), "float16", scope="shared")
        src = (tx + 1) % T if neighbour else tx
        out = [Allocate(S)]
        out.append(located(intrin("cp_async", addr(S, tx, 0), addr(G, tx, 0), 16, bytes=16)))  # the copy
        out.append(intrin("cp_async_commit"))
        if wait:
            out.append(intrin("cp_async_wait", n=0))
        if barrier:
            out.append(intrin("syncthreads"))
        out.append(located(intrin("copy_vec", addr(O, tx, 0), addr(S, src, 0), bytes=16)))  # the use
        return out

    return kernel([G, O], [1], [T], build)


def test_read_before_cp_async_wait():
    g = np.arange(T * 8, dtype=np.float16).reshape(T, 8)
    o = np.zeros_like(g)
    with pytest.raises(AsyncCopyError) as err:
        run(_async(wait=False, barrier=False, neighbour=False), [g, o])
    msg = str(err.value)
    assert "S[0, 0]" in msg and "thread (0, 0, 0) of block (0, 0, 0)" in msg
    assert "# the copy" in msg and "# the use" in msg
    run(_async(wait=True, barrier=False, neighbour=False), [g, o])  # own copy: the wait suffices
    np.testing.assert_array_equal(o, g)


def test_cp_async_data_read_by_another_thread_needs_a_barrier():
    g = np.arange(T * 8, dtype=np.float16).reshape(T, 8)
    o = np.zeros_like(g)
    with pytest.raises(AsyncCopyError, match=r"S\[1, 0\].*thread \(1, 0, 0\).*issued the copy"):
        run(_async(wait=False, barrier=True, neighbour=True), [g, o])
    with pytest.raises(RaceError, match=r"S\[1, 0\].*thread \(1, 0, 0\) of block \(0, 0, 0\) wrote it \(cp.async write"):
        run(_async(wait=True, barrier=False, neighbour=True), [g, o])
    run(_async(wait=True, barrier=True, neighbour=True), [g, o])
    np.testing.assert_array_equal(o, np.roll(g, -1, axis=0))


def test_cp_async_into_a_buffer_others_still_read():
    G = Buffer("G", (T,), "float32")
    O = Buffer("O", (T,), "float32")

    def build(b, t):
        tx = t[0]
        S = Buffer("S", (T,), "float32", scope="shared")
        return [
            Allocate(S), BufferStore(S, [tx], dt.float32(0.0)), intrin("syncthreads"),
            BufferStore(O, [tx], BufferLoad(S, [(tx + 1) % T])),
            intrin("cp_async", addr(S, tx), addr(G, tx), 4, bytes=4),
            intrin("cp_async_commit"), intrin("cp_async_wait", n=0),
        ]

    with pytest.raises(RaceError, match=r"read it.*issues a cp.async copy into it"):
        run(kernel([G, O], [1], [T], build), [np.zeros(T, np.float32), np.zeros(T, np.float32)])


@pytest.mark.parametrize("guard", [False, True])
def test_out_of_bounds_global_read(guard):
    A = Buffer("A", (T,), "float32")
    O = Buffer("O", (T,), "float32")

    def build(b, t):
        tx = t[0]
        load = located(BufferStore(O, [tx], BufferLoad(A, [tx + 1])))  # shifted read
        return [IfThenElse(tx + 1 < T, load) if guard else load]

    a = np.arange(T, dtype=np.float32)
    o = np.zeros(T, np.float32)
    if guard:
        run(kernel([A, O], [1], [T], build), [a, o])
        np.testing.assert_array_equal(o[:-1], a[1:])
        return
    with pytest.raises(OutOfBoundsError) as err:
        run(kernel([A, O], [1], [T], build), [a, o])
    msg = str(err.value)
    assert "A[64]" in msg and "shape [64]" in msg and "thread (63, 0, 0) of block (0, 0, 0)" in msg
    assert "# shifted read" in msg


OOB_CASES = ["shared", "local", "copy_vec", "cp_async_src", "ldmatrix", "global_2d"]


@pytest.mark.parametrize("case", OOB_CASES)
def test_out_of_bounds_everywhere(case):
    G = Buffer("G", (T, 8), "float16")

    def build(b, t):
        tx = t[0]
        S = Buffer("S", (T, 8), "float16", scope="shared")
        R = Buffer("R", (8,), "float16", scope="local")
        out = [Allocate(S), Allocate(R), BufferStore(S, [tx, 0], dt.float16(0.0)), intrin("syncthreads")]
        if case == "shared":
            out.append(BufferStore(R, [0], BufferLoad(S, [tx, tx % 9])))
        elif case == "local":
            out.append(BufferStore(R, [tx % 9], dt.float16(1.0)))
        elif case == "copy_vec":
            out.append(intrin("copy_vec", addr(R, 0), addr(G, T - 1, 4), bytes=16))
        elif case == "cp_async_src":
            out.append(intrin("cp_async", addr(S, tx, 0), addr(G, tx + 1, 0), 16, bytes=16))
        elif case == "ldmatrix":
            out.append(intrin("ldmatrix", addr(R, 0), addr(S, tx + 8, 0), num=4, trans=False))
        else:
            out.append(BufferStore(R, [0], BufferLoad(G, [tx, 8])))
        return out

    want = {"shared": r"S\[8, 8\]", "local": r"R\[8\]", "copy_vec": r"G\[63, 4\].*outside G",
            "cp_async_src": r"G\[64, 0\]|outside G", "ldmatrix": r"S\[64, 0\]", "global_2d": r"G\[0, 8\]"}[case]
    with pytest.raises(OutOfBoundsError, match=want):
        run(kernel([G], [1], [T], build), [np.zeros((T, 8), np.float16)])


def test_misaligned_vector_access():
    G = Buffer("G", (T, 8), "float16")

    def build(b, t):
        R = Buffer("R", (8,), "float16", scope="local")
        return [Allocate(R), intrin("copy_vec", addr(R, 0), addr(G, t[0], 1), bytes=4)]

    with pytest.raises(MisalignedAddressError, match=r"G\[0, 1\].*not aligned to 4 bytes"):
        run(kernel([G], [1], [T], build), [np.zeros((T, 8), np.float16)])


def test_divergent_barrier_and_partial_warp():
    def sync_in_branch(b, t):
        return [IfThenElse(t[0] < 16, intrin("syncthreads"))]

    with pytest.raises(DivergenceError, match=r"__syncthreads.*thread \(0, 0, 0\).*not by thread \(16, 0, 0\)"):
        run(kernel([], [1], [T], sync_in_branch), [])

    def sync_uniform(b, t):
        return [IfThenElse(b[0] == 1, intrin("syncthreads"))]

    run(kernel([], [3], [T], sync_uniform), [])

    O = Buffer("O", (T,), "int32")

    def shfl_in_branch(b, t):
        v = Call("shfl_xor", [t[0], dt.int32(1)], dt.int32, {"width": 32})
        return [IfThenElse(t[0] % 32 < 16, BufferStore(O, [t[0]], v))]

    with pytest.raises(DivergenceError, match=r"__shfl_xor_sync needs all 32 lanes.*thread \(16, 0, 0\)"):
        run(kernel([O], [1], [T], shfl_in_branch), [np.zeros(T, np.int32)])


def test_uninitialised_reads():
    O = Buffer("O", (T,), "float32")

    def build(b, t):
        tx = t[0]
        S = Buffer("S", (T,), "float32", scope="shared")
        R = Buffer("R", (2,), "float32", scope="local")
        return [
            Allocate(S), Allocate(R),
            IfThenElse(tx != 5, BufferStore(S, [tx], dt.float32(1.0))),
            intrin("syncthreads"),
            BufferStore(R, [0], BufferLoad(S, [(tx + 1) % T])),
            BufferStore(O, [tx], BufferLoad(R, [0])),
        ]

    f = kernel([O], [1], [T], build)
    run(f, [np.zeros(T, np.float32)])  # off by default
    with pytest.raises(UninitializedReadError, match=r"S\[5\].*thread \(4, 0, 0\)"):
        run(f, [np.zeros(T, np.float32)], check_uninit=True)

    def regs(b, t):
        R = Buffer("R", (2,), "float32", scope="local")
        return [Allocate(R), BufferStore(R, [0], dt.float32(1.0)), BufferStore(O, [t[0]], BufferLoad(R, [t[0] % 2]))]

    with pytest.raises(UninitializedReadError, match=r"R\[1\].*thread \(1, 0, 0\)"):
        run(kernel([O], [1], [T], regs), [np.zeros(T, np.float32)], check_uninit=True)


def _gemm_module():
    path = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "emulator_gemm.py"
    spec = importlib.util.spec_from_file_location("emulator_gemm", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("bug,error", [("barrier", RaceError), ("wait", AsyncCopyError)])
def test_seeded_gemm_pipeline_bugs(bug, error):
    gemm = _gemm_module()
    M, N, K = 128, 128, 64
    a = np.ones((M, K), np.float16)
    b = np.ones((K, N), np.float16)
    c = np.zeros((M, N), np.float32)
    with pytest.raises(error) as err:
        run(gemm.build_gemm(M, N, K, **{bug: False}), [a, b, c])
    assert re.search(r"A_shared\[\d+, \d+, \d+\]|B_shared\[\d+, \d+, \d+\]", str(err.value))
    assert isinstance(err.value, EmulatorError)


def test_shared_atomics_race_only_with_plain_accesses():
    def make(barrier):
        def build(b, t):
            tx = t[0]
            S = Buffer("S", (4,), "int32", scope="shared")
            out = [Allocate(S), IfThenElse(tx < 4, BufferStore(S, [tx], dt.int32(0)))]
            if barrier:
                out.append(intrin("syncthreads"))
            out.append(located(intrin("atomic_add", addr(S, tx % 4), dt.int32(1))))  # the atomic
            return out

        return kernel([], [1], [T], build)

    with pytest.raises(RaceError, match=r"S\[\d\].*wrote it.*atomically updates it.*# the atomic"):
        run(make(False), [])
    run(make(True), [])


def test_block_of_48_threads_has_a_partial_warp():
    O = Buffer("O", (2, 48), "int32")

    def build(uniform_warp0):
        def body(b, t):
            v = Call("shfl_down", [t[0], dt.int32(1)], dt.int32, {"width": 32})
            store = BufferStore(O, [b[0], t[0]], v)
            return [IfThenElse(t[0] < 32, store) if uniform_warp0 else store]

        return kernel([O], [2], [48], body)

    o = np.zeros((2, 48), np.int32)
    run(build(True), [o])
    np.testing.assert_array_equal(o[:, :32], [np.r_[np.arange(1, 32), 31]] * 2)
    with pytest.raises(DivergenceError, match=r"warp has only 16 threads"):
        run(build(False), [o])
