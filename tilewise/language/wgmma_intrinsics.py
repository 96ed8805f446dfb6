"""TileLang 0.1.15's hand-driven wgmma (sm_90a): shared-memory matrix descriptors in a register
and the wgmma instructions that read through them.

- `desc = T.alloc_wgmma_desc()` (or `T.alloc_descriptor("wgmma")`): one uint64 register;
- `T.initialize_wgmma_descriptor(desc, start_address, layout_type_, lbo, sbo)`: the descriptor
  of the shared matrix at `start_address` (an address, e.g. `T.access_ptr(A_s[0, 0], "r")`):
  start address >> 4 in bits 0-13, `lbo` and `sbo` (already >> 4, as TileLang passes them) in
  bits 16-29 and 32-45, `layout_type_` (0 none, 1 128-byte, 2 64-byte, 3 32-byte swizzle) in
  bits 62-63 (PTX ISA, "Matrix Descriptor Format");
- `T.increase_descriptor_offset(desc, bytes)`: the start address moves by bytes (>> 4 added);
- `T.ptx_wgmma_ss(dtype, "m64nNkK", a_is_k_major, b_is_k_major, a_dtype, b_dtype, c_dtype,
  desc_a.data, a_offset, desc_b.data, b_offset, C.data, c_offset, scale_out, scale_in_a,
  scale_in_b)`: `wgmma.mma_async` with both operands read through descriptors (plus the
  offsets, in 16-byte units, added to each), D at C[c_offset...] (D = A B + D when scale_out is
  1, A B when 0); `T.ptx_wgmma_rs(...)` the same with A in registers (`A.data, a_offset`).

They become docs/THREAD_IR.md's `wgmma_desc` (in a store to the register) and `wgmma` calls, so the
emulator checks them as T.gemm's (operands read through the descriptors' addresses and swizzle,
a wgmma_fence (T.warpgroup_arrive) before the first, the accumulators untouched until
T.warpgroup_wait, async-proxy reads after a T.fence_proxy_async of the plain writes). Negated
operands (scale_in -1) and `T.warpgroup_fence_operand` (a compiler scheduling fence) are
CompileErrors."""
from __future__ import annotations

from ..backend.cuda.wgmma_variants import wgmma_variant
from ..errors import CompileError, InternalError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferData
from ..ir.builder import emit
from ..ir.expr import BufferLoad, Call, Const, Expr, as_expr
from ..ir.stmt import BufferStore
from .alloc import alloc_local
from .loops import py_scalar
from .pointers import address, pointer, require_scope
from .ptx_intrinsics import _ABBRV, _check_result_type, _const_bool, _const_int, _thread_kernel

_SWIZZLE_OF_LAYOUT = {0: 0, 1: 128, 2: 64, 3: 32}  # descriptor bits 62-63 -> swizzle bytes


def alloc_wgmma_desc(dtype=_dt.uint64) -> Buffer:
    """A register holding one wgmma shared-memory descriptor."""
    if _dt.as_dtype(dtype) != _dt.uint64:
        raise CompileError(f"T.alloc_wgmma_desc: a descriptor is a uint64, got {dtype}")
    _thread_kernel("T.alloc_wgmma_desc")
    buf = alloc_local((1,), _dt.uint64)
    buf.wgmma_descriptor = True
    return buf


def alloc_descriptor(kind="wgmma", dtype=_dt.uint64) -> Buffer:
    """`T.alloc_descriptor("wgmma")`; the tcgen05 kinds are Blackwell's."""
    if kind != "wgmma":
        raise CompileError(f"T.alloc_descriptor({kind!r}): only wgmma descriptors (sm_90a) are supported; the tcgen05 "
                           "ones are Blackwell (sm_100) instructions")
    return alloc_wgmma_desc(dtype)


def _desc_slot(descriptor, what: str) -> BufferLoad:
    d = descriptor.buffer if isinstance(descriptor, BufferData) else descriptor
    if isinstance(d, Buffer):
        d = BufferLoad(d, [Const(0, _dt.int32)])
    if not (isinstance(d, BufferLoad) and getattr(d.buffer, "wgmma_descriptor", False)):
        raise CompileError(f"{what}: expected a descriptor from T.alloc_wgmma_desc(), got {descriptor!r}")
    return d


def initialize_wgmma_descriptor(descriptor, start_address, layout_type_=0, leading_byte_offset=0,
                                stride_byte_offset=0) -> None:
    """The descriptor of the shared matrix at start_address (see the module docstring)."""
    what = "T.initialize_wgmma_descriptor"
    _thread_kernel(what)
    slot = _desc_slot(descriptor, what)
    start = pointer(start_address, 0, what)
    require_scope(start, ("shared",), what, "matrix")
    layout = _const_int(layout_type_, f"{what}: layout_type_")
    if layout not in _SWIZZLE_OF_LAYOUT:
        raise CompileError(f"{what}: layout_type_ must be 0 (no swizzle), 1 (128B), 2 (64B) or 3 (32B), got {layout}")
    lbo = _const_int(leading_byte_offset, f"{what}: leading_byte_offset")
    sbo = _const_int(stride_byte_offset, f"{what}: stride_byte_offset")
    for name, v in (("leading_byte_offset", lbo), ("stride_byte_offset", sbo)):
        if not 0 <= v < 1 << 14:
            raise CompileError(f"{what}: {name} is the byte offset >> 4, a 14-bit field; got {v}")
    desc = Call("wgmma_desc", [address(start)], _dt.uint64,
                {"swizzle": _SWIZZLE_OF_LAYOUT[layout], "lbo": lbo << 4, "sbo": sbo << 4})
    emit(BufferStore(slot.buffer, slot.indices, desc))


def increase_descriptor_offset(descriptor, offset) -> None:
    """The descriptor's start address moves by `offset` bytes (a multiple of 16)."""
    what = "T.increase_descriptor_offset"
    _thread_kernel(what)
    slot = _desc_slot(descriptor, what)
    off = as_expr(py_scalar(offset), _dt.int32)
    if not off.dtype.is_int:
        raise CompileError(f"{what}: the offset must be an integer number of bytes, got {off.dtype}")
    emit(BufferStore(slot.buffer, slot.indices, slot + (off >> 4).astype(_dt.uint64)))


def _desc_value(desc, offset, what: str) -> Expr:
    slot = _desc_slot(desc, what)
    off = as_expr(py_scalar(offset), _dt.int32)
    return slot + off.astype(_dt.uint64)


def _wgmma(what: str, dtype, prefix, a_k_major, b_k_major, at, bt, ct, a_operand, b_desc, b_off, c_data, c_off, scale_out,
           scale_a, scale_b, a_regs: bool) -> Call:
    _thread_kernel(what)
    for name, s in (("scale_in_a", scale_a), ("scale_in_b", scale_b)):
        if _const_int(s, f"{what}: {name}") != 1:
            raise CompileError(f"{what}: {name}={s}: negated operands are not supported (pass 1)")
    types = []
    for t in (at, bt, ct):
        s = str(t).lstrip(".")
        if s not in _ABBRV:
            raise CompileError(f"{what}: operand type {t!r} has no wgmma form in tilewise (fp16, bf16, tf32, int8 / "
                               "uint8 with fp16 / fp32 / int32 accumulators)")
        types.append(_ABBRV[s])
    _check_result_type(dtype, types[2], what)
    shape = str(prefix)
    try:
        v = wgmma_variant(shape, *types, a_regs=a_regs)
    except InternalError as e:
        raise CompileError(f"{what}: {e}".replace("wgmma: ", "")) from None
    trans_a = 0 if a_regs else int(not _const_bool(a_k_major, f"{what}: a_is_k_major"))
    trans_b = int(not _const_bool(b_k_major, f"{what}: b_is_k_major"))
    if (trans_a or trans_b) and not v.transposable:
        raise CompileError(f"{what}: {types[0]} operands are read K-major only (a_is_k_major and b_is_k_major True)")
    acc = pointer(c_data, c_off, what)
    require_scope(acc, ("local",), what, "accumulator")
    scale = as_expr(py_scalar(scale_out), _dt.int32)
    attrs = {"shape": shape, "a_dtype": types[0], "b_dtype": types[1], "c_dtype": types[2], "a_regs": a_regs,
             "trans_a": trans_a, "trans_b": trans_b}
    return Call("wgmma", [address(acc), a_operand, _desc_value(b_desc, b_off, what), scale], _dt.handle, attrs)


def ptx_wgmma_ss(dtype, wgmma_prefix, a_is_k_major, b_is_k_major, a_dtype_abbrv, b_dtype_abbrv, accum_dtype_abbrv,
                 A_desc, A_offset, B_desc, B_offset, C_data, C_offset, scale_out, scale_in_a, scale_in_b) -> Call:  # noqa: N803
    """`wgmma.mma_async` with A and B in shared memory, read through descriptors."""
    what = "T.ptx_wgmma_ss"
    return _wgmma(what, dtype, wgmma_prefix, a_is_k_major, b_is_k_major, a_dtype_abbrv, b_dtype_abbrv, accum_dtype_abbrv,
                  _desc_value(A_desc, A_offset, what), B_desc, B_offset, C_data, C_offset, scale_out, scale_in_a,
                  scale_in_b, a_regs=False)


def ptx_wgmma_rs(dtype, wgmma_prefix, b_is_k_major, a_dtype_abbrv, b_dtype_abbrv, accum_dtype_abbrv, A_buf, A_offset,
                 B_desc, B_offset, C_data, C_offset, scale_out, scale_in_a, scale_in_b) -> Call:  # noqa: N803
    """`wgmma.mma_async` with A in this thread's registers (the wgmma A fragment) and B in shared memory."""
    what = "T.ptx_wgmma_rs"
    a = pointer(A_buf, A_offset, what)
    require_scope(a, ("local",), what, "A fragment")
    return _wgmma(what, dtype, wgmma_prefix, True, b_is_k_major, a_dtype_abbrv, b_dtype_abbrv, accum_dtype_abbrv, address(a),
                  B_desc, B_offset, C_data, C_offset, scale_out, scale_in_a, scale_in_b, a_regs=True)


__all__ = ["alloc_descriptor", "alloc_wgmma_desc", "increase_descriptor_offset", "initialize_wgmma_descriptor",
           "ptx_wgmma_rs", "ptx_wgmma_ss"]
