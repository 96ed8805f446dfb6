"""Multiply-add contraction decided in the IR, the same for every target.

NVVM (with its default --fmad=true) and g++ (-ffp-contract=fast) fuse a multiplication feeding
an addition into one fma wherever their optimisers happen to see the pair, which the thread-IR
emulator could not predict. Instead, this pass fuses exactly the float32/float64 `a * b + c`,
`c + a * b`, `a * b - c` and `c - a * b` written as one expression into Call("fma", [a, b, c])
(negating an operand, which is exact), the CUDA build is compiled with --fmad=false and the CPU
build with -ffp-contract=off so that neither compiler adds another fusion, and the emulator
computes each fma with one rounding. Measured on the canonical
kernels (docs/API.md, Numbers): this keeps the FFMAs of the softmax and epilogues that
--fmad=false alone loses. Lower-precision arithmetic (float32 rounded once per operation) is
left unfused."""
from __future__ import annotations

from ..ir.expr import BinOp, Call, Cast, Expr, unary
from ..ir.stmt import PrimFunc
from ..ir.visitor import Mutator

_FUSED = ("float32", "float64")


def _product(e: Expr, dtype) -> BinOp | None:
    return e if isinstance(e, BinOp) and e.op == "mul" and e.dtype == dtype else None


def contract(e: BinOp) -> Expr:
    """The fma form of one add/sub node (children already contracted), or the node itself."""
    if e.op not in ("add", "sub") or e.dtype.name not in _FUSED:
        return e
    p = _product(e.a, e.dtype)
    if p is not None:  # a * b + c, a * b - c
        return Call("fma", [p.a, p.b, e.b if e.op == "add" else unary("neg", e.b)], e.dtype)
    p = _product(e.b, e.dtype)
    if p is not None:  # c + a * b, c - a * b
        return Call("fma", [p.a if e.op == "add" else unary("neg", p.a), p.b, e.a], e.dtype)
    return e


class _Contract(Mutator):
    def visit_BinOp(self, e: BinOp):
        e = self.generic_visit(e)
        return contract(e) if isinstance(e, BinOp) else e

    def visit_Cast(self, e: Cast):
        return self.generic_visit(e)


def contract_fma(func: PrimFunc) -> PrimFunc:
    return func.with_body(_Contract().visit(func.body))
