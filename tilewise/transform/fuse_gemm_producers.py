"""CPU: a float16 / bfloat16 GEMM operand tile that element-wise code computes (a dequantisation)
is kept in float32, unrounded, and the GEMM's operand packing rounds it (CPU loop passes).

    for i, j in T.Parallel(N, K):                       B_f[i, j] = (nib - 8) * s[i]   (float32)
        B[i, j] = (nib.astype("float16") - 8) * s[i] ->  T.gemm(A, B_f rounded through float16, C)
    T.gemm(A, B, C)

Why: the micro-kernel (backend/cpu/include/tw_gemm.h) multiplies in float32 and packs a float16
operand by converting it to float32 anyway. Rounding the producer's float32 value to float16 in
its own loop is a dozen integer instructions per element (tw::half's portable conversion, which
g++ vectorises; its scalar F16C form it does not), then the packing reads the float16 tile back
and widens it. Left to the packing, the rounding becomes one `vcvtps2ph` and one `vcvtph2ps` per
8 elements inside the pass that already converts (and, for a transposed B, transposes) the tile:
the float16 round trip through memory goes. The values the micro-kernel multiplies are the same
bit for bit: each is the producer's float32 value rounded once to the operand type and widened,
as before (F16C rounds to nearest even like tw::half; NaNs are quietened alike).

A tile qualifies when every store into it is `Cast(narrow, float32 value)` (arithmetic the
renderer computes in float and rounds back: exact_narrow_floats has run) and nothing reads it
but T.gemm calls that take it as A or B: no other loads, no views, no regions, no calls given
its address. Any such store then writes the float32 value into a float32 tile of the same shape,
and the GEMM calls get `round_a` / `round_b`: the narrow type their packing rounds through
(codegen.py passes the operand as `tw::via<narrow>`). Copies from a tensor (a plain fp16 GEMM)
store loads, not casts, and keep their tiles.

Loop-invariant operands: a narrow tile written only outside a loop in which a T.gemm reads it
(FlashAttention's Q tile, copied once and multiplied in every step over K/V) was widened to
float32 by that GEMM's packing at every step. Such a tile becomes float32 where it is written
(each value converted once, exactly), and the GEMM reads it in place: an A operand, or a B
operand whose rows are whole vectors, needs no packing at all. Only these stores may be plain
narrow values (a copy); a tile stored inside the loop keeps its type unless its stores are
the producer form above.
"""
from __future__ import annotations

from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.expr import BufferLoad, Call, Cast
from ..ir.stmt import Allocate, BufferStore, Kernel, PrimFunc
from ..ir.visitor import Mutator, Visitor
from .buffer_rewrite import BufferRewriter

_NARROW = ("float16", "bfloat16")
_TILE_SCOPES = ("shared", "shared.dyn", "local.fragment", "local")
# accumulator type of T.gemm on the CPU, by C's type (tw_gemm.h Acc): float32 for these
_FLOAT_ACC = ("float32", "float16", "bfloat16")


def fuse_gemm_producers(func: PrimFunc) -> PrimFunc:
    return func.with_body(_PerKernel().visit(func.body))


class _PerKernel(Mutator):
    def visit_Kernel(self, k: Kernel):
        uses = _Uses()
        uses.visit(k.body)
        mapping = {}
        for b in uses.candidates():
            mapping[b] = (Buffer(b.name, b.shape, _dt.float32, b.scope, span=b.span), None)
        if not mapping:
            return k
        # the GEMMs round a tile that any store leaves unrounded; converted narrow values need not
        rounded = {b.uid for b in mapping if any(p for _, p in uses.stores[b.uid])}
        return k.with_fields(body=_Rewrite(mapping, rounded).visit(k.body))


def _gemm_operand(a) -> Buffer | None:
    """X when a is `address_of(X[...])`."""
    if isinstance(a, Call) and a.name == "address_of" and len(a.args) == 1 and isinstance(a.args[0], BufferLoad):
        return a.args[0].buffer
    return None


class _Uses(Visitor):
    """Which narrow-float tiles only T.gemm operands read, and where they are stored: by float32
    producers, or outside a loop in which a GEMM reads them."""

    def __init__(self):
        self.allocated: list[Buffer] = []
        self.bad: set[int] = set()
        self.operand_loads: set[int] = set()  # ids of the BufferLoads inside a gemm's A / B address
        self.loops: list[int] = []  # ids of the For / While statements around the visit
        # per tile uid: the enclosing loops of each store (and whether it is the producer form)
        # and of each gemm that reads it
        self.stores: dict[int, list[tuple[frozenset, bool]]] = {}
        self.reads: dict[int, list[frozenset]] = {}

    def candidates(self) -> list[Buffer]:
        out = []
        for b in self.allocated:
            stores, reads = self.stores.get(b.uid), self.reads.get(b.uid)
            if b.uid in self.bad or not stores or not reads:
                continue
            # or each GEMM that reads it runs in a loop that no store runs in
            if all(produced for _, produced in stores) or all(
                    (loops & r) < r for loops, _ in stores for r in reads):
                out.append(b)
        return out

    def _loop(self, s):
        self.loops.append(id(s))
        self.generic_visit(s)
        self.loops.pop()

    visit_For = _loop
    visit_While = _loop

    def visit_Allocate(self, s: Allocate):
        b = s.buffer
        if s.init is not None or b.base is not None:
            self._poison(b)
        elif b.dtype.name in _NARROW and b.scope in _TILE_SCOPES and all(isinstance(d, int) for d in b.shape):
            self.allocated.append(b)
        self.generic_visit(s)

    def _poison(self, b: Buffer | None):
        while b is not None:
            self.bad.add(b.uid)
            b = b.base

    def visit_Call(self, e: Call):
        if e.name == "gemm" and len(e.args) == 3:
            c = _gemm_operand(e.args[2])
            if c is None or c.dtype.name not in _FLOAT_ACC:
                for a in e.args:
                    self._poison(_gemm_operand(a))
            else:
                for a in e.args[:2]:
                    x = _gemm_operand(a)
                    if x is not None:
                        self.reads.setdefault(x.uid, []).append(frozenset(self.loops))
                        self.operand_loads.add(id(a.args[0]))
                self._poison(c)
        self.generic_visit(e)

    def visit_BufferLoad(self, e: BufferLoad):
        if id(e) not in self.operand_loads:
            self._poison(e.buffer)
        self.generic_visit(e)

    def visit_BufferStore(self, s: BufferStore):
        b = s.buffer
        v = s.value
        if v.dtype != b.dtype:
            self._poison(b)
        produced = isinstance(v, Cast) and v.value.dtype == _dt.float32
        self.stores.setdefault(b.uid, []).append((frozenset(self.loops), produced))
        self.generic_visit(s)

    def visit_BufferRegion(self, r: BufferRegion):
        self._poison(r.buffer)
        self.generic_visit(r)


class _Rewrite(BufferRewriter):
    """The tiles become float32, their stores drop the final rounding, and each gemm that reads
    one is told which type to round it through."""

    def __init__(self, mapping: dict, rounded: set):
        super().__init__(mapping)
        self.narrow = {new: old.dtype.name for old, (new, _) in mapping.items() if old.uid in rounded}

    def visit_BufferStore(self, s: BufferStore):
        if s.buffer in self.mapping:
            v = s.value
            # the producer's float32 value, unrounded; a plain narrow value converted (exactly)
            v = v.value if isinstance(v, Cast) and v.value.dtype == _dt.float32 else Cast(v, _dt.float32)
            s = BufferStore(s.buffer, s.indices, v, span=s.span)
        return super().visit_BufferStore(s)

    def visit_Call(self, e: Call):
        e = self.generic_visit(e)
        if e.name != "gemm":
            return e
        attrs = dict(e.attrs)
        for a, key in zip(e.args[:2], ("round_a", "round_b")):
            x = _gemm_operand(a)
            if x in self.narrow:
                attrs[key] = self.narrow[x]
        return Call(e.name, e.args, e.dtype, attrs) if attrs != e.attrs else e
