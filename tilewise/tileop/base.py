"""The contract between tile operators and the passes.

A tile operator is a statement over whole tiles (buffer regions). Passes never look inside an
operator or guess from its field names; they ask it (TileLang's `SetAccessRegions`,
`InferLayout` and `Lower` play the same roles):

- `reads()` / `writes()`: the regions it reads and writes; `async_writes()`: those whose data
  lands later, at a wait (cp.async). Barriers, pipelining and tile elision use these.
- `infer_layout(li, level)`: its layout rules, called by layout inference at every
  `InferLevel`.
- `with_fields(...)`: the same operator over other operands. Every mutator rebuilds operators
  through it, so attributes that count an operand's dimensions (`dim` of T.reduce) stay right
  when multi-buffering adds a dimension or elision puts the tile inside a larger tensor.
- `operands_in_any_memory`: its loop lowering is right whichever memory its operands live in,
  so a pass may replace a private tile by a region of a global tensor.
- `as_async()`: the operator issued asynchronously (a cp.async copy), or None.
- `as_staged(threads)`: the operator in two halves through a per-thread register array
  (global -> registers, registers -> shared; tileop/staged_copy.py), or None: how a pipeline
  overlaps copies with compute on a machine without cp.async.
- lowerings, one per lowering key (`@lowering("loops")`, `@lowering("cuda")`, later "sm90",
  "hip"): a target lists the keys it accepts, most specific first, and `lower(ctx)` takes the
  first the operator has. "loops" is the loop-level lowering in which one thread runs the whole
  block (the CPU); CUDA lowerings reuse it for per-thread parts.
"""
from __future__ import annotations

import copy
import enum
from collections.abc import Callable

from ..errors import CompileError, InternalError
from ..ir.buffer import Buffer, BufferRegion
from ..ir.expr import Expr, Var
from ..ir.printer import expr_str
from ..ir.stmt import Stmt


class InferLevel(enum.IntEnum):
    """The rounds of layout inference, in order: what an operator may decide in each."""

    REQUIRED = -1  # layouts a hardware unit fixes (the tile a TMA copy writes): decided first
    STRICT = 0  # hard requirements only (the mma accumulator layout of T.gemm, annotations)
    COMMON = 1  # propagate layouts already known to the other operands
    FREE = 2  # make one free choice (a default partition), then propagate again
    FALLBACK = 3  # last resort for buffers nothing else decided (a fragment only ever filled)


def lowering(key: str):
    """Marks a TileOp method as its lowering for `key`."""

    def mark(fn):
        fn.lowering_key = key
        return fn

    return mark


class TileOp(Stmt):
    """A tile-level statement. Subclasses set `op_name` and `_fields` (their IR children),
    declare `reads()` and `writes()`, and mark their lowerings with `@lowering(key)`."""

    op_name = "tileop"
    operands_in_any_memory = False
    # "a pipelined loop around me gains from a steady state unrolled by its stages" (constant
    # buffer slots fold into the addresses of tensor-core operand loads); asked by inject_pipeline
    unroll_pipeline = False
    _lowerings: dict[str, Callable] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # each class keeps its own table; lookups walk the MRO, so a lowering added to a base
        # class later (by another file) reaches its subclasses too
        cls._lowerings = {v.lowering_key: v for v in vars(cls).values() if hasattr(v, "lowering_key")}

    # ------------------------------------------------------------------ what it touches
    def reads(self) -> list[BufferRegion]:
        raise InternalError(f"{type(self).__name__} does not declare the regions it reads")

    def writes(self) -> list[BufferRegion]:
        raise InternalError(f"{type(self).__name__} does not declare the regions it writes")

    def async_writes(self) -> list[BufferRegion]:
        """Regions each thread's part of lands in at that thread's later wait (cp.async)."""
        return []

    def synced_writes(self) -> list[BufferRegion]:
        """Regions written asynchronously whose data a wait on an mbarrier makes visible to every
        waiting thread (TMA): later reads need no __syncthreads, only that wait."""
        return []

    def regions(self) -> list[BufferRegion]:
        """Every region operand, in field order."""
        out: list[BufferRegion] = []

        def add(v):
            if isinstance(v, BufferRegion):
                out.append(v)
            elif isinstance(v, (list, tuple)):
                for x in v:
                    add(x)

        for f in self._fields:
            add(getattr(self, f))
        return out

    def buffers(self) -> list[Buffer]:
        return [r.buffer for r in self.regions()]

    # ------------------------------------------------------------------ what passes may change
    def with_fields(self, **updates) -> TileOp:
        out = copy.copy(self)
        for f, v in updates.items():
            setattr(out, f, v)
        out.remapped(self)
        return out

    def remapped(self, old: TileOp) -> None:
        """Called on the copy `with_fields` made: re-derive attributes that depend on the
        operands' shapes (the operands of `old` are the previous ones)."""

    def as_async(self, mechanism: str = "cp.async", barrier: BufferRegion | None = None) -> TileOp | None:
        """The operator issued asynchronously by `mechanism` ("cp.async", or "tma" completing on the
        mbarrier element `barrier`), or None if it cannot be."""
        return None

    def as_staged(self, threads: int):
        """(register array, load half, store half): the operator split around other work, its
        global loads into a "local" array of each of the block's `threads` threads, their stores
        into shared memory later; or None if it cannot be."""
        return None

    def tma_bytes(self, machine, pass_configs: dict) -> int | None:
        """Bytes the operator moves when issued on the copy engine (TMA, completing on one
        mbarrier), or None when it cannot run there."""
        return None

    # ------------------------------------------------------------------ layouts and lowering
    def infer_layout(self, li, level: InferLevel) -> None:
        """Decide or propagate layouts of its fragment and shared operands (CUDA targets)."""

    def lower(self, ctx: LowerContext) -> Stmt:
        for key in ctx.lowering_keys:
            for klass in type(self).__mro__:
                fn = vars(klass).get("_lowerings", {}).get(key)
                if fn is not None:
                    return fn(self, ctx)
        raise CompileError(
            f"T.{self.op_name} has no lowering for this target (it takes {', '.join(ctx.lowering_keys)})", self.span)

    # ------------------------------------------------------------------ printing
    def script(self) -> str:
        parts = []
        for f in self._fields:
            if getattr(self, f) is not None:  # an optional operand not in use
                parts.append(f"{f}={_arg_str(getattr(self, f))}")
        for k, v in sorted(self.attrs().items()):
            parts.append(f"{k}={v!r}")
        return f"T.{self.op_name}({', '.join(parts)})"

    def attrs(self) -> dict:
        """Non-IR arguments (flags, kinds), included in printing and cache keys."""
        return {}


def add_lowering(op: type[TileOp], key: str, fn: Callable) -> None:
    """Give `op` (and its subclasses) a lowering for `key` from another file, e.g. a new
    target's tensor-core form of T.gemm."""
    if "_lowerings" not in vars(op):
        op._lowerings = {}
    op._lowerings[key] = fn


def _arg_str(v) -> str:
    if isinstance(v, (Expr, BufferRegion)):
        return expr_str(v)
    if isinstance(v, Buffer):
        return v.name
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_arg_str(x) for x in v) + "]"
    return repr(v)


class LowerContext:
    """What an operator's lowering may ask: the lowering keys of the target, value ranges of
    enclosing indices (to prove guards away), and fresh variables."""

    def __init__(self, lowering_keys: tuple[str, ...], ranges: dict | None = None):
        self.lowering_keys = tuple(lowering_keys)
        self.ranges: dict = ranges if ranges is not None else {}
        self._n = 0
        self.notes: list[str] = []  # lowering decisions a user would want to know (kernel.lowering_notes())
        self.kernel_prologue: list[Stmt] = []  # set-up lowered operators need once, at the kernel's start

    def kernel_attrs(self) -> dict:
        """What lowering the kernel's operators produced that the kernel carries on."""
        return {"lowering_notes": list(self.notes)} if self.notes else {}

    def note(self, op: TileOp, text: str) -> None:
        where = f"{op.span}: " if op.span is not None else ""
        self.notes.append(f"{where}{text}")

    def fresh(self, name: str = "i") -> Var:
        self._n += 1
        return Var(f"{name}{self._n}")

    def enter(self, op: TileOp, ranges: dict) -> None:
        """Called before `op` is lowered, with the ranges of the indices around it."""
        self.ranges = ranges

    def leave(self) -> None:
        """Called after the operator entered last has been lowered."""
