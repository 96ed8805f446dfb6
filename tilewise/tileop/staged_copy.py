"""A global -> shared T.copy split in two halves around other work: the software pipeline of a
machine without an asynchronous copy (feature "register_staging": AMD GPUs, which have no
cp.async) issues the global loads of the next stage into registers before the compute of the
current one, and writes the registers to shared memory after it, so the loads' latency hides
behind the compute (transform/inject_pipeline.py).

Both halves spread the tile over the block's threads exactly as a synchronous copy does
(tileop/cuda_common.cooperative_copy: 16-byte chunks where the tiles' alignment and shared
layout allow it, chunk c to thread c % threads, elements past a global tensor's end read as
zero); thread t's k-th chunk lives in elements [k * v, (k + 1) * v) of its register array
`regs` (a "local" buffer the pipeline allocates before the loop), with constant indices after
unrolling, so the compiler keeps it in registers (VGPRs)."""
from __future__ import annotations

import math

from ..errors import InternalError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.expr import BufferLoad, Call, cast
from ..ir.simplify import simplify
from ..ir.stmt import BufferStore, Evaluate, For, IfThenElse, Stmt
from . import cuda_common as cc
from .base import TileOp, lowering
from .region import guarded_load, in_bounds, region_indices, squeezed

LOAD, STORE = "load", "store"


def register_capacity(dst: BufferRegion, src_dtype, threads: int) -> int:
    """Elements of the per-thread register array that holds a thread's part of the tile for any
    vector width the lowering may choose (16 bytes at most): ceil(total / threads) rounded up to
    a whole widest vector."""
    total = math.prod(squeezed(dst))
    widest = max(1, cc.VECTOR_BYTES // src_dtype.bytes)
    per_thread = -(-total // threads)
    return -(-per_thread // widest) * widest


class StagedCopy(TileOp):
    """One half of a global -> shared copy through registers: `phase` "load" reads `src` into
    `regs`, "store" writes `regs` into `dst`. Both carry both regions: the chunk plan depends on
    the two tiles' alignment and on the shared tile's layout."""

    op_name = "staged_copy"
    _fields = ("src", "dst", "regs")

    def __init__(self, src: BufferRegion, dst: BufferRegion, regs: BufferRegion, phase: str, span=None):
        self._init(span)
        if phase not in (LOAD, STORE):
            raise InternalError(f"StagedCopy phase {phase!r}")
        self.src, self.dst, self.regs, self.phase = src, dst, regs, phase

    def attrs(self) -> dict:
        return {"phase": self.phase}

    def reads(self) -> list[BufferRegion]:
        return [self.src] if self.phase == LOAD else [self.regs]

    def writes(self) -> list[BufferRegion]:
        return [self.regs] if self.phase == LOAD else [self.dst]

    @lowering("cuda")
    def lower_cuda(self, ctx) -> Stmt:
        src, dst, regs = self.src, self.dst, self.regs.buffer
        ranges = ctx.ranges
        v = cc.vector_width(src, dst, ranges)
        v = min(v, cc.layout_run(ctx, src, v), cc.layout_run(ctx, dst, v))
        ext = squeezed(dst)
        n_chunks = math.prod(ext) // v
        chunk_ext = list(ext[:-1]) + [ext[-1] // v]
        T = ctx.threads
        iters = -(-n_chunks // T)
        if iters * v > regs.shape[0]:
            raise InternalError(f"T.copy {src.buffer.name} -> {dst.buffer.name} through registers: {iters} chunks of "
                                f"{v} per thread, but the register array {regs.name} holds {regs.shape[0]} elements")
        nbytes = v * src.buffer.dtype.bytes
        k = ctx.fresh("k")
        local = {**ranges, k: (0, iters - 1)}
        c = simplify(k * T + ctx.thread, local)
        pos = cc.unflatten(c, chunk_ext)
        pos[-1] = pos[-1] * v
        pos = [simplify(p, local) for p in pos]
        reg_idx = [simplify(k * v, local)]
        if self.phase == LOAD:
            s_idx = region_indices(src, pos)
            if v == 1:
                body: Stmt = BufferStore(regs, reg_idx, cast(guarded_load(src, s_idx, local), regs.dtype))
            else:
                move = _copy_vec(regs, reg_idx, src.buffer, s_idx, nbytes)
                guard = in_bounds(s_idx, src.buffer, local) if src.buffer.is_global else None
                # a chunk is wholly inside or wholly outside: rows are multiples of the vector
                body = move if guard is None else IfThenElse(guard, move, cc.zero_vector(regs, reg_idx, v))
        else:
            d_idx = region_indices(dst, pos)
            if v == 1:
                body = BufferStore(dst.buffer, d_idx, cast(BufferLoad(regs, reg_idx), dst.buffer.dtype))
            else:
                body = _copy_vec(dst.buffer, d_idx, regs, reg_idx, nbytes)
        if n_chunks % T:
            body = IfThenElse(c < n_chunks, body)
        # always unrolled: the register array is indexed by constants only (no scratch)
        return For(k, 0, iters, "unroll", body)


def _copy_vec(dst: Buffer, d_idx, src: Buffer, s_idx, nbytes: int) -> Stmt:
    return Evaluate(Call("copy_vec", [cc.address(dst, d_idx), cc.address(src, s_idx)], _dt.handle,
                         {"bytes": nbytes}))


def staged_halves(src: BufferRegion, dst: BufferRegion, threads: int, span=None):
    """(the register array, the load half, the store half) of a global -> shared copy."""
    n = register_capacity(dst, src.buffer.dtype, threads)
    regs = Buffer(f"{dst.buffer.name}_stage", (n,), src.buffer.dtype, "local", span=span)
    whole = BufferRegion.full(regs)
    load = StagedCopy(src, dst, whole, LOAD, span=span)
    store = StagedCopy(src, dst, whole, STORE, span=span)
    return regs, load, store
