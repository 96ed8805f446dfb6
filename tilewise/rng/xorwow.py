"""curand's `curandStateXORWOW_t` (curand's default generator) for T.rng_init(...,
generator="curandStateXORWOW_t"): Marsaglia's xorwow ("Xorshift RNGs", J. Stat. Softw. 8(14),
2003) with curand's seeding and skip-ahead, with numpy over the lanes of a batch. The GPU
headers' twin is backend/include/tw_curand.h (`#ifdef TW_XORWOW`); its jump tables are
`jump_tables()` below, which the CUDA/HIP renderer writes into a kernel's source when it uses
this generator (`header_tables()`).

The generator: five 32-bit words v and a Weyl counter d; a step
  t = v0 ^ (v0 >> 2); v0..v3 = v1..v4; v4 = (v4 ^ (v4 << 4)) ^ (t ^ (t << 1)); d += 362437
returns v4 + d. curand's seeding: s0 = low half of the seed ^ 0xaad26b49, s1 = high half ^
0xf7dcefdd, t0 = 1099087573 s0, t1 = 2591861531 s1 (mod 2^32), d = 6615241 + t1 + t0, v = (123456789
+ t0, 362436069 ^ t0, 521288629 + t1, 88675123 ^ t1, 5783321 + t0). `seq` skips seq * 2^67 steps
(curand's subsequences), `off` off steps: v is multiplied by M^n over GF(2), M the 160 x 160 bit
matrix of one step, and d advances by 362437 * off (seq's steps are a multiple of 2^32). The tables
hold M^(2^i) and M^(2^(67 + i)), i < 64, computed exactly by repeated squaring (integer matrix
products reduced mod 2).

Outputs: `rng_rand` the step's word; the uniform floats are Philox's conversions (curand's
`_curand_uniform` of one word, `_curand_uniform_double_hq` of two: emulator/rng.py)."""
from __future__ import annotations

from functools import cache

import numpy as np

SUBSEQ_LOG2 = 67
BITS = 64
WEYL = 362437
# state words: v0..v4, d; 11-15 the normals' (emulator/rng.py)
_M32 = 0xFFFFFFFF


def _step_words(v: list[int]) -> list[int]:
    t = v[0] ^ (v[0] >> 2)
    return [v[1], v[2], v[3], v[4], ((v[4] ^ (v[4] << 4)) ^ (t ^ (t << 1))) & _M32]


def _bits(words) -> np.ndarray:
    return np.array([(w >> j) & 1 for w in words for j in range(32)], np.int64)


@cache
def _step_matrix() -> np.ndarray:
    """M [160, 160]: row i the state one step after the state with only bit i set (bit 32 k + j
    is bit j of v[k]); a state x (row vector of bits) steps to x M mod 2."""
    rows = []
    for i in range(160):
        v = [0] * 5
        v[i // 32] = 1 << (i % 32)
        rows.append(_bits(_step_words(v)))
    return np.array(rows, np.int64)


@cache
def jump_tables() -> tuple[np.ndarray, np.ndarray]:
    """(off, seq): M^(2^i) and M^(2^(67 + i)), i < 64, as bit matrices [64, 160, 160] uint8."""
    off, seq = [], []
    a = _step_matrix().astype(np.float64)  # sums of at most 160 ones: exact in double (and BLAS-fast)
    for i in range(SUBSEQ_LOG2 + BITS):
        if i < BITS:
            off.append(a)
        if i >= SUBSEQ_LOG2:
            seq.append(a)
        a = (a @ a) % 2
    return np.array(off, np.uint8), np.array(seq, np.uint8)


def seed_state(seed: int) -> list[int]:
    """curand's v0..v4, d for a 64-bit seed."""
    s0, s1 = (seed & _M32) ^ 0xAAD26B49, (seed >> 32) ^ 0xF7DCEFDD
    t0, t1 = 1099087573 * s0 & _M32, 2591861531 * s1 & _M32
    v = [(123456789 + t0) & _M32, 362436069 ^ t0, (521288629 + t1) & _M32, 88675123 ^ t1, (5783321 + t0) & _M32]
    return v + [(6615241 + t1 + t0) & _M32]


def _to_bits(s: np.ndarray) -> np.ndarray:
    return np.unpackbits(s[:, 0:5].astype("<u4").view(np.uint8), axis=1, bitorder="little").astype(np.float64)


def _from_bits(x: np.ndarray) -> np.ndarray:
    return np.packbits(x.astype(np.uint8), axis=1, bitorder="little").view("<u4").astype(np.uint32)


def _apply(x: np.ndarray, table: np.ndarray, n: np.ndarray) -> None:
    for b in range(table.shape[0]):
        lanes = ((n >> np.uint64(b)) & np.uint64(1)).astype(bool)
        if lanes.any():
            x[lanes] = (x[lanes] @ table[b].astype(np.float64)) % 2


def init(s: np.ndarray, seed, seq, off) -> None:
    """s [n, 16] uint32 set up in place for seed, seq, off (uint64 per lane)."""
    seed, seq, off = (np.broadcast_to(np.asarray(x, np.uint64), s.shape[:1]) for x in (seed, seq, off))
    s[:] = 0
    m32 = np.uint64(_M32)
    s0 = (seed & m32) ^ np.uint64(0xAAD26B49)
    s1 = (seed >> np.uint64(32)) ^ np.uint64(0xF7DCEFDD)
    t0, t1 = (np.uint64(1099087573) * s0) & m32, (np.uint64(2591861531) * s1) & m32
    words = [t0 + np.uint64(123456789), t0 ^ np.uint64(362436069), t1 + np.uint64(521288629),
             t1 ^ np.uint64(88675123), t0 + np.uint64(5783321), t1 + t0 + np.uint64(6615241)]
    for w, x in enumerate(words):
        s[:, w] = (x & m32).astype(np.uint32)
    off_t, seq_t = jump_tables()
    x = _to_bits(s)
    _apply(x, seq_t, seq)
    _apply(x, off_t, off)
    s[:, 0:5] = _from_bits(x)
    s[:, 5] = ((s[:, 5].astype(np.uint64) + np.uint64(WEYL) * (off & m32)) & m32).astype(np.uint32)


def draw(s: np.ndarray) -> np.ndarray:
    """curand(): the next uint32 of each lane; the state advances in place."""
    v0, v4 = s[:, 0], s[:, 4]
    t = v0 ^ (v0 >> np.uint32(2))
    new = (v4 ^ (v4 << np.uint32(4))) ^ (t ^ (t << np.uint32(1)))
    s[:, 0:4] = s[:, 1:5]
    s[:, 4] = new
    s[:, 5] = s[:, 5] + np.uint32(WEYL)
    return s[:, 4] + s[:, 5]


def header_tables() -> str:
    """The jump tables as C++ (each matrix row i the five words bit i of the state steps to), in
    namespace tw, for tw_curand.h's XORWOW functions."""
    off, seq = jump_tables()

    def table(name: str, t: np.ndarray) -> str:
        words = np.packbits(t, axis=2, bitorder="little").view("<u4")  # [64, 160, 5]
        body = ",\n".join("{" + ",".join(f"0x{int(w):x}u" for w in m.reshape(-1)) + "}" for m in words)
        return f"__device__ const uint32_t {name}[{t.shape[0]}][800] = {{\n{body}}};\n"

    return "namespace tw {\n" + table("xorwow_jump_off", off) + table("xorwow_jump_seq", seq) + "}  // namespace tw\n"
