"""The description of one generated tile program: plain dataclasses whose repr is Python that
rebuilds them, so a failing program can be printed, saved and replayed. `emit.py` turns a
description into tilewise source text and `oracle.py` interprets it with numpy; the two read
only this description, never each other or tilewise's IR.

Index expressions and conditions are small strings over the names `bx`, `by` (block indices),
`k` (the loop variable of a `Loop`), `i`, `j` (T.Parallel variables) and integer literals, with
`+ - * // %` and comparisons: they mean the same in Python, in tilewise and in numpy (all
non-negative), so both sides read them as they are."""
from __future__ import annotations

from dataclasses import dataclass, field

FLOATS = ("float32", "float16", "bfloat16")
DTYPES = FLOATS + ("int32",)


# ----------------------------------------------------------------------------- values
@dataclass
class Load:
    """buf[idx...]: a tile, or a global tensor (out-of-bounds reads give 0)."""
    buf: str
    idx: tuple[str, ...]


@dataclass
class Idx:
    """The int32 value of an index expression (`i + 2 * j`)."""
    expr: str


@dataclass
class Const:
    value: float | int


@dataclass
class Bin:
    """op in + - * max min; both operands have the expression's dtype."""
    op: str
    a: object
    b: object


@dataclass
class Neg:
    a: object


@dataclass
class Abs:
    a: object


@dataclass
class Cast:
    dtype: str
    a: object


@dataclass
class DCast:
    """T.cast(a, via or dtype, round=mode, sat=sat), then (via given) a plain T.cast to dtype:
    a directed-rounding conversion ("rz" | "rp" | "rm"), `via` a float8 type in between."""
    dtype: str
    mode: str
    a: object
    sat: bool = True
    via: str | None = None


@dataclass
class Lane:
    """T.extract_lane(v, lane) of a vector value v: `load` with its last index replaced by
    T.Ramp(last - lane * stride, stride, lanes) (lane `lane` reads load's own element), then
    `op` with T.Broadcast(other, lanes) when other is given. It means Bin(op, load, other)."""
    load: Load
    stride: int
    lanes: int
    lane: int
    op: str | None = None
    other: object = None


@dataclass
class Select:
    """T.if_then_else(cond, a, b); cond is a conjunction of index comparisons."""
    cond: tuple[str, ...]
    a: object
    b: object


# ----------------------------------------------------------------------------- storage
@dataclass
class Tensor:
    """A kernel parameter. role: "in" (read only), "out" (written by exactly one block per
    element, or not at all), "acc" (updated by atomics only)."""
    name: str
    shape: tuple[int, ...]
    dtype: str
    role: str


@dataclass
class Tile:
    name: str
    scope: str  # "shared" | "fragment"
    shape: tuple[int, ...]
    dtype: str


@dataclass
class Ref:
    """An operand of a tile operator. kind "whole": the buffer; "corner": `B[s0, s1]` (the
    extent comes from the other operand; `extents` still records it); "slice":
    `B[s0:s0+e0, s1:s1+e1]`."""
    buf: str
    kind: str
    starts: tuple[str, ...] = ()
    extents: tuple[int, ...] = ()


# ----------------------------------------------------------------------------- operations
@dataclass
class Fill:
    dst: Ref
    value: float | int
    clear: bool = False  # emitted as T.clear


@dataclass
class Copy:
    src: Ref
    dst: Ref


@dataclass
class Assign:
    """dst[idx] = value inside a T.Parallel body (dst a tile or a global tensor)."""
    dst: str
    idx: tuple[str, ...]
    value: object


@dataclass
class AtomicElem:
    """T.atomic_<op>(dst[idx], value) inside a T.Parallel body (dst an acc tensor or a shared tile);
    op "addx2" / "addx4": T.atomic_addxN(dst[idx], T.Broadcast(value, N)), N elements from idx."""
    op: str
    dst: str
    idx: tuple[str, ...]
    value: object


@dataclass
class Parallel:
    extents: tuple[int, ...]
    body: list


@dataclass
class Reduce:
    kind: str  # sum max min abssum absmax
    src: str
    dst: str
    dim: int
    clear: bool


@dataclass
class CumSum:
    src: str
    dst: str | None  # None: in place
    dim: int
    reverse: bool


@dataclass
class Gemm:
    a: str
    b: str
    c: str
    trans_a: bool
    trans_b: bool
    policy: str = "Square"  # T.GemmWarpPolicy
    clear_accum: bool = False  # C = op(A) @ op(B) instead of +=


@dataclass
class AtomicTile:
    """T.atomic_<op>(dst corner or slice, src tile)."""
    op: str
    dst: Ref
    src: str


@dataclass
class Loop:
    """for k in T.Pipelined(extent, num_stages=stages) (kind "pipelined"), T.serial or range."""
    kind: str
    extent: int
    stages: int
    body: list


@dataclass
class If:
    cond: tuple[str, ...]  # block-uniform: bx, by, k only
    body: list
    orelse: list = field(default_factory=list)


@dataclass
class Program:
    seed: int
    grid: tuple[int, ...]
    threads: int
    tensors: list
    tiles: list
    body: list
    special_values: bool = False  # inputs may hold NaN and infinities
    dims: dict = field(default_factory=dict)  # dynamic dimensions (T.symbolic): name -> value at the call
    safe: dict = field(default_factory=dict)  # T.annotate_safe_value: input tensor -> what reads past it give

    def shape(self, t: Tensor) -> tuple[int, ...]:
        """A tensor's shape at the call (dynamic dimensions bound)."""
        return tuple(self.dims[d] if isinstance(d, str) else d for d in t.shape)

    def grid_size(self) -> tuple[int, ...]:
        """The launch grid at the call ("T.ceildiv(m, 16)" entries evaluated)."""
        env = {"T": _Ceildiv, **self.dims}
        return tuple(g if isinstance(g, int) else eval(g, {"__builtins__": {}}, env) for g in self.grid)

    def tensor(self, name: str) -> Tensor | None:
        return next((t for t in self.tensors if t.name == name), None)

    def tile(self, name: str) -> Tile | None:
        return next((t for t in self.tiles if t.name == name), None)

    def buffer(self, name: str) -> Tensor | Tile:
        b = self.tensor(name) or self.tile(name)
        if b is None:
            raise KeyError(name)
        return b


class _Ceildiv:
    @staticmethod
    def ceildiv(a: int, b: int) -> int:
        return -(-a // b)


def walk(ops: list):
    """Every operation, nested ones included (Parallel bodies' assignments too)."""
    for op in ops:
        yield op
        if isinstance(op, (Loop, Parallel)):
            yield from walk(op.body)
        elif isinstance(op, If):
            yield from walk(op.body)
            yield from walk(op.orelse)
