"""TileLang 0.1.8's function style ("eager" JIT, the default since 0.1.8):

    @tilewise.jit
    def matmul(A, B, block_M: int = 64, dtype=T.float16):
        M, N, K = T.const("M, N, K")        # dimensions taken from the arguments' shapes
        A: T.Tensor((M, K), dtype)           # a parameter declared in the body
        B: T.Tensor((K, N), dtype)
        C = T.empty((M, N), dtype)           # an output the call allocates
        with T.Kernel(...):
            ...
        return C

    c = matmul(a, b)                 # compiled for these shapes (cached), run, outputs returned
    k = matmul.compile(M=1024, N=1024, K=1024)   # the kernel itself, no tensors needed

Parameters declared in the body (`A: T.Tensor(...)`, `n: T.int32`) or annotated with a kernel
type in the signature are the kernel's parameters; every other parameter is a Python value
fixed at compile time (part of the cache key). `T.const` names are constants of the kernel:
each takes its value from the first tensor parameter that has it as a dimension (or stride),
or from a keyword argument of that name (`.compile(M=1024)`; a `T.dynamic` variable given there
keeps that dimension dynamic). `T.dynamic` dimensions stay symbolic: one kernel serves every
size. `T.empty` and `return` work in `@T.prim_func` too (its out_idx), as do parameters declared
in the body and `T.annotate_pass_configs` / `T.annotate_compile_flags`.

How it is built: the function is parsed twice per set of Python values. The first parse
(kernel bodies skipped, constants symbolic) finds the parameters and where each constant comes
from; then every call reads the constants off its arguments, and the function is parsed again
with them as numbers for each new set of values (jit/eager.py caches both)."""
from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass, field

from ..errors import CompileError, OutsideKernelError
from ..ir import builder as _builder
from ..ir.buffer import Buffer
from ..ir.dtype import DataType, ScalarAnnotation
from ..ir.expr import BufferLoad, Var
from ..ir.stmt import PrimFunc
from ..jit import eager as _jit_eager
from .alloc import TensorAnnotation, _AnnotationFactory, _dtype, _shape, _StridedFactory


@dataclass
class EagerContext:
    """What an eager parse knows: phase 1 finds the parameters (constants are symbolic, kernel
    bodies skipped); phase 2 builds the kernel with the constants' values."""

    phase: int
    consts: dict = field(default_factory=dict)  # phase 2: name -> int (or a Var: a dynamic dimension)
    const_vars: dict = field(default_factory=dict)  # phase 1: name -> the Var standing for it

    def const(self, name: str, dtype) -> Var | int:
        if self.phase == 1:
            v = self.const_vars.get(name)
            if v is None:
                v = self.const_vars[name] = Var(name, _dtype(dtype, "T.const"))
            return v
        if name not in self.consts:
            raise CompileError(f"T.const: no value for {name!r}")  # jit/eager.py finds every one first
        return self.consts[name]


def _names(name: str, what: str) -> list[str]:
    if not isinstance(name, str):
        raise CompileError(f"{what} takes the names as one string, e.g. {what}(\"M, N\"), got {name!r}")
    names = [n for n in re.split(r"[\s,]+", name.strip()) if n]
    if not names or not all(n.isidentifier() for n in names):
        raise CompileError(f"{what}: {name!r} is not a list of names such as \"M, N\"")
    return names


def const(name: str, dtype="int32"):
    """`M, N = T.const("M, N")`: constants of the kernel that the call's tensor shapes decide
    (one compiled kernel per distinct set of values); only in a @jit function without an inner
    @T.prim_func."""
    b = _builder.current()
    ctx = getattr(b, "eager", None)
    if ctx is None:
        raise OutsideKernelError(
            "T.const(...) can only be used in a @tilewise.jit function written without an inner @T.prim_func "
            "(TileLang's eager style); in a @T.prim_func use T.dynamic for a dimension bound at call time")
    names = _names(name, "T.const")
    values = tuple(ctx.const(n, dtype) for n in names)
    return values[0] if len(values) == 1 and "," not in name and " " not in name.strip() else values


def dynamic(name: str, dtype="int32"):
    """`T.dynamic("m")` (or several: `m, n = T.dynamic("m, n")`): a dimension bound at call time
    from the argument's shape, one compiled kernel for every size."""
    names = _names(name, "T.dynamic")
    dt = _dtype(dtype, "T.dynamic")
    values = tuple(Var(n, dt) for n in names)
    return values[0] if len(values) == 1 and "," not in name and " " not in name.strip() else values


def empty(*shape, dtype="float32") -> Buffer:
    """`C = T.empty((M, N), dtype)` (or `T.empty(M, N, dtype=...)`): an output tensor of the
    function, allocated by the call and returned by it; the function ends with `return C`."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        dims = shape[0]
    elif len(shape) == 2 and isinstance(shape[0], (tuple, list)) and isinstance(shape[1], (str, DataType)):
        dims, dtype = shape
    else:
        dims = shape
    b = _builder.current()
    if b is None:
        raise OutsideKernelError("T.empty(...) declares an output of a kernel function: use it in a @tilewise.jit "
                                 "or @T.prim_func body")
    if b.kernels:
        raise CompileError("T.empty declares an output of the function: use it before `with T.Kernel(...)`, "
                           "at the top of the function (T.alloc_shared / T.alloc_fragment allocate tiles)")
    buf = Buffer("out", _shape(dims, "T.empty", static=False), _dtype(dtype, "T.empty"), "global")
    buf.auto_named = True
    b.outputs.append(buf)
    return buf


class Ref:
    """A macro parameter annotated `T.Ref` is a reference to the caller's element or T.alloc_var:
    reading it reads the element, assigning to it (`x = v`, `x += v`) stores into it."""

    def __init__(self, buffer: Buffer, indices):
        self.buffer = buffer
        self.indices = tuple(indices)

    @classmethod
    def of(cls, name: str, value):
        if isinstance(value, Buffer) and value.is_var:
            return value  # a T.alloc_var is a reference already
        if isinstance(value, BufferLoad):
            if value.buffer.is_var:
                return value.buffer
            return cls(value.buffer, value.indices)
        raise CompileError(f"macro parameter {name} is annotated T.Ref: pass an element such as A[i] or a "
                           f"T.alloc_var, got {value!r}")

    def load(self):
        return BufferLoad(self.buffer, list(self.indices))


class _InlineMethod:
    """`@T.inline` on a method: its body is inlined where a kernel calls it, `self` bound."""

    def __init__(self, func):
        from .parser import Macro

        self.func = func
        self.macro = Macro(func)
        self.__name__ = getattr(func, "__name__", "inline")
        self.__doc__ = getattr(func, "__doc__", None)

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return lambda *args, **kwargs: self.macro(obj, *args, **kwargs)

    def __call__(self, *args, **kwargs):
        return self.macro(*args, **kwargs)


def inline(func):
    """TileLang's `T.inline`: a method (or function) inlined at each call inside a kernel, like
    @T.macro with `self` bound."""
    return _InlineMethod(func)


def annotate_pass_configs(configs: dict) -> None:
    """Pass configs of this function (`T.annotate_pass_configs({PassConfigKey.TL_...: True})`),
    merged under the ones compile() is given (those win)."""
    b = _builder.current()
    if b is None:
        raise OutsideKernelError("T.annotate_pass_configs can only be used in a @tilewise.jit or @T.prim_func body")
    if not isinstance(configs, dict):
        raise CompileError(f"T.annotate_pass_configs takes a dict, got {type(configs).__name__}")
    b.func_attrs["tilelang_pass_configs"] = dict(configs)


def annotate_compile_flags(flags) -> None:
    """Compiler flags of this function, added to the ones compile() is given."""
    b = _builder.current()
    if b is None:
        raise OutsideKernelError("T.annotate_compile_flags can only be used in a @tilewise.jit or @T.prim_func body")
    if not isinstance(flags, (str, list, tuple)) or not all(isinstance(f, str) for f in (
            [flags] if isinstance(flags, str) else flags)):
        raise CompileError(f"T.annotate_compile_flags takes a string or a list of strings, got {flags!r}")
    b.func_attrs["tilelang_compile_flags"] = [flags] if isinstance(flags, str) else list(flags)


# ---------------------------------------------------------------------------------------------
# the frontend jit/eager.py calls (registered below: the jit layer cannot import the parser)


def is_kernel_annotation(ann) -> bool:
    """A signature annotation that makes the parameter one of the kernel's (not a Python value)."""
    return isinstance(ann, (TensorAnnotation, DataType, ScalarAnnotation, Var)) and not isinstance(ann, type)


def declared_in_body(fdef: ast.FunctionDef) -> list[str]:
    """Parameters declared by a bare annotation (`A: T.Tensor(...)`) among the function's
    top-level statements (inside Python-level ifs too), in order."""
    params = {a.arg for a in fdef.args.args + fdef.args.kwonlyargs + fdef.args.posonlyargs}
    out: list[str] = []

    def visit(stmts):
        for s in stmts:
            if isinstance(s, ast.AnnAssign) and s.value is None and isinstance(s.target, ast.Name) \
                    and s.target.id in params and s.target.id not in out:
                out.append(s.target.id)
            elif isinstance(s, ast.If):
                visit(s.body)
                visit(s.orelse)

    visit(fdef.body)
    return out


def _top_level_nodes(fdef: ast.FunctionDef):
    """The function's own nodes, not those of nested functions, lambdas or classes."""
    todo = list(fdef.body)
    while todo:
        n = todo.pop()
        yield n
        for c in ast.iter_child_nodes(n):
            if not isinstance(c, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                todo.append(c)


def _is_language(node, func) -> bool:
    """`node` names this module's package (tilewise.language, whatever it is imported as)."""
    if not isinstance(node, ast.Name):
        return False
    cells = {}
    if func.__closure__:
        for n, c in zip(func.__code__.co_freevars, func.__closure__):
            try:
                cells[n] = c.cell_contents
            except ValueError:
                pass
    v = cells.get(node.id, func.__globals__.get(node.id))
    return v is sys.modules.get("tilewise.language")


def style(func) -> str | None:
    """"lazy" (a kernel factory: it defines a @T.prim_func), "eager" (the function body is the
    kernel), or None when its source does not say (then the call tells: jit/eager.py)."""
    from .parser import _source_info

    try:
        fdef, _, _ = _source_info(func)
    except CompileError:
        return None
    for n in ast.walk(fdef):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n is not fdef:
            for d in n.decorator_list:
                d = d.func if isinstance(d, ast.Call) else d
                if (isinstance(d, ast.Attribute) and d.attr == "prim_func") or (
                        isinstance(d, ast.Name) and d.id == "prim_func"):
                    return "lazy"
    anns = getattr(func, "__annotations__", {})
    if any(is_kernel_annotation(v) or isinstance(v, (_AnnotationFactory, _StridedFactory))
           for k, v in anns.items() if k != "return"):
        return "eager"
    if declared_in_body(fdef):
        return "eager"
    for n in _top_level_nodes(fdef):
        call = n.context_expr if isinstance(n, ast.withitem) else n
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) \
                and call.func.attr in ("const", "empty", "Kernel") and _is_language(call.func.value, func):
            return "eager"
    return None


def kernel_params(func) -> list[str]:
    """The names of the function's parameters that are the kernel's, in order."""
    from .parser import _source_info

    fdef, _, _ = _source_info(func)
    declared = set(declared_in_body(fdef))
    anns = getattr(func, "__annotations__", {})
    return [a.arg for a in fdef.args.args + fdef.args.kwonlyargs
            if a.arg in declared or is_kernel_annotation(anns.get(a.arg))]


@dataclass
class Template:
    """Phase 1's findings for one set of Python values: the constants, and where each one's
    value is read from the arguments ((parameter, "shape" | "stride", dimension) or None)."""

    consts: list[str]
    matcher: dict
    dtypes: dict = field(default_factory=dict)  # parameter name -> its declared element type


def template(func, outer, values: dict) -> Template:
    from .parser import parse_prim_func

    ctx = EagerContext(phase=1)
    pf = parse_prim_func(func, outer, eager=ctx, values=values)
    n = len(pf.params)
    outputs = {id(pf.params[n + i]) for i in pf.attrs.get("tilelang_out_idx", ())}
    matcher: dict = {}
    for name, v in ctx.const_vars.items():
        matcher[name] = None
        for p in pf.params:
            if not isinstance(p, Buffer) or id(p) in outputs:
                continue
            for kind, dims in (("shape", p.shape), ("stride", p.explicit_strides or ())):
                for i, d in enumerate(dims):
                    if isinstance(d, Var) and d.uid == v.uid and matcher[name] is None:
                        matcher[name] = (p.name, kind, i)
    dtypes = {p.name: p.dtype for p in pf.params if isinstance(p, Buffer)}
    return Template(list(ctx.const_vars), matcher, dtypes)


def build(func, outer, values: dict, consts: dict) -> PrimFunc:
    from .parser import parse_prim_func

    return parse_prim_func(func, outer, eager=EagerContext(phase=2, consts=dict(consts)), values=values)


_jit_eager.register_frontend(sys.modules[__name__])
