"""Readable text for IR, close to the Python the user wrote."""
from __future__ import annotations

from .buffer import Buffer, BufferRegion
from .expr import BinOp, BufferLoad, Call, Cast, Compare, Const, Expr, Select, UnaryOp, Var
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
)

_BIN = {
    "add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "floormod": "%",
    "bitand": "&", "bitor": "|", "bitxor": "^", "shl": "<<", "shr": ">>", "and": "and", "or": "or",
}  # fmt: skip
_CMP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
_PREC = {"or": 1, "and": 2, "cmp": 4, "bitor": 5, "bitxor": 6, "bitand": 7, "shl": 8, "shr": 8,
         "add": 9, "sub": 9, "mul": 10, "div": 10, "floordiv": 10, "floormod": 10}  # fmt: skip


_namers: list = []


def var_name(v) -> str:
    """The printed name of a Var or Buffer (made unique when printing a cache key)."""
    if _namers:
        return _namers[-1](v)
    return v.name


class _UniqueNamer:
    def __init__(self):
        self.names: dict[int, str] = {}

    def __call__(self, obj) -> str:
        key = id(obj)
        if key not in self.names:
            self.names[key] = f"{obj.name}#{len(self.names)}"
        return self.names[key]


def structural_text(f) -> str:
    """The IR as text with every variable and buffer named by first appearance: equal text
    means the same program, whatever the objects' identities."""
    _namers.append(_UniqueNamer())
    try:
        return func_str(f)
    finally:
        _namers.pop()


def expr_str(e, prec: int = 0) -> str:
    if isinstance(e, (int, float)):
        return repr(e)
    if isinstance(e, Const):
        if e.dtype.is_bool:
            return "True" if e.value else "False"
        if e.dtype.name in ("int32",):
            return str(e.value)
        if e.dtype.name == "float32":
            return repr(e.value)
        return f"T.{e.dtype.name}({e.value!r})"
    if isinstance(e, Var):
        return var_name(e)
    if isinstance(e, BinOp):
        if e.op in ("min", "max", "truncmod"):
            return f"T.{e.op}({expr_str(e.a)}, {expr_str(e.b)})"
        p = _PREC[e.op]
        s = f"{expr_str(e.a, p)} {_BIN[e.op]} {expr_str(e.b, p + 1)}"
        return f"({s})" if p < prec else s
    if isinstance(e, Compare):
        p = _PREC["cmp"]
        s = f"{expr_str(e.a, p + 1)} {_CMP[e.op]} {expr_str(e.b, p + 1)}"
        return f"({s})" if p < prec else s
    if isinstance(e, UnaryOp):
        op = {"neg": "-", "not": "not ", "bitnot": "~"}[e.op]
        return f"{op}{expr_str(e.a, 11)}"
    if isinstance(e, Cast):
        return f"T.cast({expr_str(e.value)}, {e.dtype.name!r})"
    if isinstance(e, Select):
        return f"T.if_then_else({expr_str(e.cond)}, {expr_str(e.a)}, {expr_str(e.b)})"
    if isinstance(e, Call):
        args = ", ".join([expr_str(a) for a in e.args] + [f"{k}={v!r}" for k, v in sorted(e.attrs.items())])
        return f"T.{e.name}({args})"
    if isinstance(e, BufferLoad):
        return f"{var_name(e.buffer)}[{', '.join(expr_str(i) for i in e.indices)}]"
    if isinstance(e, BufferRegion):
        parts = []
        for st, ext in e.region:
            parts.append(f"{expr_str(st)}:+{expr_str(ext)}")
        return f"{var_name(e.buffer)}[{', '.join(parts)}]"
    if isinstance(e, Buffer):
        return var_name(e)
    return repr(e)


def _dims(shape) -> str:
    return ", ".join(expr_str(d) for d in shape)


class _Printer:
    def __init__(self):
        self.lines: list[str] = []

    def emit(self, depth: int, text: str):
        self.lines.append("    " * depth + text)

    def stmt(self, s: Stmt | None, d: int):
        if s is None:
            return
        if isinstance(s, SeqStmt):
            if not s.stmts:
                self.emit(d, "pass")
            for x in s.stmts:
                self.stmt(x, d)
        elif isinstance(s, Kernel):
            grid = ", ".join(expr_str(g) for g in s.grid)
            names = ", ".join(var_name(v) for v in s.block_vars)
            threads = str(s.threads[0]) if len(s.threads) == 1 else "(" + ", ".join(str(t) for t in s.threads) + ")"
            self.emit(d, f"with T.Kernel({grid}, threads={threads}) as ({names}):")
            self.stmt(s.body, d + 1)
        elif isinstance(s, For):
            ann = ""
            if s.annotations:
                ann = "  # " + ", ".join(f"{k}={v}" for k, v in s.annotations.items())
            rng = expr_str(s.extent) if _is_zero(s.start) else f"{expr_str(s.start)}, {expr_str(s.start + s.extent)}"
            self.emit(d, f"for {var_name(s.var)} in T.{s.kind}({rng}):{ann}")
            self.stmt(s.body, d + 1)
        elif isinstance(s, IfThenElse):
            self.emit(d, f"if {expr_str(s.cond)}:")
            self.stmt(s.then_body, d + 1)
            if s.else_body is not None:
                self.emit(d, "else:")
                self.stmt(s.else_body, d + 1)
        elif isinstance(s, While):
            self.emit(d, f"while {expr_str(s.cond)}:")
            self.stmt(s.body, d + 1)
        elif isinstance(s, Break):
            self.emit(d, "break")
        elif isinstance(s, BufferStore):
            idx = ", ".join(expr_str(i) for i in s.indices)
            self.emit(d, f"{var_name(s.buffer)}[{idx}] = {expr_str(s.value)}")
        elif isinstance(s, LetStmt):
            self.emit(d, f"{var_name(s.var)}: {s.var.dtype} = {expr_str(s.value)}")
        elif isinstance(s, Allocate):
            b = s.buffer
            init = "" if s.init is None else f", init={expr_str(s.init)}"
            view = f" view of {var_name(b.base)}" if b.base is not None else ""
            self.emit(d, f"{var_name(b)} = T.alloc[{b.scope}](({_dims(b.shape)}), {b.dtype.name!r}{init}){view}")
        elif isinstance(s, Evaluate):
            self.emit(d, expr_str(s.value))
        elif isinstance(s, Annotation):
            self.emit(d, f"T.annotate({s.kind!r}, {s.payload!r})")
        elif hasattr(s, "script"):
            self.emit(d, s.script())
        else:
            self.emit(d, f"<{type(s).__name__}>")


def _is_zero(e) -> bool:
    return isinstance(e, Const) and e.value == 0


def stmt_str(s: Stmt) -> str:
    p = _Printer()
    p.stmt(s, 0)
    return "\n".join(p.lines)


def func_str(f: PrimFunc) -> str:
    params = []
    for x in f.params:
        if isinstance(x, Buffer):
            params.append(f"{var_name(x)}: T.Tensor(({_dims(x.shape)},), {x.dtype.name!r})")
        else:
            params.append(f"{var_name(x)}: T.{x.dtype.name}")
    p = _Printer()
    p.emit(0, "@T.prim_func")
    p.emit(0, f"def {f.name}({', '.join(params)}):")
    p.stmt(f.body, 1)
    return "\n".join(p.lines)
