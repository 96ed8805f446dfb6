"""T.rng_init / T.rng_rand / T.rng_rand_float (language/rng.py): Philox4x32-10 written for
tw_cuda.h and for the emulator (numpy), checked against the Philox authors' known-answer vectors
and a scalar reference written here with Python integers; kernels run in the emulator (cross-
checked by the PTX interpreter, conftest), on the CPU target (thread-exactly) and compile through
NVRTC without local memory. TileLang's own program (v0.1.8 test_tilelang_language_rand.py) runs
with its distribution checks."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.backend.cuda.inspect import instruction_mix
from tilewise.emulator.rng import philox4x32_10
from tilewise.errors import CompileError

M32 = 0xFFFFFFFF


def _philox_ref(ctr: list[int], key: list[int]) -> list[int]:
    c, (k0, k1) = list(ctr), key
    for r in range(10):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k0, p1 & M32, (p0 >> 32) ^ c[3] ^ k1, p0 & M32]
    return c


class RefGen:
    """One thread's generator, as language/rng.py describes it, with Python integers."""

    def __init__(self, seed: int, seq: int, off: int):
        self.ctr = ((seq << 64) + (off >> 2)) % (1 << 128)
        self.key = [seed & M32, seed >> 32]
        self.i = off & 3
        self.normal = {}

    def rand(self) -> int:
        words = _philox_ref([(self.ctr >> (32 * w)) & M32 for w in range(4)], self.key)
        x = words[self.i]
        self.i += 1
        if self.i == 4:
            self.i, self.ctr = 0, (self.ctr + 1) % (1 << 128)
        return x

    def uniform32(self) -> np.float32:
        return np.float32(np.float32(self.rand()) * np.float32(2.0**-32) + np.float32(2.0**-33))

    def uniform64(self) -> float:
        x = self.rand()
        y = self.rand()
        return float((x ^ (y << 21)) * 2.0**-53 + 2.0**-54)

    def gauss(self, bits: int) -> float:
        if bits in self.normal:
            return self.normal.pop(bits)
        u, v = (self.uniform32(), self.uniform32()) if bits == 32 else (self.uniform64(), self.uniform64())
        rad = math.sqrt(-2.0 * math.log(u))
        self.normal[bits] = rad * math.cos(2 * math.pi * v)
        return rad * math.sin(2 * math.pi * v)


def test_philox_known_answers():
    # Random123's kat_vectors for philox4x32_10
    ctr = np.array([[0, 0, 0, 0], [M32] * 4, [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344]], np.uint32)
    key = np.array([[0, 0], [M32, M32], [0xA4093822, 0x299F31D0]], np.uint32)
    want = [[0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8], [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD],
            [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]]
    assert philox4x32_10(ctr, key).tolist() == want
    assert [_philox_ref(list(c), list(k)) for c, k in zip(ctr.tolist(), key.tolist())] == want


N_PER, THREADS, BLOCKS = 6, 4, 2


def per_thread(seed, off, seq=None):
    """Each thread draws its own row: ints, uniforms, normals (explicit thread programming, so
    which thread draws what is the program's, on every target)."""
    n = THREADS * BLOCKS

    @T.prim_func
    def main(A: T.Tensor((n, N_PER), "uint32"), B: T.Tensor((n, N_PER), "float32"), C: T.Tensor((n, N_PER), "float64"),
             D: T.Tensor((n, N_PER), "float32"), E: T.Tensor((n, N_PER), "float64")):
        with T.Kernel(BLOCKS, threads=THREADS) as bx:
            tx = T.get_thread_binding()
            row = bx * THREADS + tx
            if seq is None:
                T.rng_init(seed, off=off)
            else:
                T.rng_init(seed, T.cast(row, "uint64") + seq, off)
            for j in T.serial(N_PER):
                A[row, j] = T.rng_rand()
            for j in T.serial(N_PER):
                B[row, j] = T.rng_rand_float()
            for j in T.serial(N_PER):
                C[row, j] = T.rng_rand_float(bit=64)
            for j in T.serial(N_PER - 1):  # odd: a float32 normal stays pending in the state
                D[row, j] = T.rng_rand_float(dist="normal")
            for j in T.serial(N_PER):
                E[row, j] = T.rng_rand_float(64, "normal")
            D[row, N_PER - 1] = T.rng_rand_float(dist="normal")  # the pending one

    return main


def _reference(seed, off, seq):
    n = THREADS * BLOCKS
    out = [np.zeros((n, N_PER), dt) for dt in (np.uint32, np.float32, np.float64, np.float32, np.float64)]
    for r in range(n):
        g = RefGen(seed, r if seq is None else seq + r, off)  # TileLang's default seq: tx + bx * threads
        out[0][r] = [g.rand() for _ in range(N_PER)]
        out[1][r] = [g.uniform32() for _ in range(N_PER)]
        out[2][r] = [g.uniform64() for _ in range(N_PER)]
        out[3][r] = [g.gauss(32) for _ in range(N_PER)]
        out[4][r] = [g.gauss(64) for _ in range(N_PER)]
    return out


def _run(kernel):
    n = THREADS * BLOCKS
    bufs = [np.zeros((n, N_PER), dt) for dt in (np.uint32, np.float32, np.float64, np.float32, np.float64)]
    kernel(*bufs)
    return bufs


def _check(got, want):
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])
    np.testing.assert_allclose(got[3], want[3], rtol=2e-6, atol=2e-6)  # each target's own log / sin / cos
    np.testing.assert_allclose(got[4], want[4], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
@pytest.mark.parametrize(("seed", "off", "seq"), [(42, 0, None), ((1 << 40) + 7, 5, (1 << 33) - 3)])
def test_rng_matches_the_reference_in_the_emulator(arch, seed, off, seq):
    k = tilewise.compile(per_thread(seed, off, seq), target=f"cuda -arch={arch}", execution_backend="emulator")
    _check(_run(k), _reference(seed, off, seq))


def test_rng_on_the_cpu_gives_the_same_numbers():
    with pytest.warns(UserWarning, match="thread-exactly"):
        k = tilewise.compile(per_thread(7, 3, None), target="cpu")
    _check(_run(k), _reference(7, 3, None))


def test_rng_sass_keeps_the_state_in_registers(nvrtc_check):
    # the Philox multiplies are IMAD.WIDE.U32; the state is never in local memory
    for arch in ("sm_80", "sm_90a"):
        k = tilewise.compile(per_thread(1, 0, None), target=f"cuda -arch={arch}", execution_backend="emulator")
        mix = instruction_mix(k.get_sass(), ["IMAD", "LDL", "STL"])
        assert mix["IMAD"] > 100 and mix["LDL"] == mix["STL"] == 0, (arch, mix)
    nvrtc_check(per_thread(1, 0, None))


def test_rng_errors():
    with pytest.raises(CompileError, match="needs the generator state"):
        @T.prim_func
        def no_init(A: T.Tensor((4,), "uint32")):
            with T.Kernel(1, threads=4):
                tx = T.get_thread_binding()
                A[tx] = T.rng_rand()

    with pytest.raises(CompileError, match="curandStateSobol32_t.*is not one of"):
        @T.prim_func
        def sobol(A: T.Tensor((4,), "uint32")):
            with T.Kernel(1, threads=4):
                tx = T.get_thread_binding()
                T.rng_init(1, generator="curandStateSobol32_t")
                A[tx] = T.rng_rand()

    with pytest.raises(CompileError, match="bit must be 32 or 64"):
        @T.prim_func
        def bits(A: T.Tensor((4,), "float32")):
            with T.Kernel(1, threads=4):
                tx = T.get_thread_binding()
                T.rng_init(1)
                A[tx] = T.rng_rand_float(bit=16)


def tilelang_rand_1d(M=1024, seed=42, generator="curandStatePhilox4_32_10_t"):
    """TileLang's program (test_tilelang_language_rand.py), unchanged."""
    num_per_thread = 128
    threads = 1
    blk_M = num_per_thread * threads

    @T.prim_func
    def rand_kernel(A: T.Tensor((M,), "uint32"), B: T.Tensor((M,), "float32"), C: T.Tensor((M,), "float64"),
                    D: T.Tensor((M,), "float32"), E: T.Tensor((M,), "float64")):
        with T.Kernel(T.ceildiv(M, threads * num_per_thread), threads=threads) as bx:
            tx = T.get_thread_binding()
            T.rng_init(seed, 0, bx * blk_M + tx * num_per_thread, generator=generator)
            for i, j in T.Parallel(threads, num_per_thread):
                idx = (bx * threads + i) * num_per_thread + j
                if idx < M:
                    A[idx] = T.rng_rand()
            for i, j in T.Parallel(threads, num_per_thread):
                idx = (bx * threads + i) * num_per_thread + j
                if idx < M:
                    B[idx] = T.rng_rand_float()
            for i, j in T.Parallel(threads, num_per_thread):
                idx = (bx * threads + i) * num_per_thread + j
                if idx < M:
                    C[idx] = T.rng_rand_float(bit=64)
            for i, j in T.Parallel(threads, num_per_thread):
                idx = (bx * threads + i) * num_per_thread + j
                if idx < M:
                    D[idx] = T.rng_rand_float(dist="normal")
            for i, j in T.Parallel(threads, num_per_thread):
                idx = (bx * threads + i) * num_per_thread + j
                if idx < M:
                    E[idx] = T.rng_rand_float(bit=64, dist="normal")

    return rand_kernel


@pytest.mark.slow  # NVRTC compiles five unrolled 128-step loops for the PTX cross-check (about a minute)
def test_tilelang_rand_program_distributions():
    M = 2048
    k = tilewise.compile(tilelang_rand_1d(M, seed=123), target="cuda -arch=sm_80", execution_backend="emulator")
    A, B, C, D, E = (np.zeros(M, dt) for dt in (np.uint32, np.float32, np.float64, np.float32, np.float64))
    k(A, B, C, D, E)
    # block b's thread draws with seq 0 from offset 128 b: one stream, cut into consecutive pieces
    g = RefGen(123, 0, 0)
    np.testing.assert_array_equal(A[:128], [g.rand() for _ in range(128)])
    assert len(np.unique(A)) > M - 4
    for u in (B, C):
        assert ((u > 0) & (u <= 1)).all() and abs(u.mean() - 0.5) < 0.03 and abs(u.std() - 12**-0.5) < 0.02
    for z in (D, E):
        assert abs(z.mean()) < 0.08 and abs(z.std() - 1) < 0.06
