"""`T.call_extern(dtype, func_name, *args)` and `T.import_source(source)`: the expert tier's way
out to hand-written device code (TileLang's names and arguments).

`T.call_extern` is a call of the C / CUDA function `func_name` with result type `dtype`
("handle" or "void" for a call used as a statement): the CUDA and CPU renderers print the name
as written, so it may be a CUDA or C math function (`__expf`, `fmaxf`, `__popc`, ...) or a
function whose source `T.import_source` adds to the generated file (for CUDA a `__device__`
function). The emulator runs only calls whose meaning it knows (emulator/extern.py: the CUDA
math functions); any other is an error naming the function, which the PTX interpreter
(execution_backend="ptx": it runs what NVRTC compiled, imported source included) or a GPU runs.
On the CPU target, kernels that would hit that (or import CUDA text g++ cannot compile) run in the
PTX interpreter (jit/device_code.py).

`T.import_source(text)` records the text where it is called (an Annotation, so the text is part
of the program's cache key); every distinct text of a function is placed once, in order, at the
top of the generated file, after tilewise's own header."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.builder import emit, require
from ..ir.expr import BufferLoad, Call, Const, Expr, as_expr
from ..ir.stmt import Annotation
from .loops import py_scalar


def _arg(a, what: str) -> Expr:
    a = py_scalar(a)
    if isinstance(a, Buffer):
        if a.is_var:
            return as_expr(a)
        raise CompileError(f"{what}: pass an element or its address (T.address_of(buf[i])), not the buffer {a.name}")
    if isinstance(a, bool):
        return Const(a, _dt.bool_)
    if isinstance(a, int):
        return Const(a, _dt.int32)
    if isinstance(a, float):
        return Const(a, _dt.float32)
    if isinstance(a, Expr):
        return a
    raise CompileError(f"{what}: argument {a!r} ({type(a).__name__}) is not a value")


def call_extern(*args, dtype=None, span=None) -> Call:
    """A call of the external function `func_name` returning `dtype` (see the module docstring):
    `T.call_extern(dtype, func_name, *args)`, or, as TileLang forwards a keyword dtype to the
    front, `T.call_extern(func_name, *args, dtype=dtype)`."""
    what = "T.call_extern"
    require(what)
    if dtype is not None:
        args = (dtype, *args)
    if len(args) < 2:
        raise CompileError(f"{what}: expected (dtype, func_name, *args) or (func_name, *args, dtype=...)")
    dtype, func_name, *args = args
    if not isinstance(func_name, str) or not func_name.isidentifier():
        raise CompileError(f"{what}: the function name must be a C identifier string, got {func_name!r}")
    dt = _dt.as_dtype("handle" if str(dtype) == "void" else dtype)
    return Call("call_extern", [_arg(a, what) for a in args], dt, {"name": func_name})


def import_source(source: str | None = None) -> None:
    """Adds `source` (C++ / CUDA text) to the file generated for this function."""
    if source is None:
        return None
    if not isinstance(source, str):
        raise CompileError(f"T.import_source: expected the source text as a string, got {type(source).__name__}")
    require("T.import_source")
    emit(Annotation("import_source", source))
    return None


def address_of(x) -> Call:
    """The address of an element (`T.address_of(buf[i])`), e.g. to pass to an external function."""
    if isinstance(x, Buffer):
        x = BufferLoad(x, [Const(0, _dt.int32) for _ in x.shape])
    if not isinstance(x, BufferLoad):
        raise CompileError(f"T.address_of: expected a buffer element, got {x!r}")
    return Call("address_of", [x], _dt.handle)


def access_ptr(base, access_type: str = "r", *extents, offset=0, extent=None, ignore_last_ndim=0) -> Call:
    """TileLang's `T.access_ptr(buf | buf[i, j] | buf[a:b, ...], "r" | "w" | "rw", *extents, offset=0)`:
    the address of the first element (plus `offset` elements), to pass to an external function.
    The access type and extents describe the range the function touches; tilewise takes every
    address given to an external call as read and written."""
    if access_type not in ("r", "w", "rw"):
        raise CompileError(f"T.access_ptr: access_type must be 'r', 'w' or 'rw', got {access_type!r}")
    if isinstance(base, BufferRegion):
        base = BufferLoad(base.buffer, [as_expr(st) for st, _ in base.region])
    elif isinstance(base, Buffer):
        base = BufferLoad(base, [Const(0, _dt.int32) for _ in base.shape])
    if not isinstance(base, BufferLoad):
        raise CompileError(f"T.access_ptr: expected a buffer, an element or a slice, got {base!r}")
    off = py_scalar(offset)
    if not (isinstance(off, int) and off == 0):
        idx = list(base.indices)
        idx[-1] = idx[-1] + _arg(off, "T.access_ptr")  # row-major: the flat address moves by `offset`
        base = BufferLoad(base.buffer, idx)
    return Call("address_of", [base], _dt.handle)
