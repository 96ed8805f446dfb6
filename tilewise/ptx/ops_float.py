"""Floating-point arithmetic: add, sub, mul, fma/mad, div, rcp, sqrt, rsqrt, ex2, lg2, sin, cos,
tanh, abs, neg, min, max, copysign, testp, on .f32, .f64, .f16, .bf16 and the packed pairs.

Exactness (from the PTX ISA): `.rn`/`.rz`/`.rm`/`.rp` results are correctly rounded (an exact
zero sum is -0 under `.rm` only, as IEEE 754 has it; `.f64` in a directed mode is computed with
exact rationals, ir/directed64.py, so subnormal results and overflow are exact too); an
instruction without a rounding modifier rounds to nearest even (ptxas may contract `mul.f32` +
`add.f32` written without a modifier into an fma; the interpreter executes them as written).
`.ftz` flushes subnormal inputs and results of .f32 (and .f16) to zeros of the same sign; `.sat`
clamps to [0, 1] with NaN becoming +0. NaN results are the canonical NaN. min/max return the
non-NaN operand when one is NaN and order -0 below +0; `.NaN` propagates NaN.

Accuracy model of the approximate instructions (`.approx`, `div.full`): the interpreter returns
the correctly rounded value of the exact function (2^x, log2, 1/x, 1/sqrt(x), sin, cos, tanh,
a/b), so it is never further from the truth than the hardware, whose documented error bounds are
a few ulp (`tanh.approx`: about 2^-11 relative). Comparisons of kernels that use them allow a
tolerance instead of bit equality; special values follow the PTX tables (ex2(-inf) = +0,
lg2(0) = -inf, rsqrt(-x) = NaN, ...)."""
from __future__ import annotations

import numpy as np

from ..ir import directed64
from . import floats as fl
from . import types as ty
from .decode import Mods, opcode, unsupported

_ROUND = ("rn", "rz", "rm", "rp")
_F16 = {"f16": fl.F16, "bf16": fl.BF16, "f16x2": fl.F16, "bf16x2": fl.BF16}


# ---------------------------------------------------------------------------- helpers

def _flush32(x):
    """.ftz on float32 values: subnormals become zeros of the same sign."""
    x = np.asarray(x, dtype=np.float32)
    sub = (x != 0) & (np.abs(x) < np.float32(2.0**-126))
    if np.ndim(x) == 0:
        return np.float32(np.copysign(np.float32(0), x)) if sub else np.float32(x)
    if not sub.any():
        return x
    return np.where(sub, np.copysign(np.float32(0), x), x)


def _sat(x):
    x = np.asarray(x)
    r = np.where(np.isnan(x), x.dtype.type(0), np.clip(x, 0, 1))
    return r.astype(x.dtype) if r.ndim else x.dtype.type(r)


def round_f32(s, e):
    """float32 nearest-even rounding of s + e (s, e float64 with e the exact residual)."""
    r = np.asarray(s, dtype=np.float64).astype(np.float32)
    e = np.asarray(e)
    if not np.any(e):
        return r if r.ndim else np.float32(r)
    s = np.asarray(s, dtype=np.float64)
    low = s.view(np.uint64) & np.uint64(0x1FFFFFFF)
    risky = (e != 0) & ((low == np.uint64(0x10000000)) | (np.abs(s) < 2.0**-125))
    if risky.any():
        exact = fl.round_to(s, fl.F32, "rn", residual=e).astype(np.float32)
        r = np.where(risky, exact, r)
    return r if r.ndim else np.float32(r)


def zero_sum_rm(x, y, r):
    """r, the rounding in mode rm of x + y (float64 arrays holding the exact operands, a sum's
    or an fma's), with IEEE 754's sign of an exact zero: -0 when rounding down, unless both
    operands are +0 (-((-x) + (-y)) rounded to nearest is exactly that)."""
    with np.errstate(all="ignore"):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        zero = (x + y == 0) & (x == -y)
        if not np.any(zero):
            return r
        out = np.where(zero, (-((-x) + (-y))).astype(np.asarray(r).dtype), r)
    return out if out.ndim else out.dtype.type(out)


def finish32(s, e, mode, ftz, sat):
    """The float32 result of the exact value s + e with the instruction's modifiers."""
    if mode == "rn":
        r = round_f32(s, e)
    else:
        r = fl.round_to(s, fl.F32, mode, residual=e).astype(np.float32)
        if r.ndim == 0:
            r = np.float32(r)
    if ftz:
        r = _flush32(r)
    if sat:
        r = _sat(r)
    return r


def _mods(instr, types):
    m = Mods(instr)
    t = m.take_type(types)
    mode = m.take(*_ROUND)
    ftz = m.flag("ftz")
    sat = m.flag("sat")
    return m, t, mode, ftz, sat


def _halves(x):
    x = np.asarray(x, dtype=np.uint32)
    return (x & np.uint32(0xFFFF)).astype(np.uint16), (x >> np.uint32(16)).astype(np.uint16)


def _pack(lo, hi):
    r = np.asarray(lo).astype(np.uint32) | (np.asarray(hi).astype(np.uint32) << np.uint32(16))
    return r if r.ndim else np.uint32(r)


def _lowp(t: str, fn):
    """Lift fn(values...) -> (s, e, extra) on float64 values to 16-bit (and packed) bit operands."""
    fmt = _F16[t]
    packed = t.endswith("x2")

    def one(*bits):
        return fn(fmt, *[fl.from_bits(b, fmt) for b in bits])

    if not packed:
        def run16(*bits):
            r = one(*bits)
            return r if np.ndim(r) else np.uint16(r)

        return run16

    def run32(*words):
        parts = [_halves(w) for w in words]
        lo = one(*[p[0] for p in parts])
        hi = one(*[p[1] for p in parts])
        return _pack(lo, hi)

    return run32


def _lowp_result(fmt, s, e, mode, ftz, sat, relu=False):
    v = fl.round_to(s, fmt, mode or "rn", residual=e, ftz=ftz)
    if sat:
        v = np.where(np.isnan(v), 0.0, np.clip(v, 0.0, 1.0))
    if relu:
        v = np.where(np.isnan(v), v, np.maximum(v, 0.0))
    return fl.to_bits(v, fmt)


def _f64(mode, s, e):
    return fl.f64_directed(s, e, mode) if mode not in (None, "rn") else s


def _exact64(op: str, mode: str):
    """A .f64 operation in a directed mode (rz, rm, rp) by exact rational arithmetic
    (ir/directed64.py): error-free transformations lose the sign of an error term that underflows
    (subnormal products and quotients) and the overflow cases."""
    return directed64.elementwise(op, {"rz": "rz", "rm": "rd", "rp": "ru"}[mode])


def _ternary(ctx, instr, t, fn, nsrc):
    d, *srcs = instr.operands
    if len(srcs) != nsrc:
        raise unsupported(instr, f"{len(srcs)} source operands")
    rs = [ctx.src(instr, s, t) for s in srcs]
    wd = ctx.dst(instr, d, t)
    if nsrc == 1:
        r0 = rs[0]
        return lambda st: wd(st, fn(r0(st)))
    if nsrc == 2:
        r0, r1 = rs
        return lambda st: wd(st, fn(r0(st), r1(st)))
    r0, r1, r2 = rs
    return lambda st: wd(st, fn(r0(st), r1(st), r2(st)))


# ---------------------------------------------------------------------------- add sub mul fma

def decode_addsub(ctx, instr):
    m, t, mode, ftz, sat = _mods(instr, ("f32", "f64", "f16", "f16x2", "bf16", "bf16x2"))
    m.done()
    sub = instr.parts[0] == "sub"
    if t == "f32":
        if mode in (None, "rn") and not ftz and not sat:
            return _ternary(ctx, instr, t, np.subtract if sub else np.add, 2)

        def f32(a, b):
            if ftz:
                a, b = _flush32(a), _flush32(b)
            a64, b64 = np.float64(a) if np.ndim(a) == 0 else a.astype(np.float64), np.asarray(b, dtype=np.float64)
            b64 = -b64 if sub else b64
            s, e = fl.two_sum(a64, b64)
            r = finish32(s, e, mode or "rn", ftz, sat)
            return zero_sum_rm(a64, b64, r) if mode == "rm" and not sat else r

        return _ternary(ctx, instr, t, f32, 2)
    if t == "f64":
        if sat or ftz:
            raise unsupported(instr, ".sat/.ftz on .f64")

        if mode not in (None, "rn"):  # exact: an exact zero sum is -0 in rm, overflow stops at MAX in rz
            fma = _exact64("dfma", mode)
            return _ternary(ctx, instr, t, lambda a, b: fma(a, np.ones_like(a), -b if sub else b), 2)

        def f64(a, b):
            return np.subtract(a, b) if sub else np.add(a, b)

        return _ternary(ctx, instr, t, f64, 2)

    def low(fmt, a, b):
        if ftz:
            a, b = fl.flush(a, fmt), fl.flush(b, fmt)
        s, e = fl.two_sum(a, -b if sub else b)
        return _lowp_result(fmt, s, e, mode, ftz, sat)

    return _ternary(ctx, instr, t, _lowp(t, low), 2)


def decode_mul(ctx, instr):
    m, t, mode, ftz, sat = _mods(instr, ("f32", "f64", "f16", "f16x2", "bf16", "bf16x2"))
    m.done()
    if t == "f32":
        if mode in (None, "rn") and not ftz and not sat:
            return _ternary(ctx, instr, t, np.multiply, 2)

        def f32(a, b):
            if ftz:
                a, b = _flush32(a), _flush32(b)
            p = np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64)  # exact
            return finish32(p, np.zeros_like(p), mode or "rn", ftz, sat)

        return _ternary(ctx, instr, t, f32, 2)
    if t == "f64":
        if sat or ftz:
            raise unsupported(instr, ".sat/.ftz on .f64")
        if mode in (None, "rn"):
            return _ternary(ctx, instr, t, np.multiply, 2)
        return _ternary(ctx, instr, t, _exact64("dmul", mode), 2)

    def low(fmt, a, b):
        if ftz:
            a, b = fl.flush(a, fmt), fl.flush(b, fmt)
        return _lowp_result(fmt, a * b, None, mode, ftz, sat)

    return _ternary(ctx, instr, t, _lowp(t, low), 2)


def decode_fma(ctx, instr):
    """fma and mad on floats (mad.f32 with a rounding modifier is fma; PTX needs one on sm_20+)."""
    m, t, mode, ftz, sat = _mods(instr, ("f32", "f64", "f16", "f16x2", "bf16", "bf16x2"))
    relu = m.flag("relu")
    m.done()
    if mode is None:
        raise unsupported(instr, "fma/mad without a rounding modifier")
    if t == "f32":
        if relu:
            raise unsupported(instr, ".relu on .f32")

        def f32(a, b, c):
            if ftz:
                a, b, c = _flush32(a), _flush32(b), _flush32(c)
            p = np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64)  # exact (48 bits)
            c64 = np.asarray(c, dtype=np.float64)
            s, e = fl.two_sum(p, c64)
            r = finish32(s, e, mode, ftz, sat)
            return zero_sum_rm(p, c64, r) if mode == "rm" and not sat else r

        return _ternary(ctx, instr, t, f32, 3)
    if t == "f64":
        if sat or ftz or relu:
            raise unsupported(instr, ".sat/.ftz/.relu on .f64")

        if mode != "rn":
            return _ternary(ctx, instr, t, _exact64("dfma", mode), 3)

        def f64(a, b, c):
            r = fl.fma_f64(a, b, c, mode)
            return r if r.ndim else np.float64(r)

        return _ternary(ctx, instr, t, f64, 3)

    def low(fmt, a, b, c):
        if ftz:
            a, b, c = fl.flush(a, fmt), fl.flush(b, fmt), fl.flush(c, fmt)
        s, e = fl.two_sum(a * b, c)
        return _lowp_result(fmt, s, e, mode, ftz, sat, relu)

    return _ternary(ctx, instr, t, _lowp(t, low), 3)


opcode("fma")(decode_fma)


# ---------------------------------------------------------------------------- div rcp sqrt

def _residual_div(a, b, q):
    """The sign-carrying residual of q = fl(a / b): a - q*b computed exactly, divided by b."""
    p, pe = fl.two_prod(q, b)
    r = (a - p) - pe
    return np.sign(r) * np.sign(b)  # rounding only needs the sign of the true quotient minus q


def decode_div(ctx, instr):
    m = Mods(instr)
    t = m.take_type(("f32", "f64"))
    kind = m.take("approx", "full", *_ROUND)
    ftz = m.flag("ftz")
    m.done()
    if kind is None:
        raise unsupported(instr, "div without .approx/.full/.rn/...")
    if t == "f64":
        if kind == "rn":
            return _ternary(ctx, instr, t, np.divide, 2)
        if kind in _ROUND:
            return _ternary(ctx, instr, t, _exact64("ddiv", kind), 2)
        raise unsupported(instr, f"div.{kind}.f64")
    mode = kind if kind in _ROUND else "rn"  # approx and full: correctly rounded (see module doc)

    def f32(a, b):
        if ftz:
            a, b = _flush32(a), _flush32(b)
        if mode == "rn" and not ftz:
            return np.divide(a, b)
        a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        q = a64 / b64
        return finish32(q, _residual_div(a64, b64, q), mode, ftz, False)

    return _ternary(ctx, instr, t, f32, 2)


@opcode("rcp")
def _rcp(ctx, instr):
    m = Mods(instr)
    t = m.take_type(("f32", "f64"))
    kind = m.take("approx", *_ROUND)
    ftz = m.flag("ftz")
    m.done()
    if kind is None:
        raise unsupported(instr, "rcp without .approx/.rn/...")
    mode = kind if kind in _ROUND else "rn"
    if t == "f64":
        def f64(a):
            if ftz:
                a = fl.flush(a, fl.Format("f64", 53, -1022, 0.0, True, 64))
            return _exact64("drcp", mode)(a) if mode != "rn" else np.ones_like(a) / a

        return _ternary(ctx, instr, t, f64, 1)

    def f32(a):
        if ftz:
            a = _flush32(a)
        a64 = np.asarray(a, dtype=np.float64)
        q = 1.0 / a64
        return finish32(q, _residual_div(np.ones_like(a64), a64, q), mode, ftz, False)

    return _ternary(ctx, instr, t, f32, 1)


def _residual_sqrt(a, r):
    p, pe = fl.two_prod(r, r)
    return np.sign((a - p) - pe)


@opcode("sqrt")
def _sqrt(ctx, instr):
    m = Mods(instr)
    t = m.take_type(("f32", "f64"))
    kind = m.take("approx", *_ROUND)
    ftz = m.flag("ftz")
    m.done()
    if kind is None:
        raise unsupported(instr, "sqrt without .approx/.rn/...")
    mode = kind if kind in _ROUND else "rn"
    if t == "f64":
        if mode != "rn":
            return _ternary(ctx, instr, t, _exact64("dsqrt", mode), 1)
        return _ternary(ctx, instr, t, np.sqrt, 1)

    def f32(a):
        if ftz:
            a = _flush32(a)
        if mode == "rn" and not ftz:
            return np.sqrt(a)
        a64 = np.asarray(a, dtype=np.float64)
        r = np.sqrt(a64)
        return finish32(r, _residual_sqrt(a64, r), mode, ftz, False)

    return _ternary(ctx, instr, t, f32, 1)


def _approx_unary(name, fn64, types=("f32",)):
    @opcode(name)
    def dec(ctx, instr):
        m = Mods(instr)
        t = m.take_type(types)
        if not m.flag("approx"):
            raise unsupported(instr, f"{name} without .approx")
        ftz = m.flag("ftz")
        m.done()

        def f(a):
            if t == "f32":
                if ftz:
                    a = _flush32(a)
                r = np.asarray(fn64(np.asarray(a, dtype=np.float64))).astype(np.float32)
                if ftz:
                    r = _flush32(r)
                return r if r.ndim else np.float32(r)
            r = np.asarray(fn64(np.asarray(a, dtype=np.float64)))
            return r if r.ndim else np.float64(r)

        return _ternary(ctx, instr, t, f, 1)

    return dec


_approx_unary("ex2", np.exp2)
_approx_unary("lg2", np.log2)
_approx_unary("rsqrt", lambda x: 1.0 / np.sqrt(x), ("f32", "f64"))
_approx_unary("sin", np.sin)
_approx_unary("cos", np.cos)
_approx_unary("tanh", np.tanh)


# ---------------------------------------------------------------------------- abs neg min max

_SIGN = {"f32": np.uint32(0x80000000), "f64": np.uint64(0x8000000000000000), "f16": np.uint16(0x8000),
         "bf16": np.uint16(0x8000), "f16x2": np.uint32(0x80008000), "bf16x2": np.uint32(0x80008000)}


def decode_absneg(ctx, instr):
    m = Mods(instr)
    t = m.take_type(("f32", "f64", "f16", "f16x2", "bf16", "bf16x2"))
    ftz = m.flag("ftz")
    m.done()
    neg = instr.parts[0] == "neg"
    sign = _SIGN[t]
    d, a = instr.operands
    ra, wd = ctx.src(instr, a, t), ctx.dst(instr, d, t)
    udt = ty.UINT[ty.dtype(t).itemsize]

    def run(st):
        x = ra(st)
        if ftz and t == "f32":
            x = _flush32(x)
        u = x.view(udt) if t in ("f32", "f64") else x
        u = (u ^ sign) if neg else (u & ~sign)
        wd(st, u.view(ty.dtype(t)) if t in ("f32", "f64") else u)

    return run


def _minmax_values(a, b, is_min, nan_prop):
    """min/max of float64 or float32 arrays: NaN ignored unless nan_prop, -0 < +0."""
    r = np.fmin(a, b) if is_min else np.fmax(a, b)
    tie = (a == b) & (a == 0)
    if np.any(tie):
        neg = np.signbit(a) | np.signbit(b) if is_min else np.signbit(a) & np.signbit(b)
        r = np.where(tie, np.where(neg, -np.abs(a), np.abs(a)), r)
    if nan_prop:
        r = np.where(np.isnan(a) | np.isnan(b), np.nan, r)
    return r


def decode_minmax(ctx, instr):
    m = Mods(instr)
    t = m.take_type(("f32", "f64", "f16", "f16x2", "bf16", "bf16x2"))
    ftz = m.flag("ftz")
    nan = m.flag("NaN")
    relu = m.flag("relu")
    if m.take("xorsign") or m.take("abs"):
        raise unsupported(instr, ".xorsign.abs")
    m.done()
    is_min = instr.parts[0] == "min"
    if t in ("f32", "f64"):
        dt = ty.dtype(t)

        def f(a, b):
            if ftz and t == "f32":
                a, b = _flush32(a), _flush32(b)
            r = np.asarray(_minmax_values(a, b, is_min, nan), dtype=dt)
            if np.isnan(r).any():
                r = np.where(np.isnan(r), dt.type("nan"), r)
            return r if r.ndim else dt.type(r)

        return _ternary(ctx, instr, t, f, 2)

    def low(fmt, a, b):
        r = _minmax_values(a, b, is_min, nan)
        if relu:
            r = np.where(np.isnan(r), r, np.maximum(r, 0.0))
        return fl.to_bits(r, fmt)

    return _ternary(ctx, instr, t, _lowp(t, low), 2)


@opcode("copysign")
def _copysign(ctx, instr):
    m = Mods(instr)
    t = m.take_type(("f32", "f64"))
    m.done()
    # copysign.f32 d, a, b: the magnitude of b with the sign of a
    return _ternary(ctx, instr, t, lambda a, b: np.copysign(b, a), 2)


@opcode("testp")
def _testp(ctx, instr):
    m = Mods(instr)
    t = m.take_type(("f32", "f64"))
    op = m.take("finite", "infinite", "number", "notanumber", "normal", "subnormal")
    m.done()
    d, a = instr.operands
    ra, wd = ctx.src(instr, a, t), ctx.dst(instr, d, "pred")
    tiny = np.finfo(ty.dtype(t)).tiny
    fns = {
        "finite": np.isfinite, "infinite": np.isinf, "number": lambda x: ~np.isnan(x), "notanumber": np.isnan,
        "normal": lambda x: np.isfinite(x) & (np.abs(x) >= tiny),
        "subnormal": lambda x: (x != 0) & (np.abs(x) < tiny),
    }  # fmt: skip
    fn = fns[op]
    return lambda st: wd(st, fn(ra(st)))
