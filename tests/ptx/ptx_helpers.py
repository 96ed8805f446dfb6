"""Hand-written PTX for the interpreter's unit tests: a module around a kernel body, an
element-wise harness (one thread per element, inputs and outputs as global arrays), and exact
rounding references computed with fractions (independent of tilewise.ptx.floats)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from tilewise import ptx

HEAD = ".version 8.0\n.target sm_80\n.address_size 64\n"
REGS = """\t.reg .pred %p<16>;
\t.reg .b16 %rs<32>;
\t.reg .b32 %r<64>;
\t.reg .b64 %rd<64>;
\t.reg .f32 %f<32>;
\t.reg .f64 %fd<16>;
"""
_LD = {"f32": ("f32", 4), "f64": ("f64", 8), "b16": ("b16", 2), "u16": ("u16", 2), "s32": ("s32", 4),
       "u32": ("u32", 4), "b32": ("b32", 4), "s64": ("s64", 8), "u64": ("u64", 8), "b64": ("b64", 8),
       "s16": ("s16", 2), "u8": ("u8", 1), "s8": ("s8", 1)}


def module(body: str, params=("u64",), name: str = "k", prelude: str = "", regs: str = REGS) -> str:
    ps = ",\n".join(f"\t.param .{t} {name}_p{i}" for i, t in enumerate(params))
    return f"{HEAD}{prelude}\n.visible .entry {name}(\n{ps}\n)\n{{\n{regs}{body}\n}}\n"


def elementwise(op: str, ins, outs, block: int = 128):
    """Run `op` once per element. ins: [(ptx type, array)], available as %a0, %a1, ...;
    outs: [(ptx type, numpy dtype)], written from %d0, %d1, .... Returns the output arrays."""
    n = len(ins[0][1])
    decls, body = [], []
    body.append("\tmov.u32 %r1, %tid.x;\n\tmov.u32 %r2, %ctaid.x;\n\tmov.u32 %r3, %ntid.x;")
    body.append("\tmad.lo.s32 %r4, %r2, %r3, %r1;")
    body.append(f"\tld.param.u32 %r5, [k_p{len(ins) + len(outs)}];")
    body.append("\tsetp.ge.u32 %p15, %r4, %r5;\n\t@%p15 bra $DONE;")
    for k, (t, _) in enumerate(ins):
        lt, size = _LD[t]
        decls.append(f"\t.reg .{t} %a{k};")
        body.append(f"\tld.param.u64 %rd{10 + k}, [k_p{k}];")
        body.append(f"\tmad.wide.u32 %rd{20 + k}, %r4, {size}, %rd{10 + k};")
        body.append(f"\tld.global.{lt} %a{k}, [%rd{20 + k}];")
    for k, (t, _) in enumerate(outs):
        decls.append(f"\t.reg .{t} %d{k};")
    body.append("\t" + op.strip())
    for k, (t, _) in enumerate(outs):
        lt, size = _LD[t]
        j = len(ins) + k
        body.append(f"\tld.param.u64 %rd{30 + k}, [k_p{j}];")
        body.append(f"\tmad.wide.u32 %rd{40 + k}, %r4, {size}, %rd{30 + k};")
        body.append(f"\tst.global.{lt} [%rd{40 + k}], %d{k};")
    body.append("$DONE:\n\tret;")
    text = module("\n".join(decls + body), params=["u64"] * (len(ins) + len(outs)) + ["u32"])
    arrays = [np.ascontiguousarray(a) for _, a in ins]
    results = [np.zeros(n, dtype=dt) for _, dt in outs]
    ptx.run(text, "k", grid=(n + block - 1) // block, block=block, args=arrays + results + [n])
    return results


# ---------------------------------------------------------------------------- rounding references

def _neighbours(x: Fraction, t):
    """The two values of numpy float type t around x (lo <= x <= hi)."""
    c = t(float(x))
    cands = {c, np.nextafter(c, t(np.inf)), np.nextafter(c, t(-np.inf))}
    lo = max((v for v in cands if np.isfinite(v) and Fraction(float(v)) <= x), key=float)
    hi = min((v for v in cands if np.isfinite(v) and Fraction(float(v)) >= x), key=float)
    return lo, hi


def ref_round(x: Fraction, t, mode: str):
    """x rounded to numpy float type t (finite results only) by a PTX rounding mode."""
    lo, hi = _neighbours(x, t)
    if lo == hi:
        return lo
    if mode == "rz":
        return lo if x > 0 else hi
    if mode == "rm":
        return lo
    if mode == "rp":
        return hi
    dl, dh = x - Fraction(float(lo)), Fraction(float(hi)) - x
    if dl != dh:
        return lo if dl < dh else hi
    bits = {np.float32: np.uint32, np.float16: np.uint16}[t]
    if mode == "rna":
        return hi if x > 0 else lo
    return lo if int(np.array(lo, t).view(bits)) % 2 == 0 else hi


# ---------------------------------------------------------------------------- differential checks

def _ordered(x: np.ndarray) -> np.ndarray:
    """Bit patterns of a sign-magnitude float format mapped to integers in value order, so that
    the difference of two is their distance in units in the last place."""
    n = x.dtype.itemsize
    i = x.view({1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}[n]).astype(np.int64)
    top = np.int64(1) << np.int64(8 * n - 1)
    return np.where(i < 0, -(i + top), i)


def assert_same(kernel_name: str, emulated, interpreted, ulps: int = 0, names=None):
    """Outputs of the thread-IR emulator and of the PTX interpreter agree: bit for bit, or within
    `ulps` units in the last place for floats. On a mismatch the message names the kernel, the
    output, the count and the first differing element with both values."""
    if not isinstance(emulated, (list, tuple)):
        emulated, interpreted = [emulated], [interpreted]
    for k, (e, p) in enumerate(zip(emulated, interpreted)):
        e, p = np.asarray(e), np.asarray(p)
        label = names[k] if names else f"output {k}"
        assert e.shape == p.shape and e.dtype == p.dtype, (kernel_name, label, e.shape, p.shape, e.dtype, p.dtype)
        floating = e.dtype.kind == "f" or e.dtype.name in ("bfloat16", "float8_e4m3fn", "float8_e5m2")
        if floating:
            raw = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[e.itemsize]
            ev, pv = e.astype(np.float64), p.astype(np.float64)
            same = (e.view(raw) == p.view(raw)) | (np.isnan(ev) & np.isnan(pv))
            if ulps:
                same |= np.abs(_ordered(e) - _ordered(p)) <= ulps
        else:
            same = e == p
        if not same.all():
            bad = np.argwhere(~same)
            i = tuple(int(x) for x in bad[0])
            raise AssertionError(
                f"{kernel_name}: {label}: {len(bad)} of {e.size} elements differ"
                f"{f' by more than {ulps} ulp' if ulps else ''}; first at {list(i)}: thread-IR emulator {e[i]!r}, "
                f"PTX interpreter {p[i]!r}"
            )
