"""tools/tl_differential.py programs on scalars: casts at their rounding and range edges, integer ops
of the widths the first list left out, T.reinterpret, atomics that return the previous value.

Casts are fed the values where a rounding mode shows: every midpoint between neighbours of the
destination format (ties), the float32 values either side of it, the overflow threshold (max +
half a step), subnormals of both formats, ±0, ±inf and NaNs with payloads.
"""
from __future__ import annotations

import numpy as np
from tl_diff_prog import F_PAIR, I_PAIR, N, Prog, binary, float_inputs

F32_EDGE = [0.0, -0.0, float("inf"), -float("inf"), float("nan"), 1e-45, -1e-45, 1.1754942e-38, 3.4028235e38,
            -3.4028235e38]


def _np(dtype: str) -> np.dtype:
    if dtype in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
        import ml_dtypes
        return np.dtype(getattr(ml_dtypes, dtype))
    return np.dtype(dtype)


def _pad(vals: np.ndarray) -> np.ndarray:
    """Round the length up to whole blocks of N threads, repeating the first values."""
    n = -(-len(vals) // N) * N
    return np.resize(vals, n)


def tie_values(dest: str, src: str = "float32", count: int = 384, seed: int = 5) -> np.ndarray:
    """Values of type `src` on and around the rounding boundaries of `dest`."""
    dt = _np(dest)
    if dt.itemsize <= 2:  # every value of the format
        bits = np.arange(2 ** (8 * dt.itemsize), dtype=f"u{dt.itemsize}")
        with np.errstate(invalid="ignore"):
            vals = np.unique(bits.view(dt).astype(np.float64))
        vals = vals[np.isfinite(vals)]
        mids = (vals[:-1] + vals[1:]) / 2
    else:  # float32: sampled values and the midpoint above each
        v = float_inputs("float32", 512, seed)
        v = np.unique(np.concatenate([v[np.isfinite(v)], np.finfo(np.float32).max.reshape(1)]))
        with np.errstate(over="ignore"):
            up = np.nextafter(v, np.float32(np.inf))
        vals = v.astype(np.float64)
        mids = (vals + up.astype(np.float64))[np.isfinite(up)] / 2
    top = vals[-1] + (vals[-1] - np.nextafter(vals[-1].astype(dt), dt.type(0)).astype(np.float64)) / 2
    if len(mids) > count:  # around zero (subnormals), the largest, and a random sample between
        order = np.argsort(np.abs(mids))
        rng = np.random.default_rng(seed)
        keep = np.concatenate([order[:count // 4], order[-count // 4:],
                               rng.choice(order[count // 4:-count // 4], count // 2, replace=False)])
        mids = mids[keep]
        vals = vals[rng.choice(len(vals), count, replace=False)]
    s = np.dtype(src)
    with np.errstate(over="ignore"):
        m = mids.astype(s)
    near = np.concatenate([np.nextafter(m, s.type(np.inf)), np.nextafter(m, s.type(-np.inf))])
    edge = np.array([top, -top, np.nextafter(top, 0), np.nextafter(top, np.inf), -np.nextafter(top, np.inf)])
    with np.errstate(over="ignore"):
        out = np.concatenate([m, near, vals.astype(s), edge.astype(s), np.array(F32_EDGE, s)])
    return _pad(out)


def cast_values(name: str, src: str, dest: str, values: np.ndarray, **kw) -> Prog:
    """`B[i] = T.Cast(dest, A[i])` over `values` (a whole number of N-thread blocks)."""
    n = len(values)
    source = f"""
@T.prim_func
def main(A: T.Tensor(({n},), "{src}"), B: T.Tensor(({n},), "{dest}")):
    with T.Kernel({n // N}, threads={N}) as bx:
        for i in T.Parallel({N}):
            B[bx * {N} + i] = T.Cast("{dest}", A[bx * {N} + i])
"""
    return Prog(name, source, lambda: [values.copy()], [((n,), dest)], grid=(n // N,), **kw)


def expr_values(name: str, expr: str, din: str, dout: str, values: np.ndarray, **kw) -> Prog:
    """`B[i] = expr` ({a} is A[i]) over `values`."""
    n = len(values)
    source = f"""
@T.prim_func
def main(A: T.Tensor(({n},), "{din}"), B: T.Tensor(({n},), "{dout}")):
    with T.Kernel({n // N}, threads={N}) as bx:
        for i in T.Parallel({N}):
            B[bx * {N} + i] = {expr.format(a=f"A[bx * {N} + i]")}
"""
    return Prog(name, source, lambda: [values.copy()], [((n,), dout)], grid=(n // N,), **kw)


def _ints(dtype: str, extra: list[int], seed: int = 7) -> np.ndarray:
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    edge = [0, 1, -1, 2, -2, info.max, info.max - 1, info.min, info.min + 1]
    vals = [v for v in edge + extra if info.min <= v <= info.max]
    rand = rng.integers(info.min, info.max, 256 - len(vals), dtype=dtype, endpoint=True)
    return _pad(np.concatenate([np.array(vals, dtype=dtype), rand]))


# integers whose conversion rounds: 2^24 + odd (f32 ties), 2048 + odd (f16), 256 + odd (bf16), f16's
# overflow threshold 65520, 2^53 + 1 (f64)
INT_TO_FLOAT = [2**24 + 1, 2**24 + 3, -(2**24 + 1), 2**25 + 2, 2**25 + 6, 2**31 - 64, 2**31 - 65, 2049, 2051,
                -2049, 4097, 257, 259, -257, 65504, 65519, 65520, 65535, -65520, 100000, 2**53 + 1, 2**53 + 3,
                2**63 - 1, 2**62 + 2**38, 2**32 - 1, 2**32 - 129, 2**32 - 128]


def float_in_range(src: str, dest: str, seed: int = 9) -> np.ndarray:
    """Values of `src` whose truncation fits `dest`: a defined C conversion, compared bit for bit."""
    info = np.iinfo(dest)
    lo = np.float64(info.min)
    hi = np.float64(info.max)
    s = np.dtype(src)
    rng = np.random.default_rng(seed)
    below = np.nextafter(s.type(hi + 1), s.type(0))  # largest src value < max + 1
    above = np.nextafter(s.type(lo - 1), s.type(0)) if info.min else s.type(-0.99)
    frac = [0.5, -0.5, 0.99, -0.99, 1.5, -1.5, 2.5, -2.5, 0.0, -0.0, 1e-40, -1e-40]
    vals = np.concatenate([np.array([below, above, s.type(lo), s.type(0.99)], s), np.array(frac, s),
                           rng.uniform(float(lo), float(hi), 240).astype(s)])
    vals = vals[(vals.astype(np.float64) > lo - 1) & (vals.astype(np.float64) < hi + 1)]
    return _pad(vals)


def reinterpret_bits() -> np.ndarray:
    """int32 bit patterns of float32 NaNs with payloads (quiet and signalling), infinities,
    subnormals, ±0 and random words."""
    words = [0x7FC00000, 0x7FC00001, 0x7F800001, 0x7FBFFFFF, 0xFFC00000, 0xFF800001, 0x7F800000, 0xFF800000,
             0x00000001, 0x807FFFFF, 0x80000000, 0x00000000, 0x3F800000, 0x7F7FFFFF]
    rng = np.random.default_rng(11)
    w = np.concatenate([np.array(words, np.uint32), rng.integers(0, 2**32, 256 - len(words), dtype=np.uint32)])
    return w.view(np.int32)


def atomic_prev(name: str, op: str, dtype: str, a: np.ndarray, b0: np.ndarray) -> Prog:
    """`P[i] = T.atomic_<op>(B[i], A[i], return_prev=True)`: one thread per slot, so the previous
    value is B's initial one whatever order the atomics land in."""
    n = len(a)
    source = f"""
@T.prim_func
def main(A: T.Tensor(({n},), "{dtype}"), B: T.Tensor(({n},), "{dtype}"), P: T.Tensor(({n},), "{dtype}")):
    with T.Kernel(1, threads={n}) as bx:
        for i in T.Parallel({n}):
            P[i] = T.{op}(B[i], A[i], return_prev=True)
"""
    return Prog(name, source, lambda: [a.copy()], [((n,), dtype), ((n,), dtype)],
                out_init=lambda: [b0.copy(), np.zeros(n, dtype)], tags=["inout"])


def atomic_slots(name: str, op: str, dtype: str) -> Prog:
    """N threads onto 4 slots with initial values: an integer max/min/add's result is the same
    in any order."""
    source = f"""
@T.prim_func
def main(A: T.Tensor(({N},), "{dtype}"), B: T.Tensor((4,), "{dtype}")):
    with T.Kernel(1, threads={N}) as bx:
        for i in T.Parallel({N}):
            T.{op}(B[i % 4], A[i])
"""
    info = np.iinfo(dtype)
    b0 = np.array([5, info.max, info.min, 0], dtype=dtype) if info.min else np.array([5, info.max, 0, 2], dtype)
    a = np.resize(np.array(I_PAIR[dtype], dtype=dtype), N)
    return Prog(name, source, lambda: [a.copy()], [((4,), dtype)], out_init=lambda: [b0.copy()], tags=["inout"])


def _pairs(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    vals = I_PAIR[dtype]
    a = np.array([x for x in vals for _ in vals], dtype=dtype)
    b = np.array([y for _ in vals for y in vals], dtype=dtype)
    return a, b


def _float_prev_inputs():
    fa = np.array([x for x in F_PAIR for _ in F_PAIR], np.float32)
    fb = np.array([y for _ in F_PAIR for y in F_PAIR], np.float32)
    return fa, fb


_FA, _FB = _float_prev_inputs()
_RNG = np.random.default_rng(13)
_FR1 = (_RNG.standard_normal(N) * 10).astype(np.float32)  # no NaN, no ±0: those are another developer's
_FR2 = (_RNG.standard_normal(N) * 10).astype(np.float32)

BF16_FROM_INT = ("TileLang prints (bfloat16_t)x; cutlass's bfloat16_t(int) converts to float and "
                 "keeps its top 16 bits (truncation); tilewise rounds to nearest even")
NO_I64_HALF = ("TileLang's (half_t)x / (bfloat16_t)x of a 64-bit integer does not compile "
               "(more than one cutlass constructor applies)")
NO_I64_ATOMIC = ("TileLang's 64-bit integer atomics do not compile under NVRTC (tl_templates "
                 "atomic.h: cuda::atomic_ref<unsigned long long> from a long long*)")

SCALAR_PROGRAMS: list[Prog] = [
    # float -> narrower float at every rounding boundary of the destination
    *(cast_values(f"cast_ties_f32_{short}", "float32", d, tie_values(d)) for d, short in [
        ("float16", "f16"), ("bfloat16", "bf16"), ("float8_e4m3fn", "e4m3"), ("float8_e5m2", "e5m2")]),
    # from float64 the conversion rounds once in tilewise; TileLang's half_t(double) /
    # bfloat16_t(double) go through float and round twice (a known difference, kept: T.fma of
    # half types relies on the single rounding)
    cast_values("cast_ties_f64_f32", "float64", "float32", tie_values("float32", "float64")),
    *(cast_values(f"cast_ties_f64_{short}", "float64", d, tie_values(d, "float64"),
                  known="TileLang's cutlass converts a double to half / bfloat16 through float (two roundings); "
                        "tilewise rounds once")
      for d, short in [("float16", "f16"), ("bfloat16", "bf16")]),
    cast_values("cast_ties_f16_e4m3", "float16", "float8_e4m3fn", tie_values("float8_e4m3fn", "float16")),
    cast_values("cast_ties_f16_e5m2", "float16", "float8_e5m2", tie_values("float8_e5m2", "float16")),
    cast_values("cast_ties_bf16_f16", "bfloat16", "float16", _pad(float_inputs("float32", 512, 4)).astype(_np("bfloat16"))),
    cast_values("cast_ties_f16_bf16", "float16", "bfloat16", tie_values("bfloat16", "float16")),
    cast_values("cast_e4m3_f32", "float8_e4m3fn", "float32",
                np.arange(256, dtype=np.uint8).view(_np("float8_e4m3fn"))),
    cast_values("cast_e5m2_f16", "float8_e5m2", "float16", np.arange(256, dtype=np.uint8).view(_np("float8_e5m2"))),
    # integers -> floats where the result rounds
    *(cast_values(f"cast_edge_{si}_{sf}", i, f, _ints(i, INT_TO_FLOAT)) for i, si in [
        ("int32", "i32"), ("uint32", "u32"), ("int64", "i64"), ("uint64", "u64"), ("int16", "i16")]
      for f, sf in [("float32", "f32"), ("float16", "f16"), ("bfloat16", "bf16"), ("float64", "f64")]),
    # floats -> integers, inside the destination's range (defined in C: compared bit for bit)
    *(cast_values(f"cast_inrange_{sf}_{si}", f, i, float_in_range(f, i)) for f, sf, i, si in [
        ("float32", "f32", "int32", "i32"), ("float32", "f32", "uint32", "u32"), ("float32", "f32", "int8", "i8"),
        ("float32", "f32", "uint8", "u8"), ("float32", "f32", "int16", "i16"), ("float64", "f64", "int64", "i64"),
        ("float64", "f64", "int32", "i32"), ("float16", "f16", "int16", "i16"), ("float16", "f16", "uint8", "u8"),
        ("float32", "f32", "int64", "i64"), ("bfloat16", "bf16", "int32", "i32")]),
    # T.reinterpret keeps every bit (NaN payloads, signalling NaNs, -0)
    expr_values("reinterpret_f32_i32", 'T.reinterpret({a}, "int32")', "float32", "int32", float_inputs("float32")),
    expr_values("reinterpret_i32_f32_i32", 'T.reinterpret(T.reinterpret({a}, "float32"), "int32")', "int32",
                "int32", reinterpret_bits()),
    expr_values("reinterpret_neg_i32", 'T.reinterpret(-T.reinterpret({a}, "float32"), "int32")', "int32", "int32",
                reinterpret_bits()),
    expr_values("reinterpret_f16_i16", 'T.reinterpret({a}, "int16")', "float16", "int16",
                np.arange(0, 65536, 256, dtype=np.uint16).view(np.float16)),
    expr_values("reinterpret_u16_f16_add", 'T.reinterpret({a}, "float16") + T.float16(0)', "uint16", "float16",
                np.arange(0, 65536, 256, dtype=np.uint16)),
    expr_values("reinterpret_u32_f32_sum", 'T.reinterpret({a}, "float32") * T.float32(1)', "uint32", "float32",
                reinterpret_bits().view(np.uint32)),
    # integer ops of widths not in the first list (division/shift UB is marked as before)
    *(binary(f"{n}_{d}", e, din=d) for d in ["int16", "uint8", "uint64"] for n, e in [
        ("pyfloordiv", "{a} // {b}"), ("pymod", "{a} % {b}"), ("floordiv", "T.floordiv({a}, {b})"),
        ("floormod", "T.floormod({a}, {b})"), ("truncdiv", "T.truncdiv({a}, {b})"),
        ("truncmod", "T.truncmod({a}, {b})"), ("max", "T.max({a}, {b})"), ("min", "T.min({a}, {b})"),
        ("or", "{a} | {b}"), ("shl", "T.shift_left({a}, {b})"), ("shr", "T.shift_right({a}, {b})"),
        ("mul", "{a} * {b}"), ("sub", "{a} - {b}"),
    ]),
    # shifts by amounts in range: defined in C, compared bit for bit
    *(expr_values(f"lsr_lsl_{d}", f"T.shift_right({{a}}, {k}) + T.shift_left({{a}} & {mask}, {k2})", d, d,
                  _ints(d, [])) for d, k, mask, k2 in [
        ("int32", 31, 0xFFFF, 15), ("uint32", 31, 0xFFFF, 16), ("int64", 63, 0xFFFF, 47), ("int8", 7, 3, 5),
        ("uint8", 7, 15, 4)]),
    # atomics that return the previous value (one thread a slot: the order does not matter)
    *(atomic_prev(f"atomic_prev_{op}_{d}", f"atomic_{op}", d, *_pairs(d)[::-1])
      for op in ["add", "max", "min"] for d in ["int32", "int64", "uint32"]),
    atomic_prev("atomic_prev_add_f32", "atomic_add", "float32", _FB, _FA),
    atomic_prev("atomic_prev_max_f32", "atomic_max", "float32", _FR1, _FR2),
    atomic_prev("atomic_prev_min_f32", "atomic_min", "float32", _FR1, _FR2),
    *(atomic_slots(f"atomic_slots_{op}_{d}", f"atomic_{op}", d) for op in ["max", "min"]
      for d in ["int32", "int64", "uint32"]),
    atomic_slots("atomic_slots_add_int64", "atomic_add", "int64"),
]
for _p in SCALAR_PROGRAMS:
    if _p.name.startswith("cast_edge_") and _p.name.endswith("_bf16") and "64" not in _p.name:
        _p.known = BF16_FROM_INT
    if _p.name in ("cast_edge_i64_f16", "cast_edge_i64_bf16", "cast_edge_u64_f16", "cast_edge_u64_bf16"):
        _p.skip = NO_I64_HALF
    if _p.name in ("atomic_prev_add_int64", "atomic_prev_max_int64", "atomic_prev_min_int64",
                   "atomic_slots_max_int64", "atomic_slots_min_int64"):  # (a plain add compiles)
        _p.skip = NO_I64_ATOMIC
