"""The expected result of a program description, by a plain numpy interpretation: blocks run one
after another, each tile is a numpy array, T.Parallel bodies run vectorised over the iteration
space. Nothing here reads tilewise's IR or backends.

Every value carries a rigorous bound on the rounding error a correct implementation may have
made (running error analysis): `val` is the exact result in float64, `err` bounds |computed -
val| elementwise. An operation whose exact result is representable in its type, on operands
known exactly, adds nothing, so copies, integer arithmetic, max/min, selects and exactly
representable sums must match bit for bit, and so must a type conversion of an exactly known
value (one rounding to nearest even); otherwise each rounding adds u * |value| (u: 2^-24
float32, 2^-11 float16, 2^-8 bfloat16) and sums add (depth) * u * sum(|x|). This allows any order
of summation, fused multiply-adds, and float32 T.gemm as tf32 on CUDA, but not a wrong element.
The runner accepts |got - val| <= 2 * err.

NaN and infinities (programs with `special_values`): min and max ignore a NaN operand (tilewise's
scalar rule; float atomic_max / atomic_min follow TileLang's strict comparison instead), float -> int maps NaN to 0 and saturates, everything else follows IEEE in float64;
a non-finite expected value must be matched exactly (NaN by NaN, +inf by +inf).

A program whose values leave the range where the analysis holds (float16 beyond 2^14, integers
beyond 2^30) raises `Degenerate`: the runner skips it. Reads of unwritten tile elements, and two
blocks writing one output element, raise `GeneratorBug`: the generator must never produce them."""
from __future__ import annotations

import itertools

import numpy as np

from .program import (
    Abs,
    Assign,
    AtomicTile,
    Bin,
    Cast,
    Const,
    Copy,
    CumSum,
    DCast,
    Fill,
    Gemm,
    Idx,
    If,
    Lane,
    Load,
    Loop,
    Neg,
    Parallel,
    Program,
    Reduce,
    Ref,
    Select,
    Tensor,
)

FP4 = "float4_e2m1fn"
UNIT = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8, "int32": 0.0, FP4: 2.0**-2}
LIMIT = {"float32": 2.0**60, "float16": 2.0**14, "bfloat16": 2.0**60, "int32": 2.0**30, FP4: np.inf}
TF32_UNIT = 2.0**-11
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


class Degenerate(Exception):
    """The program's values leave the range the error analysis covers; skip it."""


class GeneratorBug(Exception):
    """The description is not a valid program (the generator's fault, not tilewise's)."""


def numpy_dtype(dtype: str):
    if dtype == "bfloat16" or dtype.startswith(("float8", "float4")):
        import ml_dtypes

        return getattr(ml_dtypes, dtype)
    return np.dtype(dtype)


def _mul_err(mag, err):
    """|mag| * err with 0 where err is 0 (an infinite operand times an exact zero error)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(err == 0, 0.0, np.abs(mag) * err)


def rounded(dtype: str, val, err):
    """(val, err) after storing the exact value `val` in `dtype`."""
    val = np.asarray(val, np.float64)
    err = np.asarray(err, np.float64)
    fin = np.isfinite(val)
    if np.any(np.abs(val[fin]) > LIMIT[dtype]):
        raise Degenerate(f"a {dtype} value of magnitude {np.abs(val[fin]).max():.3g}")
    err = np.where(fin, err, 0.0)
    if dtype == "int32":
        return val, err
    if dtype == FP4:
        return _rounded_fp4(val, err)
    with np.errstate(invalid="ignore", over="ignore"):
        rep = np.where(fin, val.astype(numpy_dtype(dtype)).astype(np.float64) == val, True)
        add = np.where(rep & (err == 0), 0.0, UNIT[dtype] * (np.abs(val) + err))
    return val, err + np.where(fin, add, 0.0)


def _rounded_fp4(val, err):
    """Into float4_e2m1fn: an exactly known value converts as ml_dtypes does (nearest even,
    saturating at +-6, NaN to a zero); an inexact one gets a relative and an absolute bound (the
    subnormal step is 0.5), and one whose interval reaches the saturation is degenerate."""
    with np.errstate(invalid="ignore", over="ignore"):
        nearest = val.astype(numpy_dtype(FP4)).astype(np.float64)
    fin = np.isfinite(val)
    exact = (err == 0) | ~fin
    if np.any(~exact & (np.abs(val) + err > 6.0)):
        raise Degenerate("an inexact float4 value near its saturation")
    return np.where(exact, nearest, val), np.where(exact, 0.0, err + UNIT[FP4] * (np.abs(val) + err) + 0.25)


def to_int(val, err):
    """float -> int32: truncation, saturating, NaN -> 0; err becomes the spread of the
    truncations within the value's error interval."""
    def trunc(x):
        with np.errstate(invalid="ignore"):
            t = np.trunc(np.nan_to_num(x, nan=0.0, posinf=INT_MAX, neginf=INT_MIN))
        return np.clip(t, INT_MIN, INT_MAX)

    t = trunc(val)
    lo, hi = trunc(val - err), trunc(val + err)
    e = np.maximum(np.abs(hi - t), np.abs(t - lo))
    return t, np.where(np.isnan(val) | (err == 0), 0.0, e)


class _Buf:
    def __init__(self, dtype: str, val, err=None, init=None):
        self.dtype = dtype
        self.val = np.array(val, np.float64)
        self.err = np.zeros_like(self.val) if err is None else np.array(err, np.float64)
        self.init = np.ones(self.val.shape, bool) if init is None else init
        self.writer = np.full(self.val.shape, -1, np.int64)  # outputs: the block that wrote each element
        self.adds = np.zeros(self.val.shape)  # acc tensors: atomic additions and their |values|
        self.absum = np.zeros(self.val.shape)


class Oracle:
    def __init__(self, prog: Program, inputs: dict[str, np.ndarray]):
        self.prog = prog
        self.globals: dict[str, _Buf] = {}
        for t in prog.tensors:
            self.globals[t.name] = _Buf(t.dtype, np.asarray(inputs[t.name]).astype(np.float64))
        self.tiles: dict[str, _Buf] = {}
        self.block = 0

    # ------------------------------------------------------------------ driver
    def run(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{tensor name: (expected values, error bounds)} of every tensor after the kernel."""
        with np.errstate(all="ignore"):  # NaN and infinities are values here, not accidents
            return self._run()

    def _run(self):
        grid = self.prog.grid_size()
        for n, blk in enumerate(itertools.product(*[range(g) for g in reversed(grid)])):
            blk = tuple(reversed(blk))  # bx fastest
            self.block = n
            env = {"bx": blk[0], "by": blk[1] if len(blk) > 1 else 0, "k": 0, **self.prog.dims}
            self.tiles = {t.name: _Buf(t.dtype, np.zeros(t.shape), init=np.zeros(t.shape, bool))
                          for t in self.prog.tiles}
            self.ops(self.prog.body, env)
        out = {}
        for t in self.prog.tensors:
            b = self.globals[t.name]
            err = b.err
            if t.role == "acc":
                err = err + b.adds * UNIT[t.dtype] * (b.absum + np.abs(b.val))
            out[t.name] = (b.val, err)
        return out

    def buf(self, name: str) -> _Buf:
        return self.tiles[name] if name in self.tiles else self.globals[name]

    def safe(self, name: str) -> float:
        """What a read past a global tensor gives: 0, or its T.annotate_safe_value value in its type."""
        if name not in self.prog.safe:
            return 0.0
        return float(convert_const(self.globals[name].dtype, self.prog.safe[name]))

    def is_global(self, name: str) -> bool:
        return name in self.globals

    # ------------------------------------------------------------------ regions
    def region(self, ref: Ref, env) -> tuple[tuple[int, ...], tuple[int, ...]]:
        b = self.buf(ref.buf)
        if ref.kind == "whole":
            return (0,) * b.val.ndim, tuple(b.val.shape)
        starts = tuple(int(_ev(s, env)) for s in ref.starts)
        return starts, tuple(ref.extents)

    def read_region(self, ref: Ref, env):
        """(val, err) of a region; global elements outside the tensor read 0."""
        b = self.buf(ref.buf)
        starts, ext = self.region(ref, env)
        idx = np.ix_(*[np.arange(s, s + e) for s, e in zip(starts, ext)])
        if self.is_global(ref.buf):
            inside = _inside(idx, b.val.shape)
            clipped = tuple(np.clip(x, 0, max(n - 1, 0)) for x, n in zip(idx, b.val.shape))
            pad = self.safe(ref.buf)
            if b.val.size == 0:
                return np.full(ext, pad), np.zeros(ext)
            return np.where(inside, b.val[clipped], pad), np.where(inside, b.err[clipped], 0.0)
        self.check_tile(ref.buf, idx)
        if not b.init[idx].all():
            raise GeneratorBug(f"reads unwritten elements of {ref.buf}")
        return b.val[idx], b.err[idx]

    def check_tile(self, name, idx):
        b = self.tiles[name]
        if not _inside(idx, b.val.shape).all():
            raise GeneratorBug(f"an index outside the tile {name}{b.val.shape}")

    def write(self, name: str, idx, val, err, mask=None) -> None:
        """Store (already in the buffer's type) at index arrays; global stores outside are dropped."""
        b = self.buf(name)
        shape = np.broadcast_shapes(*[np.shape(x) for x in idx])
        idx = tuple(np.broadcast_to(x, shape) for x in idx)
        val, err = np.broadcast_to(val, shape), np.broadcast_to(err, shape)
        keep = np.ones(shape, bool) if mask is None else np.broadcast_to(mask, shape)
        if self.is_global(name):
            keep = keep & _inside(idx, b.val.shape)
            if self.prog.tensor(name).role != "out":
                raise GeneratorBug(f"a plain store into the {self.prog.tensor(name).role} tensor {name}")
        else:
            self.check_tile(name, tuple(x[keep] for x in idx))
        sel = tuple(x[keep] for x in idx)
        if self.is_global(name):
            w = b.writer[sel]
            if np.any((w >= 0) & (w != self.block)):
                raise GeneratorBug(f"two blocks write one element of {name}")
            pos = np.ravel_multi_index(sel, b.val.shape) if b.val.ndim else np.zeros(0, int)
            if len(np.unique(pos)) != len(pos):
                raise GeneratorBug(f"one statement writes an element of {name} twice")
            b.writer[sel] = self.block
        b.val[sel] = val[keep]
        b.err[sel] = err[keep]
        b.init[sel] = True

    def write_region(self, ref: Ref, env, val, err) -> None:
        starts, ext = self.region(ref, env)
        idx = np.ix_(*[np.arange(s, s + e) for s, e in zip(starts, ext)])
        self.write(ref.buf, idx, val.reshape(ext), err.reshape(ext))

    # ------------------------------------------------------------------ operations
    def ops(self, ops: list, env: dict) -> None:
        for op in ops:
            getattr(self, "op_" + type(op).__name__)(op, env)

    def op_Fill(self, op: Fill, env) -> None:
        starts, ext = self.region(op.dst, env)
        b = self.buf(op.dst.buf)
        val, err = rounded(b.dtype, np.full(ext, 0.0 if op.clear else float(op.value)), np.zeros(ext))
        self.write_region(op.dst, env, val, err)

    def op_Copy(self, op: Copy, env) -> None:
        val, err = self.read_region(op.src, env)
        s, d = self.buf(op.src.buf), self.buf(op.dst.buf)
        if s.dtype != d.dtype:
            val, err = convert(s.dtype, d.dtype, val, err)
        _, ext = self.region(op.dst, env)
        if int(np.prod(ext)) != val.size:
            raise GeneratorBug(f"copy of {val.shape} elements into a region {ext}")
        self.write_region(op.dst, env, val, err)

    def op_Loop(self, op: Loop, env) -> None:
        for k in range(op.extent):
            self.ops(op.body, {**env, "k": k})

    def op_If(self, op: If, env) -> None:
        if all(_ev(c, env) for c in op.cond):
            self.ops(op.body, env)
        else:
            self.ops(op.orelse, env)

    def op_Parallel(self, op: Parallel, env) -> None:
        names = ("i", "j")[: len(op.extents)]
        penv = dict(env)
        for n, (name, e) in enumerate(zip(names, op.extents)):
            shape = [1] * len(op.extents)
            shape[n] = e
            penv[name] = np.arange(e).reshape(shape)
        shape = tuple(op.extents)
        for st in op.body:
            idx = tuple(np.broadcast_to(np.asarray(_ev(s, penv), np.int64), shape) for s in st.idx)
            val, err, dt = self.expr(st.value, penv, shape)
            dst = self.buf(st.dst)
            if dt is None:  # a bare constant takes the destination's type
                val, err = rounded(dst.dtype, val, err)
            elif dt != dst.dtype:
                val, err = convert(dt, dst.dtype, val, err)
            if isinstance(st, Assign):
                self.write(st.dst, idx, val, err)
            elif st.op.startswith("addx"):  # N consecutive elements, each its own atomic add
                for lane in range(int(st.op[4:])):
                    self.atomic("add", st.dst, (idx[0] + lane, *idx[1:]), val, err)
            else:
                self.atomic(st.op, st.dst, idx, val, err)

    def op_Reduce(self, op: Reduce, env) -> None:
        s, d = self.tiles[op.src], self.tiles[op.dst]
        if not s.init.all() or (not op.clear and not d.init.all()):
            raise GeneratorBug(f"reduce of unwritten elements ({op.src} -> {op.dst})")
        x, ex = s.val, s.err
        if s.dtype != d.dtype:
            x, ex = convert(s.dtype, d.dtype, x, ex)
        n = x.shape[op.dim]
        if op.kind in ("abssum", "absmax"):
            x = np.abs(x)
        if op.kind in ("sum", "abssum"):
            val, err = x.sum(op.dim), ex.sum(op.dim)
            mag = np.abs(x).sum(op.dim)
            terms = n
            if not op.clear:
                val, err, mag, terms = val + d.val, err + d.err, mag + np.abs(d.val), n + 1
            err = err + sum_depth(terms, d.dtype) * UNIT[d.dtype] * mag
            val, err = rounded(d.dtype, val, err)
        else:
            f = np.fmin if op.kind == "min" else np.fmax
            if d.dtype == "int32":
                init = INT_MAX if op.kind == "min" else INT_MIN
            else:
                init = np.inf if op.kind == "min" else -np.inf
            if op.kind == "absmax":
                init = 0.0
            # without clear, dst's old value joins as it is (TileLang: dst = max(dst, max|x|))
            old = d.val if not op.clear else np.full(d.val.shape, init, np.float64)
            val = f.reduce(np.concatenate([np.expand_dims(old, op.dim), x], op.dim), axis=op.dim)
            err = ex.max(op.dim) if n else np.zeros(val.shape)
            if not op.clear:
                err = np.maximum(err, d.err)
        d.val, d.err, d.init = np.array(val, np.float64), np.array(err, np.float64), np.ones(d.val.shape, bool)

    def op_CumSum(self, op: CumSum, env) -> None:
        s = self.tiles[op.src]
        d = self.tiles[op.dst] if op.dst is not None else s
        if not s.init.all():
            raise GeneratorBug(f"cumsum of unwritten elements of {op.src}")
        x, ex = s.val, s.err
        if s.dtype != d.dtype:
            x, ex = convert(s.dtype, d.dtype, x, ex)
        if op.reverse:
            x, ex = np.flip(x, op.dim), np.flip(ex, op.dim)
        val, err, mag = np.cumsum(x, op.dim), np.cumsum(ex, op.dim), np.cumsum(np.abs(x), op.dim)
        steps = np.arange(x.shape[op.dim]).reshape([-1 if a == op.dim else 1 for a in range(x.ndim)])
        err = err + steps * UNIT[d.dtype] * mag
        if op.reverse:
            val, err = np.flip(val, op.dim), np.flip(err, op.dim)
        val, err = rounded(d.dtype, val, err)
        d.val, d.err, d.init = np.array(val), np.array(err), np.ones(d.val.shape, bool)

    def op_Gemm(self, op: Gemm, env) -> None:
        a, b, c = self.tiles[op.a], self.tiles[op.b], self.tiles[op.c]
        for t, name in ((a, op.a), (b, op.b), (c, op.c)):
            if not t.init.all():
                raise GeneratorBug(f"gemm reads unwritten elements of {name}")
        if op.clear_accum:
            c.val, c.err = np.zeros_like(c.val), np.zeros_like(c.err)
        A, eA = (a.val.T, a.err.T) if op.trans_a else (a.val, a.err)
        B, eB = (b.val.T, b.err.T) if op.trans_b else (b.val, b.err)
        K = A.shape[1]
        with np.errstate(invalid="ignore", over="ignore"):
            val = c.val + A @ B
            mag = _mm_err(A, np.where(np.isfinite(B), np.abs(B), 0.0))
            err = c.err + _mm_err(A, eB) + _mm_err(B.T, eA.T).T + eA @ eB
            err = err + (K + 2) * UNIT[c.dtype] * (mag + np.abs(c.val))
            if a.dtype == "float32" or b.dtype == "float32":
                err = err + 2 * TF32_UNIT * mag
        c.val, c.err = rounded(c.dtype, val, err)

    def op_AtomicTile(self, op: AtomicTile, env) -> None:
        s, d = self.tiles[op.src], self.globals[op.dst.buf]
        if not s.init.all():
            raise GeneratorBug(f"atomic of unwritten elements of {op.src}")
        val, err = s.val, s.err
        if s.dtype != d.dtype:
            val, err = convert(s.dtype, d.dtype, val, err)
        starts, ext = self.region(op.dst, env)
        idx = np.ix_(*[np.arange(st, st + e) for st, e in zip(starts, ext)])
        self.atomic(op.op, op.dst.buf, idx, val.reshape(ext), err.reshape(ext))

    def atomic(self, kind: str, name: str, idx, val, err) -> None:
        b = self.buf(name)
        tile = name in self.tiles
        if not tile and self.prog.tensor(name).role != "acc":
            raise GeneratorBug(f"an atomic on the {self.prog.tensor(name).role} tensor {name}")
        shape = np.broadcast_shapes(*[np.shape(x) for x in idx], np.shape(val))
        idx = tuple(np.broadcast_to(x, shape) for x in idx)
        keep = _inside(idx, b.val.shape)
        sel = tuple(x[keep] for x in idx)
        if tile and (not keep.all() or not b.init[sel].all()):
            raise GeneratorBug(f"an atomic on unwritten or missing elements of {name}")
        v, e = np.broadcast_to(val, shape)[keep], np.broadcast_to(err, shape)[keep]
        if kind == "add":
            if tile:  # a tile's order of updates is as free as a tensor's; bound it at once
                adds, absum = np.zeros(b.val.shape), np.zeros(b.val.shape)
                np.add.at(adds, sel, 1)
                np.add.at(absum, sel, np.abs(v))
            np.add.at(b.val, sel, v)
            np.add.at(b.err, sel, e)
            if tile:
                b.err += adds * UNIT[b.dtype] * (absum + np.abs(b.val))
            else:
                np.add.at(b.adds, sel, 1)
                np.add.at(b.absum, sel, np.abs(v))
            if np.any(np.abs(b.val[np.isfinite(b.val)]) > LIMIT[b.dtype]):
                raise Degenerate(f"atomic sums in {name} too large")
        else:
            # TileLang's float atomic_max / atomic_min (tl_templates/cuda/atomic.h): a value is
            # stored only when it compares strictly greater / smaller, so a NaN value never
            # stores and a stored NaN stays; applied one after another, as ufunc.at does
            flat = np.ravel_multi_index(sel, b.val.shape)
            vals = np.broadcast_to(v, flat.shape)
            cur = b.val.reshape(-1).copy()
            for k, x in zip(flat.tolist(), vals.tolist()):
                if (x > cur[k]) if kind == "max" else (x < cur[k]):
                    cur[k] = x
            b.val[...] = cur.reshape(b.val.shape)
            np.maximum.at(b.err, sel, e)

    # ------------------------------------------------------------------ expressions
    def expr(self, e, env, shape):
        """(val, err, dtype or None for a bare constant) of an expression over the iteration space."""
        if isinstance(e, Load):
            b = self.buf(e.buf)
            idx = tuple(np.broadcast_to(np.asarray(_ev(s, env), np.int64), shape) for s in e.idx)
            if self.is_global(e.buf):
                if self.prog.tensor(e.buf).role != "in":
                    raise GeneratorBug(f"a load of the output {e.buf}")
                inside = _inside(idx, b.val.shape)
                pad = self.safe(e.buf)
                if b.val.size == 0:
                    return np.full(shape, pad), np.zeros(shape), b.dtype
                clipped = tuple(np.clip(x, 0, n - 1) for x, n in zip(idx, b.val.shape))
                return np.where(inside, b.val[clipped], pad), np.where(inside, b.err[clipped], 0.0), b.dtype
            self.check_tile(e.buf, idx)
            if not b.init[idx].all():
                raise GeneratorBug(f"reads unwritten elements of {e.buf}")
            return b.val[idx], b.err[idx], b.dtype
        if isinstance(e, Const):
            return np.full(shape, float(e.value)), np.zeros(shape), None
        if isinstance(e, Idx):
            return np.broadcast_to(np.asarray(_ev(e.expr, env), np.float64), shape), np.zeros(shape), "int32"
        if isinstance(e, Bin):
            a, ea, da = self.expr(e.a, env, shape)
            b, eb, db = self.expr(e.b, env, shape)
            dt = da or db
            if dt is None:
                raise GeneratorBug("an operation on two constants")
            if da is None:
                a, ea = rounded(dt, a, ea)
            if db is None:
                b, eb = rounded(dt, b, eb)
            if da and db and da != db:
                raise GeneratorBug(f"operands of {e.op} of types {da} and {db}")
            with np.errstate(invalid="ignore", over="ignore"):
                if e.op == "+":
                    val, err = a + b, ea + eb
                elif e.op == "-":
                    val, err = a - b, ea + eb
                elif e.op == "*":
                    val, err = a * b, _mul_err(a, eb) + _mul_err(b, ea) + ea * eb
                elif e.op == "max":
                    return np.fmax(a, b), np.maximum(ea, eb), dt
                elif e.op == "min":
                    return np.fmin(a, b), np.maximum(ea, eb), dt
                else:
                    raise GeneratorBug(f"unknown operator {e.op}")
            val, err = rounded(dt, val, err)
            return val, err, dt
        if isinstance(e, Neg):
            a, ea, da = self.expr(e.a, env, shape)
            return -a, ea, da
        if isinstance(e, Abs):
            a, ea, da = self.expr(e.a, env, shape)
            return np.abs(a), ea, da
        if isinstance(e, Cast):
            a, ea, da = self.expr(e.a, env, shape)
            if da is None:
                val, err = rounded(e.dtype, a, ea)
                return val, err, e.dtype
            val, err = convert(da, e.dtype, a, ea)
            return val, err, e.dtype
        if isinstance(e, DCast):
            a, ea, da = self.expr(e.a, env, shape)
            if da is None or da == "int32":
                raise GeneratorBug("a directed cast of a constant or an integer")
            val, err = directed(e.via or e.dtype, e.mode, e.sat, a, ea)
            if e.via:
                val, err = convert(e.via, e.dtype, val, err)
            return val, err, e.dtype
        if isinstance(e, Lane):  # the lane read is load's own element; the other lanes are not used
            return self.expr(e.load if e.op is None else Bin(e.op, e.load, e.other), env, shape)
        if isinstance(e, Select):
            c = np.broadcast_to(_cond(e.cond, env), shape)
            a, ea, da = self.expr(e.a, env, shape)
            b, eb, db = self.expr(e.b, env, shape)
            dt = da or db
            if da is None:
                a, ea = rounded(dt, a, ea)
            if db is None:
                b, eb = rounded(dt, b, eb)
            return np.where(c, a, b), np.where(c, ea, eb), dt
        raise GeneratorBug(f"not an expression: {e!r}")


def convert_const(dtype: str, v) -> float:
    """A Python constant as a value of dtype (nearest even; int32 truncating)."""
    if dtype == "int32":
        return float(int(v))
    with np.errstate(all="ignore"):
        return float(np.array(float(v)).astype(numpy_dtype(dtype)).astype(np.float64))


def convert(src: str, dst: str, val, err):
    """A value of type src stored as dst. A conversion of a value known exactly is one rounding
    to nearest, ties to even, so its result is exact too (a truncating conversion fails)."""
    if src == dst:
        return val, err
    if dst == "int32":
        if src == "int32":
            return val, err
        return to_int(val, err)
    r_val, r_err = rounded(dst, val, err)
    with np.errstate(all="ignore"):
        nearest = np.asarray(val, np.float64).astype(numpy_dtype(dst)).astype(np.float64)
    exact = (np.asarray(err) == 0) & np.isfinite(val)
    return np.where(exact, nearest, r_val), np.where(exact, 0.0, r_err)


def _finite_values(dtype: str) -> np.ndarray:
    """Every finite value of a 16- or 8-bit float type, sorted (the oracle's directed rounding
    searches it: independent of how tilewise builds those conversions)."""
    bits = 8 if dtype.startswith("float8") else 16
    pats = np.arange(2**bits, dtype=np.uint8 if bits == 8 else np.uint16)
    with np.errstate(invalid="ignore"):
        vals = pats.view(numpy_dtype(dtype)).astype(np.float64)
    return np.unique(vals[np.isfinite(vals)])


def _directed_exact(dtype: str, mode: str, sat: bool, x: np.ndarray) -> np.ndarray:
    """x (float64, exact) rounded into dtype toward zero / +inf / -inf: the nearest value of the
    type on that side; beyond the largest finite value +-inf (NaN for float8_e4m3fn), or that
    largest value for float8 with saturation; rz keeps finite values finite; NaN stays NaN."""
    if dtype == "int32":
        f = {"rz": np.trunc, "rp": np.ceil, "rm": np.floor}[mode]
        return to_int(f(x), np.zeros_like(x))[0]
    if dtype in ("float32", "float64"):
        raise GeneratorBug("a directed cast into float32 of a float32 value is exact; not generated")
    table = _finite_values(dtype)
    top = table[-1]
    ceil = table[np.clip(np.searchsorted(table, x, "left"), 0, len(table) - 1)]
    floor = table[np.clip(np.searchsorted(table, x, "right") - 1, 0, len(table) - 1)]
    up = {"rp": True, "rm": False}
    out = np.where(x >= 0, floor, ceil) if mode == "rz" else (ceil if up[mode] else floor)
    over = np.inf if dtype != "float8_e4m3fn" else np.nan
    big = top if (sat and dtype.startswith("float8")) else over
    if mode == "rz":
        out = np.where(np.isinf(x), np.sign(x) * big, out)
    elif mode == "rp":
        out = np.where(x > top, big, np.where(x == -np.inf, -big, out))
    else:
        out = np.where(x < -top, -big, np.where(x == np.inf, big, out))
    return np.where(np.isnan(x), np.nan, out)


def directed(dtype: str, mode: str, sat: bool, val, err):
    """(val, err) after a directed-rounding conversion into dtype: exact for a value known
    exactly; otherwise the spread of the results over the value's error interval."""
    val = np.asarray(val, np.float64)
    err = np.asarray(err, np.float64)
    if dtype in LIMIT and np.any((err != 0) & np.isfinite(val) & (np.abs(val) > LIMIT[dtype])):
        raise Degenerate(f"an inexact {dtype} value beyond {LIMIT[dtype]:.3g}")
    out = _directed_exact(dtype, mode, sat, val)
    lo, hi = _directed_exact(dtype, mode, sat, val - err), _directed_exact(dtype, mode, sat, val + err)
    with np.errstate(invalid="ignore"):
        e = np.maximum(np.abs(hi - out), np.abs(out - lo))
    e = np.where((err == 0) | ~np.isfinite(out) | ~np.isfinite(e), 0.0, e)
    if np.any((err != 0) & np.isfinite(val) & ~(np.isfinite(lo) & np.isfinite(hi))):
        raise Degenerate("a directed cast whose error interval reaches an overflow")
    return out, e


def sum_depth(n: int, dtype: str) -> int:
    """Rounding steps a sum of n terms may take: any order for float32; 16-bit sums are folded
    over 32 lanes and then pairwise (docs/language-decisions.md), as a GPU warp does."""
    if n <= 1:
        return 1
    if dtype in ("float16", "bfloat16"):
        return min(n - 1, -(-n // 32) + 6) + 1
    return n


def _mm_err(mag, err):
    """|mag| @ err, non-finite magnitudes taken as 0 (their products are not finite anyway)."""
    return np.where(np.isfinite(mag), np.abs(mag), 0.0) @ err


def _inside(idx, shape) -> np.ndarray:
    bshape = np.broadcast_shapes(*[np.shape(x) for x in idx])
    ok = np.ones(bshape, bool)
    for x, n in zip(idx, shape):
        ok &= (x >= 0) & (x < n)
    return ok


def _ev(text: str, env: dict):
    return eval(text, {"__builtins__": {}}, env)  # index strings: names, integers and operators


def _cond(cond: tuple[str, ...], env) -> np.ndarray:
    out = np.array(True)
    for c in cond:
        out = out & np.asarray(_ev(c, env), bool)
    return out


def expected(prog: Program, inputs: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return Oracle(prog, inputs).run()


def make_inputs(prog: Program, seed: int) -> dict[str, np.ndarray]:
    """Arguments for every tensor: inputs small numbers (exact in every type), outputs a
    recognisable fill that must survive where nothing is written, acc tensors small numbers."""
    rng = np.random.default_rng(seed)
    out = {}
    for t in prog.tensors:
        t: Tensor
        shape = prog.shape(t)
        if t.dtype == "int32":
            lo, hi = (-40, 40) if t.role != "out" else (1000, 2000)
            arr = rng.integers(lo, hi, shape).astype(np.int32)
        else:
            # multiples of 1/8 in [-4, 4]: exact in bfloat16 too
            a = rng.integers(-32, 33, shape) / 8.0 if t.role != "out" else 100.0 + rng.integers(0, 50, shape)
            if prog.special_values and t.role == "in" and a.size:
                spots = rng.random(shape) < 0.08
                a = np.where(spots, rng.choice([np.nan, np.inf, -np.inf], shape), a)
            arr = a.astype(numpy_dtype(t.dtype))
        out[t.name] = arr
    return out
