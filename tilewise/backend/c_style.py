"""What the C++ renderers (CPU and CUDA) share: type names, unique identifiers, expressions
and the structured statements."""
from __future__ import annotations

import math
import re

import numpy as np

from ..errors import InternalError
from ..ir import scalar_ops
from ..ir.buffer import Buffer
from ..ir.dtype import DataType
from ..ir.expr import BinOp, BufferLoad, Call, Cast, Compare, Const, Select, UnaryOp, Var
from ..ir.simplify import bound
from ..ir.stmt import (
    Allocate,
    Annotation,
    Break,
    BufferStore,
    Evaluate,
    For,
    IfThenElse,
    LetStmt,
    SeqStmt,
    Stmt,
    While,
)
from ..ir.visitor import walk

C_TYPES = {
    "bool": "bool",
    "int8": "int8_t",
    "int16": "int16_t",
    "int32": "int32_t",
    "int64": "int64_t",
    "uint8": "uint8_t",
    "uint16": "uint16_t",
    "uint32": "uint32_t",
    "uint64": "uint64_t",
    "float16": "tw::half",
    "bfloat16": "tw::bf16",
    "float32": "float",
    "float64": "double",
    "float8_e4m3": "tw::fp8_e4m3",
    "float8_e5m2": "tw::fp8_e5m2",
    "float4_e2m1fn": "tw::fp4_e2m1",
    "float6_e2m3fn": "tw::fp6_e2m3",
    "float6_e3m2fn": "tw::fp6_e3m2",
    "float8_e8m0fnu": "tw::fp8_e8m0",
    "float8_e4m3fnuz": "tw::fp8_e4m3fnuz",
    "float8_e5m2fnuz": "tw::fp8_e5m2fnuz",
    "int4": "tw::i4",
    "uint4": "tw::u4",
    "tfloat32": "tw::tf32",
    "handle": "void*",
}

_BIN = {
    "add": "+", "sub": "-", "mul": "*", "div": "/", "truncmod": "%", "bitand": "&", "bitor": "|",
    "bitxor": "^", "shl": "<<", "shr": ">>", "and": "&&", "or": "||",
}  # fmt: skip
_CMP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
_IDENT = re.compile(r"[^A-Za-z0-9_]")
_RESERVED = {
    "int", "float", "double", "char", "short", "long", "bool", "void", "auto", "const", "for", "if",
    "else", "while", "do", "return", "break", "continue", "switch", "case", "default", "struct",
    "class", "union", "enum", "static", "extern", "signed", "unsigned", "goto", "sizeof", "new",
    "delete", "this", "true", "false", "template", "typename", "namespace", "using", "operator",
    "register", "volatile", "inline", "restrict", "min", "max", "abs", "exp", "log", "half", "main",
}  # fmt: skip


def _narrow_float(dt: DataType) -> bool:
    """A float type whose C++ struct computes in float and rounds back (float16 ... and tfloat32)."""
    return dt.is_float and (dt.bits < 32 or dt.kind == "tfloat")


def c_type(dt: DataType) -> str:
    try:
        return C_TYPES[dt.name]
    except KeyError:
        raise InternalError(f"no C type for {dt}") from None


class Names:
    """Unique C identifiers for variables and buffers."""

    def __init__(self):
        self.taken: set[str] = set()
        self.by_obj: dict[int, str] = {}

    def get(self, obj, hint: str) -> str:
        key = id(obj)
        if key in self.by_obj:
            return self.by_obj[key]
        base = _IDENT.sub("_", hint) or "v"
        if base[0].isdigit():
            base = "v" + base
        if base in _RESERVED or base.startswith("tw"):
            base = base + "_"
        name = base
        n = 1
        while name in self.taken:
            name = f"{base}_{n}"
            n += 1
        self.taken.add(name)
        self.by_obj[key] = name
        return name

    def fresh(self, hint: str) -> str:
        """A new internal identifier (callers may use the tw prefix)."""
        name = hint
        n = 1
        while name in self.taken:
            name = f"{hint}_{n}"
            n += 1
        self.taken.add(name)
        return name

    def reserve(self, name: str):
        self.taken.add(name)


def float_literal(v: float, dt: DataType) -> str:
    """A C literal of v rounded to dt once (ir/scalar_ops.value): narrower types print the float32
    spelling of the already-rounded value, so that the C conversions from it are exact."""
    if dt.bits < 64:
        v = float(np.float32(scalar_ops.value(v, dt)))
    if math.isnan(v):
        s = "NAN"
    elif math.isinf(v):
        s = "INFINITY" if v > 0 else "-INFINITY"
    else:
        s = repr(float(v)) if dt.bits == 64 else str(np.float32(v))  # shortest round-trip spelling
        if "e" not in s and "." not in s:
            s += ".0"
    if dt.name == "float64":
        return s if "INF" not in s and "NAN" not in s else f"((double){s})"
    if dt.name == "float32":
        return s + "f" if "INF" not in s and "NAN" not in s else s
    return f"(({c_type(dt)})({s}{'f' if 'INF' not in s and 'NAN' not in s else ''}))"


class CStyleRenderer:
    """Renders IR to C++. Subclasses provide buffer indexing and target-specific statements."""

    indent_unit = "  "

    def __init__(self):
        self.names = Names()
        self.lines: list[str] = []
        # 1-based source line -> span of the statement that printed it (for reports that start
        # from a line of the generated source, e.g. the PTX interpreter's .loc directives)
        self.line_spans: dict = {}
        self._spans: list = []
        self.depth = 0
        self.ranges: dict = {}  # Var -> (lo, hi) of the constant-extent loops being rendered

    # ------------------------------------------------------------------ output
    def line(self, text: str):
        self.lines.append(self.indent_unit * self.depth + text)
        if self._spans:
            self.line_spans[len(self.lines)] = self._spans[-1]

    def var(self, v: Var) -> str:
        return self.names.get(v, v.name)

    def buf(self, b: Buffer) -> str:
        if b.address is not None:  # T.make_tensor from a pointer table's element: the address, typed
            return f"(({c_type(b.dtype)}*)({self.var(b.address)}))"
        return self.names.get(b, b.name)

    # ------------------------------------------------------------------ expressions
    def expr(self, e) -> str:
        if isinstance(e, int) and not isinstance(e, bool):
            return str(e)
        m = getattr(self, "expr_" + type(e).__name__, None)
        if m is None:
            raise InternalError(f"cannot render {type(e).__name__} {e!r}")
        return m(e)

    def expr_Const(self, e: Const) -> str:
        dt = e.dtype
        if dt.is_bool:
            return "true" if e.value else "false"
        if dt.is_int:
            v = e.value
            if dt.bits == 64:
                return f"(int64_t){v}LL" if dt.is_signed else f"(uint64_t){v}ULL"
            if dt.name == "int32":
                return str(v) if v != -(2**31) else "(-2147483647 - 1)"
            if dt.name == "uint32":
                return f"{v}u"
            return f"(({c_type(dt)}){v})"
        return float_literal(e.value, dt)

    def expr_Var(self, e: Var) -> str:
        return self.var(e)

    def expr_BinOp(self, e: BinOp) -> str:
        a, b = self.expr(e.a), self.expr(e.b)
        if e.op in ("min", "max"):
            return f"tw::{e.op}({a}, {b})"
        if e.op in ("floordiv", "floormod"):
            return f"tw::{e.op}({a}, {b})"
        if e.op in ("div", "truncmod") and e.dtype.is_int and not (isinstance(e.b, Const) and e.b.value not in (0, -1)):
            # a run-time divisor may be 0 (or -1 with the most negative dividend): these must not trap
            return f"tw::{'truncdiv' if e.op == 'div' else 'truncmod'}({a}, {b})"
        if e.op == "div" and _narrow_float(e.dtype):
            return f"(({c_type(e.dtype)})((float)({a}) / (float)({b})))"
        if _narrow_float(e.dtype) and e.op in ("add", "sub", "mul"):
            # arithmetic on half types happens in float; round back to the IR's type
            return f"(({c_type(e.dtype)})((float)({a}) {_BIN[e.op]} (float)({b})))"
        if e.op in ("shl", "shr") and e.dtype.is_int and not _count_in_range(e.b, e.dtype.bits, self.ranges):
            # C leaves a count outside [0, width) undefined: give it the GPU's meaning
            return f"tw::{e.op}({a}, {b})"
        if e.dtype.bits < 32 and e.dtype.is_int and e.op in ("add", "sub", "mul", "shl"):
            return f"(({c_type(e.dtype)})({a} {_BIN[e.op]} {b}))"
        if e.op == "shl" and e.dtype.is_int and e.dtype.is_signed:
            # a signed left shift that overflows is undefined in C (NVVM then folds (x << 28) >> 28
            # to x): shift the bits unsigned, so that it wraps as the IR says
            unsigned = "uint64_t" if e.dtype.bits == 64 else "uint32_t"
            return f"(({c_type(e.dtype)})(({unsigned})({a}) << {b}))"
        return f"({a} {_BIN[e.op]} {b})"

    def expr_Compare(self, e: Compare) -> str:
        return f"({self.expr(e.a)} {_CMP[e.op]} {self.expr(e.b)})"

    def expr_UnaryOp(self, e: UnaryOp) -> str:
        a = self.expr(e.a)
        if e.op == "neg":
            if _narrow_float(e.dtype):
                return f"(({c_type(e.dtype)})(-(float)({a})))"
            # a negative literal operand must not make "--" (C's decrement): -(-1.0f)
            return f"(-({a}))" if a.startswith("-") else f"(-{a})"
        if e.op == "not":
            return f"(!{a})"
        return f"(({c_type(e.dtype)})(~{a}))"

    def expr_Cast(self, e: Cast) -> str:
        src = e.value.dtype
        inner = self.expr(e.value)
        if _narrow_float(src) and not e.dtype.is_float:
            inner = f"(float)({inner})"
        if _narrow_float(e.dtype) and not src.is_float:
            inner = f"(float)({inner})"
        if _narrow_float(e.dtype) and _narrow_float(src):
            inner = f"(float)({inner})"
        if e.dtype.is_int and e.dtype.bits < 8 and src.is_float:  # int4 / uint4: saturate at four bits
            return f"tw::to_nibble<{c_type(e.dtype)}>({inner})"
        if e.dtype.is_int and src.is_float:
            # C leaves out-of-range values (and NaN) undefined: saturate as the GPU's cvt does
            return f"tw::to_int<{c_type(e.dtype)}>({inner})"
        return f"(({c_type(e.dtype)})({inner}))"

    def expr_Select(self, e: Select) -> str:
        return f"({self.expr(e.cond)} ? {self.expr(e.a)} : {self.expr(e.b)})"

    def expr_Call(self, e: Call) -> str:
        args = [self.expr(a) for a in e.args]
        if e.name == "reinterpret":
            # the operand in its own type: C promotes narrow integer arithmetic to int
            return f"tw::bitcast<{c_type(e.dtype)}>(({c_type(e.args[0].dtype)})({args[0]}))"
        if e.name == "address_of":
            load = e.args[0]
            return f"(&{self.expr(load)})"
        m = getattr(self, "call_" + e.name, None)
        if m is not None:
            return m(e, args)
        return f"tw::{e.name}({', '.join(args)})"

    def call_cvt_rs(self, e: Call, args) -> str:
        """T.cast(x, round="rs", rbits=r): stochastic rounding (tw_cpu.h / tw_cuda.h cvt_rs)."""
        return f"tw::cvt_rs<{c_type(e.dtype)}>({args[0]}, {args[1]})"

    def call_device_assert(self, e: Call, args) -> str:
        """T.device_assert (language/control.py): the message names the user's line."""
        return f"tw::device_assert({args[0]}, {c_string(e.attrs.get('msg', 'T.device_assert failed'))})"

    def expr_BufferLoad(self, e: BufferLoad) -> str:
        return self.element(e.buffer, e.indices)

    def element(self, buffer: Buffer, indices) -> str:
        """The C lvalue of one element; a T.alloc_var is a plain scalar variable."""
        if is_scalar_var(buffer):
            return self.buf(buffer)
        return f"{self.buf(buffer)}[{self.offset(buffer, indices)}]"

    def wide_index(self, buffer: Buffer) -> bool:
        """Whether offsets into `buffer` are computed in 64 bits (by default: global tensors)."""
        return buffer.is_global

    def offset(self, buffer: Buffer, indices) -> str:
        """Flattened row-major offset; 64-bit where `wide_index` says so."""
        wide = self.wide_index(buffer)
        strides = buffer.strides()
        terms = []
        for idx, st in zip(indices, strides):
            i = self.expr(idx)
            if isinstance(idx, Const) and idx.value == 0:
                continue
            if wide:
                i = f"(int64_t){i}"
            if isinstance(st, int):
                terms.append(i if st == 1 else f"{i} * {st}")
            else:
                terms.append(f"{i} * ({'(int64_t)' if wide else ''}{self.expr(st)})")
        return " + ".join(terms) if terms else "0"

    # ------------------------------------------------------------------ statements
    def stmt(self, s: Stmt | None):
        if s is None:
            return
        m = getattr(self, "stmt_" + type(s).__name__, None)
        if m is None:
            raise InternalError(f"the {type(self).__name__} cannot render {type(s).__name__}", getattr(s, "span", None))
        span = getattr(s, "span", None)
        if span is not None:
            self._spans.append(span)
        try:
            m(s)
        finally:
            if span is not None:
                self._spans.pop()

    def stmt_SeqStmt(self, s: SeqStmt):
        for x in s.stmts:
            self.stmt(x)

    def stmt_Evaluate(self, s: Evaluate):
        self.line(self.expr(s.value) + ";")

    def stmt_BufferStore(self, s: BufferStore):
        self.line(f"{self.element(s.buffer, s.indices)} = {self.expr(s.value)};")

    def stmt_LetStmt(self, s: LetStmt):
        self.line(f"const {c_type(s.var.dtype)} {self.var(s.var)} = {self.expr(s.value)};")

    def stmt_IfThenElse(self, s: IfThenElse):
        self.line(f"if ({self.expr(s.cond)}) {{")
        self.block(s.then_body)
        if s.else_body is not None:
            self.line("} else {")
            self.block(s.else_body)
        self.line("}")

    def stmt_While(self, s: While):
        self.line(f"while ({self.expr(s.cond)}) {{")
        self.block(s.body)
        self.line("}")

    def stmt_Break(self, s: Break):
        self.line("break;")

    def stmt_Annotation(self, s: Annotation):
        self.line(f"// {s.kind}")

    def call_call_extern(self, e: Call, args) -> str:
        """T.call_extern: the user's function, by the name they gave (language/extern.py)."""
        return f"{e.attrs['name']}({', '.join(args)})"

    def imported_sources(self, func) -> list[str]:
        """The texts of the function's T.import_source calls, each once, in program order: they go
        at the top of the generated file."""
        found: list[str] = []

        def visit(n):
            if isinstance(n, Annotation) and n.kind == "import_source" and n.payload not in found:
                found.append(n.payload)

        walk(func.body, visit)
        return found

    def block(self, body: Stmt | None):
        self.depth += 1
        self.stmt(body)
        self.depth -= 1

    def loop_pragmas(self, f: For) -> list[str]:
        return []

    def stmt_For(self, f: For):
        for p in self.loop_pragmas(f):
            self.line(p)
        t = c_type(f.var.dtype)
        v = self.var(f.var)
        start = self.expr(f.start)
        if isinstance(f.extent, Const) and isinstance(f.start, Const):
            end = str(f.start.value + f.extent.value)
            self.line(f"for ({t} {v} = {start}; {v} < {end}; ++{v}) {{")
            self.ranges[f.var] = (f.start.value, f.start.value + f.extent.value - 1)
        else:
            end = self.names.fresh(v + "_end")
            self.line(f"for ({t} {v} = {start}, {end} = {start} + {self.expr(f.extent)}; {v} < {end}; ++{v}) {{")
        self.block(f.body)
        self.ranges.pop(f.var, None)
        self.line("}")

    def stmt_Allocate(self, s: Allocate):
        raise NotImplementedError


def _count_in_range(count, bits: int, ranges: dict) -> bool:
    """Whether a shift count is provably in [0, bits), where C's shifts are defined."""
    lo, hi = bound(count, ranges)
    return lo is not None and hi is not None and lo >= 0 and hi < bits


def is_scalar_var(b: Buffer) -> bool:
    """A T.alloc_var: rendered as `T name = init;` rather than a one-element array."""
    return b.is_var and b.base is None and b.static_shape() in ((1,), ())


def c_string(text: str) -> str:
    """A C string literal; bytes other than printable ASCII become octal escapes."""
    out = []
    for b in text.encode("utf-8"):
        c = chr(b)
        out.append(c if 32 <= b < 127 and c not in '"\\' else f"\\{b:03o}")
    return '"' + "".join(out) + '"'
