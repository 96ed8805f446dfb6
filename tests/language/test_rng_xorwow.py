"""T.rng_init(..., generator="curandStateXORWOW_t"): curand's XORWOW (rng/xorwow.py,
backend/include/tw_curand.h with the jump tables the renderer writes into the kernel). Checked
against a scalar reference with Python integers (curand's seeding, stepping through `off`), the
2^67-step subsequence jump against jump matrices computed independently (rows as Python integers,
repeated squaring), Marsaglia's published first outputs of xorwow from his seed, and kernels in the
emulator (cross-checked by the PTX interpreter running what NVRTC compiled, conftest), on the CPU
target and through the HIP header."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

import tilewise
from tilewise.rng import xorwow

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_rng_mrg32k3a import _check, _run, per_thread  # noqa: E402

XORWOW = "curandStateXORWOW_t"
M32 = 0xFFFFFFFF


def _gf2_step_rows() -> list[int]:
    """The step as 160 rows, each a 160-bit integer: row i the state bit i steps to."""
    rows = []
    for i in range(160):
        v = [0] * 5
        v[i // 32] = 1 << (i % 32)
        w = xorwow._step_words(v)
        rows.append(sum(x << (32 * k) for k, x in enumerate(w)))
    return rows


def _gf2_mul(a: list[int], b: list[int]) -> list[int]:  # a then b
    out = []
    for r in a:
        acc, i = 0, 0
        while r:
            if r & 1:
                acc ^= b[i]
            r >>= 1
            i += 1
        out.append(acc)
    return out


def _gf2_apply(x: int, m: list[int]) -> int:
    acc, i = 0, 0
    while x:
        if x & 1:
            acc ^= m[i]
        x >>= 1
        i += 1
    return acc


_JUMP_CACHE: dict[int, list[int]] = {}


def _jump_2pow(k: int) -> list[int]:
    """M^(2^k) by repeated squaring of Python-integer rows."""
    if not _JUMP_CACHE:
        _JUMP_CACHE[0] = _gf2_step_rows()
    top = max(_JUMP_CACHE)
    while top < k:
        _JUMP_CACHE[top + 1] = _gf2_mul(_JUMP_CACHE[top], _JUMP_CACHE[top])
        top += 1
    return _JUMP_CACHE[k]


class RefXorwow:
    def __init__(self, seed: int, seq: int, off: int):
        st = xorwow.seed_state(seed)
        x = sum(w << (32 * k) for k, w in enumerate(st[:5]))
        for b in range(64):
            if (seq >> b) & 1:
                x = _gf2_apply(x, _jump_2pow(67 + b))
        self.v = [(x >> (32 * k)) & M32 for k in range(5)]
        self.d = st[5]
        for _ in range(off):  # the offset by stepping: independent of the tables
            self.rand()
        self.normal = {}

    def rand(self) -> int:
        self.v = xorwow._step_words(self.v)
        self.d = (self.d + 362437) & M32
        return (self.v[4] + self.d) & M32

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


def test_marsaglias_xorwow():
    # Marsaglia's xorwow from his published seed (x, y, z, w, v, d): the step is his
    v, d, out = [123456789, 362436069, 521288629, 88675123, 5783321], 6615241, []
    for _ in range(3):
        t = v[0] ^ (v[0] >> 2)
        v = [v[1], v[2], v[3], v[4], (v[4] ^ (v[4] << 4) ^ t ^ (t << 1)) & M32]
        d = (d + 362437) & M32
        out.append((v[4] + d) & M32)
    s = np.zeros((1, 16), np.uint32)
    s[0, :5], s[0, 5] = [123456789, 362436069, 521288629, 88675123, 5783321], 6615241
    assert [int(xorwow.draw(s)[0]) for _ in range(3)] == out


def test_curand_seeding():
    # curand: the seed's halves salted, multiplied by odd constants, added to / xored into the published words
    s = np.zeros((1, 16), np.uint32)
    xorwow.init(s, 0, 0, 0)
    t0, t1 = 1099087573 * 0xAAD26B49 & M32, 2591861531 * 0xF7DCEFDD & M32
    assert s[0, :6].tolist() == [(123456789 + t0) & M32, 362436069 ^ t0, (521288629 + t1) & M32, 88675123 ^ t1,
                                 (5783321 + t0) & M32, (6615241 + t1 + t0) & M32]


@pytest.mark.parametrize(("seed", "seq", "off"), [(0, 0, 1000), (5, 1, 37), ((1 << 63) + 99, 6, 513), (77, (1 << 63) | 5, 3)])
def test_table_skip_ahead(seed, seq, off):
    s = np.zeros((1, 16), np.uint32)
    xorwow.init(s, seed, seq, off)
    ref = RefXorwow(seed, seq, off)
    assert s[0, :5].tolist() == ref.v and int(s[0, 5]) == ref.d


def test_large_offset_is_the_matrix_power():
    off = (1 << 64) - 3
    s = np.zeros((1, 16), np.uint32)
    xorwow.init(s, 9, 0, off)
    st = xorwow.seed_state(9)
    x = sum(w << (32 * k) for k, w in enumerate(st[:5]))
    for b in range(64):
        if (off >> b) & 1:
            x = _gf2_apply(x, _jump_2pow(b))
    assert s[0, :5].tolist() == [(x >> (32 * k)) & M32 for k in range(5)]
    assert int(s[0, 5]) == (st[5] + 362437 * off) & M32


def _reference(seed, off, seq):
    n = 8
    out = [np.zeros((n, 5), dt) for dt in (np.uint32, np.float32, np.float64, np.float32, np.float64)]
    for r in range(n):
        g = RefXorwow(seed, r if seq is None else seq + r, off)
        out[0][r] = [g.rand() for _ in range(5)]
        out[1][r] = [g.uniform32() for _ in range(5)]
        out[2][r] = [g.uniform64() for _ in range(5)]
        out[3][r] = [g.gauss(32) for _ in range(5)]
        out[4][r] = [g.gauss(64) for _ in range(5)]
    return out


CASES = [(42, 0, None), ((1 << 40) + 7, 5, (1 << 33) - 3)]


@pytest.mark.parametrize(("seed", "off", "seq"), CASES)
def test_xorwow_kernel_in_the_emulator_and_ptx(seed, off, seq):
    k = tilewise.compile(per_thread(seed, off, seq, XORWOW), target="cuda -arch=sm_80", execution_backend="emulator")
    src = k.get_kernel_source()
    assert "#define TW_XORWOW" in src and "tw::xorwow_init(" in src
    _check(_run(k), _reference(seed, off, seq))


def test_xorwow_on_the_cpu():
    with pytest.warns(UserWarning, match="thread-exactly"):
        k = tilewise.compile(per_thread(7, 3, None, XORWOW), target="cpu")
    _check(_run(k), _reference(7, 3, None))


@pytest.mark.usefixtures("clang19")
def test_xorwow_through_the_hip_header():
    k = tilewise.compile(per_thread(*CASES[1], XORWOW), target="hip -arch=gfx942", execution_backend="emulator")
    assert "tw::xorwow_rand(" in k.get_kernel_source()
    _check(_run(k), _reference(*CASES[1]))
