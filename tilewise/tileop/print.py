"""T.print(obj, msg=""): print a scalar expression, or every element of a buffer or a slice of one,
as lines `msg: block (bx, by, bz) name[i, j] = value`. On the CPU a block runs on one thread, so
each block prints once (per execution of the statement); one call's lines are never interleaved
with another block's."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.builder import emit, require_kernel
from ..ir.expr import BufferLoad, Call, Const, Expr, as_expr
from ..ir.printer import expr_str
from ..ir.stmt import Allocate, BufferStore, Evaluate, IfThenElse, Stmt, seq
from . import cuda_common as cc
from .base import LowerContext, TileOp, lowering


class Print(TileOp):
    op_name = "print"
    _fields = ("obj", "block")

    def __init__(self, obj: BufferRegion | Expr, block: list[Expr], msg: str, label: str):
        self._init()
        self.obj = obj
        self.block = block
        self.msg = msg
        self.label = label

    def attrs(self) -> dict:
        return {"msg": self.msg, "label": self.label}

    def reads(self) -> list[BufferRegion]:
        return [self.obj] if isinstance(self.obj, BufferRegion) else []

    def writes(self) -> list[BufferRegion]:
        return []

    @lowering("loops")
    def lower_loops(self, ctx: LowerContext) -> Stmt:
        attrs = {"msg": self.msg, "label": self.label}
        if self.obj is None:
            return Evaluate(Call("print", list(self.block), _dt.handle, {**attrs, "kind": "msg"}))
        if isinstance(self.obj, Expr):
            return Evaluate(Call("print", [*self.block, self.obj], _dt.handle, {**attrs, "kind": "scalar"}))
        r = self.obj
        ptr = Call("address_of", [BufferLoad(r.buffer, r.starts)], _dt.handle)
        dims = [as_expr(x) for x in (*r.extents, *r.buffer.strides(), *r.starts)]
        attrs.update(kind="tile", ndim=len(r.region))
        return Evaluate(Call("print", [*self.block, ptr, *dims], _dt.handle, attrs))

    @lowering("cuda")
    def lower_cuda(self, ctx) -> Stmt:
        """Thread 0 prints scalars and shared/global/local tiles; a fragment is first gathered
        into a shared scratch tile (every thread stores its registers), of which thread 0 prints
        the requested region."""
        first = ctx.thread == 0
        if self.obj is None or isinstance(self.obj, Expr) or not self.obj.buffer.is_fragment:
            return IfThenElse(first, self.lower_loops(ctx))
        r = self.obj
        scratch = Buffer(r.buffer.name, r.buffer.shape, r.buffer.dtype, "shared.dyn")
        loc = ctx.local_buffer(r.buffer)

        gather = cc.fragment_loop(ctx, r.buffer, lambda v, coords: BufferStore(scratch, coords, BufferLoad(loc, [v])),
                                  writes_memory=True)
        sync = Evaluate(Call("syncthreads", [], _dt.handle))
        show = Print(BufferRegion(scratch, r.region), self.block, self.msg, self.label).lower_loops(ctx)
        return seq([Allocate(scratch), gather, sync, IfThenElse(first, show), Evaluate(Call("syncthreads", [], _dt.handle))])


def print(obj=None, msg: str = "", warp_group_id: int = 0, warp_id: int = 0) -> None:  # noqa: A001
    """Print a scalar, or every element of a buffer or a slice, once per block; without `obj`
    (TileLang's `T.print(msg="...")`), the message and the block."""
    frame = require_kernel("T.print")
    if not isinstance(msg, str):
        raise CompileError(f"T.print: msg must be a string, got {type(msg).__name__} {msg!r}")
    block = list(frame.block_vars) + [Const(0, _dt.int32)] * (3 - len(frame.block_vars))
    if obj is None:
        if not msg:
            raise CompileError("T.print: give a value to print or a msg")
        emit(Print(None, block, msg, ""))
    elif isinstance(obj, Buffer) and obj.is_var:
        emit(Print(obj.load_var(), block, msg, obj.name))
    elif isinstance(obj, Buffer):
        emit(Print(BufferRegion.full(obj), block, msg, obj.name))
    elif isinstance(obj, BufferRegion):
        emit(Print(obj, block, msg, obj.buffer.name))
    elif isinstance(obj, (Expr, bool, int, float)):
        e = as_expr(obj)
        if e.dtype.kind == "handle":
            raise CompileError(f"T.print: cannot print the handle {e}")
        emit(Print(e, block, msg, expr_str(e)))
    else:
        raise CompileError(f"T.print: expected a scalar expression, a buffer or a slice, got {type(obj).__name__} {obj!r}")
