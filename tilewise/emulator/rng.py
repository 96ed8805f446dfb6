"""T.rng_init / T.rng_rand / T.rng_rand_float (language/rng.py): Philox4x32-10 with numpy, over
the lanes of a batch. The generator state is the thread's `uint32[16]` register buffer the
intrinsics address (docs/THREAD_IR.md, "rng_init"), read and written here as
the GPU headers do (backend/include/tw_philox.h). The intrinsics' `generator` attribute picks
curand's MRG32k3a (mrg32k3a.py) or XORWOW (xorwow.py) instead; the normals' Box-Muller is shared.

`philox4x32_10`, `draw` and the float conversions are written for arrays of lanes; the tests
check them against the Philox authors' known-answer vectors and a scalar reference."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..ir.expr import Call
from ..rng import mrg32k3a as _mrg
from ..rng import xorwow as _xorwow
from .errors import UnsupportedError, where

if TYPE_CHECKING:
    from .compiler import Compiler

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)
MASK32 = np.uint64(0xFFFFFFFF)
# state words: counter (4, least significant first), key (2), next output word, the block (4),
# normal float32 pending flag and value bits, normal float64 pending flag and value bits (2)
CTR, KEY, IDX, OUT, NF, NV, DF, DV = 0, 4, 6, 7, 11, 12, 13, 14
STATE_BYTES = 64


def philox4x32_10(ctr: np.ndarray, key: np.ndarray) -> np.ndarray:
    """ctr [n, 4], key [n, 2] uint32 -> the Philox4x32-10 blocks [n, 4] uint32."""
    c = [ctr[:, i].astype(np.uint64) for i in range(4)]
    k0, k1 = key[:, 0].copy(), key[:, 1].copy()
    for r in range(10):
        if r:
            k0 = k0 + W0
            k1 = k1 + W1
        p0, p1 = M0 * c[0], M1 * c[2]
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0.astype(np.uint64), p1 & MASK32,
             (p0 >> np.uint64(32)) ^ c[3] ^ k1.astype(np.uint64), p0 & MASK32]
    return np.stack(c, axis=1).astype(np.uint32)


def _add_counter(s: np.ndarray, n, word: int = 0) -> None:
    """The 128-bit counter s[:, 0:4] += n << (32 * word) (n: uint64 per lane)."""
    n = np.asarray(n, np.uint64)
    lo, hi = n & MASK32, n >> np.uint64(32)
    carry = np.zeros(s.shape[0], np.uint64)
    for i, add in enumerate((lo, hi)):
        w = word + i
        if w > 3:
            break
        t = s[:, w].astype(np.uint64) + add + carry
        s[:, w] = (t & MASK32).astype(np.uint32)
        carry = t >> np.uint64(32)
    for w in range(word + 2, 4):
        t = s[:, w].astype(np.uint64) + carry
        s[:, w] = (t & MASK32).astype(np.uint32)
        carry = t >> np.uint64(32)


def init(s: np.ndarray, seed, seq, off) -> None:
    """s [n, 16] uint32 set up in place for seed, seq, off (uint64 per lane)."""
    seed, off = np.asarray(seed, np.uint64), np.asarray(off, np.uint64)
    s[:] = 0
    s[:, KEY] = (seed & MASK32).astype(np.uint32)
    s[:, KEY + 1] = (seed >> np.uint64(32)).astype(np.uint32)
    _add_counter(s, seq, word=2)
    _add_counter(s, off >> np.uint64(2))
    s[:, IDX] = (off & np.uint64(3)).astype(np.uint32)
    s[:, OUT:OUT + 4] = philox4x32_10(s[:, CTR:CTR + 4], s[:, KEY:KEY + 2])


def draw(s: np.ndarray) -> np.ndarray:
    """The next word of each lane's generator [n] uint32; the state advances in place."""
    idx = s[:, IDX].astype(np.intp)
    out = s[np.arange(s.shape[0]), OUT + idx]
    idx = idx + 1
    done = idx == 4
    if done.any():
        sub = s[done]
        _add_counter(sub, np.ones(sub.shape[0], np.uint64))
        sub[:, OUT:OUT + 4] = philox4x32_10(sub[:, CTR:CTR + 4], sub[:, KEY:KEY + 2])
        s[done] = sub
        idx[done] = 0
    s[:, IDX] = idx.astype(np.uint32)
    return out


def uniform32(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) * np.float32(2.0**-32) + np.float32(2.0**-33)


def uniform64(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    z = x.astype(np.uint64) ^ (y.astype(np.uint64) << np.uint64(21))
    return z.astype(np.float64) * 2.0**-53 + 2.0**-54


# language/rng.py's generator= for rng/mrg32k3a.py and rng/xorwow.py
MRG32K3A, XORWOW = "curandStateMRG32k3a_t", "curandStateXORWOW_t"


def _philox_uniform(s: np.ndarray, bits: int) -> np.ndarray:
    return uniform32(draw(s)) if bits == 32 else uniform64(draw(s), draw(s))


def _mrg_uniform(s: np.ndarray, bits: int) -> np.ndarray:
    return _mrg.uniform32(s) if bits == 32 else _mrg.uniform64(s)


def _xorwow_uniform(s: np.ndarray, bits: int) -> np.ndarray:
    if bits == 32:
        return uniform32(_xorwow.draw(s))
    x = _xorwow.draw(s)
    return uniform64(x, _xorwow.draw(s))


_UNIFORM = {MRG32K3A: _mrg_uniform, XORWOW: _xorwow_uniform}
_INIT = {MRG32K3A: _mrg.init, XORWOW: _xorwow.init}
_DRAW = {MRG32K3A: _mrg.draw, XORWOW: _xorwow.draw}


def rand_float(s: np.ndarray, bits: int, dist: str, generator: str | None = None) -> np.ndarray:
    """The next float of each lane (see language/rng.py); the state advances in place."""
    n = s.shape[0]
    uniform = _UNIFORM.get(generator, _philox_uniform)
    if dist == "uniform":
        return uniform(s, bits)
    flag, val = (NF, NV) if bits == 32 else (DF, DV)
    pending = s[:, flag] != 0
    out = np.empty(n, np.float32 if bits == 32 else np.float64)
    if pending.any():
        words = s[pending, val:val + (1 if bits == 32 else 2)]
        out[pending] = np.ascontiguousarray(words).view(out.dtype).reshape(-1)
        s[pending, flag] = 0
    fresh = ~pending
    if fresh.any():
        sub = s[fresh]
        if bits == 32:
            u = uniform(sub, 32)
            v = uniform(sub, 32)
            rad = np.sqrt(np.float32(-2.0) * np.log(u)).astype(np.float32)
            ang = np.pi * (v * np.float32(2)).astype(np.float64)  # 2 pi v, as sinpif(2 v) takes it
            first = (rad * np.sin(ang).astype(np.float32)).astype(np.float32)
            second = (rad * np.cos(ang).astype(np.float32)).astype(np.float32)
            sub[:, val] = second.view(np.uint32)
        else:
            u = uniform(sub, 64)
            v = uniform(sub, 64)
            rad = np.sqrt(-2.0 * np.log(u))
            first, second = rad * np.sin(2 * np.pi * v), rad * np.cos(2 * np.pi * v)
            sub[:, val:val + 2] = np.ascontiguousarray(second).view(np.uint32).reshape(-1, 2)
        sub[:, flag] = 1
        s[fresh] = sub
        out[fresh] = first
    return out


# ------------------------------------------------------------------------------ intrinsics


def _state_access(comp: Compiler, e: Call):
    from .calls import _addr  # calls.py imports this module

    acc = _addr(comp, e.args[0], e.name + " generator state")
    if acc.kind != "local":
        raise UnsupportedError(f"{e.name}: the generator state is a thread's registers, got {acc.buf.scope} "
                               f"{acc.buf.name} at {where(comp.span)}")
    return acc


def _lanes(st) -> np.ndarray:
    return st.lanes if st.mask is None else np.flatnonzero(st.mask)


def _read(st, acc, lanes):
    from .calls import read_bytes

    off = acc.byte_offset(st)
    return np.ascontiguousarray(read_bytes(st, acc, off, STATE_BYTES, lanes, acc.shape_strides(st)[0])).view(np.uint32)


def _write(st, acc, lanes, s):
    from .calls import write_bytes

    write_bytes(st, acc, acc.byte_offset(st), np.ascontiguousarray(s).view(np.uint8), lanes)


def _per_lane(v, st, lanes):
    return np.broadcast_to(np.asarray(v), (st.L,))[lanes] if np.ndim(v) else np.full(lanes.size, v, np.uint64)


def _rng_init(comp: Compiler, e: Call):
    acc = _state_access(comp, e)
    fseed, fseq, foff = (comp.expr(a) for a in e.args[1:])
    init_state = _INIT.get(e.attrs.get("generator"), init)

    def rng_init(st):
        lanes = _lanes(st)
        if lanes.size == 0:
            return
        s = np.zeros((lanes.size, 16), np.uint32)
        init_state(s, *(_per_lane(f(st), st, lanes).astype(np.uint64) for f in (fseed, fseq, foff)))
        _write(st, acc, lanes, s)

    return rng_init


def _rng_rand(comp: Compiler, e: Call):
    acc = _state_access(comp, e)
    next_word = _DRAW.get(e.attrs.get("generator"), draw)

    def rng_rand(st):
        out = np.zeros(st.L, np.uint32)
        lanes = _lanes(st)
        if lanes.size:
            s = _read(st, acc, lanes).copy()
            out[lanes] = next_word(s)
            _write(st, acc, lanes, s)
        return out

    return rng_rand


def _rng_rand_float(comp: Compiler, e: Call):
    acc = _state_access(comp, e)
    bits, dist, gen = e.dtype.bits, e.attrs.get("dist", "uniform"), e.attrs.get("generator")

    def rng_rand_float(st):
        out = np.zeros(st.L, np.float32 if bits == 32 else np.float64)
        lanes = _lanes(st)
        if lanes.size:
            s = _read(st, acc, lanes).copy()
            out[lanes] = rand_float(s, bits, dist, gen)
            _write(st, acc, lanes, s)
        return out

    return rng_rand_float


HANDLERS = {"rng_init": _rng_init, "rng_rand": _rng_rand, "rng_rand_float": _rng_rand_float}
