"""Random valid tile programs from a seed.

A program is one kernel over an M x N problem in BM x BN tiles (shapes that do not divide the
tiles are the rule; 1-element tiles happen). It first produces a tile (a copy from a tensor, whole
or in pieces over a fill, a T.Parallel over global loads, a pipelined T.gemm over K, or a
pipelined accumulation), transforms tiles (T.Parallel chains, reductions, cumsum, copies between
scopes and types, partial copies and fills, some under conditions on block indices), and writes
results out (copies, stores, atomics). Validity is by construction: a tile is read only once it
is wholly written, each output element is written by at most one block, T.Parallel bodies read
what they write only at the same index, and only atomics touch a tensor from several blocks
(the oracle re-checks all of it).

Newer features ride along: directed-rounding casts inside expressions (DCast), float4_e2m1fn as
a storage type (a second input, copy and sink types; never computed in), one lane of a vector
load (Lane: T.Ramp on the last index, T.Broadcast, T.extract_lane) in place of a load, and
T.annotate_safe_value on the inputs."""
from __future__ import annotations

import random

from .program import (
    Abs,
    Assign,
    AtomicElem,
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
    Tile,
)

FP4 = "float4_e2m1fn"  # a storage type only: copied, converted and loaded, never computed in
FLOAT_CONSTS = (0.5, 1.5, 2.0, -1.0, 0.25, 3.0, -2.5, 0.0)
INT_CONSTS = (2, -3, 5, 7, 1, 0, -1)
REDUCE_KINDS = ("sum", "max", "min", "abssum", "absmax")


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


class _Gen:
    def __init__(self, seed: int):
        self.seed = seed
        self.r = random.Random(seed)
        self.tensors: list[Tensor] = []
        self.tiles: list[Tile] = []
        self.avail: set[str] = set()
        self.body: list = []
        self.in_loop = False
        self.counts: dict[str, int] = {}

    # ------------------------------------------------------------------ helpers
    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def pick(self, seq):
        return self.r.choice(list(seq))

    def fresh(self, prefix: str) -> str:
        n = self.counts.get(prefix, 0)
        self.counts[prefix] = n + 1
        return f"{prefix}{n}"

    def tensor(self, prefix: str, shape, dtype: str, role: str) -> Tensor:
        t = Tensor(self.fresh(prefix), tuple(shape), dtype, role)
        self.tensors.append(t)
        return t

    def tile(self, shape, dtype: str, scope: str | None = None) -> Tile:
        scope = scope or self.pick(("shared", "fragment"))
        t = Tile(self.fresh("s" if scope == "shared" else "f"), scope, tuple(shape), dtype)
        self.tiles.append(t)
        return t

    def tiles_of(self, shape, avail: bool = True, scope: str | None = None) -> list[Tile]:
        return [t for t in self.tiles if t.shape == tuple(shape) and (not avail or t.name in self.avail)
                and (scope is None or t.scope == scope)]

    # ------------------------------------------------------------------ the program
    def program(self) -> Program:
        r = self.r
        self.dtype = self.pick(["float32"] * 4 + ["float16"] * 2 + ["bfloat16"] * 2 + ["int32"] * 2)
        self.use_gemm = self.dtype != "int32" and self.chance(0.3)
        self.threads = self.pick((32, 64, 128, 128, 256))
        if not self.use_gemm and self.chance(0.1):
            self.threads = self.pick((48, 80, 96, 160))  # partial warps, odd warp counts
        if self.use_gemm:
            self.BM, self.BN = self.pick((16, 32, 64)), self.pick((8, 16, 32, 64))
            while not _splittable(self.BM, self.BN, self.threads // 32):
                self.threads //= 2
        else:
            self.BM = self.pick((1, 2, 3, 4, 8, 8, 16, 16, 32))
            self.BN = self.pick((1, 4, 5, 8, 16, 16, 32, 32, 64))
        # the problem: mostly not a multiple of the tile, at most a few blocks
        self.M = max(1, self.BM * r.randint(1, 3) - r.choice((0, 0, 1, self.BM // 2, self.BM - 1)))
        self.N = max(1, self.BN * r.randint(1, 3) - r.choice((0, 0, 1, self.BN // 2, self.BN - 1)))
        while _cdiv(self.M, self.BM) * _cdiv(self.N, self.BN) > 9:
            self.M = max(1, self.M - self.BM)
        gx, gy = _cdiv(self.N, self.BN), _cdiv(self.M, self.BM)
        self.gx, self.gy = gx, gy
        # sometimes M is a dynamic dimension (T.symbolic), bound at the call to M or less, 0 included
        self.Md, self.dims, rows = self.M, {}, gy
        if self.chance(0.15):
            self.Md, rows = "m", f"T.ceildiv(m, {self.BM})"
            self.dims = {"m": self.pick((0, 1, max(1, self.M // 2), self.M, self.M))}
        if gx == 1 and self.chance(0.5):
            self.grid = (rows,)
            self.R, self.C = (f"bx * {self.BM}" if gy > 1 else "0"), "0"
            self.blocks = ("bx",) if gy > 1 else ()
        else:
            self.grid = (gx, rows)
            self.R, self.C = f"by * {self.BM}", f"bx * {self.BN}"
            self.blocks = ("bx", "by")
        self.special = self.dtype != "int32" and self.chance(0.1)

        self.inputs = [self.tensor("X", (self.Md, self.N), self.dtype, "in")]
        if self.chance(0.3):
            self.inputs.append(self.tensor("X", (self.Md, self.N), self.pick(("float32", "float16", "int32", FP4)), "in"))

        self.safe = {}
        if self.chance(0.2):  # reads past an input tensor give a value of its own
            for x in self.inputs:
                if self.chance(0.7):
                    self.safe[x.name] = self.pick((7, -3, 2) if x.dtype == "int32" else (1.5, -2.0, 0.5, 6.0))
        main = self.produce()
        for _ in range(r.randint(0, 4)):
            self.transform()
        for _ in range(r.randint(1, 3)):
            self.sink()
        # the main tile's own sink, so every program shows its producer's result
        self.sink(main)
        return Program(self.seed, self.grid, self.threads, self.tensors, self.tiles, self.body, self.special,
                       self.dims, self.safe)

    # ------------------------------------------------------------------ index strings
    def at(self, base: str, off) -> str:
        parts = [p for p in (base if base != "0" else "", str(off) if off else "") if p]
        return " + ".join(parts) if parts else "0"

    def block_cond(self) -> tuple[str, ...]:
        r = self.r
        opts = []
        for b in self.blocks:
            opts += [f"{b} % 2 == 0", f"{b} == 0", f"{b} >= 1", f"{b} != 1"]
        if len(self.blocks) == 2:
            opts += ["bx <= by", "(bx + by) % 2 == 1"]
        if self.in_loop:
            opts += ["k % 2 == 0", "k == 0", "k >= 1"]
        if not opts:
            return ()
        return tuple(self.r.sample(opts, k=1 if r.random() < 0.8 else min(2, len(opts))))

    def index_cond(self, names: tuple[str, ...], ext: tuple[int, ...], offs: tuple[int, ...]) -> tuple[str, ...]:
        r = self.r
        i = names[0]
        opts = [f"{i} < {max(1, ext[0] // 2)}", f"{i} % 2 == 0", f"{i} >= 1"]
        if self.blocks:
            opts.append(f"{self.R} + {offs[0]} + {i} < {self.Md}" if self.R != "0" else f"{i} < {self.Md}")
        if len(names) > 1:
            j = names[1]
            opts += [f"{i} <= {j}", f"({i} + {j}) % 3 != 0", f"{j} < {max(1, ext[1] - 2)}", f"{j} % 2 == 1"]
        opts += [f"{b} == 0" for b in self.blocks]
        if self.in_loop:
            opts.append(f"{i} < k + 1")
        return tuple(r.sample(opts, k=1 if r.random() < 0.8 else 2))

    # ------------------------------------------------------------------ expressions
    def expr(self, dtype: str, depth: int, space) -> object:
        """A value of `dtype` over the iteration space `space` (names, extents, tile offsets)."""
        e = self._expr(dtype, depth, space)
        return e if typed(e) else self.leaf(dtype, space, const=False)

    def _expr(self, dtype: str, depth: int, space) -> object:
        r = self.r
        if depth <= 0 or r.random() < 0.25:
            return self.leaf(dtype, space)
        kind = r.choice(("+", "-", "*c", "*", "max", "min", "neg", "abs", "cast", "select", "+c", "dcast"))
        if kind == "dcast":
            return self.directed_cast(dtype, depth, space)
        if kind in ("+", "-", "*", "max", "min"):
            a, b = self.expr(dtype, depth - 1, space), self.expr(dtype, depth - 1, space)
            if isinstance(a, Const) and isinstance(b, Const):
                b = self.leaf(dtype, space, const=False)
            return Bin(kind, a, b)
        if kind in ("*c", "+c"):
            c = Const(r.choice(INT_CONSTS if dtype == "int32" else FLOAT_CONSTS))
            e = self.expr(dtype, depth - 1, space)
            if isinstance(e, Const):
                e = self.leaf(dtype, space, const=False)
            return Bin(kind[0], e, c) if r.random() < 0.5 else Bin(kind[0], c, e)
        if kind == "neg":
            return Neg(self.expr(dtype, depth - 1, space))
        if kind == "abs":
            return Abs(self.expr(dtype, depth - 1, space))
        if kind == "cast":
            other = r.choice(("float32", "float16", "bfloat16", "int32"))
            e = self.expr(other, depth - 1, space)
            return Cast(dtype, e) if other != dtype else e
        a, b = self.expr(dtype, depth - 1, space), self.expr(dtype, depth - 1, space)
        return Select(self.index_cond(space[0], space[1], space[2]), a, b)

    def directed_cast(self, dtype: str, depth: int, space) -> object:
        """T.cast(x, ..., round="rz"|"rp"|"rm") of a float x: straight into a narrower type, or
        through a float8 type (saturating or not) and back."""
        r = self.r
        mode = r.choice(("rz", "rp", "rm"))
        src = r.choice(("float32", "float32", "float16", "bfloat16"))
        direct = dtype == "int32" or (dtype in ("float16", "bfloat16") and src not in ("float16", dtype))
        via = None if direct and r.random() < 0.5 else r.choice(("float8_e4m3fn", "float8_e5m2"))
        a = self.expr(src, depth - 1, space)
        if not typed(a):
            a = self.leaf(src, space, const=False)
        if r.random() < 0.5:  # values off the narrow grids (the factors are exact in every source type)
            a = Bin("*", a, Const(r.choice((1.0625, 0.3125, 1.1875, 2.9375, 17.0625, 0.0390625, 304.0))))
        return DCast(dtype, mode, a, sat=r.random() < 0.6, via=via)

    def leaf(self, dtype: str, space, const: bool = True):
        names, ext, offs = space
        r = self.r
        opts = ["global", "idx"] + (["const"] if const else [])
        same = self.tiles_of((self.BM, self.BN)) if len(names) == 2 else []
        rows = self.tiles_of((self.BM,))
        cols = self.tiles_of((self.BN,)) if len(names) == 2 else []
        if len(names) == 1:  # a 1-D space runs over rows of the block
            same = []
        opts += ["tile"] * 3 * bool(same) + ["row"] * bool(rows) + ["col"] * bool(cols)
        kind = r.choice(opts)
        if kind == "const":
            return Const(r.choice(INT_CONSTS if dtype == "int32" else FLOAT_CONSTS))
        if kind == "idx":
            e = Idx(r.choice(_idx_exprs(names)))
            return e if dtype == "int32" else Cast(dtype, e)
        if kind == "global":
            x = r.choice(self.inputs)
            dr = r.choice((0, 0, 0, 1, 2))
            dc = r.choice((0, 0, 0, 1, 3))
            if len(names) == 2:
                idx = (self.at(self.R, f"{offs[0] + dr} + i" if offs[0] + dr else "i"),
                       self.at(self.C, f"{offs[1] + dc} + j" if offs[1] + dc else "j"))
            else:
                idx = (self.at(self.R, f"{offs[0] + dr} + i" if offs[0] + dr else "i"),
                       _fit(self.at(self.C, str(r.randrange(self.BN))), x.shape[1]))
            e = Load(x.name, idx)
            return _as(dtype, self.lanes(e, x.dtype, x.shape[-1], True, space), x.dtype)
        if kind == "tile":
            t = r.choice(same)
            e = Load(t.name, (_plus(offs[0], "i"), _plus(offs[1], "j")))
        elif kind == "row":
            t = r.choice(rows)
            e = Load(t.name, (_plus(offs[0], "i"),))
        else:
            t = r.choice(cols)
            e = Load(t.name, (_plus(offs[1], "j"),))
        return _as(dtype, self.lanes(e, t.dtype, t.shape[-1], False, space), t.dtype)

    def lanes(self, e: Load, dtype: str, size: int, guarded: bool, space):
        """Sometimes the load as one lane of a vector load (T.Ramp on its last index), maybe
        combined with a T.Broadcast first. A tile's other lanes must stay inside the tile: a
        negative stride from lane 0 (negative lanes count from the end); a global tensor's
        reads outside it give 0, so there any lane and stride."""
        r = self.r
        if r.random() > 0.15:
            return e
        n = r.choice((2, 4, 8))
        if guarded and r.random() < 0.5:
            stride, lane = r.choice((1, 1, 2, 3)), r.randrange(n)
        else:
            stride, lane = -r.choice((1, 1, 2)), 0
            while n > 2 and (n - 1) * -stride > size:
                n //= 2
            if (n - 1) * -stride > size:
                return e
        v = Lane(e, stride, n, lane)
        if dtype != FP4 and r.random() < 0.5:
            other = self.expr(dtype, 0, space)
            if typed(other):
                v.op, v.other = r.choice(("+", "*", "max", "min", "-")), other
        return v

    # ------------------------------------------------------------------ producers
    def produce(self) -> Tile:
        r = self.r
        BM, BN = self.BM, self.BN
        X = self.inputs[0]
        if self.use_gemm:
            return self.gemm_loop()
        kind = r.choice(("copy", "copy", "slice", "staged", "pieces", "parallel", "accumulate"))
        if kind == "accumulate":
            return self.accumulate_loop()
        t = self.tile((BM, BN), self.dtype)
        if kind == "copy":
            self.body.append(Copy(Ref(X.name, "corner", (self.R, self.C), (BM, BN)), Ref(t.name, "whole")))
        elif kind == "slice":
            self.body.append(Copy(Ref(X.name, "slice", (self.R, self.C), (BM, BN)), Ref(t.name, "whole")))
        elif kind == "staged":
            s = self.tile((BM, BN), self.dtype, "shared")
            self.body.append(Copy(Ref(X.name, "corner", (self.R, self.C), (BM, BN)), Ref(s.name, "whole")))
            self.avail.add(s.name)
            self.body.append(Copy(Ref(s.name, "whole"), Ref(t.name, "whole")))
        elif kind == "pieces":
            clear = self.chance(0.3)
            self.body.append(Fill(Ref(t.name, "whole"), 0 if clear else self.const(t.dtype), clear=clear))
            self.avail.add(t.name)
            for _ in range(r.randint(1, 2)):
                h, w, r0, c0 = self.sub(BM, BN)
                dr, dc = r.choice((0, 0, 1)), r.choice((0, 0, 2))
                src = Ref(X.name, "corner", _fit2((self.at(self.R, r0 + dr), self.at(self.C, c0 + dc)), X.shape), (h, w))
                if r.random() < 0.4:
                    src = Ref(X.name, "slice", src.starts, (h, w))
                self.body.append(Copy(src, Ref(t.name, "slice", (str(r0), str(c0)), (h, w))))
        else:
            space = (("i", "j"), (BM, BN), (0, 0))
            self.body.append(Parallel((BM, BN), [Assign(t.name, ("i", "j"), self.expr(t.dtype, 2, space))]))
        self.avail.add(t.name)
        return t

    def gemm_loop(self) -> Tile:
        r = self.r
        BM, BN = self.BM, self.BN
        in_dt = self.dtype
        BK = r.choice((16, 32) if in_dt != "float32" else (8, 16, 32))
        KT = r.randint(1, 3)
        K = max(1, KT * BK - r.choice((0, 0, 1, BK // 2)))
        ta, tb = self.chance(0.3), self.chance(0.4)
        A = self.tensor("A", (K, self.Md) if ta else (self.Md, K), in_dt, "in")
        B = self.tensor("B", (self.N, K) if tb else (K, self.N), in_dt, "in")
        a_s = self.tile((BK, BM) if ta else (BM, BK), in_dt, "shared")
        b_s = self.tile((BN, BK) if tb else (BK, BN), in_dt, "shared")
        c = self.tile((BM, BN), "float32", "fragment")
        if self.chance(0.8):
            self.body.append(Fill(Ref(c.name, "whole"), 0, clear=True))
        else:
            self.body.append(Fill(Ref(c.name, "whole"), self.const("float32")))
        self.avail.add(c.name)
        kind = r.choice(("pipelined", "pipelined", "serial", "range")) if KT > 1 or self.chance(0.5) else "none"
        self.in_loop = kind != "none"
        kk = "k" if self.in_loop else "0"
        body = [
            Copy(Ref(A.name, "corner", (f"{kk} * {BK}", self.R) if ta else (self.R, f"{kk} * {BK}"), a_s.shape),
                 Ref(a_s.name, "whole")),
            Copy(Ref(B.name, "corner", (self.C, f"{kk} * {BK}") if tb else (f"{kk} * {BK}", self.C), b_s.shape),
                 Ref(b_s.name, "whole")),
        ]
        self.avail |= {a_s.name, b_s.name}
        a_op = a_s
        if self.chance(0.25):  # scale the staged operand in place (a dequantisation-like step)
            space = (("i", "j"), a_s.shape, (0, 0))
            val = Bin("*", Load(a_s.name, ("i", "j")), Const(self.pick((2.0, 0.5, -1.0))))
            if self.chance(0.3):
                val = Select(self.index_cond(("i", "j"), a_s.shape, (0, 0)), val, Load(a_s.name, ("i", "j")))
            body.append(Parallel(a_s.shape, [Assign(a_s.name, ("i", "j"), val)]))
            del space
        if in_dt != "float32" and self.chance(0.25):  # the A operand from registers (tf32 reads shared only)
            a_f = self.tile(a_s.shape, in_dt, "fragment")
            body.append(Copy(Ref(a_s.name, "whole"), Ref(a_f.name, "whole")))
            self.avail.add(a_f.name)
            a_op = a_f
        policy = self.pick(("Square", "Square", "FullRow", "FullCol"))
        if policy != "Square" and not _splittable(BM, BN, self.threads // 32, policy):
            policy = "Square"
        gemm = Gemm(a_op.name, b_s.name, c.name, ta, tb, policy, self.chance(0.1))
        if self.in_loop and self.chance(0.15):
            body.append(If(self.block_cond() or ("k >= 0",), [gemm]))
        else:
            body.append(gemm)
        if self.chance(0.2):  # a running row sum of the staged A tile alongside
            dim = 0 if ta else 1
            acc = self.tile((BM,), "float32", "fragment")
            self.body.append(Fill(Ref(acc.name, "whole"), 0, clear=True))
            self.avail.add(acc.name)
            body.append(Reduce(self.pick(("sum", "abssum", "max")), a_s.name, acc.name, dim, False))
        if self.in_loop:
            self.body.append(Loop(kind, KT, r.randint(1, 3) if kind == "pipelined" else 0, body))
            if kind == "pipelined" and r.random() < 0.9:
                self.avail -= {a_s.name, b_s.name}  # multi-buffered: a later use is refused (ALLOWED)
        else:
            self.body += body
        self.in_loop = False
        return c

    def accumulate_loop(self) -> Tile:
        """acc = sum over k of f(Y[R, k * BN + C']): a pipelined loop without a gemm."""
        r = self.r
        BM, BN = self.BM, self.BN
        KT = r.randint(1, 3)
        W = max(1, KT * BN - r.choice((0, 1, BN // 2)))
        Y = self.tensor("Y", (self.Md, W), self.dtype, "in")
        s = self.tile((BM, BN), self.dtype, "shared")
        acc = self.tile((BM, BN), "float32" if self.dtype != "int32" else "int32")
        self.body.append(Fill(Ref(acc.name, "whole"), 0, clear=True))
        self.avail |= {acc.name, s.name}
        self.in_loop = True
        body = [Copy(Ref(Y.name, "corner", (self.R, f"k * {BN}"), (BM, BN)), Ref(s.name, "whole"))]
        space = (("i", "j"), (BM, BN), (0, 0))
        val = self.expr(acc.dtype, 1, space) if self.chance(0.5) else Cast(acc.dtype, Load(s.name, ("i", "j")))
        if acc.dtype == s.dtype:
            val = Load(s.name, ("i", "j")) if self.chance(0.5) else val
        upd = Bin("+", Load(acc.name, ("i", "j")), _as(acc.dtype, Load(s.name, ("i", "j")), s.dtype))
        if self.chance(0.4):
            upd = Bin("max", Load(acc.name, ("i", "j")), val)
        body.append(Parallel((BM, BN), [Assign(acc.name, ("i", "j"), upd)]))
        if self.chance(0.3):
            rows = self.tile((BM,), acc.dtype, "fragment")
            self.body.append(Fill(Ref(rows.name, "whole"), 0, clear=True))
            self.avail.add(rows.name)
            body.append(Reduce(self.pick(("sum", "max", "min", "absmax")), s.name, rows.name, 1, False))
        kind = r.choice(("pipelined", "pipelined", "serial"))
        self.body.append(Loop(kind, KT, r.randint(1, 3) if kind == "pipelined" else 0, body))
        if kind == "pipelined" and r.random() < 0.9:
            self.avail.discard(s.name)  # multi-buffered: a later use is refused (ALLOWED)
        self.in_loop = False
        return acc

    # ------------------------------------------------------------------ transforms
    def transform(self) -> None:
        r = self.r
        kind = r.choice(("parallel", "parallel", "parallel", "reduce", "reduce", "cumsum", "copy", "piece",
                         "fill", "cond", "shared_atomic"))
        getattr(self, "t_" + kind)()

    def two_d(self, **kw) -> list[Tile]:
        return self.tiles_of((self.BM, self.BN), **kw)

    def t_parallel(self, inplace: bool = False) -> None:
        r = self.r
        BM, BN = self.BM, self.BN
        existing = [t for t in self.two_d() if t.dtype != FP4]
        rows = [t for t in self.tiles_of((BM,)) if t.dtype != FP4]
        if r.random() < 0.2 and rows:
            # a 1-D loop over rows updating a row vector in place, or a new one
            if inplace or r.random() < 0.5:
                t = r.choice(rows)
            else:
                t = self.tile((BM,), r.choice((self.dtype, "float32")), "fragment")
            space = (("i",), (BM,), (0,))
            self.body.append(Parallel((BM,), [Assign(t.name, ("i",), self.expr(t.dtype, 2, space))]))
            self.avail.add(t.name)
            return
        if existing and (inplace or r.random() < 0.5):
            t = r.choice(existing)
            partial = r.random() < 0.4
        else:
            t = self.tile((BM, BN), r.choice((self.dtype, self.dtype, "float32", "float16", "int32")))
            partial = False
        h, w, r0, c0 = self.sub(BM, BN) if partial else (BM, BN, 0, 0)
        if t.scope == "fragment" and r.random() < 0.8:
            r0 = c0 = 0  # a fragment at an offset needs a shifted thread layout: CUDA refuses it (ALLOWED)
        space = (("i", "j"), (h, w), (r0, c0))
        stmts = []
        if r.random() < 0.3 and not partial and not inplace:
            # a chain: a temporary tile first, then t from it
            tmp = self.tile((BM, BN), r.choice((self.dtype, "float32")), "fragment" if r.random() < 0.7 else "shared")
            stmts.append(Assign(tmp.name, ("i", "j"), self.expr(tmp.dtype, 2, space)))
            self.avail.add(tmp.name)
        stmts.append(Assign(t.name, (_plus(r0, "i"), _plus(c0, "j")), self.expr(t.dtype, 3, space)))
        self.body.append(Parallel((h, w), stmts))
        self.avail.add(t.name)

    def t_reduce(self) -> None:
        r = self.r
        srcs = self.two_d()
        if not srcs:
            return self.t_parallel()
        s = r.choice(srcs)
        dim = r.randint(0, 1)
        shape = (self.BN,) if dim == 0 else (self.BM,)
        kind = r.choice(REDUCE_KINDS)
        dt = s.dtype if s.dtype in ("int32", "float32") or (r.random() < 0.5 and s.dtype != FP4) else "float32"
        olds = [t for t in self.tiles_of(shape, scope="fragment") if t.dtype == dt]
        if olds and r.random() < 0.5:
            d, clear = r.choice(olds), r.random() < 0.3
        else:
            d, clear = self.tile(shape, dt, "fragment"), True
        self.body.append(Reduce(kind, s.name, d.name, dim, clear))
        self.avail.add(d.name)

    def t_shared_atomic(self) -> None:
        """Column (or row) totals of a tile gathered with atomics into a shared vector."""
        r = self.r
        srcs = self.two_d()
        if not srcs:
            return self.t_parallel()
        s = r.choice(srcs)
        dt = "int32" if s.dtype == "int32" else "float32"
        cols = r.random() < 0.5
        n = self.BN if cols else self.BM
        v = self.tile((n,), dt, "shared")
        self.body.append(Fill(Ref(v.name, "whole"), self.const(dt)))
        self.avail.add(v.name)
        op = "add" if r.random() < 0.7 else r.choice(("max", "min"))
        val = _as(dt, Load(s.name, ("i", "j")), s.dtype)
        self.body.append(Parallel((self.BM, self.BN), [AtomicElem(op, v.name, ("j",) if cols else ("i",), val)]))

    def t_cumsum(self) -> None:
        r = self.r
        srcs = self.two_d()
        if r.random() < 0.2:  # a running sum along a vector
            srcs = self.tiles_of((self.BM,)) + self.tiles_of((self.BN,)) or srcs
        srcs = [t for t in srcs if t.dtype != FP4]
        if not srcs:
            return self.t_parallel()
        s = r.choice(srcs)
        if r.random() < 0.5:
            d = None
        else:
            d = self.tile(s.shape, s.dtype, s.scope).name
            self.avail.add(d)
        self.body.append(CumSum(s.name, d, r.randint(0, len(s.shape) - 1), r.random() < 0.5))

    def t_copy(self) -> None:
        r = self.r
        srcs = self.two_d() + self.tiles_of((self.BM,)) + self.tiles_of((self.BN,))
        if not srcs:
            return self.t_parallel()
        s = r.choice(srcs)
        scope = "fragment" if s.scope == "shared" else ("shared" if r.random() < 0.85 else "fragment")
        if len(s.shape) == 1:
            scope = "fragment" if r.random() < 0.5 else "shared"
        d = self.tile(s.shape, r.choice((s.dtype, s.dtype, "float32", "float16", FP4)), scope)
        self.body.append(Copy(Ref(s.name, "whole"), Ref(d.name, "whole")))
        self.avail.add(d.name)

    def t_piece(self) -> None:
        """A partial copy between two tiles, or from a tensor into a tile."""
        r = self.r
        dsts = self.two_d()
        if not dsts:
            return self.t_parallel()
        d = r.choice(dsts)
        h, w, r0, c0 = self.sub(self.BM, self.BN)
        srcs = [t for t in self.two_d() if t.name != d.name]
        if d.scope == "fragment" and r.random() < 0.85:
            srcs = [t for t in srcs if t.scope == "shared"]  # parts of two fragments: CUDA refuses (ALLOWED)
        if srcs and r.random() < 0.6:
            s = r.choice(srcs)
            sr, sc = r.randint(0, self.BM - h), r.randint(0, self.BN - w)
            src = Ref(s.name, "slice", (str(sr), str(sc)), (h, w))
        else:
            x = r.choice(self.inputs)
            src = Ref(x.name, "corner", _fit2((self.at(self.R, r0 + r.choice((0, 1))), self.at(self.C, c0)), x.shape),
                      (h, w))
        self.body.append(Copy(src, Ref(d.name, "slice", (str(r0), str(c0)), (h, w))))

    def t_fill(self) -> None:
        dsts = self.two_d()
        if not dsts:
            return self.t_parallel()
        d = self.r.choice(dsts)
        h, w, r0, c0 = self.sub(self.BM, self.BN)
        self.body.append(Fill(Ref(d.name, "slice", (str(r0), str(c0)), (h, w)), self.const(d.dtype)))

    def t_cond(self) -> None:
        """An in-place transform under a condition on the block indices."""
        cond = self.block_cond()
        if not cond or not self.two_d():
            return self.t_parallel()
        before = len(self.body)
        pick = self.r.choice(("t_piece", "t_fill", "inplace"))
        if pick == "inplace" and all(t.dtype == FP4 for t in self.two_d()):
            pick = "t_fill"  # fp4 tiles are not computed in
        if pick == "inplace":
            self.t_parallel(inplace=True)
        else:
            getattr(self, pick)()
        body = self.body[before:]
        del self.body[before:]
        orelse = []
        if self.r.random() < 0.4:
            self.t_fill()
            orelse = self.body[before:]
            del self.body[before:]
        self.body.append(If(cond, body, orelse))

    # ------------------------------------------------------------------ sinks
    def sink(self, tile: Tile | None = None) -> None:
        r = self.r
        BM, BN = self.BM, self.BN
        if tile is None:
            cands = [t for t in self.tiles if t.name in self.avail and len(t.shape) == 1 and t.shape[0] in (BM, BN)]
            cands += self.two_d()
            tile = r.choice(cands)
        if len(tile.shape) == 1:
            return self.sink_vector(tile)
        kind = r.choice(("copy", "copy", "slice", "piece", "store", "atomic", "atomic_region", "atomic_elem"))
        dt = r.choice((tile.dtype, tile.dtype, "float32", "float16", "bfloat16", "int32", FP4))
        if kind.startswith("atomic") and dt not in ("float32", "int32"):
            dt = "float32" if tile.dtype != "int32" else "int32"
        if kind == "atomic":
            S = self.tensor("S", (BM, BN), dt, "acc")
            op = "add" if r.random() < 0.7 else r.choice(("max", "min"))
            dst = Ref(S.name, "whole") if r.random() < 0.5 else Ref(S.name, "corner", ("0", "0"), (BM, BN))
            self.body.append(AtomicTile(op, dst, tile.name))
            return
        if kind == "atomic_region":
            S = self.tensor("S", (self.Md, self.N), dt, "acc")
            self.body.append(AtomicTile("add", Ref(S.name, "corner", (self.R, self.C), (BM, BN)), tile.name))
            return
        if kind == "atomic_elem":
            op = "add" if r.random() < 0.7 else r.choice(("max", "min"))
            if op == "add" and r.random() < 0.3:  # T.atomic_addx2 / x4 of a broadcast value
                op, n = r.choice((("addx2", 2), ("addx4", 4)))
                S = self.tensor("S", (n * BN,), dt, "acc")
                val = _as(dt, Load(tile.name, ("i", "j")), tile.dtype)
                self.body.append(Parallel((BM, BN), [AtomicElem(op, S.name, (f"j * {n}",), val)]))
                return
            S = self.tensor("S", (BN,), dt, "acc")
            space = (("i", "j"), (BM, BN), (0, 0))
            val = _as(dt, Load(tile.name, ("i", "j")), tile.dtype)
            if r.random() < 0.3:
                val = Select(self.index_cond(("i", "j"), (BM, BN), (0, 0)), val, Const(0))
            self.body.append(Parallel((BM, BN), [AtomicElem(op, S.name, ("j",), val)]))
            del space
            return
        O = self.tensor("O", (self.Md, self.N), dt, "out")
        if kind == "copy":
            self.body.append(Copy(Ref(tile.name, "whole"), Ref(O.name, "corner", (self.R, self.C), (BM, BN))))
        elif kind == "slice":
            self.body.append(Copy(Ref(tile.name, "whole"), Ref(O.name, "slice", (self.R, self.C), (BM, BN))))
        elif kind == "piece":
            h, w, r0, c0 = self.sub(BM, BN)
            self.body.append(Copy(Ref(tile.name, "slice", (str(r0), str(c0)), (h, w)),
                                  Ref(O.name, "corner", _fit2((self.at(self.R, r0), self.at(self.C, c0)), O.shape),
                                      (h, w))))
        else:
            space = (("i", "j"), (BM, BN), (0, 0))
            val = Bin(r.choice(("+", "*", "max")), _as(dt, Load(tile.name, ("i", "j")), tile.dtype),
                      self.expr(dt, 1, space)) if r.random() < 0.5 and dt != FP4 else _as(dt, Load(tile.name, ("i", "j")), tile.dtype)
            idx = (self.at(self.R, "i"), self.at(self.C, "j"))
            self.body.append(Parallel((BM, BN), [Assign(O.name, idx, val)]))

    def sink_vector(self, v: Tile) -> None:
        """A row vector (BM,) or a column vector (BN,) to a tensor of one entry per block."""
        r = self.r
        gx = self.gx if len(self.grid) == 2 else 1
        gy = self.gy
        bx = "bx" if len(self.grid) == 2 else "0"
        by = "by" if len(self.grid) == 2 else ("bx" if gy > 1 else "0")
        dt = r.choice((v.dtype, v.dtype, "float32"))
        rows = v.shape[0] == self.BM and (v.shape[0] != self.BN or r.random() < 0.5 or self.dims)
        if not rows and self.dims:
            return  # one column vector per block row: as many rows as a dynamic grid has
        if rows:
            O = self.tensor("O", (gx, self.Md), dt, "out")
            start = (bx, self.R)
        else:
            O = self.tensor("O", (gy, self.N), dt, "out")
            start = (by, self.C)
        n = v.shape[0]
        if r.random() < 0.5:
            self.body.append(Copy(Ref(v.name, "whole"), Ref(O.name, "corner", start, (1, n))))
        else:
            self.body.append(Parallel((n,), [Assign(O.name, (start[0], self.at(start[1], "i")),
                                                    _as(dt, Load(v.name, ("i",)), v.dtype))]))

    # ------------------------------------------------------------------ small choices
    def sub(self, BM: int, BN: int) -> tuple[int, int, int, int]:
        """(h, w, r0, c0): a sub-rectangle of a BM x BN tile, sometimes all of it."""
        r = self.r
        h = r.randint(1, BM)
        w = r.randint(1, BN)
        return h, w, r.randint(0, BM - h), r.randint(0, BN - w)

    def const(self, dtype: str):
        return self.r.choice(INT_CONSTS if dtype == "int32" else FLOAT_CONSTS)


def typed(e) -> bool:
    """Whether an expression has a type of its own (is not made of constants only)."""
    if isinstance(e, Const):
        return False
    if isinstance(e, (Bin, Select)):
        return typed(e.a) or typed(e.b)
    if isinstance(e, (Neg, Abs, DCast)):
        return typed(e.a) or isinstance(e, DCast)
    return True


def _splittable(M: int, N: int, warps: int, policy: str = "Square") -> bool:
    """Whether some split of the warps over the C tile fits the mma tiles (and the policy's shape:
    FullRow puts every warp on different rows, FullCol on different columns)."""
    splits = [wm for wm in range(1, warps + 1) if warps % wm == 0 and M % (wm * 16) == 0
              and N % ((warps // wm) * 8) == 0]
    if policy == "FullRow":
        return warps in splits
    if policy == "FullCol":
        return 1 in splits
    return bool(splits)


def _fit(index: str, dim: int) -> str:
    """A constant index inside its dimension (constant indices outside are compile errors)."""
    if any(c.isalpha() for c in index) or isinstance(dim, str):
        return index
    return str(min(eval(index), dim - 1))  # a sum of integer literals


def _fit2(idx: tuple[str, str], shape) -> tuple[str, str]:
    return _fit(idx[0], shape[0]), _fit(idx[1], shape[1])


def _plus(off: int, name: str) -> str:
    return f"{off} + {name}" if off else name


def _as(dtype: str, e, have: str):
    return e if have == dtype else Cast(dtype, e)


def _idx_exprs(names: tuple[str, ...]) -> list[str]:
    i = names[0]
    out = [i, f"{i} * 2 + 1", f"{i} % 3"]
    if len(names) > 1:
        j = names[1]
        out += [f"{i} + {j}", f"{j} - {i}", f"{i} * 3 - {j}", f"({i} + {j}) % 4"]
    return out


def generate(seed: int) -> Program:
    """The program of a seed (the same program for the same seed, on any machine)."""
    return _Gen(seed).program()
