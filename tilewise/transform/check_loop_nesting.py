"""TileLang's rules for nesting T.Parallel, on every target.

T.Parallel loops directly inside one another form one element-wise nest. Inside a nest's body no
other T.Parallel or T.Pipelined loop may appear: the nest's iterations are spread over the block's
threads, so a loop that itself needs all the threads (a parallel tile or a software pipeline)
cannot run inside one of them. Serial loops around or inside a nest are fine."""
from __future__ import annotations

from ..errors import CompileError
from ..ir.stmt import For, PrimFunc
from ..ir.visitor import Visitor


def check_loop_nesting(func: PrimFunc) -> PrimFunc:
    _Outside().visit(func.body)
    return func


class _Outside(Visitor):
    def visit_For(self, f: For):
        if f.kind != "parallel":
            return self.generic_visit(f)
        body = f.body
        while isinstance(body, For) and body.kind == "parallel":
            body = body.body
        _InsideNest(f).visit(body)


class _InsideNest(Visitor):
    def __init__(self, nest: For):
        self.nest = nest

    def visit_For(self, f: For):
        if f.kind == "parallel":
            raise CompileError(
                "a T.Parallel loop inside another T.Parallel must be its whole body (they then form one "
                "nest); here other statements or loops come between them",
                f.span, (self.nest.span,),
            )
        if f.kind == "pipelined":
            raise CompileError("T.Pipelined cannot run inside a T.Parallel loop; put the T.Parallel inside it",
                               f.span, (self.nest.span,))
        self.generic_visit(f)
