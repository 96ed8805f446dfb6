"""The TVMScript (TIR builder) names TileLang re-exports in `T` that thread-level programs use,
mapped onto tilewise's IR where it can express them:

- declarations: `T.handle` (a pointer parameter, = T.ptr), `T.match_buffer(h, shape, dtype)` (the
  tensor behind a T.handle parameter, = T.make_tensor), `T.decl_buffer` / `T.buffer` /
  `T.buffer_decl` (a view of `data=buf.data`, a shared / local allocation for those scopes, else
  a tensor annotation), `T.allocate(shape, dtype, scope)`, `T.var(dtype)`;
- bindings and values: `T.bind(value)` (a let-bound variable), `T.Let(expr, where)`,
  `T.meta_var(v)` (v itself: every Python value is already a compile-time value here),
  `T.buffer_store(buf, value, indices)`, `T.func_attr({...})`;
- calls: `T.call_intrin(dtype, "tir.name" | "tl.name", *args)` (the T function of that name),
  `T.call_pure_extern` (= T.call_extern), `T.type_annotation(dtype)` with
  `T.tvm_access_ptr(ptype, buf.data, offset, extent, rw_mask)` (an address).

TVMScript constructs tilewise's IR has no counterpart for (thread launching by hand, schedulable
blocks, vector-lane expressions, LLVM intrinsics, TVM's runtime ABI) are CompileErrors naming the
construct and what to write instead (tir_unsupported.py)."""
from __future__ import annotations

import sys

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferData, BufferRegion
from ..ir.builder import emit, require
from ..ir.expr import BufferLoad, Expr, Var, as_expr
from ..ir.stmt import BufferStore, LetStmt
from ..ir.visitor import substitute
from .alloc import Tensor, alloc_buffer, make_tensor, view
from .control import let
from .extern import call_extern
from .loops import py_scalar
from .pointers import address, pointer

handle = _dt.as_dtype("handle")  # `A: T.handle`, then `T.match_buffer(A, shape, dtype)`

_LOCAL_SCOPES = ("shared", "shared.dyn", "local", "local.fragment", "local.var")
# func_attr keys whose meaning tilewise already has: names and flags TVM's own lowering reads
# (tilewise names the kernel after the function and compiles every parameter as __restrict__)
_FUNC_ATTRS = ("global_symbol", "tir.noalias", "tir.is_scheduled", "tir.is_entry_func", "tir.kernel_launch_params")


def var(dtype, name: str = "") -> Var:
    """A fresh scalar variable of type dtype (bind it with T.let / T.bind)."""
    return Var(name or "v", _dt.as_dtype(dtype))


def bind(value, type_annotation=None, *, var: Var | None = None) -> Var:  # noqa: A002 - TVM's name
    """`x = T.bind(value)`: a variable bound to value for the statements that follow."""
    value = as_expr(py_scalar(value))
    dt = _dt.as_dtype(type_annotation) if type_annotation is not None else value.dtype
    v = var if var is not None else Var("v", dt)
    let(v, value)
    return v


def Let(expr, where: dict):  # noqa: N802 - TVMScript's name
    """`T.Let(expr, {v: value})`: expr with each variable replaced by its value."""
    if not isinstance(where, dict):
        raise CompileError(f"T.Let: expected a {{var: value}} dict, got {type(where).__name__}")
    return substitute(as_expr(py_scalar(expr)), {v: as_expr(py_scalar(x), v.dtype) for v, x in where.items()})


def Ptr(dtype="handle", storage_scope="global"):  # noqa: N802 - TVMScript's name
    """`a: T.Ptr(dtype)`: a pointer parameter (= T.handle; the element type comes with T.match_buffer)."""
    if storage_scope != "global":
        raise CompileError(f"T.Ptr: only pointers to global memory can be parameters, got {storage_scope!r}")
    return handle


def get_let_value(var: Var):
    """The value `var` is bound to by a T.let / T.bind in scope here (the open statement blocks of
    the function being parsed), or None."""
    b = require("T.get_let_value")
    for frame in reversed(b.frames):
        for s in reversed(frame):
            if isinstance(s, LetStmt) and s.var is var:
                return s.value
    return None


def has_let_value(var: Var) -> bool:
    """Whether `var` is bound by a T.let / T.bind in scope here."""
    return get_let_value(var) is not None


def get_tvm_dtype(value) -> _dt.DataType:
    """TileLang's dtype normaliser (a name, a T dtype, a torch dtype): tilewise's dtype."""
    return _dt.as_dtype(value)


def meta_var(value):
    """TVMScript's marker of a Python value used at parse time: in tilewise every Python value is."""
    return value


def match_buffer(param, shape=None, dtype="float32", data=None, strides=None, elem_offset=None, scope="global",
                 align=-1, offset_factor=0, buffer_type="default", axis_separators=None) -> Buffer:
    """`A = T.match_buffer(a, (M, N), "float16")` on a `T.handle` parameter `a` (= T.make_tensor)."""
    what = "T.match_buffer"
    if strides is not None or elem_offset is not None or data is not None or axis_separators:
        raise CompileError(f"{what}: strides, elem_offset, data and axis_separators are not supported; declare a "
                           "strided parameter as T.StridedTensor(shape, strides, dtype)")
    if scope != "global":
        raise CompileError(f"{what}: only global tensors (kernel parameters) can be matched, got scope={scope!r}")
    if isinstance(param, (BufferLoad, BufferRegion, Buffer)):
        raise CompileError(f"{what}: matching a region of a buffer belongs to TVM's schedulable blocks, which tilewise "
                           "does not have; slice the buffer (A[i:i + m, :]) or take a view (T.view)")
    if shape is None:
        raise CompileError(f"{what}: the shape is missing")
    return make_tensor(param, shape, dtype)


def decl_buffer(shape, dtype="float32", data=None, strides=None, elem_offset=None, scope="global", align=0,
                offset_factor=0, buffer_type="", axis_separators=None):
    """`T.decl_buffer(shape, dtype, data=buf.data)`: a view of buf's storage; without data, a
    buffer of that scope allocated here (shared / local) or, for global, a parameter annotation."""
    what = "T.decl_buffer"
    if strides is not None or elem_offset is not None or axis_separators:
        raise CompileError(f"{what}: strides, elem_offset and axis_separators are not supported; tilewise buffers are "
                           "dense and row-major (a strided parameter is T.StridedTensor)")
    if data is not None:
        if not isinstance(data, BufferData):
            raise CompileError(f"{what}: data must be another buffer's storage (buf.data), got {data!r}")
        return view(data.buffer, shape, dtype)
    if scope in _LOCAL_SCOPES:
        return alloc_buffer(shape, dtype, scope)
    if scope != "global":
        raise CompileError(f"{what}: unknown scope {scope!r}; tilewise has global, shared(.dyn), local, "
                           "local.fragment and local.var")
    return Tensor(shape, dtype)


buffer = decl_buffer  # TVMScript's T.Buffer / T.buffer declaration
buffer_decl = decl_buffer


def allocate(shape, dtype="float32", scope="global", annotations=None) -> Buffer:
    """`T.allocate(shape, dtype, scope)`: a buffer of that scope (shared or local)."""
    if scope not in _LOCAL_SCOPES:
        raise CompileError(f"T.allocate: scope {scope!r} cannot be allocated inside a kernel; use 'shared' or 'local' "
                           "(global scratch memory is T.alloc_global)")
    if annotations:
        raise CompileError(f"T.allocate: annotations {sorted(annotations)} are not supported")
    return alloc_buffer(shape, dtype, scope)


def buffer_store(buffer, value, indices, predicate=None) -> None:  # noqa: A002 - TVM's name
    """`T.buffer_store(buf, value, [i, j])`: buf[i, j] = value."""
    if predicate is not None:
        raise CompileError("T.buffer_store: a predicated (masked vector) store is not supported; guard it with `if`")
    if not isinstance(buffer, Buffer):
        raise CompileError(f"T.buffer_store: expected a buffer, got {buffer!r}")
    idx = [as_expr(py_scalar(i), _dt.int32) for i in indices]
    if len(idx) != buffer.ndim:
        raise CompileError(f"T.buffer_store: {buffer.name} has {buffer.ndim} dimensions, got {len(idx)} indices")
    v = as_expr(py_scalar(value), buffer.dtype)
    if v.dtype != buffer.dtype:
        v = v.astype(buffer.dtype)
    emit(BufferStore(buffer, idx, v))


def func_attr(attrs: dict) -> None:
    """`T.func_attr({"global_symbol": "main", "tir.noalias": True})`: attributes whose meaning
    tilewise has already (see _FUNC_ATTRS); they are recorded in PrimFunc.attrs. Others are
    CompileErrors: tilewise would not honour them."""
    if not isinstance(attrs, dict):
        raise CompileError(f"T.func_attr: expected a dict, got {type(attrs).__name__}")
    unknown = sorted(k for k in attrs if k not in _FUNC_ATTRS)
    if unknown:
        raise CompileError(f"T.func_attr: attributes {unknown} have no meaning in tilewise (known: "
                           f"{', '.join(_FUNC_ATTRS)}); pass configs are T.annotate_pass_configs")
    if attrs.get("tir.noalias") is False:
        raise CompileError("T.func_attr: tir.noalias=False; tilewise compiles every parameter as __restrict__")
    require("T.func_attr").func_attrs.update(attrs)


class TypeAnnotation:
    """What `T.type_annotation(dtype)` gives: the element type of a `T.tvm_access_ptr`."""

    def __init__(self, dtype):
        self.dtype = _dt.as_dtype(dtype)

    def __repr__(self) -> str:
        return f"T.type_annotation({self.dtype})"


def type_annotation(dtype) -> TypeAnnotation:
    return TypeAnnotation(dtype)


def tvm_access_ptr(ptype, data, offset, extent, rw_mask) -> Expr:
    """`T.tvm_access_ptr(T.type_annotation(dtype), buf.data, offset, extent, rw_mask)`: the address
    of element `offset` (flat, row-major) of buf, for the intrinsics that take addresses."""
    what = "T.tvm_access_ptr"
    buf = data.buffer if isinstance(data, BufferData) else data
    if not isinstance(buf, Buffer):
        raise CompileError(f"{what}: expected a buffer's storage (buf.data), got {data!r}")
    dt = ptype.dtype if isinstance(ptype, TypeAnnotation) else _dt.as_dtype(ptype)
    if dt != buf.dtype:
        raise CompileError(f"{what}: the pointer type {dt} differs from {buf.name}'s element type {buf.dtype}; "
                           "addresses of another element type (a reinterpreting pointer) are not supported")
    if py_scalar(rw_mask) not in (1, 2, 3):
        raise CompileError(f"{what}: rw_mask must be 1 (read), 2 (write) or 3 (both), got {rw_mask!r}")
    del extent  # the intrinsic taking the address knows how many bytes it touches
    return address(pointer(buf, offset, what))


def call_pure_extern(dtype, func_name, *args, span=None):
    """A side-effect-free external call: T.call_extern."""
    return call_extern(dtype, func_name, *args)


# call_intrin names whose first argument is the result dtype in the T function too
_DTYPE_FIRST = ("ptx_mma", "mma_store", "mma_fill")


def call_intrin(dtype, func_name, *args, annotations=None, span=None):
    """`T.call_intrin(dtype, "tir.exp" | "tl.ptx_ldmatrix" | ..., *args)`: the T function of that
    name (without the "tir." / "tl." prefix) applied to args."""
    name = str(getattr(func_name, "name", func_name))
    short = name.split(".", 1)[1] if name.startswith(("tir.", "tl.")) else name
    ns = sys.modules[__name__.rsplit(".", 1)[0]]  # the T namespace, of which this module is a part
    f = getattr(ns, short, None) if short.isidentifier() and not short.startswith("_") else None
    if f is None or not callable(f):
        raise CompileError(f"T.call_intrin: {name!r} is not an intrinsic tilewise has; call the T function of that "
                           "name directly, or T.call_extern for a device function")
    if annotations:
        raise CompileError(f"T.call_intrin({name!r}): annotations are not supported")
    out = f(dtype, *args) if short in _DTYPE_FIRST else f(*args)
    if isinstance(out, Expr) and str(dtype) not in ("handle", "void", "") and out.dtype != _dt.as_dtype(dtype):
        out = out.astype(_dt.as_dtype(dtype))
    return out


__all__ = ["Let", "Ptr", "TypeAnnotation", "allocate", "bind", "buffer", "buffer_decl", "buffer_store", "call_intrin",
           "call_pure_extern", "decl_buffer", "func_attr", "get_let_value", "get_tvm_dtype", "handle", "has_let_value", "match_buffer", "meta_var", "tvm_access_ptr",
           "type_annotation", "var"]
