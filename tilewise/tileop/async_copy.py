"""T.async_copy(src, dst): TileLang 0.1.15's explicitly asynchronous global -> shared copy. On
CUDA every thread issues its cp.async chunks and commits them as one group (cp.async.commit_group)
and nothing waits: the program calls T.ptx_wait_group(n) before the destination is read (the
emulator reports a read before the wait, by any thread). The compiler's barrier placement counts
the destination as written at that wait, as for the cp.async copies of T.Pipelined, so other
threads' reads after it are ordered by a barrier.

The CPU target copies synchronously: a block is one thread there and no copy is in flight to
observe, so the data is in place before the wait. Where cp.async does not exist (AMD GPUs), or
cannot move the tile (chunks under 4 bytes, a destination outside shared memory, a source
outside global memory), it is a CompileError rather than a silent synchronous copy."""
from __future__ import annotations

from ..errors import CompileError, warn_once
from ..ir import dtype as _dt
from ..ir.builder import emit, require_kernel
from ..ir.expr import Call
from ..ir.stmt import Evaluate, Stmt, seq
from . import cuda_common as cc
from .base import LowerContext, lowering
from .copy import Copy, elementwise_loops
from .region import pair_regions

NAME = "T.async_copy"


class AsyncCopy(Copy):
    op_name = "async_copy"

    def __init__(self, src, dst):
        super().__init__(src, dst, mechanism="cp.async", disable_tma=True)

    def attrs(self) -> dict:
        return {}

    # not a producer a pipeline re-issues or stages as such: inside T.Pipelined the pass
    # transform/pipeline_async_copy.py first turns it (with its wait_group 0) into a T.copy
    def as_async(self, mechanism: str = "cp.async", barrier=None):
        return None

    def as_staged(self, threads: int):
        return None

    def tma_bytes(self, machine, pass_configs: dict):
        return None

    def _what(self) -> str:
        return f"{NAME} {self.src.buffer.name} -> {self.dst.buffer.name}"

    @lowering("loops")
    def lower_loops(self, ctx: LowerContext) -> Stmt:
        return elementwise_loops(self.src, self.dst, ctx, lambda v, _: v)

    @lowering("sm90")
    def lower_sm90(self, ctx) -> Stmt:
        return self.lower_cuda(ctx)  # cp.async, never TMA (T.tma_copy is the explicit TMA form)

    @lowering("cuda")
    def lower_cuda(self, ctx) -> Stmt:
        if not ctx.machine.has("cp_async"):
            raise CompileError(f"{self._what()}: {ctx.machine.name} has no cp.async", self.span)
        v = cc.vector_width(self.src, self.dst, ctx.ranges)
        v = min(v, cc.layout_run(ctx, self.src, v), cc.layout_run(ctx, self.dst, v))
        nbytes = v * self.src.buffer.dtype.bytes
        if nbytes < 4:
            raise CompileError(
                f"{self._what()}: cp.async moves 4, 8 or 16 bytes, but the tiles' alignment, row lengths or shared "
                f"layout allow chunks of only {nbytes} byte(s) of {self.src.buffer.dtype}; use T.copy", self.span)
        ctx.note(self, f"{self._what()}: cp.async in {nbytes}-byte chunks, one commit group, no wait")
        return seq([cc.cooperative_copy(ctx, self.src, self.dst, async_copy=True),
                    Evaluate(Call("cp_async_commit", [], _dt.handle))])

    @lowering("hip")
    def lower_hip(self, ctx) -> Stmt:
        raise CompileError(f"{self._what()}: {ctx.machine.name} (an AMD GPU) has no cp.async in tilewise; use T.copy",
                           self.span)


def async_copy(src, dst, *, coalesced_width=None, annotations=None, loop_layout=None) -> None:
    """Issue a global -> shared tile copy as cp.async plus a commit, without waiting (see the
    module docstring). Either side may be a buffer, a corner element or a slice."""
    require_kernel(NAME)
    if annotations is not None and not isinstance(annotations, dict):
        raise CompileError(f"{NAME}: annotations must be a dict, got {annotations!r}")
    hints = dict(annotations or {})
    if coalesced_width is not None:
        hints.setdefault("coalesced_width", coalesced_width)
    if loop_layout is not None:
        hints.setdefault("parallel_loop_layout", loop_layout)
    for k in hints:
        warn_once((NAME, k), f"{NAME}({k}=...) has no effect in tilewise: the chunk width follows the tiles' "
                  "alignment (up to 16 bytes) and the thread layout is inferred", stacklevel=3)
    s, d = pair_regions(src, dst, NAME)
    if not s.buffer.is_global:
        raise CompileError(f"{NAME}: the source {s.buffer.name} is in {s.buffer.scope} memory; cp.async copies from "
                           "global memory (use T.copy)")
    if not d.buffer.is_shared:
        raise CompileError(f"{NAME}: the destination {d.buffer.name} is in {d.buffer.scope} memory; cp.async copies "
                           "into shared memory (use T.copy)")
    emit(AsyncCopy(s, d))
