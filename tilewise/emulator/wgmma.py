"""wgmma (sm_90a; PTX ISA "Asynchronous Warpgroup Level Matrix Multiply-Accumulate
Instructions"): `wgmma_desc`, `wgmma_fence`, `wgmma`, `wgmma_commit`, `wgmma_wait`.

A warpgroup is 128 consecutive threads (thread index / 128); all of them execute each of these
together (DivergenceError otherwise). Everything below is written from the ISA, not from the
compiler's layouts, so that a wrong descriptor, swizzle or fragment layout in the lowering gives
wrong numbers:

- Descriptors ("Matrix Descriptor Format"): start address >> 4 in bits 0-13, leading-dimension
  byte offset (LBO) >> 4 in bits 16-29, stride-dimension byte offset (SBO) >> 4 in bits 32-45,
  base offset in bits 49-51 (only 0 is supported), swizzle in bits 62-63 (1 = 128B, 2 = 64B,
  3 = 32B, 0 = none). They must be the same in every thread of the warpgroup.
- Shared-memory operands ("Shared Memory Matrix Layout", canonical layouts): with T elements per
  16 bytes and an instruction's K always 2T (32 bytes), element (r, k) of an operand with r
  along M (A) or N (B) is at byte offset
    K-major, no swizzle:  (r % 8) * 16 + (r // 8) * SBO + (k // T) * LBO + (k % T) * e
    K-major, S swizzle:   (r % 8) * S  + (r // 8) * SBO + k * e                (LBO unused)
    MN-major, no swizzle: (r % T) * e  + (r // T) * SBO + (k % 8) * 16 + (k // 8) * LBO
    MN-major, S swizzle:  (r % (S/e)) * e + (r // (S/e)) * LBO + (k % 8) * S + (k // 8) * SBO
  from the start address, and the swizzle (hopper.swizzle) is applied to the resulting shared
  address. `trans_a` / `trans_b` select MN-major (f16 / bf16 only, as the ISA allows).
- Register fragments ("Register Fragments"): warp w of the warpgroup holds rows 16w..16w+15;
  with g = lane / 4, t = lane % 4, accumulator element i of a thread is
  D[16w + g + 8 ((i / 2) % 2), 8 (i / 4) + 2t + i % 2] (N/2 elements); an A fragment in
  registers is the mma.sync A fragment of its warp's rows: for 16-bit types
  A[16w + g + 8 ((i / 2) % 2), 2t + i % 2 + 8 (i / 4)] (8 elements), for tf32
  A[16w + g + 8 (i % 2), t + 4 (i / 2)] (4), for 8-bit types
  A[16w + g + 8 ((i / 4) % 2), 4t + i % 4 + 16 (i / 8)] (16).
- Arithmetic: products and sums are exact (float64, or int64 for integers) and each wgmma rounds
  once to the accumulator type (int32 wraps, as without .satfinite); tf32 operands drop their low
  13 mantissa bits as the ISA says. The hardware's accumulation order and intermediate precision
  are unspecified, so this is the exact result a correct kernel approximates.
- Asynchrony: a wgmma reads its operands when issued and its result lands in the accumulator
  registers at the `wgmma_wait` that completes its group (all but the newest n committed groups
  of the warpgroup). Until then the accumulator (and an A fragment in registers) belong to it: a
  plain read or write of them is an AsyncAccessError (async_regs.py), except that a following
  wgmma of the same shape may accumulate into the same registers (the ISA's exception; it
  accumulates onto the pending result). A plain write to shared bytes a pending wgmma reads is an
  AsyncAccessError (async_proxy.py). When the batch orders threads through mbarriers (order.py),
  the operand reads are recorded at the wgmma_wait as reads by the warpgroup, ordered before its
  threads from then on: a TMA refill that no barrier orders after that wait is a RaceError. Operands are also checked when issued: bytes of a TMA or
  cp.async copy still in flight (AsyncCopyError), plain writes of any thread with no
  __syncthreads since (RaceError; an mbarrier phase or named barrier that orders the write
  before every thread of the warpgroup counts too, order.py), and plain writes with no
  fence_proxy_async since (RaceError).
- A warpgroup's first wgmma must follow a `wgmma_fence` of it (the ISA requires one before the
  first wgmma.mma_async; later ones are only needed after register accesses the emulator does
  not track)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import numpy as np

from ..ir import dtype as _dt
from . import arith, async_proxy, async_regs, order, ptx, races
from .async_proxy import Reader
from .errors import AsyncAccessError, AsyncCopyError, DivergenceError, RaceError, UnsupportedError, where
from .hopper import active_lanes, address, block_name, lane_offsets, state, swizzle, values
from .memory import NONE, check_init

WG = 128
_SWIZZLE_MODE = {0: 0, 1: 128, 2: 64, 3: 32}  # descriptor bits 62-63 -> swizzle bytes
_MODE_OF = {0: 0, 128: 1, 64: 2, 32: 3}

_ALIASES = {
    "f16": "float16", "fp16": "float16", "bf16": "bfloat16", "tf32": "tfloat32", "f32": "float32",
    "e4m3": "float8_e4m3", "e5m2": "float8_e5m2", "float8_e4m3fn": "float8_e4m3", "s8": "int8", "u8": "uint8",
    "s32": "int32",
}  # fmt: skip
# operand type -> (bytes, K of the instruction)
_OPERANDS = {"float16": (2, 16), "bfloat16": (2, 16), "tfloat32": (4, 8), "float8_e4m3": (1, 32),
             "float8_e5m2": (1, 32), "int8": (1, 32), "uint8": (1, 32)}  # fmt: skip


def _type(name, operand: bool) -> str:
    t = _ALIASES.get(str(name).lstrip("."), str(name).lstrip("."))
    return "tfloat32" if operand and t == "float32" else t


def _np(t: str) -> np.dtype:
    return np.dtype(np.float32) if t == "tfloat32" else arith.np_dtype(_dt.as_dtype(t))


# ------------------------------------------------------------------------------ fragments


@cache
def d_coords(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of accumulator element i of warpgroup thread l: arrays [128, n / 2]."""
    lane = np.arange(WG)[:, None]
    i = np.arange(n // 2)[None, :]
    w, g, t = lane // 32, (lane % 32) // 4, lane % 4
    return 16 * w + g + 8 * ((i // 2) % 2), 8 * (i // 4) + 2 * t + i % 2


@cache
def a_coords(esize: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of A-fragment element i of warpgroup thread l: arrays [128, elements]."""
    lane = np.arange(WG)[:, None]
    w, g, t = lane // 32, (lane % 32) // 4, lane % 4
    if esize == 2:
        i = np.arange(8)[None, :]
        return 16 * w + g + 8 * ((i // 2) % 2), 2 * t + i % 2 + 8 * (i // 4)
    if esize == 4:
        i = np.arange(4)[None, :]
        return 16 * w + g + 8 * (i % 2), t + 4 * (i // 2)
    i = np.arange(16)[None, :]
    return 16 * w + g + 8 * ((i // 4) % 2), 4 * t + i % 4 + 16 * (i // 8)


def operand_offsets(R: int, K: int, esize: int, mn_major: bool, S: int, lbo, sbo) -> np.ndarray:
    """Byte offsets from the start address of element (r, k) of an R x K operand: [n, R, K] for
    per-warpgroup lbo, sbo [n]."""
    r = np.arange(R)[None, :, None]
    k = np.arange(K)[None, None, :]
    lbo = np.asarray(lbo, np.int64)[:, None, None]
    sbo = np.asarray(sbo, np.int64)[:, None, None]
    T = 16 // esize
    if not mn_major:
        if S == 0:
            return (r % 8) * 16 + (r // 8) * sbo + (k // T) * lbo + (k % T) * esize
        return (r % 8) * S + (r // 8) * sbo + k * esize + 0 * lbo
    if S == 0:
        return (r % T) * esize + (r // T) * sbo + (k % 8) * 16 + (k // 8) * lbo
    W = S // esize
    return (r % W) * esize + (r // W) * lbo + (k % 8) * S + (k // 8) * sbo


# ------------------------------------------------------------------------------ warpgroups


class Groups:
    """Per warpgroup of the batch: committed groups, whether it fenced, wgmmas in flight."""

    def __init__(self, nwg: int):
        self.committed = np.zeros(nwg, np.int64)
        self.fenced = np.zeros(nwg, bool)
        self.pending: list[Pending] = []


def _groups(st) -> Groups:
    hs = state(st)
    if hs.wgmma is None:
        hs.wgmma = Groups(st.nb * -(-st.T // WG))
    return hs.wgmma


def warpgroups(st, what: str, span) -> tuple[np.ndarray, np.ndarray]:
    """(warpgroups [n], their lanes [n, 128]) executing `what`; every thread of each must."""
    wpb = -(-st.T // WG)
    lanes = active_lanes(st)
    wg = st.lane_block[lanes] * wpb + st.lane_tid[lanes] // WG
    count = np.bincount(wg, minlength=st.nb * wpb)
    partial = (count > 0) & (count < WG)
    if partial.any():
        g = int(np.flatnonzero(partial)[0])
        b, j = divmod(g, wpb)
        on = np.zeros(WG, bool)
        on[st.lane_tid[lanes[wg == g]] - WG * j] = True
        t_on, t_off = WG * j + int(np.flatnonzero(on)[0]), WG * j + int(np.flatnonzero(~on)[0])
        missing = (f"{st.describe(b, t_off)} does not" if t_off < st.T else
                   f"the warpgroup has only {st.T - WG * j} threads (threads={list(st.threads)}); thread {t_off} does not "
                   f"exist and")
        raise DivergenceError(
            f"{what} needs all 128 threads of a warpgroup, but in warpgroup {j} {st.describe(b, t_on)} executes it at "
            f"{where(span)} and {missing} execute it"
        )
    wgs = np.flatnonzero(count)
    lanes_of = (wgs // wpb * st.T + wgs % wpb * WG)[:, None] + np.arange(WG)
    return wgs, lanes_of


def _who(st, wg: int) -> str:
    wpb = -(-st.T // WG)
    b, j = divmod(int(wg), wpb)
    return f"warpgroup {j} (threads {WG * j}-{WG * j + WG - 1}) of {block_name(st, b)}"


def _who_in_block(st, wgs: np.ndarray, block: int, wpb: int) -> str:
    mine = wgs[wgs // wpb == block]
    return " and ".join(_who(st, g) for g in mine) if mine.size else _who(st, wgs[0])


def _uniform(st, v: np.ndarray, wgs, lanes, what: str, span) -> np.ndarray:
    """One value per warpgroup of per-lane values v [n, 128]; they must agree."""
    bad = (v != v[:, :1]).any(axis=1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        j = int(np.flatnonzero(v[k] != v[k, 0])[0])
        raise DivergenceError(
            f"{what} at {where(span)}: {st.thread_of_lane(int(lanes[k, j]))} passes {v[k, j]:#x} but "
            f"{st.thread_of_lane(int(lanes[k, 0]))} passes {v[k, 0]:#x}; the value must be the same in every thread of "
            f"{_who(st, wgs[k])}"
        )
    return v[:, 0]


# ------------------------------------------------------------------------------ wgmma_desc


def _desc(comp, e):
    sw = int(e.attrs.get("swizzle", 0))
    lbo, sbo = int(e.attrs.get("lbo", 0)), int(e.attrs.get("sbo", 0))
    if sw not in _MODE_OF:
        raise UnsupportedError(f"wgmma_desc swizzle {sw} at {where(comp.span)} (0, 32, 64 or 128)")
    for name, v in (("lbo", lbo), ("sbo", sbo)):
        if v % 16 or not 0 <= v < (1 << 18):
            raise UnsupportedError(f"wgmma_desc {name}={v} at {where(comp.span)}: a multiple of 16 below 2^18 bytes")
    acc = address(comp, e.args[0], "wgmma descriptor address", "shared")
    high = np.uint64(((lbo >> 4) << 16) | ((sbo >> 4) << 32) | (_MODE_OF[sw] << 62))
    comp.prog.uses_hopper = True

    def wgmma_desc(st):
        lanes = active_lanes(st)
        off = acc.byte_offset(st)
        if lanes.size:
            lane_offsets(st, acc, lanes, 16, 16, "wgmma descriptor start address")
        base = state(st).base(st, st.store[acc.slot])
        a = (np.asarray(off, np.int64) + base) & 0x3FFFF
        return (a >> 4).astype(np.uint64) | high

    return wgmma_desc


def decode(d: np.ndarray):
    """(start address, LBO, SBO, base offset, swizzle bytes) of descriptors d (uint64 arrays)."""
    d = np.asarray(d, np.uint64)
    start = ((d & np.uint64(0x3FFF)) << np.uint64(4)).astype(np.int64)
    lbo = (((d >> np.uint64(16)) & np.uint64(0x3FFF)) << np.uint64(4)).astype(np.int64)
    sbo = (((d >> np.uint64(32)) & np.uint64(0x3FFF)) << np.uint64(4)).astype(np.int64)
    base_off = ((d >> np.uint64(49)) & np.uint64(7)).astype(np.int64)
    mode = (d >> np.uint64(62)).astype(np.int64)
    return start, lbo, sbo, base_off, np.vectorize(_SWIZZLE_MODE.get, otypes=[np.int64])(mode)


# ------------------------------------------------------------------------------ wgmma


@dataclass
class Pending:
    """The wgmmas of one statement in flight, one row per warpgroup."""

    what: str
    span: object
    wgs: np.ndarray
    lanes: np.ndarray  # [n, 128]
    group: np.ndarray  # [n], -1 until committed
    storage: object  # the accumulator registers
    off: np.ndarray  # [n, 128] root byte offsets of the accumulators
    result: np.ndarray  # [n, 128, bytes]
    key: tuple  # (shape, c type): wgmmas that may chain on the accumulator
    owned: list  # async_regs.Owned
    readers: list  # (storage, flat [n, bytes]) read through descriptors
    sid: int = -1  # a site naming the operand reads (races.py)

    def who(self, st, lane: int) -> str:
        return _who(st, self._wg(st, lane))

    def uncommitted(self, st, lane: int) -> str:
        k = np.flatnonzero(self.wgs == self._wg(st, lane))
        return " (no wgmma_commit has put it in a group yet)" if k.size and self.group[k[0]] < 0 else ""

    @staticmethod
    def _wg(st, lane: int) -> int:
        return int(st.lane_block[lane]) * -(-st.T // WG) + int(st.lane_tid[lane]) // WG


def _wgmma(comp, e):
    shape = str(e.attrs.get("shape", ""))
    mt = re.fullmatch(r"m64n(\d+)k(\d+)", shape)
    if mt is None:
        raise UnsupportedError(f"wgmma shape {shape!r} at {where(comp.span)} (expected m64n<N>k<K>)")
    N, K = int(mt.group(1)), int(mt.group(2))
    at = _type(e.attrs.get("a_dtype", "float16"), True)
    bt = _type(e.attrs.get("b_dtype", at), True)
    ct = _type(e.attrs.get("c_dtype", "float32"), False)
    a_regs = bool(e.attrs.get("a_regs", False))
    trans_a, trans_b = bool(int(e.attrs.get("trans_a", 0))), bool(int(e.attrs.get("trans_b", 0)))
    _check_variant(comp, shape, N, K, at, bt, ct, a_regs, trans_a, trans_b)
    esize = _OPERANDS[at][0]
    a_np, b_np, c_np = _np(at), _np(bt), _np(ct)
    integer = ct == "int32"
    work = np.int64 if integer else np.float64
    c_bytes = N // 2 * c_np.itemsize
    na = a_coords(esize)[0].shape[1]
    acc = address(comp, e.args[0], f"wgmma accumulator ({N // 2} x {ct})", "local")
    if a_regs:
        a_acc = address(comp, e.args[1], f"wgmma A fragment ({na} x {at})", "local")
    else:
        fa = comp.expr(e.args[1])
    fb = comp.expr(e.args[2])
    fscale = comp.expr(e.args[3]) if len(e.args) > 3 else (lambda st: 1)
    span = comp.span
    what = f"wgmma.mma_async.{shape}.{ct}.{at}.{bt}"
    read_sid = comp.prog.new_site(None, span, f"{what} operand read").sid
    drow, dcol = d_coords(N)
    arow, acol = a_coords(esize)
    comp.prog.uses_hopper = True

    def wgmma(st):
        wgs, wl = warpgroups(st, what, span)
        if wgs.size == 0:
            return
        G = _groups(st)
        lanes = wl.reshape(-1)
        unfenced = ~G.fenced[wgs]
        if unfenced.any():
            raise AsyncAccessError(
                f"{what} at {where(span)} is the first wgmma of {_who(st, wgs[np.flatnonzero(unfenced)[0]])}, which has "
                f"executed no wgmma_fence before it (the PTX ISA requires wgmma.fence before the first wgmma.mma_async)"
            )
        n = wgs.size
        storage = st.store[acc.slot]
        off = lane_offsets(st, acc, lanes, c_bytes, 4, "wgmma accumulator").reshape(n, WG)
        scale = _uniform(st, values(st, fscale, lanes).reshape(n, WG), wgs, wl, "wgmma scale-d", span) != 0
        owned_new, readers = [], []
        # A
        if a_regs:
            a_store = st.store[a_acc.slot]
            a_off = lane_offsets(st, a_acc, lanes, na * esize, 4, "wgmma A fragment").reshape(n, WG)
            _check_regs(st, a_store, wl, a_off, na * esize, "A operand", None, what, span)
            raw = _regs(st, a_store, a_acc.site, wl, a_off, na * esize, a_np)
            A = np.zeros((n, 64, K), raw.dtype)
            A[:, arow, acol] = raw
            owned_new.append(_owned(st, a_store, lanes, a_off, na * esize, "A operand", span))
        else:
            A, a_read = _smem_operand(st, fa, wgs, wl, 64, K, a_np, trans_a, "A", what, span)
            readers.append(a_read)
        B, b_read = _smem_operand(st, fb, wgs, wl, N, K, b_np, trans_b, "B", what, span)
        readers.append(b_read)
        B = np.swapaxes(B, 1, 2)  # the operand is read as N x K
        # D: the registers, or the result of a pending wgmma this one chains on
        chain = _check_regs(st, storage, wl, off, c_bytes, "accumulator", (shape, ct), what, span)
        Dold = None
        if scale.any():
            regs = _regs(st, storage, acc.site, wl, off, c_bytes, c_np, chain)
            Dold = np.zeros((n, 64, N), work)
            Dold[:, drow, dcol] = regs.astype(work)
        if at == "tfloat32":
            A, B = ptx.to_tf32(A), ptx.to_tf32(B)
        D = np.matmul(A.astype(work), B.astype(work))
        if Dold is not None:
            D = D + np.where(scale[:, None, None], Dold, 0)
        res = np.ascontiguousarray(D[:, drow, dcol].astype(c_np)).view(np.uint8)  # int32 wraps like the hardware
        rec = Pending(what, span, wgs, wl, np.full(n, -1, np.int64), storage, off, res, (shape, ct), [], [], read_sid)
        owned_new.insert(0, _owned(st, storage, lanes, off, c_bytes, "accumulator", span))
        for o in owned_new:
            o.wgmma = rec
            async_regs.own(st, o)
        rec.owned = owned_new
        wpb = -(-st.T // WG)
        for s, flat in readers:
            _add_readers(st, s, flat, wgs, Reader("wgmma operand read", span, "wgmma_wait of its warpgroup",
                                                  lambda st_, b: _who_in_block(st_, wgs, b, wpb)))
        rec.readers = readers
        G.pending.append(rec)

    return wgmma


def _check_variant(comp, shape, N, K, at, bt, ct, a_regs, trans_a, trans_b):
    bad = None
    if at not in _OPERANDS or bt not in _OPERANDS:
        bad = "operand types"
    elif _OPERANDS[at][1] != K or _OPERANDS[bt][1] != K:
        bad = f"K = {K} for {at} x {bt} (16 for f16/bf16, 8 for tf32, 32 for 8-bit types)"
    elif at in ("int8", "uint8") or bt in ("int8", "uint8"):
        if not (at in ("int8", "uint8") and bt in ("int8", "uint8") and ct == "int32"):
            bad = "integer operands with an int32 accumulator"
        elif not (N in (8, 16, 24, 32) or (N % 16 == 0 and 48 <= N <= 256)):
            bad = f"N = {N} for integer wgmma"
    elif at.startswith("float8") or bt.startswith("float8"):
        if not (at.startswith("float8") and bt.startswith("float8") and ct in ("float16", "float32")):
            bad = "fp8 operands with an f16 or f32 accumulator"
    elif at != bt:
        bad = "A and B of the same type"
    elif ct not in (("float16", "float32") if at == "float16" else ("float32",)):
        bad = f"a {ct} accumulator for {at}"
    if bad is None and not (N % 8 == 0 and 8 <= N <= 256):
        bad = f"N = {N}"
    if bad is None and (trans_a or trans_b) and at not in ("float16", "bfloat16"):
        bad = "transposed (MN-major) operands only for f16 / bf16"
    if bad is None and trans_a and a_regs:
        bad = "trans_a with A in registers"
    if bad is not None:
        raise UnsupportedError(f"wgmma.{shape} with A {at}, B {bt}, D {ct} at {where(comp.span)}: the PTX ISA allows "
                               f"only {bad}")


def _owned(st, storage, lanes, off, nbytes, kind, span) -> async_regs.Owned:
    mask = np.zeros(st.L, bool)
    mask[lanes] = True
    o = np.zeros(st.L, np.int64)
    o[lanes] = off.reshape(-1)
    return async_regs.Owned(storage, mask, o, nbytes, kind, span)


def _uniform_off(off: np.ndarray):
    """The offset if every lane's is the same (the usual case: a slice is much faster)."""
    o = int(off.flat[0])
    return o if (off == o).all() else None


def _regs(st, storage, site, wl, off, nbytes, npdt, chain=None):
    """Registers [n, 128, elements] of npdt at root byte offsets off [n, 128]; where `chain`
    holds the result of a pending wgmma for a row, that instead."""
    if storage.init is not None and chain is None:
        flat = (wl.reshape(-1) * storage.data.shape[1] + off.reshape(-1))[:, None] + np.arange(nbytes)
        check_init(st, storage, site, flat, wl.reshape(-1), site.buffer.static_shape())
    o = _uniform_off(off)
    if o is not None:
        raw = storage.data[wl.reshape(-1), o:o + nbytes].reshape(wl.shape + (nbytes,))
    else:
        raw = storage.data[wl[:, :, None], off[:, :, None] + np.arange(nbytes)]
    if chain is not None:
        have = chain[1]
        raw[have] = chain[0][have]
    return np.ascontiguousarray(raw).view(npdt)


def _check_regs(st, storage, wl, off, nbytes, kind, key, what, span):
    """Registers a new wgmma uses as `kind` that pending wgmmas own: allowed for an A fragment
    shared by wgmmas, and for an accumulator that a pending wgmma of the same shape (key) has at
    the same registers, whose result this one accumulates onto. Returns (results [n, 128, bytes],
    has [n]) of the latest such wgmma, or None."""
    if storage.busy is None:
        return None
    n = wl.shape[0]
    out = np.zeros((n, WG, nbytes), np.uint8)
    has = np.zeros(n, bool)
    lanes = wl.reshape(-1)
    o = off.reshape(-1)
    for own in storage.busy:  # in issue order: the latest chained result wins
        hit = own.overlap(lanes, o, nbytes)
        if not hit.any():
            continue
        ok = own.kind == kind and (kind == "A operand" or (
            own.wgmma.key == key and own.nbytes == nbytes and (own.off[lanes[hit]] == o[hit]).all()))
        if not ok:
            k = int(np.flatnonzero(hit)[0])
            lane = int(lanes[k])
            raise AsyncAccessError(
                f"{what} at {where(span)} by {own.wgmma.who(st, lane)} uses registers of {st.thread_of_lane(lane)} "
                f"(byte {int(o[k])} of {storage.name}) as its {kind} while the {own.wgmma.what} issued at "
                f"{where(own.span)} still owns them as its {own.kind}: no wgmma_wait has completed its group"
            )
        if kind == "accumulator":
            rec = own.wgmma
            rows = np.flatnonzero(hit.reshape(n, WG).any(axis=1))
            pos = {int(g): i for i, g in enumerate(rec.lanes[:, 0])}
            for r in rows:
                i = pos.get(int(wl[r, 0]))
                if i is not None:
                    out[r] = rec.result[i]
                    has[r] = True
    return (out, has) if has.any() else None


def _smem_operand(st, fdesc, wgs, wl, R, K, npdt, mn_major, name, what, span):
    """Operand `name` (R x K) read through the descriptors the warpgroups pass: ([n, R, K] of
    npdt, (storage, flat byte indices [n, bytes]))."""
    hs = state(st)
    n = wgs.size
    desc = np.broadcast_to(np.asarray(fdesc(st), np.uint64), (st.L,))[wl.reshape(-1)].reshape(n, WG)
    d = _uniform(st, desc, wgs, wl, f"wgmma {name} descriptor", span)
    start, lbo, sbo, base_off, S = decode(d)
    if (base_off != 0).any():
        k = int(np.flatnonzero(base_off)[0])
        raise UnsupportedError(f"{what} at {where(span)}: the {name} descriptor {int(d[k]):#x} has a non-zero base "
                               f"offset ({int(base_off[k])}), which the emulator does not support")
    esize = npdt.itemsize
    addr = np.empty((n, R, K), np.int64)
    for s in np.unique(S):
        sel = S == s
        lin = start[sel][:, None, None] + operand_offsets(R, K, esize, mn_major, int(s), lbo[sel], sbo[sel])
        addr[sel] = swizzle(lin, int(s))
    storage, root = hs.resolve(st, addr, esize, f"{what} {name} operand", span, wl[:, 0])
    blocks = st.lane_block[wl[:, 0]]
    flat = (blocks[:, None, None] * storage.data.shape[1] + root)[..., None] + np.arange(esize)
    flat = flat.reshape(n, -1)
    _check_read(st, storage, flat, wgs, f"{what} ({name} operand)", span)
    vals = np.ascontiguousarray(storage.data.reshape(-1)[flat]).view(npdt).reshape(n, R, K)
    return vals, (storage, flat)


def _check_read(st, storage, flat, wgs, what, span):
    """The operand bytes [n, bytes] must hold data: no copy into them in flight, no plain write
    of any thread since the last __syncthreads, and no plain write since a fence_proxy_async."""
    sh = storage.shadow
    f = flat.reshape(-1)
    if sh is not None:
        for arr, sites, kind in ((sh.p, sh.ps, "pending"), (sh.w, sh.ws, "write")):
            if kind == "pending" and not sh.any_pending:
                continue
            v = arr[f]
            bad = v != NONE
            if kind == "write" and sh.wq is not None and bad.any():
                bad = _unordered_writes(st, sh, f, v, bad, wgs, flat.shape[1])
            if not bad.any():
                continue
            k = int(np.flatnonzero(bad)[0])
            block, byte = divmod(int(f[k]), storage.data.shape[1])
            wg = wgs[k // flat.shape[1]]
            site = st.sites[int(sites[f[k]])]
            who = st.describe(block, int(v[k]))
            elem = async_proxy._byte_name(st, storage, site.sid, byte)
            if kind == "pending":
                copy = "TMA load" if site.what.startswith("TMA load") else "cp.async copy"
                done = "no mbarrier_wait has seen its barrier's phase complete" if copy == "TMA load" else \
                    "no cp_async_wait of that thread followed by a __syncthreads has covered it"
                raise AsyncCopyError(f"{what} at {where(span)} by {_who(st, wg)} reads {elem} while a {copy} into it is "
                                     f"still in flight: {who} issued it ({site.what} at {where(site.span)}), and {done}")
            raise RaceError(f"shared-memory race on {elem}: {who} wrote it ({site.what} at {where(site.span)}), then "
                            f"{what} at {where(span)} by {_who(st, wg)} reads it, with no __syncthreads between them")
    if st.hopper is not None:
        async_proxy.check_fenced(st, storage, f, what, span, _who(st, wgs[0]))
    async_proxy.check_initialised(st, storage, f, what, span, _who(st, wgs[0]))


def _unordered_writes(st, sh, f, writers, bad, wgs, per_wg: int):
    """Plain writes of the operand bytes that an mbarrier phase or named barrier orders before
    every thread of the reading warpgroup are not races (order.py)."""
    wpb = -(-st.T // WG)
    view = order.group_view(st, wgs // wpb, (wgs % wpb) * WG, min(WG, st.T))  # [n, T]
    k = np.flatnonzero(bad)
    ok = sh.wq[f[k]] <= view[k // per_wg, writers[k]]
    bad = bad.copy()
    bad[k[ok]] = False
    return bad


def _add_readers(st, storage, flat, wgs, reader):
    """Count each warpgroup's reads separately (two warpgroups of a block often read one B)."""
    wpb = -(-st.T // WG)
    for j in np.unique(wgs % wpb):
        sel = (wgs % wpb) == j
        async_proxy.add_readers(st, storage, flat[sel].reshape(-1), reader)


def _drop_readers(st, storage, flat, wgs):
    wpb = -(-st.T // WG)
    for j in np.unique(wgs % wpb):
        sel = (wgs % wpb) == j
        async_proxy.drop_readers(st, storage, flat[sel].reshape(-1))


# ------------------------------------------------------------------------------ fence, commit, wait


def _fence(comp, e):
    span = comp.span
    comp.prog.uses_hopper = True

    def wgmma_fence(st):
        wgs, _ = warpgroups(st, "wgmma.fence", span)
        if wgs.size:
            _groups(st).fenced[wgs] = True

    return wgmma_fence


def _commit(comp, e):
    span = comp.span
    comp.prog.uses_hopper = True

    def wgmma_commit(st):
        wgs, _ = warpgroups(st, "wgmma.commit_group", span)
        if wgs.size == 0:
            return
        G = _groups(st)
        for rec in G.pending:
            open_ = (rec.group < 0) & np.isin(rec.wgs, wgs)
            rec.group[open_] = G.committed[rec.wgs[open_]]
        G.committed[wgs] += 1

    return wgmma_commit


def _wait(comp, e):
    n = int(e.attrs.get("n", 0))
    span = comp.span
    comp.prog.uses_hopper = True

    def wgmma_wait(st):
        wgs, _ = warpgroups(st, f"wgmma.wait_group {n}", span)
        if wgs.size == 0:
            return
        G = _groups(st)
        keep = []
        for rec in G.pending:  # program order: a chained result lands after the one it used
            done = (rec.group >= 0) & (rec.group < G.committed[rec.wgs] - n) & np.isin(rec.wgs, wgs)
            if done.any():
                _land(st, rec, done)
            if rec.wgs.size:
                keep.append(rec)
        G.pending = keep

    return wgmma_wait


def _land(st, rec: Pending, done: np.ndarray):
    s = rec.storage
    wl, off = rec.lanes[done], rec.off[done]
    nbytes = rec.result.shape[2]
    o = _uniform_off(off)
    if o is not None:
        rows = wl.reshape(-1)
        s.data[rows, o:o + nbytes] = rec.result[done].reshape(-1, nbytes)
        if s.init is not None:
            s.init[rows, o:o + nbytes] = True
    else:
        idx = off[:, :, None] + np.arange(nbytes)
        s.data[wl[:, :, None], idx] = rec.result[done]
        if s.init is not None:
            s.init[wl[:, :, None], idx] = True
    for ow in rec.owned:
        async_regs.release(st, ow, wl.reshape(-1))
    for storage, flat in rec.readers:
        _drop_readers(st, storage, flat[done], rec.wgs[done])
    if order.get(st) is not None and rec.readers:
        # the operand reads are complete now: ordered before the warpgroup's threads from here on
        wpb = -(-st.T // WG)
        wgs = rec.wgs[done]
        q = order.async_reads_done(st, wgs // wpb, wgs % wpb)
        pseudo = (st.T + wgs % wpb).astype(np.int32)
        for storage, flat in rec.readers:
            if storage.shadow is not None and storage.shadow.wq is not None:
                fr = flat[done]
                races.on_async_read_done(st, storage, fr.reshape(-1), np.repeat(pseudo, fr.shape[1]), rec.sid, q)
    keep = ~done
    rec.wgs, rec.lanes, rec.group, rec.off, rec.result = rec.wgs[keep], rec.lanes[keep], rec.group[keep], rec.off[keep], rec.result[keep]
    rec.readers = [(s_, f[keep]) for s_, f in rec.readers]


HANDLERS = {
    "wgmma_desc": _desc,
    "wgmma_fence": _fence,
    "wgmma": _wgmma,
    "wgmma_commit": _commit,
    "wgmma_wait": _wait,
}
