"""TileLang's own rng programs (v0.1.15 test_tilelang_language_rand.py) with each of curand's three
generators TileLang accepts, unchanged: rng_init inside a runtime guard with a shared-memory
cumsum between init and use gives the unguarded program's numbers, which are the generator's
(the Python references of test_rng_mrg32k3a.py / test_rng_xorwow.py / test_rng.py, offset bx);
the 1-D program's uniforms and normals have the right distributions (slow: NVRTC compiles its
unrolled loops for the PTX cross-check)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import tilewise
import tilewise.language as T

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_rng import RefGen, tilelang_rand_1d  # noqa: E402
from test_rng_mrg32k3a import RefMRG  # noqa: E402
from test_rng_xorwow import RefXorwow  # noqa: E402

REFS = {"curandStatePhilox4_32_10_t": RefGen, "curandStateMRG32k3a_t": RefMRG, "curandStateXORWOW_t": RefXorwow}


def tilelang_rand_blockwise(M=64, seed=42, generator="curandStatePhilox4_32_10_t"):
    threads = 32

    @T.prim_func
    def rand_kernel(A: T.Tensor((M,), "uint32")):
        with T.Kernel(M, threads=threads) as bx:
            tx = T.get_thread_binding()
            T.rng_init(seed, 0, bx, generator=generator)
            if tx == 0:
                A[bx] = T.rng_rand()

    return rand_kernel


def tilelang_rand_guarded_cumsum(M=64, seed=42, generator="curandStatePhilox4_32_10_t"):
    threads = 32

    @T.prim_func
    def rand_kernel(A: T.Tensor((M,), "uint32"), n: T.int32):
        with T.Kernel(M, threads=threads) as bx:
            tx = T.get_thread_binding()
            s = T.alloc_shared((threads,), "int32")
            if bx < n:
                T.rng_init(seed, 0, bx, generator=generator)
                s[tx] = 1
                T.cumsum(s, dim=0)
                if tx == 0:
                    A[bx] = T.rng_rand() + T.cast(s[threads - 1], "uint32") * 0

    return rand_kernel


@pytest.mark.parametrize("generator", list(REFS))
def test_rand_init_in_split_guard(generator):
    M, seed, n = 16, 42, 11
    guarded = tilewise.compile(tilelang_rand_guarded_cumsum(M, seed, generator), target="cuda -arch=sm_80",
                               execution_backend="emulator")
    baseline = tilewise.compile(tilelang_rand_blockwise(M, seed, generator), target="cuda -arch=sm_80",
                                execution_backend="emulator")
    sentinel = 0xDEADBEEF
    A = np.full(M, sentinel, np.uint32)
    guarded(A, n)
    A_ref = np.zeros(M, np.uint32)
    baseline(A_ref)
    np.testing.assert_array_equal(A[:n], A_ref[:n])
    assert (A[n:] == sentinel).all()
    np.testing.assert_array_equal(A_ref, [REFS[generator](seed, 0, b).rand() for b in range(M)])


@pytest.mark.slow  # NVRTC compiles five unrolled 128-step loops for the PTX cross-check
@pytest.mark.parametrize(("M", "seed", "generator"), [(1024, 42, "curandStateMRG32k3a_t"), (256, 0, "curandStateXORWOW_t")])
def test_tilelang_rand_1d(M, seed, generator):
    k = tilewise.compile(tilelang_rand_1d(M, seed, generator), target="cuda -arch=sm_80", execution_backend="emulator")
    A, B, C, D, E = (np.zeros(M, dt) for dt in (np.uint32, np.float32, np.float64, np.float32, np.float64))
    k(A, B, C, D, E)
    g = REFS[generator](seed, 0, 0)  # block 0 draws from offset 0
    np.testing.assert_array_equal(A[:128], [g.rand() for _ in range(128)])
    for u in (B, C):
        assert ((u > 0) & (u <= 1)).all() and abs(u.mean() - 0.5) < 0.05 and abs(u.std() - 12**-0.5) < 0.03
    for z in (D, E):
        assert abs(z.mean()) < 0.15 and abs(z.std() - 1) < 0.1
