"""Readable text for IR, close to the Python the user wrote."""
from __future__ import annotations

from .buffer import Buffer, BufferRegion
from .expr import BinOp, BufferLoad, Call, Cast, Compare, Const, Select, UnaryOp, Var, as_expr
from .simplify import simplify
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


class _ReadableNamer:
    """Keeps the user's names, suffixing `_1`, `_2` when distinct objects share one (e.g. the
    loop index `i` of a macro inlined inside a loop over another `i`)."""

    def __init__(self):
        self.names: dict[int, str] = {}
        self.taken: set[str] = set()
        self.keep: list = []  # holds the objects so that their ids stay unique

    def __call__(self, obj) -> str:
        key = id(obj)
        name = self.names.get(key)
        if name is None:
            base = name = obj.name
            k = 0
            while name in self.taken:
                k += 1
                name = f"{base}_{k}"
            self.taken.add(name)
            self.names[key] = name
            self.keep.append(obj)
        return name


def structural_text(f) -> str:
    """The IR as text with every variable and buffer named by first appearance: equal text
    means the same program, whatever the objects' identities."""
    _namers.append(_UniqueNamer())
    try:
        text = func_str(f)
        # types the text does not otherwise show
        dyn = ", ".join(f"{var_name(v)}: {v.dtype.name}" for v in f.dynamic_vars())
        return text + (f"\n# dynamic: {dyn}" if dyn else "")
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
            if isinstance(ext, int) and ext == 1 or isinstance(ext, Const) and ext.value == 1:
                parts.append(expr_str(st))
            else:
                parts.append(f"{expr_str(st)}:{expr_str(_region_end(st, ext))}")
        return f"{var_name(e.buffer)}[{', '.join(parts)}]"
    if isinstance(e, Buffer):
        return var_name(e)
    return repr(e)


def _region_end(start, extent):
    return simplify(as_expr(start) + extent)


def _dims(shape) -> str:
    return ", ".join(expr_str(d) for d in shape)


def _shape(shape) -> str:
    """A shape as a Python tuple literal: `(4,)`, `(4, 8)`."""
    if len(shape) == 1:
        return f"({expr_str(shape[0])},)"
    return f"({_dims(shape)})"


_LOOP_NAMES = {"parallel": "Parallel", "pipelined": "Pipelined"}
_ALLOC_NAMES = {
    "shared": "alloc_shared", "shared.dyn": "alloc_shared", "local.fragment": "alloc_fragment",
    "local": "alloc_local",
}  # fmt: skip


def _alloc_str(s: Allocate) -> str:
    b = s.buffer
    if b.base is not None:
        return f"{var_name(b)} = T.view({var_name(b.base)}, {_shape(b.shape)}, {b.dtype.name!r})"
    if b.is_var:
        init = "" if s.init is None else f", init={expr_str(s.init)}"
        return f"{var_name(b)} = T.alloc_var({b.dtype.name!r}{init})"
    init = "" if s.init is None else f", init={expr_str(s.init)}"
    fn = _ALLOC_NAMES.get(b.scope)
    if fn is None:
        return f"{var_name(b)} = T.alloc_buffer({_shape(b.shape)}, {b.dtype.name!r}, scope={b.scope!r}{init})"
    return f"{var_name(b)} = T.{fn}({_shape(b.shape)}, {b.dtype.name!r}{init})"


def _loop_header(s: For) -> str:
    rng = expr_str(s.extent) if _is_zero(s.start) else f"{expr_str(s.start)}, {expr_str(_region_end(s.start, s.extent))}"
    ann = dict(s.annotations)
    kwargs = ""
    if s.kind == "pipelined":
        kwargs = "".join(f", {k}={ann.pop(k)!r}" for k in ("num_stages", "order", "stage", "group") if k in ann)
    comment = ("  # " + ", ".join(f"{k}={v!r}" for k, v in ann.items())) if ann else ""
    return f"for {var_name(s.var)} in T.{_LOOP_NAMES.get(s.kind, s.kind)}({rng}{kwargs}):{comment}"


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
            if len(s.block_vars) > 1:
                names = f"({names})"
            threads = str(s.threads[0]) if len(s.threads) == 1 else "(" + ", ".join(str(t) for t in s.threads) + ")"
            self.emit(d, f"with T.Kernel({grid}, threads={threads}) as {names}:")
            self.stmt(s.body, d + 1)
        elif isinstance(s, For):
            self.emit(d, _loop_header(s))
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
            self.emit(d, f"{var_name(s.var)}: T.{s.var.dtype.name} = {expr_str(s.value)}")
        elif isinstance(s, Allocate):
            self.emit(d, _alloc_str(s))
        elif isinstance(s, Evaluate):
            self.emit(d, expr_str(s.value))
        elif isinstance(s, Annotation):
            if s.kind == "layout":
                items = ", ".join(f"{var_name(b)}: {lay.key()}" for b, lay in s.payload.items())
                self.emit(d, f"T.annotate_layout({{{items}}})")
            else:
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
    if not _namers:
        _namers.append(_ReadableNamer())
        try:
            return func_str(f)
        finally:
            _namers.pop()
    params = []
    for x in f.params:
        if isinstance(x, Buffer) and x.explicit_strides is not None:
            params.append(f"{var_name(x)}: T.StridedTensor({_shape(x.shape)}, {_shape(x.explicit_strides)}, "
                          f"{x.dtype.name!r})")
        elif isinstance(x, Buffer):
            params.append(f"{var_name(x)}: T.Tensor({_shape(x.shape)}, {x.dtype.name!r})")
        else:
            params.append(f"{var_name(x)}: T.{x.dtype.name}")
    p = _Printer()
    p.emit(0, "@T.prim_func")
    p.emit(0, f"def {f.name}({', '.join(params)}):")
    p.stmt(f.body, 1)
    return "\n".join(p.lines)


def shape_str(ext) -> str:
    """A shape as Python writes the tuple: (8,), (8, 16), (n, 16)."""
    return str(tuple(int(e) if isinstance(e, int) else e for e in ext))
