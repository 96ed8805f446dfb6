"""Integer arithmetic: add, sub, mul (.lo/.hi/.wide), mad, div, rem, abs, neg, min, max, and the
bit counts popc, clz, brev, bfind. Semantics from the PTX ISA's integer arithmetic section:
two's complement wrap-around unless `.sat` (add/sub/mad .s32 clamp to the int32 range); `.hi`
and `.wide` use the full double-width product. Integer division by zero is unspecified by PTX;
the interpreter returns all ones for the quotient and the dividend for the remainder (what the
GPU's division sequence yields), so that such a kernel still runs and can be compared.

The arithmetic opcodes (add, sub, mul, mad, min, max, abs, neg, div, rem) are shared with the
float instructions: the decoder here dispatches on the instruction type."""
from __future__ import annotations

import numpy as np

from . import ops_float
from . import types as ty
from .decode import Mods, opcode, unsupported

INT_TYPES = ("s16", "u16", "s32", "u32", "s64", "u64", "b16", "b32", "b64")
FLOAT_TYPES = ("f16", "f16x2", "bf16", "bf16x2", "f32", "f64")

_M32 = np.uint64(0xFFFFFFFF)


def instr_type(instr) -> str:
    for m in reversed(instr.parts[1:]):
        if m in ty.DTYPES:
            return m
    raise unsupported(instr, "an instruction without a type")


def _wider(t: str) -> str:
    return {"s16": "s32", "u16": "u32", "s32": "s64", "u32": "u64"}[t]


def _unsigned(dt: np.dtype) -> np.dtype:
    return ty.UINT[dt.itemsize]


def mul_hi(a, b, t: str):
    """High half of the double-width product of a and b (numpy arrays of type t)."""
    dt = ty.dtype(t)
    bits = 8 * dt.itemsize
    if bits < 64:
        w = np.int64 if ty.is_signed(t) else np.uint64
        p = a.astype(w) * b.astype(w)
        return (p >> bits).astype(dt)
    ua = a.view(np.uint64) if hasattr(a, "view") else np.uint64(a)
    ub = b.view(np.uint64) if hasattr(b, "view") else np.uint64(b)
    al, ah = ua & _M32, ua >> np.uint64(32)
    bl, bh = ub & _M32, ub >> np.uint64(32)
    ll, lh, hl, hh = al * bl, al * bh, ah * bl, ah * bh
    mid = (ll >> np.uint64(32)) + (lh & _M32) + (hl & _M32)
    hi = hh + (lh >> np.uint64(32)) + (hl >> np.uint64(32)) + (mid >> np.uint64(32))
    if ty.is_signed(t):
        hi = hi - np.where(a < 0, ub, np.uint64(0)) - np.where(b < 0, ua, np.uint64(0))
    return hi.view(dt) if hasattr(hi, "view") else dt.type(hi)


def _sat32(x64):
    return np.clip(x64, -(2**31), 2**31 - 1).astype(np.int32)


def _binop(ctx, instr, t, fn, out_t=None):
    if len(instr.operands) != 3:
        raise unsupported(instr, f"{len(instr.operands)} operands")
    d, a, b = instr.operands
    ra, rb = ctx.src(instr, a, t), ctx.src(instr, b, t)
    wd = ctx.dst(instr, d, out_t or t)

    def run(st):
        wd(st, fn(ra(st), rb(st)))

    return run


@opcode("add", "sub")
def _add(ctx, instr):
    t = instr_type(instr)
    if t in FLOAT_TYPES:
        return ops_float.decode_addsub(ctx, instr)
    m = Mods(instr)
    t = m.take_type(INT_TYPES)
    sat = m.flag("sat")
    if m.take("cc") or instr.parts[0] in ("addc", "subc"):
        raise unsupported(instr, "carry chains")
    m.done()
    sub = instr.parts[0] == "sub"
    if sat:
        if t != "s32":
            raise unsupported(instr, ".sat on a type other than .s32")
        fn = (lambda a, b: _sat32(a.astype(np.int64) - b)) if sub else (lambda a, b: _sat32(a.astype(np.int64) + b))
    else:
        fn = np.subtract if sub else np.add
    return _binop(ctx, instr, t, fn)


@opcode("mul")
def _mul(ctx, instr):
    t = instr_type(instr)
    if t in FLOAT_TYPES:
        return ops_float.decode_mul(ctx, instr)
    m = Mods(instr)
    t = m.take_type(INT_TYPES)
    mode = m.take("lo", "hi", "wide", default="lo")
    m.done()
    if mode == "lo":
        return _binop(ctx, instr, t, np.multiply)
    if mode == "hi":
        return _binop(ctx, instr, t, lambda a, b: mul_hi(a, b, t))
    wt = _wider(t)
    wdt = ty.dtype(wt)
    return _binop(ctx, instr, t, lambda a, b: a.astype(wdt) * b.astype(wdt), out_t=wt)


@opcode("mad")
def _mad(ctx, instr):
    t = instr_type(instr)
    if t in FLOAT_TYPES:
        return ops_float.decode_fma(ctx, instr)
    m = Mods(instr)
    t = m.take_type(INT_TYPES)
    mode = m.take("lo", "hi", "wide", default="lo")
    sat = m.flag("sat")
    m.done()
    d, a, b, c = instr.operands
    ra, rb = ctx.src(instr, a, t), ctx.src(instr, b, t)
    out_t = _wider(t) if mode == "wide" else t
    rc = ctx.src(instr, c, out_t)
    wd = ctx.dst(instr, d, out_t)
    if sat and not (mode == "hi" and t == "s32"):
        raise unsupported(instr, ".sat outside mad.hi.sat.s32")
    if mode == "lo":
        def run(st):
            wd(st, ra(st) * rb(st) + rc(st))
    elif mode == "hi":
        def run(st):
            h = mul_hi(ra(st), rb(st), t)
            wd(st, _sat32(h.astype(np.int64) + rc(st)) if sat else h + rc(st))
    else:
        wdt = ty.dtype(out_t)

        def run(st):
            wd(st, ra(st).astype(wdt) * rb(st).astype(wdt) + rc(st))

    return run


def _divrem(a, b, t: str, rem: bool):
    dt = ty.dtype(t)
    ut = _unsigned(dt)
    a = np.asarray(a)
    b = np.asarray(b)
    zero = b == 0
    if ty.is_signed(t):
        ua = np.where(a < 0, (-a.astype(np.int64)).astype(np.uint64) if dt.itemsize < 8 else (0 - a.view(np.uint64)),
                      a.astype(np.uint64) if dt.itemsize < 8 else a.view(np.uint64))
        ub = np.where(b < 0, (-b.astype(np.int64)).astype(np.uint64) if dt.itemsize < 8 else (0 - b.view(np.uint64)),
                      b.astype(np.uint64) if dt.itemsize < 8 else b.view(np.uint64))
        ub = np.where(zero, np.uint64(1), ub)
        if rem:
            r = ua % ub
            r = np.where(a < 0, np.uint64(0) - r, r)
            out = r.astype(ut).view(dt)
            return np.where(zero, a, out).astype(dt)
        q = ua // ub
        q = np.where((a < 0) != (b < 0), np.uint64(0) - q, q)
        out = q.astype(ut).view(dt)
        return np.where(zero, dt.type(-1), out).astype(dt)
    bb = np.where(zero, dt.type(1), b)
    if rem:
        return np.where(zero, a, a % bb).astype(dt)
    return np.where(zero, ~dt.type(0), a // bb).astype(dt)


@opcode("div", "rem")
def _div(ctx, instr):
    t = instr_type(instr)
    if t in FLOAT_TYPES:
        if instr.parts[0] == "rem":
            raise unsupported(instr, "rem on floats")
        return ops_float.decode_div(ctx, instr)
    m = Mods(instr)
    t = m.take_type(INT_TYPES)
    m.done()
    rem = instr.parts[0] == "rem"
    return _binop(ctx, instr, t, lambda a, b: _divrem(a, b, t, rem))


@opcode("abs", "neg")
def _abs(ctx, instr):
    t = instr_type(instr)
    if t in FLOAT_TYPES:
        return ops_float.decode_absneg(ctx, instr)
    m = Mods(instr)
    t = m.take_type(("s16", "s32", "s64"))
    m.done()
    d, a = instr.operands
    ra, wd = ctx.src(instr, a, t), ctx.dst(instr, d, t)
    if instr.parts[0] == "neg":
        return lambda st: wd(st, -ra(st))
    return lambda st: wd(st, np.abs(ra(st)))  # abs of the most negative value wraps to itself


@opcode("min", "max")
def _minmax(ctx, instr):
    t = instr_type(instr)
    if t in FLOAT_TYPES:
        return ops_float.decode_minmax(ctx, instr)
    m = Mods(instr)
    t = m.take_type(("s16", "u16", "s32", "u32", "s64", "u64"))
    relu = m.flag("relu")
    m.done()
    f = np.minimum if instr.parts[0] == "min" else np.maximum
    if relu:
        zero = ty.dtype(t).type(0)
        return _binop(ctx, instr, t, lambda a, b: np.maximum(f(a, b), zero))
    return _binop(ctx, instr, t, f)


def _unary_bits(ctx, instr, allowed, fn, out_t="u32"):
    m = Mods(instr)
    t = m.take_type(allowed)
    m.done()
    d, a = instr.operands
    ra, wd = ctx.src(instr, a, t), ctx.dst(instr, d, out_t or t)
    bits = 8 * ty.dtype(t).itemsize
    return lambda st: wd(st, fn(ra(st), bits))


def _popc(x, bits):
    x = np.asarray(x).astype(np.uint64)
    n = np.zeros(x.shape, dtype=np.uint32)
    for k in range(bits):
        n += ((x >> np.uint64(k)) & np.uint64(1)).astype(np.uint32)
    return n if n.ndim else np.uint32(n)


def _clz(x, bits):
    x = np.asarray(x).astype(np.uint64)
    n = np.full(x.shape, bits, dtype=np.uint32)
    for k in range(bits):
        n = np.where((x >> np.uint64(k)) & np.uint64(1), np.uint32(bits - 1 - k), n)
    return n if n.ndim else np.uint32(n)


def _brev(x, bits):
    dt = ty.UINT[bits // 8]
    x = np.asarray(x).view(dt).astype(np.uint64)
    out = np.zeros(x.shape, dtype=np.uint64)
    for k in range(bits):
        out |= ((x >> np.uint64(k)) & np.uint64(1)) << np.uint64(bits - 1 - k)
    out = out.astype(dt)
    return out if out.ndim else dt.type(out)


@opcode("popc")
def _popc_op(ctx, instr):
    return _unary_bits(ctx, instr, ("b32", "b64"), _popc)


@opcode("clz")
def _clz_op(ctx, instr):
    return _unary_bits(ctx, instr, ("b32", "b64"), _clz)


@opcode("brev")
def _brev_op(ctx, instr):
    m = Mods(instr)
    t = instr_type(instr)
    m.take_type(("b32", "b64"))
    m.done()
    d, a = instr.operands
    ra, wd = ctx.src(instr, a, t), ctx.dst(instr, d, t)
    bits = 8 * ty.dtype(t).itemsize
    return lambda st: wd(st, _brev(ra(st), bits))


@opcode("bfind")
def _bfind(ctx, instr):
    m = Mods(instr)
    t = m.take_type(("u32", "s32", "u64", "s64"))
    shiftamt = m.flag("shiftamt")
    m.done()
    d, a = instr.operands
    ra, wd = ctx.src(instr, a, t), ctx.dst(instr, d, "u32")
    bits = 8 * ty.dtype(t).itemsize
    signed = ty.is_signed(t)

    def run(st):
        x = np.asarray(ra(st))
        if signed:
            x = np.where(x < 0, ~x, x)
        u = x.astype(np.uint64) if not signed else x.astype(np.int64).view(np.uint64)
        pos = np.full(u.shape, 0xFFFFFFFF, dtype=np.uint32)
        for k in range(bits):
            pos = np.where((u >> np.uint64(k)) & np.uint64(1), np.uint32(k), pos)
        if shiftamt:
            pos = np.where(pos == 0xFFFFFFFF, pos, np.uint32(bits - 1) - pos)
        wd(st, pos if pos.ndim else np.uint32(pos))

    return run


@opcode("dp4a", "dp2a")
def _dp(ctx, instr):
    """dp4a: c + the dot product of the four bytes of a and b; dp2a.lo/.hi: c + the two 16-bit
    halves of a times bytes 0-1 (lo) or 2-3 (hi) of b; signedness from the two operand types."""
    parts = instr.parts[1:]
    four = instr.parts[0] == "dp4a"
    mode = None
    if not four:
        mode = parts[0] if parts and parts[0] in ("lo", "hi") else None
        if mode is None:
            raise unsupported(instr, "dp2a without .lo/.hi")
        parts = parts[1:]
    if len(parts) != 2 or any(p not in ("u32", "s32") for p in parts):
        raise unsupported(instr, "operand types other than .u32/.s32")
    at, bt = parts
    out_t = "u32" if at == bt == "u32" else "s32"
    d, a, b, c = instr.operands
    ra, rb = ctx.src(instr, a, "b32"), ctx.src(instr, b, "b32")
    rc = ctx.src(instr, c, out_t)
    wd = ctx.dst(instr, d, out_t)

    def parts_of(x, width, n, signed):
        x = np.asarray(x).astype(np.int64)
        out = []
        for k in range(n):
            v = (x >> (width * k)) & ((1 << width) - 1)
            if signed:
                v = np.where(v >= 1 << (width - 1), v - (1 << width), v)
            out.append(v)
        return out

    def run(st):
        if four:
            xs = parts_of(ra(st), 8, 4, at == "s32")
            ys = parts_of(rb(st), 8, 4, bt == "s32")
        else:
            xs = parts_of(ra(st), 16, 2, at == "s32")
            ys = parts_of(rb(st), 8, 4, bt == "s32")[(0 if mode == "lo" else 2):][:2]
        acc = np.asarray(rc(st)).astype(np.int64)
        for x, y in zip(xs, ys):
            acc = acc + x * y
        r = (acc & 0xFFFFFFFF).astype(np.uint32).view(ty.dtype(out_t))
        wd(st, r if r.ndim else ty.dtype(out_t).type(r))

    return run
