"""A kernel whose own indices leave a buffer at run time (a gather through an index tensor).

Global tensors: guarded as in TileLang (an out-of-bounds read gives 0, a store is dropped), the
same on every executor. On-chip tiles: a bug in the kernel. The emulator and the PTX interpreter
report it (OutOfBoundsError); the CPU target checks every on-chip access it cannot prove in
bounds (transform/check_tile_bounds.py) and raises the same error after the blocks, instead of
overwriting its stack or dying of a segfault."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.emulator.errors import OutOfBoundsError

BACKENDS = [("cpu", "auto"), ("cuda -arch=sm_80", "emulator"), ("cuda -arch=sm_80", "ptx")]


def _scatter_into_tile(scope: str):
    @T.prim_func
    def scatter(A: T.Tensor((64,), "float32"), I: T.Tensor((64,), "int32"), C: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            S = T.alloc_shared((64,), "float32") if scope == "shared" else T.alloc_fragment((64,), "float32")
            for i in T.Parallel(64):
                S[i] = 0.0
            for i in T.Parallel(64):
                S[I[i]] = A[i]
            for i in T.Parallel(64):
                C[i] = S[i]

    return scatter


def _gather_from_tile():
    @T.prim_func
    def gather(A: T.Tensor((64,), "float32"), I: T.Tensor((64,), "int32"), C: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            S = T.alloc_shared((64,), "float32")
            T.copy(A, S)
            for i in T.Parallel(64):
                C[i] = S[I[i]]

    return gather


def _gather_2d():
    @T.prim_func
    def gather2(A: T.Tensor((8, 8), "float32"), I: T.Tensor((8,), "int32"), C: T.Tensor((8, 8), "float32")):
        with T.Kernel(1, threads=64):
            L = T.alloc_fragment((8, 8), "float32")
            T.copy(A, L)
            for i, j in T.Parallel(8, 8):
                C[i, j] = L[I[i], j]

    return gather2


def _global_gather():
    @T.prim_func
    def gg(A: T.Tensor((64,), "float32"), I: T.Tensor((64,), "int32"), C: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            for i in T.Parallel(64):
                C[I[i]] = A[I[i]] + 1.0

    return gg


def _compile(func, target, backend, pass_configs=None):
    return tilewise.compile(func, target=target, execution_backend=backend, pass_configs=pass_configs)


def _perm():
    return np.random.default_rng(1).permutation(64).astype(np.int32)


# a fragment indexed by a loaded value is a CompileError on CUDA (test_fragment_gather_on_cuda):
# fragments only on the CPU
TILE_CASES = [(target, backend, scope) for target, backend in BACKENDS for scope in ("shared", "fragment")
              if scope == "shared" or target == "cpu"]


@pytest.mark.parametrize("target,backend,scope", TILE_CASES)
@pytest.mark.parametrize("bad", [64, 1 << 26, -1])
def test_tile_store_out_of_bounds_is_reported(target, backend, scope, bad):
    k = _compile(_scatter_into_tile(scope), target, backend)
    a = np.arange(64, dtype=np.float32)
    c = np.zeros(64, np.float32)
    idx = _perm()
    k(a, idx, c)  # a permutation: every element in bounds
    want = np.zeros(64, np.float32)
    want[idx] = a
    np.testing.assert_array_equal(c, want)
    idx[5] = bad
    with pytest.raises(OutOfBoundsError, match="out-of-bounds (write|store|access)|outside"):
        k(a, idx, c)
    # the error is not left behind for the next call
    idx[5] = 5
    k(a, np.arange(64, dtype=np.int32), c)
    np.testing.assert_array_equal(c, a)


def test_cpu_message_names_buffer_line_and_index():
    k = _compile(_gather_from_tile(), "cpu", "auto")
    idx = np.arange(64, dtype=np.int32)
    idx[9] = 70
    with pytest.raises(OutOfBoundsError) as e:
        k(np.zeros(64, np.float32), idx, np.zeros(64, np.float32))
    msg = str(e.value)
    assert "test_adversarial_bounds.py:" in msg and "out-of-bounds read of S" in msg, msg
    assert "shape (64,)" in msg and "index [70]" in msg and "C[i] = S[I[i]]" in msg, msg
    k2 = _compile(_gather_2d(), "cpu", "auto")
    with pytest.raises(OutOfBoundsError, match=r"out-of-bounds read of L .*index \[-2, 0\]"):
        k2(np.zeros((8, 8), np.float32), np.array([0, 1, -2, 3, 4, 5, 6, 7], np.int32), np.zeros((8, 8), np.float32))


@pytest.mark.parametrize("target,backend", BACKENDS)
def test_tile_gather_in_bounds(target, backend):
    a = np.random.default_rng(0).random(64, dtype=np.float32)
    idx = _perm()
    c = np.zeros(64, np.float32)
    _compile(_gather_from_tile(), target, backend)(a, idx, c)
    np.testing.assert_array_equal(c, a[idx])
    if target != "cpu":
        return  # a fragment gather: test_fragment_gather_on_cuda
    a2 = a[:64].reshape(8, 8)
    rows = np.array([7, 0, 3, 3, 1, 2, 6, 5], np.int32)
    c2 = np.zeros((8, 8), np.float32)
    _compile(_gather_2d(), target, backend)(a2, rows, c2)
    np.testing.assert_array_equal(c2, a2[rows])


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
def test_fragment_gather_on_cuda(arch):
    """A fragment is spread over the threads' registers: an element chosen by a loaded value may
    be another thread's, which CUDA cannot reach. Refused, never run on the wrong element (the
    lowering used the thread's own register)."""
    for func, what in ((_gather_2d(), "fragment L is read at an index read from memory"),
                       (_scatter_into_tile("fragment"), "fragment S is written at an index read from memory")):
        with pytest.raises(tilewise.CompileError, match=what):
            _compile(func, f"cuda -arch={arch}", "emulator")


@pytest.mark.parametrize("target,backend", BACKENDS)
def test_global_out_of_bounds_is_guarded_alike(target, backend):
    """TileLang's safe-memory legalisation: reads outside a global tensor give 0, stores there are dropped."""
    a = np.arange(64, dtype=np.float32)
    idx = np.arange(64, dtype=np.int32)
    idx[3], idx[4] = 1 << 20, -7
    c = np.full(64, -1.0, np.float32)
    _compile(_global_gather(), target, backend)(a, idx, c)
    want = a + 1
    want[[3, 4]] = -1.0
    np.testing.assert_array_equal(c, want)


def test_checks_only_where_unproven():
    """Accesses proven in bounds pay nothing; the safe-memory pass config turns the checks off."""
    assert "bounds_fail" in _compile(_gather_from_tile(), "cpu", "auto").get_kernel_source()

    @T.prim_func
    def tiles(A: T.Tensor((128, 64), "float16"), B: T.Tensor((64, 64), "float16"), C: T.Tensor((128, 64), "float32")):
        with T.Kernel(2, threads=128) as bx:
            As = T.alloc_shared((64, 64), "float16")
            Bs = T.alloc_shared((64, 64), "float16")
            Cf = T.alloc_fragment((64, 64), "float32")
            T.clear(Cf)
            T.copy(A[bx * 64, 0], As)
            T.copy(B, Bs)
            T.gemm(As, Bs, Cf)
            for i, j in T.Parallel(64, 64):
                Cf[i, j] = T.max(Cf[i, j], 0.0)
            T.copy(Cf, C[bx * 64, 0])

    assert "bounds_fail" not in _compile(tiles, "cpu", "auto").get_kernel_source()
    off = {"tl.disable_safe_memory_legalize": True}
    assert "bounds_fail" not in _compile(_gather_from_tile(), "cpu", "auto", off).get_kernel_source()
