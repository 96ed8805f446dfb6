"""T.rng_init(..., generator="curandStateMRG32k3a_t"): curand's MRG32k3a (rng/mrg32k3a.py,
backend/include/tw_curand.h). Checked against L'Ecuyer's published first outputs (the all-12345
seed, which is curand's seed 0) and his next substream (2^76 steps on: curand's subsequence 1),
against a scalar reference written here with Python integers whose skip-ahead is one matrix power
(not the tables), and kernels give the same numbers in the emulator (cross-checked by the PTX
interpreter running what NVRTC compiled from tw_curand.h, conftest), on the CPU target and through
the HIP header."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError
from tilewise.rng import mrg32k3a as mrg

MRG = "curandStateMRG32k3a_t"
M1, M2 = mrg.M1, mrg.M2


def _matpow(a, n: int, m: int):
    r = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
    while n:
        if n & 1:
            r = mrg._matmul(r, a, m)
        a = mrg._matmul(a, a, m)
        n >>= 1
    return r


class RefMRG:
    """One thread's generator with Python integers; the skip-ahead is A^(seq 2^76 + off) directly."""

    def __init__(self, seed: int, seq: int, off: int):
        s = mrg.seed_state(seed)
        n = (seq % (1 << 51)) * (1 << 76) + off
        self.x1, self.x2 = [], []
        for a, m, v, out in ((mrg._A1, M1, s[:3], self.x1), (mrg._A2, M2, s[3:], self.x2)):
            p = _matpow(a, n, m)
            out.extend(sum(p[i][k] * v[k] for k in range(3)) % m for i in range(3))
        self.normal = {}

    def z(self) -> int:
        x1, x2 = self.x1, self.x2
        p1 = (1403580 * x1[1] - 810728 * x1[0]) % M1
        p2 = (527612 * x2[2] - 1370589 * x2[0]) % M2
        self.x1, self.x2 = [x1[1], x1[2], p1], [x2[1], x2[2], p2]
        return p1 - p2 if p1 > p2 else p1 - p2 + M1

    def rand(self) -> int:
        return min(int(float(self.z()) * 1.000000048662), 0xFFFFFFFF)

    def uniform64(self) -> float:
        return float(self.z()) * 2.3283065498378288e-10

    def uniform32(self) -> np.float32:
        return np.float32(self.uniform64())

    def gauss(self, bits: int) -> float:
        if bits in self.normal:
            return self.normal.pop(bits)
        u, v = (self.uniform32(), self.uniform32()) if bits == 32 else (self.uniform64(), self.uniform64())
        rad = math.sqrt(-2.0 * math.log(u))
        self.normal[bits] = rad * math.cos(2 * math.pi * v)
        return rad * math.sin(2 * math.pi * v)


def test_published_first_outputs_and_substream():
    # L'Ecuyer's MRG32k3a from six 12345s (RngStreams' default stream, u = z / (m1 + 1)); curand's
    # seed 0 is that state. RngStreams' next substream starts 2^76 steps on: curand's subsequence 1.
    g = RefMRG(0, 0, 0)
    assert [g.z() for _ in range(5)] == [545508589, 1368065410, 1327943761, 3546985096, 951893194]
    s = np.zeros((2, 16), np.uint32)
    mrg.init(s, [0, 0], [0, 1], [0, 0])
    u = np.stack([mrg.step(s) for _ in range(3)], axis=1) * 2.328306549295727688e-10  # RngStreams' norm
    assert u[0].tolist() == [0.12701112204657714, 0.3185275653967945, 0.3091860155832701]
    assert u[1].tolist() == [0.07939898979733463, 0.4803395047575741, 0.8583222470551328]


@pytest.mark.parametrize(("seed", "seq", "off"), [(0, 0, 1000), (5, 3, 12345), ((1 << 63) + 99, (1 << 51) + 7, (1 << 64) - 1),
                                                  (0xDEADBEEF12345678, (1 << 50) + 12345, 1 << 40)])
def test_table_skip_ahead_is_the_matrix_power(seed, seq, off):
    s = np.zeros((1, 16), np.uint32)
    mrg.init(s, seed, seq, off)
    ref = RefMRG(seed, seq, off)
    assert s[0, :6].tolist() == ref.x1 + ref.x2
    if seq == 0:  # and stepping gets there too
        t = np.zeros((1, 16), np.uint32)
        mrg.init(t, seed, 0, 0)
        for _ in range(off):
            mrg.step(t)
        assert (t == s).all()


def test_header_tables_are_the_computed_ones():
    header = (Path(tilewise.__file__).parent / "backend" / "include" / "tw_curand.h").read_text()
    tables = mrg.header_tables()
    assert tables in header
    off, sub = mrg.jump_tables()
    assert off.shape == (64, 2, 3, 3) and sub.shape == (51, 2, 3, 3)
    assert re.search(r"mrg32k3a_jump_sub\[51\]\[18\]", header)


N_PER, THREADS, BLOCKS = 5, 4, 2


def per_thread(seed, off, seq=None, generator=MRG):
    n = THREADS * BLOCKS

    @T.prim_func
    def main(A: T.Tensor((n, N_PER), "uint32"), B: T.Tensor((n, N_PER), "float32"), C: T.Tensor((n, N_PER), "float64"),
             D: T.Tensor((n, N_PER), "float32"), E: T.Tensor((n, N_PER), "float64")):
        with T.Kernel(BLOCKS, threads=THREADS) as bx:
            tx = T.get_thread_binding()
            row = bx * THREADS + tx
            if seq is None:
                T.rng_init(seed, off=off, generator=generator)
            else:
                T.rng_init(seed, T.cast(row, "uint64") + seq, off, generator=generator)
            for j in T.serial(N_PER):
                A[row, j] = T.rng_rand()
            for j in T.serial(N_PER):
                B[row, j] = T.rng_rand_float()
            for j in T.serial(N_PER):
                C[row, j] = T.rng_rand_float(bit=64)
            for j in T.serial(N_PER):  # odd: a float32 normal stays pending, the last one takes it
                D[row, j] = T.rng_rand_float(dist="normal")
            for j in T.serial(N_PER):
                E[row, j] = T.rng_rand_float(64, "normal")

    return main


def _reference(seed, off, seq):
    n = THREADS * BLOCKS
    out = [np.zeros((n, N_PER), dt) for dt in (np.uint32, np.float32, np.float64, np.float32, np.float64)]
    for r in range(n):
        g = RefMRG(seed, r if seq is None else seq + r, off)
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
    for g, w in zip(got[:3], want[:3]):  # integers and uniforms: bit for bit
        np.testing.assert_array_equal(g, w)
    assert ((got[1] > 0) & (got[1] <= 1)).all() and ((got[2] > 0) & (got[2] <= 1)).all()
    np.testing.assert_allclose(got[3], want[3], rtol=2e-6, atol=2e-6)  # each target's own log / sin / cos
    np.testing.assert_allclose(got[4], want[4], rtol=1e-13, atol=1e-13)


CASES = [(42, 0, None), ((1 << 40) + 7, 5, (1 << 33) - 3)]


@pytest.mark.parametrize(("seed", "off", "seq"), CASES)
def test_mrg32k3a_kernel_in_the_emulator_and_ptx(seed, off, seq):
    k = tilewise.compile(per_thread(seed, off, seq), target="cuda -arch=sm_80", execution_backend="emulator")
    src = k.get_kernel_source()
    assert '#include "tw_curand.h"' in src and "tw::mrg32k3a_init(" in src
    _check(_run(k), _reference(seed, off, seq))


def test_mrg32k3a_on_the_cpu():
    with pytest.warns(UserWarning, match="thread-exactly"):
        k = tilewise.compile(per_thread(7, 3, None), target="cpu")
    _check(_run(k), _reference(7, 3, None))


@pytest.mark.usefixtures("clang19")
def test_mrg32k3a_through_the_hip_header():
    k = tilewise.compile(per_thread(*CASES[1]), target="hip -arch=gfx942", execution_backend="emulator")
    assert "tw::mrg32k3a_rand(" in k.get_kernel_source()
    assert k.resource_usage()["scratch_bytes"] == 0
    _check(_run(k), _reference(*CASES[1]))


def test_philox_kernels_do_not_include_the_tables():
    @T.prim_func
    def philox(A: T.Tensor((4,), "uint32")):
        with T.Kernel(1, threads=4):
            tx = T.get_thread_binding()
            T.rng_init(1)
            A[tx] = T.rng_rand()

    k = tilewise.compile(philox, target="cuda -arch=sm_80", execution_backend="emulator")
    assert "tw_curand.h" not in k.get_kernel_source()


def test_mrg32k3a_errors():
    with pytest.raises(CompileError, match="already"):
        @T.prim_func
        def two(A: T.Tensor((4,), "uint32")):
            with T.Kernel(1, threads=4):
                tx = T.get_thread_binding()
                T.rng_init(1, generator=MRG)
                T.rng_init(1)
                A[tx] = T.rng_rand()


@pytest.mark.parametrize("generator", [MRG, "curandStateXORWOW_t"])
def test_curand_generators_keep_the_state_in_registers(nvrtc_check, generator):
    # sm_80 and sm_90a: no spills, no local memory (the state's indices are all constants)
    nvrtc_check(per_thread(1, 0, None, generator))
