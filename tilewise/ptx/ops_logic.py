"""Moves, comparisons and bit manipulation: mov (registers, immediates, special registers,
symbol addresses, vector pack/unpack), setp, set, selp, slct, and, or, xor, not, cnot, shl, shr,
shf, bfe, bfi, prmt, lop3. Semantics from the PTX ISA: shift amounts larger than the width clamp
(shl/shr.u give 0, shr.s the sign), float comparisons without `u` are ordered (false on NaN, `ne`
included), `num`/`nan` test for NaN; `prmt` selects bytes of the 8-byte value {b, a} with the
sign-replicating selector bit; `lop3`'s immediate is the truth table of F(a, b, c) indexed by
a*4 + b*2 + c."""
from __future__ import annotations

import numpy as np

from . import floats as fl
from . import types as ty
from .decode import Mods, opcode, unsupported
from .syntax import Vec

_FLOATS = ("f32", "f64", "f16", "bf16")


# ---------------------------------------------------------------------------- mov

@opcode("mov")
def _mov(ctx, instr):
    m = Mods(instr)
    t = m.take_type()
    m.done()
    d, a = instr.operands
    if isinstance(d, Vec):  # unpack: {lo, ..., hi} = a
        ra = ctx.src(instr, a, t)
        n = len(d.items)
        total = ty.dtype(t).itemsize
        part = total // n
        pdt = ty.UINT[part]
        writers = [ctx.dst(instr, x, {1: "b8", 2: "b16", 4: "b32", 8: "b64"}[part]) for x in d.items]
        shift = [np.uint64(8 * part * k) for k in range(n)]

        def unpack(st):
            v = np.asarray(ra(st)).view(ty.UINT[total]).astype(np.uint64)
            for w, s in zip(writers, shift):
                if w is not None:
                    x = (v >> s).astype(pdt)
                    w(st, x if x.ndim else pdt.type(x))

        return unpack
    if isinstance(a, Vec):  # pack: d = {lo, ..., hi}
        n = len(a.items)
        total = ty.dtype(t).itemsize
        part = total // n
        readers = [ctx.src(instr, x, {1: "b8", 2: "b16", 4: "b32", 8: "b64"}[part]) for x in a.items]
        wd = ctx.dst(instr, d, {4: "b32", 8: "b64", 2: "b16"}[total])
        udt = ty.UINT[total]

        def pack(st):
            acc = None
            for k, r in enumerate(readers):
                x = np.asarray(r(st)).astype(np.uint64) << np.uint64(8 * part * k)
                acc = x if acc is None else acc | x
            acc = acc.astype(udt)
            wd(st, acc if acc.ndim else udt.type(acc))

        return pack
    ra = ctx.src(instr, a, t)
    wd = ctx.dst(instr, d, t)
    return lambda st: wd(st, ra(st))


# ---------------------------------------------------------------------------- comparisons

_INT_CMP = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
            "ge": np.greater_equal}
_UNSIGNED_CMP = {"lo": "lt", "ls": "le", "hi": "gt", "hs": "ge"}
_BOOL = {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor}


def compare_fn(instr, cmp: str, t: str, ftz: bool):
    """fn(a, b) -> bool for comparison `cmp` on operands read as type t."""
    if t in _FLOATS:
        fmt = {"f16": fl.F16, "bf16": fl.BF16}.get(t)

        def vals(x):
            if fmt is not None:
                return fl.from_bits(x, fmt)
            return np.asarray(fl.flush(x, fl.F32) if ftz and t == "f32" else x)

        if cmp in _INT_CMP:
            f = _INT_CMP[cmp]
            if cmp == "ne":
                return lambda a, b: (lambda x, y: (x != y) & ~np.isnan(x) & ~np.isnan(y))(vals(a), vals(b))
            return lambda a, b: f(vals(a), vals(b))
        if cmp.endswith("u") and cmp[:-1] in _INT_CMP:
            f = _INT_CMP[cmp[:-1]]
            return lambda a, b: (lambda x, y: f(x, y) | np.isnan(x) | np.isnan(y))(vals(a), vals(b))
        if cmp == "num":
            return lambda a, b: ~np.isnan(vals(a)) & ~np.isnan(vals(b))
        if cmp == "nan":
            return lambda a, b: np.isnan(vals(a)) | np.isnan(vals(b))
        raise unsupported(instr, f"float comparison .{cmp}")
    if cmp in _UNSIGNED_CMP:
        udt = ty.UINT[ty.dtype(t).itemsize]
        f = _INT_CMP[_UNSIGNED_CMP[cmp]]
        return lambda a, b: f(np.asarray(a).view(udt), np.asarray(b).view(udt))
    if cmp in _INT_CMP:
        if t.startswith("b") and cmp not in ("eq", "ne"):
            raise unsupported(instr, f".{cmp} on a bit type")
        return _INT_CMP[cmp]
    raise unsupported(instr, f"comparison .{cmp}")


def _cmp_mods(instr):
    parts = instr.parts[1:]
    if not parts:
        raise unsupported(instr, "a comparison without operator")
    cmp = parts[0]
    m = Mods(instr)
    m.rest = parts[1:]
    t = m.take_type()
    boolop = m.take("and", "or", "xor")
    ftz = m.flag("ftz")
    return m, cmp, t, boolop, ftz


@opcode("setp")
def _setp(ctx, instr):
    m, cmp, t, boolop, ftz = _cmp_mods(instr)
    m.done()
    if t in ("f16x2", "bf16x2"):
        raise unsupported(instr, "packed comparisons")
    f = compare_fn(instr, cmp, t, ftz)
    dst = instr.operands[0]
    from .syntax import Pair

    p_op, q_op = (dst.first, dst.second) if isinstance(dst, Pair) else (dst, None)
    ra, rb = ctx.src(instr, instr.operands[1], t), ctx.src(instr, instr.operands[2], t)
    wp = ctx.dst(instr, p_op, "pred")
    wq = ctx.dst(instr, q_op, "pred") if q_op is not None else None
    rc = None
    if boolop is not None:
        rc = ctx.src(instr, instr.operands[3], "pred")
        bf = _BOOL[boolop]

    def run(st):
        c = f(ra(st), rb(st))
        if rc is not None:
            cv = rc(st)
            p, q = bf(c, cv), bf(~c, cv)
        else:
            p, q = c, ~c
        if wp is not None:
            wp(st, p)
        if wq is not None:
            wq(st, q)

    return run


@opcode("set")
def _set(ctx, instr):
    parts = instr.parts[1:]
    cmp = parts[0]
    m = Mods(instr)
    m.rest = parts[1:-2]
    boolop = m.take("and", "or", "xor")
    ftz = m.flag("ftz")
    m.done()
    dt, st_t = parts[-2], parts[-1]
    f = compare_fn(instr, cmp, st_t, ftz)
    d, a, b, *rest = instr.operands
    ra, rb = ctx.src(instr, a, st_t), ctx.src(instr, b, st_t)
    wd = ctx.dst(instr, d, dt)
    rc = ctx.src(instr, rest[0], "pred") if boolop else None
    ddt = ty.dtype(dt)
    true = ddt.type(1.0) if dt == "f32" else ddt.type(-1 if ddt.kind == "i" else ddt.type(~ddt.type(0)))

    def run(st):
        c = f(ra(st), rb(st))
        if rc is not None:
            c = _BOOL[boolop](c, rc(st))
        r = np.where(c, true, ddt.type(0)).astype(ddt)
        wd(st, r if r.ndim else ddt.type(r))

    return run


@opcode("selp")
def _selp(ctx, instr):
    m = Mods(instr)
    t = m.take_type()
    m.done()
    d, a, b, c = instr.operands
    ra, rb, rc = ctx.src(instr, a, t), ctx.src(instr, b, t), ctx.src(instr, c, "pred")
    wd = ctx.dst(instr, d, t)
    dt = ty.dtype(t)

    def run(st):
        p = rc(st)
        if np.ndim(p) == 0:
            wd(st, ra(st) if p else rb(st))
            return
        wd(st, np.where(p, ra(st), rb(st)).astype(dt, copy=False))

    return run


@opcode("slct")
def _slct(ctx, instr):
    m = Mods(instr)
    ftz = m.flag("ftz")
    ct = m.take_type(("s32", "f32"))
    t = m.take_type()
    m.done()
    d, a, b, c = instr.operands
    ra, rb, rc = ctx.src(instr, a, t), ctx.src(instr, b, t), ctx.src(instr, c, ct)
    wd = ctx.dst(instr, d, t)
    dt = ty.dtype(t)

    def run(st):
        cv = rc(st)
        if ftz and ct == "f32":
            cv = fl.flush(cv, fl.F32)
        r = np.where(cv >= 0, ra(st), rb(st)).astype(dt)
        wd(st, r if r.ndim else dt.type(r))

    return run


# ---------------------------------------------------------------------------- logic

def _logic(ctx, instr, fn, nsrc):
    m = Mods(instr)
    t = m.take_type(("pred", "b16", "b32", "b64", "u16", "u32", "u64", "s16", "s32", "s64"))
    m.done()
    d, *srcs = instr.operands
    rs = [ctx.src(instr, s, t) for s in srcs]
    wd = ctx.dst(instr, d, t)
    if len(rs) != nsrc:
        raise unsupported(instr, f"{len(rs)} operands")
    if nsrc == 1:
        r0 = rs[0]
        return lambda st: wd(st, fn(r0(st)))
    r0, r1 = rs
    return lambda st: wd(st, fn(r0(st), r1(st)))


@opcode("and")
def _and(ctx, instr):
    return _logic(ctx, instr, np.bitwise_and, 2)


@opcode("or")
def _or(ctx, instr):
    return _logic(ctx, instr, np.bitwise_or, 2)


@opcode("xor")
def _xor(ctx, instr):
    return _logic(ctx, instr, np.bitwise_xor, 2)


@opcode("not")
def _not(ctx, instr):
    return _logic(ctx, instr, np.invert, 1)


@opcode("cnot")
def _cnot(ctx, instr):
    m = Mods(instr)
    t = m.take_type(("b16", "b32", "b64"))
    m.done()
    d, a = instr.operands
    ra, wd = ctx.src(instr, a, t), ctx.dst(instr, d, t)
    dt = ty.dtype(t)

    def run(st):
        r = (np.asarray(ra(st)) == 0).astype(dt)
        wd(st, r if r.ndim else dt.type(r))

    return run


# ---------------------------------------------------------------------------- shifts

@opcode("shl", "shr")
def _shift(ctx, instr):
    m = Mods(instr)
    t = m.take_type(("b16", "b32", "b64", "u16", "u32", "u64", "s16", "s32", "s64"))
    m.done()
    d, a, b = instr.operands
    ra, rb = ctx.src(instr, a, t), ctx.src(instr, b, "u32")
    wd = ctx.dst(instr, d, t)
    dt = ty.dtype(t)
    bits = 8 * dt.itemsize
    left = instr.parts[0] == "shl"
    arith = not left and t.startswith("s")
    work = dt if arith else ty.UINT[dt.itemsize]
    top = np.uint32(bits - 1)

    def run(st):
        x = np.asarray(ra(st)).view(work)
        n = rb(st)
        big = n > top
        k = np.minimum(n, top).astype(work)
        if left:
            r = np.where(big, work.type(0), x << k)
        elif arith:
            r = x >> k  # shifting by bits-1 already fills with the sign
        else:
            r = np.where(big, work.type(0), x >> k)
        r = np.asarray(r, dtype=work).view(dt)
        wd(st, r if r.ndim else dt.type(r))

    return run


@opcode("shf")
def _shf(ctx, instr):
    m = Mods(instr)
    t = m.take_type(("b32",))
    direction = m.take("l", "r")
    mode = m.take("clamp", "wrap")
    m.done()
    d, a, b, c = instr.operands
    ra, rb, rc = ctx.src(instr, a, t), ctx.src(instr, b, t), ctx.src(instr, c, "u32")
    wd = ctx.dst(instr, d, t)

    def run(st):
        n = rc(st)
        n = np.minimum(n, np.uint32(32)) if mode == "clamp" else n & np.uint32(31)
        wide = (np.asarray(rb(st)).astype(np.uint64) << np.uint64(32)) | np.asarray(ra(st)).astype(np.uint64)
        n64 = np.asarray(n).astype(np.uint64)
        if direction == "l":
            r = ((wide << n64) >> np.uint64(32)) & np.uint64(0xFFFFFFFF)
        else:
            r = (wide >> n64) & np.uint64(0xFFFFFFFF)
        r = r.astype(np.uint32)
        wd(st, r if r.ndim else np.uint32(r))

    return run


# ---------------------------------------------------------------------------- bit fields

@opcode("bfe")
def _bfe(ctx, instr):
    m = Mods(instr)
    t = m.take_type(("u32", "s32", "u64", "s64"))
    m.done()
    d, a, b, c = instr.operands
    ra, rb, rc = ctx.src(instr, a, t), ctx.src(instr, b, "u32"), ctx.src(instr, c, "u32")
    wd = ctx.dst(instr, d, t)
    dt = ty.dtype(t)
    bits = 8 * dt.itemsize
    msb = bits - 1
    signed = t.startswith("s")
    udt = ty.UINT[dt.itemsize]

    def run(st):
        x = np.asarray(ra(st)).view(udt).astype(np.uint64)
        pos = (np.asarray(rb(st)) & np.uint32(0xFF)).astype(np.int64)
        ln = (np.asarray(rc(st)) & np.uint32(0xFF)).astype(np.int64)
        if signed:
            sb = np.minimum(pos + ln - 1, msb)
            sbit = np.where(ln == 0, 0, (x >> np.maximum(sb, 0).astype(np.uint64)) & np.uint64(1))
        else:
            sbit = np.zeros_like(x)
        out = np.zeros(np.broadcast(x, pos, ln).shape, dtype=np.uint64)
        for i in range(bits):
            take = (i < ln) & (pos + i <= msb)
            bit = np.where(take, (x >> np.minimum(pos + i, msb).astype(np.uint64)) & np.uint64(1), sbit)
            out |= bit.astype(np.uint64) << np.uint64(i)
        r = out.astype(udt).view(dt)
        wd(st, r if r.ndim else dt.type(r))

    return run


@opcode("bfi")
def _bfi(ctx, instr):
    m = Mods(instr)
    t = m.take_type(("b32", "b64"))
    m.done()
    f, a, b, c, dd = instr.operands
    ra, rb = ctx.src(instr, a, t), ctx.src(instr, b, t)
    rc, rd = ctx.src(instr, c, "u32"), ctx.src(instr, dd, "u32")
    wf = ctx.dst(instr, f, t)
    dt = ty.dtype(t)
    bits = 8 * dt.itemsize

    def run(st):
        x = np.asarray(ra(st)).astype(np.uint64)
        base = np.asarray(rb(st)).astype(np.uint64)
        pos = (np.asarray(rc(st)) & np.uint32(0xFF)).astype(np.int64)
        ln = (np.asarray(rd(st)) & np.uint32(0xFF)).astype(np.int64)
        n = np.clip(np.minimum(ln, bits - pos), 0, bits)
        mask = np.where(n >= 64, np.uint64(2**64 - 1), (np.uint64(1) << n.astype(np.uint64)) - np.uint64(1))
        sh = np.minimum(pos, bits - 1).astype(np.uint64)
        mask_at = np.where(pos >= bits, np.uint64(0), mask << sh)
        r = (base & ~mask_at) | ((x << sh) & mask_at)
        r = r.astype(dt)
        wf(st, r if r.ndim else dt.type(r))

    return run


@opcode("prmt")
def _prmt(ctx, instr):
    m = Mods(instr)
    t = m.take_type(("b32",))
    mode = m.take("f4e", "b4e", "rc8", "ecl", "ecr", "rc16")
    m.done()
    if mode is not None:
        raise unsupported(instr, f"prmt mode .{mode}")
    d, a, b, c = instr.operands
    ra, rb, rc = ctx.src(instr, a, t), ctx.src(instr, b, t), ctx.src(instr, c, "b32")
    wd = ctx.dst(instr, d, t)

    def run(st):
        src = (np.asarray(rb(st)).astype(np.uint64) << np.uint64(32)) | np.asarray(ra(st)).astype(np.uint64)
        sel = np.asarray(rc(st)).astype(np.uint64)
        out = np.zeros(np.broadcast(src, sel).shape, dtype=np.uint64)
        for i in range(4):
            ctl = (sel >> np.uint64(4 * i)) & np.uint64(0xF)
            byte = (src >> ((ctl & np.uint64(7)) * np.uint64(8))) & np.uint64(0xFF)
            rep = np.where(byte & np.uint64(0x80), np.uint64(0xFF), np.uint64(0))
            out |= np.where(ctl & np.uint64(8), rep, byte) << np.uint64(8 * i)
        r = out.astype(np.uint32)
        wd(st, r if r.ndim else np.uint32(r))

    return run


@opcode("lop3")
def _lop3(ctx, instr):
    m = Mods(instr)
    t = m.take_type(("b32",))
    m.done()
    d, a, b, c, lut = instr.operands
    from .syntax import Imm

    if not isinstance(lut, Imm):
        raise unsupported(instr, "a non-immediate lookup table")
    table = lut.value & 0xFF
    ra, rb, rc = ctx.src(instr, a, t), ctx.src(instr, b, t), ctx.src(instr, c, t)
    wd = ctx.dst(instr, d, t)

    def run(st):
        x, y, z = np.asarray(ra(st)), np.asarray(rb(st)), np.asarray(rc(st))
        out = np.zeros(np.broadcast(x, y, z).shape, dtype=np.uint32)
        for k in range(8):
            if table >> k & 1:
                out |= (x if k & 4 else ~x) & (y if k & 2 else ~y) & (z if k & 1 else ~z)
        wd(st, out if out.ndim else np.uint32(out))

    return run
