"""T.tma_copy(src, dst, barrier=bar): a global -> shared copy of a whole tile on Hopper's copy
engine whose completion the program synchronises itself (TileLang's split-phase TMA copy).

The first thread of the threads that run it (the block, or the range an enclosing `if` on the
thread index keeps, e.g. a `with T.ws(1):` producer) announces the copy's bytes on `bar`
(`mbarrier_expect_tx`, no arrival) and issues the boxes, which complete on `bar`. The program
then arrives on `bar` (T.mbarrier_arrive, as many arrivals as the barrier's count) and waits for
the phase (T.mbarrier_wait_parity) before reading the tile: no wait is issued here. It needs TMA
(sm_90); anything TMA cannot move is a CompileError naming why (T.copy moves it instead)."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import BufferRegion
from ..ir.expr import Call, Const, as_expr
from ..ir.stmt import Evaluate, IfThenElse, Stmt, seq
from .base import InferLevel, LowerContext, lowering
from .copy import Copy
from .cuda_common import address
from .tma import _boxes, plan_tma, tensor_map


class TmaCopy(Copy):
    op_name = "tma_copy"
    _fields = ("src", "dst", "barrier")

    def __init__(self, src: BufferRegion, dst: BufferRegion, barrier: BufferRegion):
        super().__init__(src, dst, mechanism="tma", barrier=barrier)

    def attrs(self) -> dict:
        return {}

    def as_async(self, mechanism: str = "cp.async", barrier=None):
        return None  # already asynchronous, on the program's own barrier

    def tma_bytes(self, machine, pass_configs: dict):
        return None  # not a copy a compiler pipeline may take over

    def _plan(self, machine, pass_configs):
        # an explicit TMA copy: the switch for the compiler's own TMA choices does not apply
        configs = {k: v for k, v in (pass_configs or {}).items() if k != "tl.disable_tma_lower"}
        plan = plan_tma(self, machine, configs, dynamic=True) if machine is not None else "no machine"
        if isinstance(plan, str):
            raise CompileError(
                f"T.tma_copy {self.src.buffer.name} -> {self.dst.buffer.name} cannot run on the copy engine (TMA): "
                f"{plan}; use T.copy, which falls back to thread copies", self.span)
        return plan

    def infer_layout(self, li, level: InferLevel) -> None:
        if level == InferLevel.REQUIRED:
            plan = self._plan(li.machine, li.pass_configs)
            tile = self.dst.buffer
            if tile in li.viewed:
                raise CompileError(f"{tile.name} is filled by T.tma_copy and also viewed with T.view / T.reshape; give "
                                   "the view its own buffer", self.span)
            li.set_shared(tile, plan.shared_layout(tile.shape))

    @lowering("sm90")
    def lower_sm90(self, ctx) -> Stmt:
        plan = self._plan(ctx.machine, ctx.pass_configs)
        tile = self.dst.buffer
        have = ctx.shared_layout(tile)
        if have is None or have.key() != plan.shared_layout(tile.shape).key():
            raise CompileError(
                f"T.tma_copy into {tile.name}: the copy engine writes the tile in its own layout, but the tile has "
                "another (an annotation, or another operator's requirement); remove it", self.span)
        tmap = tensor_map(ctx, self.src.buffer, plan)
        bar = address(self.barrier.buffer, [as_expr(st) for st, _ in self.barrier.region])
        nbytes = Const(plan.bytes(self.src.buffer.dtype.bytes), _dt.int32)
        ctx.note(self, f"T.tma_copy {self.src.buffer.name} -> {tile.name}: TMA, {plan.count} box(es) of "
                       f"{list(plan.box)}, {plan.swizzle or 'no'}-byte swizzle, {nbytes.value} bytes expected on "
                       f"{self.barrier.buffer.name}")
        issue = [Evaluate(Call("mbarrier_expect_tx", [bar, nbytes], _dt.handle))]
        issue += [Evaluate(Call("tma_load", [where, bar, *coords], _dt.handle, {"map": tmap.name}))
                  for where, coords in _boxes(plan, self.src, self.dst, ctx)]
        return IfThenElse(ctx.thread == 0, seq(issue))

    @lowering("cuda")
    def lower_cuda(self, ctx, *_) -> Stmt:
        raise CompileError(f"T.tma_copy needs the copy engine (TMA) of sm_90; the target is {ctx.machine.name}: use "
                           "T.copy", self.span)

    @lowering("loops")
    def lower_loops(self, ctx: LowerContext) -> Stmt:
        raise CompileError("T.tma_copy needs a CUDA target with TMA (sm_90)", self.span)
