"""The one IR that carries a program from the parser to every backend."""
from .buffer import Buffer, BufferRegion
from .dtype import DataType, as_dtype
from .expr import (
    BinOp,
    BufferLoad,
    Call,
    Cast,
    Compare,
    Const,
    Expr,
    Select,
    UnaryOp,
    Var,
    as_expr,
    const,
)
from .span import Span
from .stmt import (
    Allocate,
    Annotation,
    Break,
    BufferStore,
    Evaluate,
    For,
    IfThenElse,
    Kernel,
    LetStmt,
    PrimFunc,
    SeqStmt,
    Stmt,
    While,
    seq,
)

__all__ = [
    "Allocate", "Annotation", "BinOp", "Break", "Buffer", "BufferLoad", "BufferRegion",
    "BufferStore", "Call", "Cast", "Compare", "Const", "DataType", "Evaluate", "Expr", "For",
    "IfThenElse", "Kernel", "LetStmt", "PrimFunc", "Select", "SeqStmt", "Span", "Stmt",
    "UnaryOp", "Var", "While", "as_dtype", "as_expr", "const", "seq",
]  # fmt: skip
