"""cvt (conversions) and cvta (address-space conversions).

Rules from the PTX ISA's cvt section: integer to integer truncates or extends (sign-extending a
signed source), `.sat` clamps to the destination range; float to integer needs an integer
rounding (`.rni` nearest-even, `.rzi`, `.rmi`, `.rpi`), saturates to the destination range and
maps NaN to 0; integer to float and narrowing float conversions round with `.rn`/`.rz`/`.rm`/
`.rp` (`.rna` for tf32), widening float conversions are exact; float to the same float type with
an integer rounding rounds to an integral value. `.ftz` flushes .f32 subnormals, `.sat` on a
float destination clamps to [0, 1], `.relu` clamps negatives to +0, `.satfinite` replaces
overflow and infinity by the largest finite value. Packed forms: `.f16x2`/`.bf16x2` from two
.f32 (a in the upper half), `.e4m3x2`/`.e5m2x2` from two .f32 (a in the upper byte) or to
`.f16x2` (the upper byte to the upper half); `.tf32` results are .f32 bit patterns with the low
13 bits zero."""
from __future__ import annotations

import numpy as np

from . import floats as fl
from . import types as ty
from .decode import Mods, opcode, unsupported
from .memory import LOCAL_WINDOW, PARAM_WINDOW, SHARED_WINDOW, WINDOW_SIZE

_IRND = {"rni": np.rint, "rzi": np.trunc, "rmi": np.floor, "rpi": np.ceil}
_FRND = ("rn", "rna", "rz", "rm", "rp")
_INT = ("u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64", "b8", "b16", "b32", "b64")
_FLOAT = {"f16": fl.F16, "bf16": fl.BF16, "f32": fl.F32, "tf32": fl.TF32}
_F8 = {"e4m3x2": fl.E4M3, "e5m2x2": fl.E5M2}


def _int_range(t: str):
    bits = int(t[1:])
    if t.startswith("s"):
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _to_f64(v, t: str):
    """float64 values of a source of type t (16-bit floats arrive as bits)."""
    if t in ("f16", "bf16"):
        return fl.from_bits(v, _FLOAT[t])
    return np.asarray(v, dtype=np.float64)


def _scalar(r, dt):
    r = np.asarray(r).astype(dt)
    return r if r.ndim else dt.type(r)


def _float_result(x, e, dt_name: str, mode: str, ftz: bool, sat: bool, relu: bool, satfinite: bool):
    """Bits/values of destination type dt_name for exact values x (+ residual e)."""
    if dt_name == "f64":
        r = fl.f64_directed(x, e if e is not None else np.zeros_like(x), mode) if mode != "rn" else np.asarray(x)
        out = np.asarray(r, dtype=np.float64)
    else:
        fmt = _FLOAT[dt_name]
        v = fl.round_to(x, fmt, mode, residual=e, satfinite=satfinite, ftz=ftz and dt_name == "f32")
        if sat:
            v = np.where(np.isnan(v), 0.0, np.clip(v, 0.0, 1.0))
        if relu:
            v = np.where(np.isnan(v), v, np.maximum(v, 0.0))
        if dt_name == "f32":
            out = v.astype(np.float32)
        else:
            out = fl.to_bits(v, fmt)
            if dt_name == "tf32":
                out = out.view(np.uint32) if out.dtype == np.uint32 else out
    return out if out.ndim else out.dtype.type(out)


@opcode("cvt")
def _cvt(ctx, instr):
    m = Mods(instr)
    parts = instr.parts
    if len(parts) < 3:
        raise unsupported(instr, "cvt without two types")
    at, dt = parts[-1], parts[-2]
    m.rest = parts[1:-2]
    irnd = m.take(*_IRND)
    frnd = m.take(*_FRND)
    ftz = m.flag("ftz")
    sat = m.flag("sat")
    relu = m.flag("relu")
    satfinite = m.flag("satfinite")
    m.done()
    ops = instr.operands

    # ---- packed low-precision forms
    if dt in ("f16x2", "bf16x2") and at == "f32":
        d, a, b = ops
        fmt = _FLOAT[dt[:-2]]
        ra, rb, wd = ctx.src(instr, a, "f32"), ctx.src(instr, b, "f32"), ctx.dst(instr, d, "b32")

        def pack2(st):
            hi = fl.to_bits(fl.round_to(ra(st), fmt, frnd or "rn", satfinite=satfinite), fmt)
            lo = fl.to_bits(fl.round_to(rb(st), fmt, frnd or "rn", satfinite=satfinite), fmt)
            if relu:
                raise unsupported(instr, ".relu")
            wd(st, _scalar(lo.astype(np.uint32) | (hi.astype(np.uint32) << np.uint32(16)), np.dtype(np.uint32)))

        return pack2
    if dt in _F8 and at in ("f32", "f16x2"):
        if not satfinite or frnd != "rn":
            raise unsupported(instr, "fp8 conversions other than .rn.satfinite")
        fmt = _F8[dt]
        if at == "f32":
            d, a, b = ops
            ra, rb = ctx.src(instr, a, "f32"), ctx.src(instr, b, "f32")
        else:
            d, a = ops
            rw = ctx.src(instr, a, "b32")
            ra = lambda st: fl.from_bits((rw(st) >> np.uint32(16)).astype(np.uint16), fl.F16)  # noqa: E731
            rb = lambda st: fl.from_bits((rw(st) & np.uint32(0xFFFF)).astype(np.uint16), fl.F16)  # noqa: E731
        wd = ctx.dst(instr, d, "b16")

        def f8(st):
            va, vb = ra(st), rb(st)
            if relu:
                va, vb = np.where(va < 0, 0.0, va), np.where(vb < 0, 0.0, vb)
            hi = fl.to_bits(fl.round_to(va, fmt, "rn", satfinite=True), fmt).astype(np.uint16)
            lo = fl.to_bits(fl.round_to(vb, fmt, "rn", satfinite=True), fmt).astype(np.uint16)
            wd(st, _scalar(lo | (hi << np.uint16(8)), np.dtype(np.uint16)))

        return f8
    if dt == "f16x2" and at in _F8:
        d, a = ops
        fmt = _F8[at]
        ra, wd = ctx.src(instr, a, "b16"), ctx.dst(instr, d, "b32")

        def unf8(st):
            w = np.asarray(ra(st), dtype=np.uint16)
            hi = fl.to_bits(fl.from_bits((w >> np.uint16(8)).astype(np.uint8), fmt), fl.F16).astype(np.uint32)
            lo = fl.to_bits(fl.from_bits((w & np.uint16(0xFF)).astype(np.uint8), fmt), fl.F16).astype(np.uint32)
            if relu:
                raise unsupported(instr, ".relu")
            wd(st, _scalar(lo | (hi << np.uint32(16)), np.dtype(np.uint32)))

        return unf8
    if dt == "tf32":
        if at != "f32":
            raise unsupported(instr, f"cvt.tf32.{at}")
        d, a = ops
        ra, wd = ctx.src(instr, a, "f32"), ctx.dst(instr, d, "b32")
        mode = frnd or "rna"
        return lambda st: wd(st, _scalar(fl.to_bits(fl.round_to(ra(st), fl.TF32, mode, satfinite=satfinite), fl.TF32),
                                         np.dtype(np.uint32)))

    if len(ops) != 2:
        raise unsupported(instr, f"{len(ops)} operands")
    d, a = ops
    if at not in ty.DTYPES or dt not in ty.DTYPES:
        raise unsupported(instr, f"types .{dt}.{at}")
    ra = ctx.src(instr, a, at)
    wd = ctx.dst(instr, d, dt)
    a_float = at in ("f16", "bf16", "f32", "f64")
    d_float = dt in ("f16", "bf16", "f32", "f64")
    ddt = ty.dtype(dt)

    # ---- integer -> integer
    if not a_float and not d_float:
        if irnd or frnd or ftz or relu or satfinite:
            raise unsupported(instr, "rounding modifiers on an integer conversion")
        signed = ty.is_signed(at)
        src_dt = ty.dtype(at)
        lo, hi = _int_range(dt) if dt[0] in "su" else (None, None)

        def i2i(st):
            v = ra(st)
            if sat and lo is not None:
                wide = np.asarray(v).astype(np.int64 if src_dt.kind == "i" or src_dt.itemsize < 8 else np.uint64)
                if src_dt == np.uint64:
                    wide = np.minimum(np.asarray(v), np.uint64(hi if hi < 2**64 else 2**64 - 1))
                    wd(st, _scalar(wide, ddt))
                    return
                wd(st, _scalar(np.clip(wide, lo, min(hi, 2**63 - 1)), ddt))
                return
            wd(st, ty.convert(v, src_dt, ddt, signed))

        return i2i

    # ---- float -> integer
    if a_float and not d_float:
        if irnd is None:
            raise unsupported(instr, "float-to-integer conversion without an integer rounding")
        rnd = _IRND[irnd]
        lo, hi = _int_range(dt)

        def f2i(st):
            x = _to_f64(ra(st), at)
            if ftz and at == "f32":
                x = fl.flush(x, fl.F32)
            r = rnd(x)
            r = np.where(np.isnan(r), 0.0, np.clip(r, float(lo), float(hi)))
            r = np.asarray(r)
            if dt == "u64":
                big = r >= 2.0**63
                small = np.where(big, 0.0, r).astype(np.int64).view(np.uint64)
                out = np.where(big, np.where(big, r - 2.0**63, 0.0).astype(np.int64).view(np.uint64) + np.uint64(2**63), small)
            elif dt == "s64":
                out = np.where(r >= 2.0**63, np.int64(2**63 - 1), np.where(r >= 2.0**63, 0.0, r).astype(np.int64))
            else:
                out = r.astype(np.int64)
            wd(st, _scalar(out, ddt))

        return f2i

    # ---- integer -> float
    if not a_float and d_float:
        if irnd or satfinite:
            raise unsupported(instr, f".{irnd or 'satfinite'} on an integer-to-float conversion")
        mode = frnd or "rn"
        wide = ty.dtype(at).itemsize == 8

        def i2f(st):
            v = np.asarray(ra(st))
            if wide:
                # exact as hi * 2**32 + lo; the sum's rounding error is the residual
                hi = (v >> 32).astype(np.float64) * 2.0**32
                lo = (v & (2**32 - 1)).astype(np.float64)
                x, e = fl.two_sum(hi, lo)
            else:
                x, e = v.astype(np.float64), None
            wd(st, _float_result(x, e, dt, mode, ftz, sat, relu, False))

        return i2f

    # ---- float -> float
    if irnd is not None:
        if at != dt:
            raise unsupported(instr, "integer rounding between different float types")
        rnd = _IRND[irnd]

        def f2f_int(st):
            x = _to_f64(ra(st), at)
            if ftz and at == "f32":
                x = fl.flush(x, fl.F32)
            r = rnd(x)
            wd(st, _float_result(r, None, dt, "rn", ftz, sat, relu, False))

        return f2f_int
    widening = (at, dt) in (("f16", "f32"), ("bf16", "f32"), ("f16", "f64"), ("bf16", "f64"), ("f32", "f64"))
    if not widening and at != dt and frnd is None:
        raise unsupported(instr, "a narrowing float conversion without a rounding modifier")
    mode = frnd or "rn"

    def f2f(st):
        x = _to_f64(ra(st), at)
        if ftz and at == "f32":
            x = fl.flush(x, fl.F32)
        wd(st, _float_result(x, None, dt, mode, ftz, sat, relu, satfinite))

    return f2f


@opcode("cvta")
def _cvta(ctx, instr):
    m = Mods(instr)
    t = m.take_type(("u32", "u64"))
    to = m.flag("to")
    space = m.take("global", "shared", "local", "const", "param", "shared::cta")
    m.done()
    if space in (None, "const") or (space == "param" and to):
        raise unsupported(instr, f"cvta to/from .{space}")
    space = "shared" if space == "shared::cta" else space
    d, a = instr.operands
    ra = ctx.src(instr, a, t)
    wd = ctx.dst(instr, d, t)
    if space == "global":
        return lambda st: wd(st, ra(st))
    base = {"shared": SHARED_WINDOW, "local": LOCAL_WINDOW, "param": PARAM_WINDOW}[space]
    if t == "u32":
        raise unsupported(instr, "32-bit generic addresses")
    b = np.uint64(base)
    if not to:
        return lambda st: wd(st, ra(st) + b)

    def to_space(st):
        v = ra(st)
        off = v - b
        bad = np.asarray(off >= np.uint64(WINDOW_SIZE))
        if bad.any():
            from .errors import OutOfBoundsError

            idx = st.idx()
            act = bad if idx is None or bad.ndim == 0 else bad[idx]
            if np.any(act):
                raise OutOfBoundsError(f"cvta.to.{space} of an address outside the {space} window at {instr.where()}")
        wd(st, off)

    return to_space
