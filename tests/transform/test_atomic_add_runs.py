"""CPU: loops of float atomic adds into consecutive elements become `tw::atomic_add_run`, 16 bytes
per compare-and-swap (transform/atomic_add_runs.py). Many blocks add into the same elements, on
both threads; the values are small integers, so every order of the adds gives the exact sum and
the result can be compared exactly. Ragged edges (guards that bound the run), unaligned starts
(the element-wise head and tail), float64, and kinds of atomics that must stay element-wise."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T


def tile_adds(M, N, bm, bn, reps, dtype, col0=0):
    """Every block adds its tile (value: block index + i - j, small integers) into C[:, col0:],
    `reps` blocks per tile."""

    @T.prim_func
    def main(C: T.Tensor((M, N + col0), dtype)):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), reps, threads=128) as (bx, by, bz):
            acc = T.alloc_fragment((bm, bn), dtype)
            for i, j in T.Parallel(bm, bn):
                acc[i, j] = T.cast(bz + i - j, dtype)
            T.atomic_add(C[by * bm, col0 + bx * bn], acc)

    return tilewise.compile(main, target="cpu")


def _expected(M, N, bm, bn, reps, dtype, col0):
    c = np.zeros((M, N + col0), dtype)
    i = np.arange(M)[:, None] % bm
    j = np.arange(N)[None, :] % bn
    for z in range(reps):
        c[:, col0:] += (z + i - j).astype(dtype)
    return c


@pytest.mark.parametrize("M,N,bm,bn,dtype,col0", [(96, 128, 32, 64, "float32", 0),
                                                  (70, 90, 32, 32, "float32", 3),
                                                  (50, 37, 16, 16, "float64", 1)])
def test_runs_exact(M, N, bm, bn, dtype, col0):
    reps = 6
    k = tile_adds(M, N, bm, bn, reps, dtype, col0)
    src = k.get_kernel_source()
    assert "tw::atomic_add_run" in src and "tw::atomic_add(" not in src.split("tw_entry")[1]
    c = np.zeros((M, N + col0), dtype)
    for _ in range(3):
        c[:] = 0
        k(c)
        np.testing.assert_array_equal(c, _expected(M, N, bm, bn, reps, dtype, col0))


def test_mixed_with_element_atomics():
    """Runs and per-element atomics into the same elements, from different blocks at once."""
    M, N = 64, 64

    @T.prim_func
    def main(C: T.Tensor((M, N), "float32")):
        with T.Kernel(8, threads=128) as bx:
            acc = T.alloc_fragment((M, N), "float32")
            for i, j in T.Parallel(M, N):
                acc[i, j] = T.cast(i + 1, "float32")
            if bx % 2 == 0:
                T.atomic_add(C[0, 0], acc)
            else:
                for i in T.serial(M):
                    for j in T.serial(N):
                        # a strided walk (j * 1 over a transposed index): stays element-wise
                        T.atomic_add(C[j, i], T.cast(j + 1, "float32"))

    k = tilewise.compile(main, target="cpu")
    src = k.get_kernel_source()
    assert "tw::atomic_add_run" in src and "tw::atomic_add(" in src
    c = np.zeros((M, N), np.float32)
    k(c)
    np.testing.assert_array_equal(c, np.broadcast_to(8.0 * (np.arange(M)[:, None] + 1), (M, N)))


def test_other_atomics_stay_elementwise():
    """float16 adds round per element, atomic_max is no add, an integer add is one lock xadd."""
    M, N = 16, 32

    @T.prim_func
    def main(H: T.Tensor((M, N), "float16"), X: T.Tensor((M, N), "float32"), I: T.Tensor((M, N), "int32")):
        with T.Kernel(4, threads=128) as bx:
            h = T.alloc_fragment((M, N), "float16")
            x = T.alloc_fragment((M, N), "float32")
            n = T.alloc_fragment((M, N), "int32")
            for i, j in T.Parallel(M, N):
                h[i, j] = T.cast(j, "float16")
                x[i, j] = T.cast(bx * 100 + j, "float32")
                n[i, j] = i + j
            T.atomic_add(H[0, 0], h)
            T.atomic_max(X[0, 0], x)
            T.atomic_add(I[0, 0], n)

    k = tilewise.compile(main, target="cpu")
    assert "tw::atomic_add_run" not in k.get_kernel_source()
    h = np.zeros((M, N), np.float16)
    x = np.zeros((M, N), np.float32)
    n = np.zeros((M, N), np.int32)
    k(h, x, n)
    j = np.arange(N)[None, :]
    i = np.arange(M)[:, None]
    np.testing.assert_array_equal(h, np.broadcast_to(4.0 * j, (M, N)).astype(np.float16))
    np.testing.assert_array_equal(x, np.broadcast_to(300.0 + j, (M, N)).astype(np.float32))
    np.testing.assert_array_equal(n, 4 * (i + j))
