"""Pointer arguments of TileLang's TIR-level intrinsics (`T.ptx_ldmatrix`, `T.ptx_mma`,
`T.ptx_cp_async`, `T.mma_store`, ...), in the forms TileLang programs pass them:

- an address from `T.access_ptr(buf[i, j], "r")`, `T.address_of(buf[i])` or
  `T.tvm_access_ptr(T.type_annotation(dtype), buf.data, offset, extent, rw_mask)`;
- `buf.data` (or the buffer itself) with a separate element offset, as `T.ptx_mma` takes its
  register operands (`A_local.data, a_index`);
- a buffer element `buf[i]`.

All become tilewise's `address_of(buf[indices])` (docs/THREAD_IR.md), the address of one element;
a flat element offset moves the address in row-major order over the buffer's shape."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferData, BufferRegion
from ..ir.expr import BufferLoad, Call, Const, Expr, as_expr, const_value
from ..tileop.cuda_common import unflatten
from .loops import py_scalar


def _int(v, what: str) -> Expr:
    v = py_scalar(v)
    if isinstance(v, bool) or not isinstance(v, (int, Expr)):
        raise CompileError(f"{what}: expected an integer offset, got {v!r}")
    e = as_expr(v, _dt.int32)
    if not e.dtype.is_int:
        raise CompileError(f"{what}: the offset must be an integer, got {e} of type {e.dtype}")
    return e


def _is_zero(e: Expr) -> bool:
    return const_value(e) == 0


def element(buf: Buffer, base: list[Expr] | None, offset: Expr) -> BufferLoad:
    """The element `offset` elements (row-major) after buf[base] (base None: the first element)."""
    zero = Const(0, _dt.int32)
    idx = list(base) if base is not None else [zero] * buf.ndim
    if _is_zero(offset):
        return BufferLoad(buf, idx)
    if buf.ndim == 1:
        return BufferLoad(buf, [idx[0] + offset])
    flat: Expr = zero
    for i, d in zip(idx, buf.shape):
        flat = flat * d + i
    return BufferLoad(buf, unflatten(flat + offset, list(buf.shape)))


def pointer(x, offset=0, what: str = "pointer") -> BufferLoad:
    """The element a pointer argument (plus `offset` elements) names; see the module docstring."""
    x = py_scalar(x)
    off = _int(offset, what)
    if isinstance(x, Call) and x.name == "address_of" and len(x.args) == 1 and isinstance(x.args[0], BufferLoad):
        load = x.args[0]
        return element(load.buffer, list(load.indices), off)
    if isinstance(x, BufferData):
        return element(x.buffer, None, off)
    if isinstance(x, Buffer):
        return element(x, None, off)
    if isinstance(x, BufferLoad):
        return element(x.buffer, list(x.indices), off)
    if isinstance(x, BufferRegion):
        return element(x.buffer, [as_expr(s) for s, _ in x.region], off)
    raise CompileError(f"{what}: expected an address (T.access_ptr / T.address_of / T.tvm_access_ptr), a buffer's "
                       f"`.data` or a buffer element, got {type(x).__name__} {x!r}")


def address(load: BufferLoad) -> Call:
    return Call("address_of", [load], _dt.handle)


def scope_of(load: BufferLoad) -> str:
    b = load.buffer
    if b.is_shared:
        return "shared"
    if b.scope in ("local", "local.var"):
        return "local"
    if b.scope == "local.fragment":
        return "fragment"
    return "global"


def require_scope(load: BufferLoad, scopes: tuple[str, ...], what: str, role: str) -> None:
    s = scope_of(load)
    if s not in scopes:
        names = {"shared": "shared memory (T.alloc_shared)", "local": "registers (T.alloc_local)",
                 "global": "global memory (a kernel parameter)"}
        want = " or ".join(names[x] for x in scopes)
        got = "a T.alloc_fragment tile (its layout is the compiler's; use T.alloc_local)" if s == "fragment" else names[s]
        raise CompileError(f"{what}: the {role} must be in {want}; {load.buffer.name} is in {got}")
