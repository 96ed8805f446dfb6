"""curand's `curandStateMRG32k3a_t` for T.rng_init(..., generator="curandStateMRG32k3a_t"): L'Ecuyer's
combined multiple recursive generator MRG32k3a ("Good parameters and implementations for combined
multiple recursive random number generators", Operations Research 47(1), 1999) with curand's
seeding, skip-ahead, integer and uniform outputs, with numpy over the lanes of a batch. The GPU
headers' twin is backend/include/tw_curand.h; its jump tables are `jump_tables()` below, written
into the header by `header_tables()` (a test checks they agree).

The generator: two third-order recurrences
  x1[n] = (1403580 x1[n-2] - 810728 x1[n-3]) mod m1,   m1 = 2^32 - 209
  x2[n] = (527612 x2[n-1] - 1370589 x2[n-3]) mod m2,   m2 = 2^32 - 22853
and the output z = x1 - x2 mod m1 in [1, m1] (m1 where the difference is 0).
curand's seeding: all six words 12345 (the published seed), and for a seed other than 0 each word
multiplied mod m by the low or high half of the seed xor a salt (`seed_state`). `seq` skips
seq * 2^76 steps (curand_init's skipahead_subsequence; seq is masked to its low 51 bits, as curand
does, so that subsequences never reach the next 2^127-step sequence), `off` skips off steps. A
skip of n steps multiplies each half of the state by A^n mod m: the tables hold A^(2^i) and
A^(2^76 * 2^i), computed here exactly with Python integers by repeated squaring.

Outputs: `rng_rand` = (uint32)(z * 1.000000048662) in double (curand's MRG32K3A_BITS_NORM), the
uniform floats z * 2.3283065498378288e-10 (curand's MRG32K3A_NORM, about 1/m1) in double, rounded
to float32 for bit=32: in (0, 1] as curand documents."""
from __future__ import annotations

from functools import cache

import numpy as np

M1, M2 = 4294967087, 4294944443
A12, A13N, A21, A23N = 1403580, 810728, 527612, 1370589
BITS_NORM = 1.000000048662
NORM = 2.3283065498378288e-10
SUBSEQ_LOG2 = 76  # curand_init's subsequence: 2^76 steps
SUBSEQ_BITS = 51  # seq is masked to its low 51 bits (curand's tables end there)
OFF_BITS = 64
# state words: x1[n-3], x1[n-2], x1[n-1], x2[n-3], x2[n-2], x2[n-1]; 11-15 the normals' (emulator/rng.py)
S1, S2 = 0, 3

# the one-step matrices on (x[n-3], x[n-2], x[n-1]) -> (x[n-2], x[n-1], x[n])
_A1 = ((0, 1, 0), (0, 0, 1), (M1 - A13N, A12, 0))
_A2 = ((0, 1, 0), (0, 0, 1), (M2 - A23N, 0, A21))


def _matmul(a, b, m: int):
    return tuple(tuple(sum(a[i][k] * b[k][j] for k in range(3)) % m for j in range(3)) for i in range(3))


def _square_n(a, n: int, m: int):
    for _ in range(n):
        a = _matmul(a, a, m)
    return a


@cache
def jump_tables() -> tuple[np.ndarray, np.ndarray]:
    """(off, sub): off[i] = (A1^(2^i), A2^(2^i)) for i < 64, sub[i] = the same for 2^(76 + i),
    i < 51; uint64 arrays [bits, 2, 3, 3], exact."""
    off, sub = [], []
    a1, a2 = _A1, _A2
    for i in range(SUBSEQ_LOG2 + SUBSEQ_BITS):
        if i < OFF_BITS:
            off.append((a1, a2))
        if i >= SUBSEQ_LOG2:
            sub.append((a1, a2))
        a1, a2 = _matmul(a1, a1, M1), _matmul(a2, a2, M2)
    return np.array(off, np.uint64), np.array(sub, np.uint64)


def seed_state(seed: int) -> list[int]:
    """curand's six state words for a 64-bit seed (0: the published 12345s)."""
    if seed == 0:
        return [12345] * 6
    x1 = (seed & 0xFFFFFFFF) ^ 0x55555555
    x2 = (seed >> 32) ^ 0xAAAAAAAA
    return [x1 * 12345 % M1, x2 * 12345 % M1, x1 * 12345 % M1, x2 * 12345 % M2, x1 * 12345 % M2, x2 * 12345 % M2]


def _apply(s: np.ndarray, table: np.ndarray, n: np.ndarray) -> None:
    """s[:, 0:6] = A^n s per lane, one table entry per set bit of n (uint64 per lane)."""
    for b in range(table.shape[0]):
        lanes = ((n >> np.uint64(b)) & np.uint64(1)).astype(bool)
        if not lanes.any():
            continue
        for half, m, w in ((0, np.uint64(M1), S1), (1, np.uint64(M2), S2)):
            v = s[lanes, w:w + 3].astype(np.uint64)
            mat = table[b, half]
            out = np.zeros_like(v)
            for i in range(3):
                acc = np.zeros(v.shape[0], np.uint64)
                for k in range(3):  # each product < 2^64; reduce before adding
                    acc = (acc + (mat[i, k] * v[:, k]) % m) % m
                out[:, i] = acc
            s[lanes, w:w + 3] = out.astype(np.uint32)


def init(s: np.ndarray, seed, seq, off) -> None:
    """s [n, 16] uint32 set up in place for seed, seq, off (uint64 per lane)."""
    seed, seq, off = (np.broadcast_to(np.asarray(x, np.uint64), s.shape[:1]) for x in (seed, seq, off))
    s[:] = 0
    m1, m2 = np.uint64(M1), np.uint64(M2)
    lo, hi = (seed & np.uint64(0xFFFFFFFF)) ^ np.uint64(0x55555555), (seed >> np.uint64(32)) ^ np.uint64(0xAAAAAAAA)
    k = np.uint64(12345)
    words = [lo * k % m1, hi * k % m1, lo * k % m1, hi * k % m2, lo * k % m2, hi * k % m2]
    zero = seed == 0
    for w, x in enumerate(words):
        s[:, w] = np.where(zero, k, x).astype(np.uint32)
    off_t, sub_t = jump_tables()
    _apply(s, sub_t, seq & np.uint64((1 << SUBSEQ_BITS) - 1))
    _apply(s, off_t, off)


def step(s: np.ndarray) -> np.ndarray:
    """One step of each lane's generator: z in [1, m1] (uint64); the state advances in place."""
    x = s[:, 0:6].astype(np.uint64)
    m1, m2 = np.uint64(M1), np.uint64(M2)
    p1 = (np.uint64(A12) * x[:, 1] + np.uint64(A13N) * (m1 - x[:, 0])) % m1
    p2 = (np.uint64(A21) * x[:, 5] + np.uint64(A23N) * (m2 - x[:, 3])) % m2
    s[:, 0], s[:, 1], s[:, 2] = s[:, 1], s[:, 2], p1.astype(np.uint32)
    s[:, 3], s[:, 4], s[:, 5] = s[:, 4], s[:, 5], p2.astype(np.uint32)
    return np.where(p1 > p2, p1 - p2, p1 + m1 - p2)


def draw(s: np.ndarray) -> np.ndarray:
    """curand(): the next uint32 of each lane (z = m1 gives 2^32: saturated, as the GPU converts)."""
    return np.minimum(step(s).astype(np.float64) * BITS_NORM, 4294967295.0).astype(np.uint32)


def uniform32(s: np.ndarray) -> np.ndarray:
    return (step(s).astype(np.float64) * NORM).astype(np.float32)


def uniform64(s: np.ndarray) -> np.ndarray:
    return step(s).astype(np.float64) * NORM


def header_tables() -> str:
    """The jump tables as C++ for backend/include/tw_curand.h."""
    off, sub = jump_tables()

    def table(name: str, t: np.ndarray) -> str:
        rows = [",".join(str(int(x)) for x in t[b].reshape(-1)) for b in range(t.shape[0])]
        return (f"__device__ const uint32_t {name}[{t.shape[0]}][18] = {{\n" +
                "".join(f"    {{{r}}},\n" for r in rows) + "};\n")

    return table("mrg32k3a_jump_off", off) + table("mrg32k3a_jump_sub", sub)
