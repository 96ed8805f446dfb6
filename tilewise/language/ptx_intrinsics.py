"""TileLang's PTX-level intrinsic calls (`T.ptx_ldmatrix`, `T.ptx_mma`, `T.ptx_cp_async`,
`T.ptx_commit_group`, `T.ptx_wait_group`, `T.cp_async_barrier_noinc`, `T.ptx_cp_async_barrier`,
`T.mma_store`, `T.mma_fill`), with TileLang 0.1.15's names and argument order, as the thread-IR
intrinsics of docs/THREAD_IR.md (`ldmatrix`, `mma_sync`, `cp_async`, `cp_async_commit`,
`cp_async_wait`, `cp_async_mbarrier_arrive`, plain stores). They are the
statements TensorCoreIntrinEmitter itself emits, so the CUDA renderer, the emulator (with its
race, bounds and partial-warp checks) and the PTX interpreter run them; the CPU target runs a
kernel using them thread-exactly in the emulator (as for T.get_thread_binding).

Pointer arguments take the forms of language/pointers.py. Forms tilewise has no instruction for
(Volta's mma.m8n8k4, sparse mma, fp8 / fp64 mma, saturating or xor-popc mma) are CompileErrors
naming them."""
from __future__ import annotations

from ..backend.cuda.mma_variants import mma_variant
from ..errors import CompileError, InternalError
from ..ir import dtype as _dt
from ..ir.builder import emit, require_kernel
from ..ir.expr import Call, Const, Expr, Select, Var, as_expr, const_value
from ..ir.stmt import BufferStore, For
from .loops import py_scalar
from .pointers import address, element, pointer, require_scope

# TileLang's dtype abbreviations (TensorCoreIntrinEmitter.dtype_abbrv) and PTX's, to IR names
_ABBRV = {
    "fp16": "float16", "f16": "float16", "float16": "float16", "bf16": "bfloat16", "bfloat16": "bfloat16",
    "fp32": "float32", "f32": "float32", "float32": "float32", "tf32": "float32", "tfloat32": "float32",
    "int8": "int8", "s8": "int8", "uint8": "uint8", "u8": "uint8", "int32": "int32", "s32": "int32",
    "int4": "int4", "s4": "int4", "uint4": "uint4", "u4": "uint4",
}  # fmt: skip
_NO_MMA = {"fp64": "float64 (mma.m8n8k4.f64)", "f64": "float64 (mma.m8n8k4.f64)", "float64": "float64 (mma.m8n8k4.f64)",
           "e4m3": "float8 (sm_89's mma.e4m3)", "e5m2": "float8 (sm_89's mma.e5m2)",
           "float8_e4m3": "float8 (sm_89's mma.e4m3)", "float8_e5m2": "float8 (sm_89's mma.e5m2)",
           "b1": "1-bit (mma.b1 with xor/and popc)"}  # fmt: skip


def _thread_kernel(what: str):
    k = require_kernel(what)
    k.thread_binding_used = True  # a thread-level statement: the CPU runs the kernel thread-exactly
    return k


def _const_int(v, what: str) -> int:
    v = py_scalar(v)
    if isinstance(v, Expr):
        v = const_value(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise CompileError(f"{what} must be a compile-time integer, got {v!r}")
    return v


def _const_bool(v, what: str) -> bool:
    v = py_scalar(v)
    if isinstance(v, Expr):
        v = const_value(v)
    if not isinstance(v, (bool, int)):
        raise CompileError(f"{what} must be a compile-time boolean, got {v!r}")
    return bool(v)


def _is_dtype(x) -> bool:
    try:
        _dt.as_dtype(x)
        return isinstance(x, (str, _dt.DataType))
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------------- ldmatrix


def ptx_ldmatrix(*args, **kwargs) -> Call:
    """`T.ptx_ldmatrix(trans, num, src_access_ptr, dst_access_ptr)` (TileLang 0.1.15): `num` (1, 2
    or 4) 8x8 matrices of 16-bit elements from shared memory into this thread's registers
    (`ldmatrix.sync.aligned.m8n8.x{num}{.trans}.shared.b16`); each lane gives the address of row
    lane % (8 * num). The form of earlier TileLang, `T.ptx_ldmatrix(dtype, trans, num, ".b16",
    local_ptr, local_offset, smem_ptr, smem_offset)`, is accepted too."""
    what = "T.ptx_ldmatrix"
    kwargs.pop("dtype", None)
    if kwargs:
        raise CompileError(f"{what}: unexpected keyword arguments {sorted(kwargs)}")
    if len(args) == 8:
        _, trans, num, kind, local_ptr, local_off, smem_ptr, smem_off = args
        if str(kind) not in (".b16", "b16"):
            raise CompileError(f"{what}: the element type must be '.b16' (ldmatrix moves 16-bit elements), got {kind!r}")
        dst = pointer(local_ptr, local_off, what)
        src = pointer(smem_ptr, smem_off, what)
    elif len(args) == 5 and _is_dtype(args[0]):
        _, trans, num, src_ptr, dst_ptr = args
        src, dst = pointer(src_ptr, 0, what), pointer(dst_ptr, 0, what)
    elif len(args) == 4:
        trans, num, src_ptr, dst_ptr = args
        src, dst = pointer(src_ptr, 0, what), pointer(dst_ptr, 0, what)
    else:
        raise CompileError(f"{what}: expected (trans, num, src_access_ptr, dst_access_ptr), got {len(args)} arguments")
    _thread_kernel(what)
    n = _const_int(num, f"{what}: num")
    if n not in (1, 2, 4):
        raise CompileError(f"{what}: num (the number of 8x8 matrices) must be 1, 2 or 4, got {n}")
    require_scope(src, ("shared",), what, "source")
    require_scope(dst, ("local",), what, "destination")
    return Call("ldmatrix", [address(dst), address(src)], _dt.handle, {"num": n, "trans": _const_bool(trans, what)})


# ---------------------------------------------------------------------------------- mma


def _mma_dtype(name, what: str) -> str:
    s = str(name).lstrip(".")
    if s in _NO_MMA:
        raise CompileError(f"{what}: {_NO_MMA[s]} operands have no mma.sync form in tilewise")
    if s not in _ABBRV:
        raise CompileError(f"{what}: unknown mma operand type {name!r}; tilewise's mma.sync takes fp16, bf16, tf32, "
                           "int8/uint8, int4/uint4 operands with fp16/fp32/int32 accumulators")
    return _ABBRV[s]


def ptx_mma(*args, **kwargs) -> Call:
    """`T.ptx_mma(dtype, shape, A_layout, B_layout, A_dtype, B_dtype, C_dtype, multiplicand_a,
    a_index, multiplicand_b, b_index, accumulator, c_index, saturate, operator=None)`: one warp-wide
    `mma.sync.aligned.{shape}.row.col` (D = A x B + C, D written over C) on this thread's register
    fragments, each given as a local buffer's `.data` and an element offset."""
    what = "T.ptx_mma"
    if "dtype" in kwargs:
        args = (kwargs.pop("dtype"),) + args
    operator = kwargs.pop("operator", None)
    if kwargs:
        raise CompileError(f"{what}: unexpected keyword arguments {sorted(kwargs)}")
    if len(args) == 15:
        operator, args = args[14], args[:14]
    if len(args) != 14:
        raise CompileError(f"{what}: expected (dtype, shape, A_layout, B_layout, A_dtype, B_dtype, C_dtype, "
                           f"multiplicand_a, a_index, multiplicand_b, b_index, accumulator, c_index, saturate), got "
                           f"{len(args)} arguments")
    dtype, shape, a_layout, b_layout, a_t, b_t, c_t, a, ai, b, bi, c, ci, saturate = args
    _thread_kernel(what)
    shape = str(shape)
    at, bt, ct = _mma_dtype(a_t, what), _mma_dtype(b_t, what), _mma_dtype(c_t, what)
    _check_result_type(dtype, ct, what)
    if shape == "m8n8k4":
        raise CompileError(f"{what}: shape m8n8k4 is Volta's (sm_70) mma; tilewise targets sm_80 and sm_90a")
    if (str(a_layout), str(b_layout)) != ("row", "col"):
        raise CompileError(f"{what}: the layouts must be A 'row' and B 'col' (the only ones of mma.{shape}), got "
                           f"{a_layout!r}, {b_layout!r}")
    if _const_bool(saturate, f"{what}: saturate"):
        raise CompileError(f"{what}: saturate=True (.satfinite) is not supported; pass False")
    if operator is not None:
        raise CompileError(f"{what}: operator={operator!r} (the b1 xor/and-popc forms) is not supported")
    try:
        mma_variant(shape, at, bt, ct)
    except InternalError as e:
        raise CompileError(f"{what}: {e}".replace("mma_sync: ", "")) from None
    loads = []
    for buf, idx, role in ((a, ai, "A fragment"), (b, bi, "B fragment"), (c, ci, "accumulator")):
        load = pointer(buf, idx, what)
        require_scope(load, ("local",), what, role)
        loads.append(load)
    return Call("mma_sync", [address(x) for x in loads], _dt.handle,
                {"shape": shape, "a_dtype": at, "b_dtype": bt, "c_dtype": ct})


def _check_result_type(dtype, c_type: str, what: str) -> None:
    """The call's result dtype is the accumulator's (TileLang passes both)."""
    if _mma_dtype(dtype, what) != c_type:
        raise CompileError(f"{what}: the result type {dtype} differs from the accumulator type {c_type}")


def ptx_mma_sm70(*args, **kwargs):
    """Volta's mma.m8n8k4: not an instruction of tilewise's targets."""
    raise CompileError("T.ptx_mma_sm70: mma.m8n8k4 is a Volta (sm_70) instruction; tilewise targets sm_80, sm_90a, "
                       "CPU and HIP: use T.ptx_mma (m16n8k16) or T.gemm")


def mma_store(dtype, m, n, dst_ptr, src_ptr, src_offset, dst_stride) -> None:
    """`T.mma_store(dtype, m, n, dst_ptr, src_ptr, src_offset, dst_stride)`: the warp's m x n
    accumulator tile (m = 16, n = 16 or 8: one or two m16n8 mma fragments, n / 4 elements per
    thread, starting at `src_offset` of the register buffer) into memory: the element (row, col)
    to `dst_ptr + row * dst_stride + col`."""
    what = "T.mma_store"
    k = _thread_kernel(what)
    mm, nn = _const_int(m, f"{what}: m"), _const_int(n, f"{what}: n")
    if mm != 16 or nn not in (8, 16):
        raise CompileError(f"{what}: tiles of m=16 and n=8 or 16 (mma.m16n8 accumulators) are supported, got {mm} x {nn}")
    dst = pointer(dst_ptr, 0, what)
    require_scope(dst, ("shared", "global"), what, "destination")
    src = pointer(src_ptr, src_offset, what)
    require_scope(src, ("local",), what, "source")
    stride = as_expr(py_scalar(dst_stride), _dt.int32)
    lane = _flat_thread(k) % 32
    r = Var("local_id", _dt.int32)
    # the m16n8 accumulator fragment (PTX ISA, "Matrix Fragments for mma.m16n8k16", C/D): c0 c1
    # in row lane / 4, c2 c3 eight rows below, columns 2 * (lane % 4) + {0, 1}; registers 4-7 are
    # the second m16n8 tile, eight columns to the right
    row = lane // 4 + 8 * ((r % 4) // 2)
    col = 8 * (r // 4) + 2 * (lane % 4) + r % 2
    value: Expr = element(src.buffer, list(src.indices), r)
    out = element(dst.buffer, list(dst.indices), row * stride + col)
    if value.dtype != out.buffer.dtype:
        value = value.astype(out.buffer.dtype)
    del dtype  # the values' type is the register buffer's; stores convert to the destination's
    emit(For(r, 0, mm * nn // 32, "unroll", BufferStore(out.buffer, out.indices, value)))


def mma_fill(dtype, local_size, local_ptr, offset) -> None:
    """`T.mma_fill(dtype, local_size, local_ptr, offset)`: zero `local_size` accumulator
    registers from `offset`."""
    what = "T.mma_fill"
    _thread_kernel(what)
    size = _const_int(local_size, f"{what}: local_size")
    start = pointer(local_ptr, offset, what)
    require_scope(start, ("local",), what, "accumulator")
    i = Var("i", _dt.int32)
    at = element(start.buffer, list(start.indices), i)
    zero = Const(0, start.buffer.dtype)
    del dtype
    emit(For(i, 0, size, "unroll", BufferStore(at.buffer, at.indices, zero)))


def _flat_thread(k) -> Expr:
    tid: Expr = k.thread_vars[0]
    stride = k.threads[0]
    for v, n in zip(k.thread_vars[1:], k.threads[1:]):
        tid = tid + v * stride
        stride *= n
    return tid


# ---------------------------------------------------------------------------------- cp.async


def ptx_cp_async(dst_access_ptr, src_access_ptr, num_elems, predicate=None) -> Call:
    """`T.ptx_cp_async(dst_access_ptr, src_access_ptr, num_elems, predicate=None)`: an asynchronous
    copy of num_elems elements (4, 8 or 16 bytes) from global to shared memory
    (`cp.async.shared.global`); with a predicate that is false, the destination is zero-filled.
    The data lands at the `T.ptx_wait_group` that completes the copy's group, or when the phase of
    an mbarrier that T.cp_async_barrier_noinc / T.ptx_cp_async_barrier made track it completes."""
    what = "T.ptx_cp_async"
    _thread_kernel(what)
    dst = pointer(dst_access_ptr, 0, what)
    src = pointer(src_access_ptr, 0, what)
    require_scope(dst, ("shared",), what, "destination")
    require_scope(src, ("global",), what, "source")
    if dst.buffer.dtype.bits != src.buffer.dtype.bits:
        raise CompileError(f"{what}: {dst.buffer.name} ({dst.buffer.dtype}) and {src.buffer.name} "
                           f"({src.buffer.dtype}) have elements of different sizes")
    n = _const_int(num_elems, f"{what}: num_elems")
    bits = n * dst.buffer.dtype.bits
    if bits % 8 or bits // 8 not in (4, 8, 16):
        raise CompileError(f"{what}: {n} elements of {dst.buffer.dtype} are {bits / 8:g} bytes; cp.async copies 4, 8 "
                           "or 16 bytes")
    nbytes = bits // 8
    size: Expr = Const(nbytes, _dt.int32)
    if predicate is not None:
        p = as_expr(py_scalar(predicate))
        if not p.dtype.is_bool:
            p = p != 0
        size = Select(p, size, Const(0, _dt.int32))
    return Call("cp_async", [address(dst), address(src), size], _dt.handle, {"bytes": nbytes})


def ptx_commit_group() -> Call:
    """`cp.async.commit_group`: this thread's cp.async copies since the last commit form a group."""
    _thread_kernel("T.ptx_commit_group")
    return Call("cp_async_commit", [], _dt.handle)


def ptx_wait_group(num) -> Call:
    """`cp.async.wait_group num`: all but the newest `num` groups of this thread have landed."""
    what = "T.ptx_wait_group"
    _thread_kernel(what)
    n = _const_int(num, f"{what}: num")
    if n < 0:
        raise CompileError(f"{what}: num must be at least 0, got {n}")
    return Call("cp_async_wait", [], _dt.handle, {"n": n})


def _cp_async_arrive(what: str, barrier, noinc: bool) -> Call:
    from .hopper import _address, _barrier  # the barrier forms T.mbarrier_arrive takes

    _thread_kernel(what)
    return Call("cp_async_mbarrier_arrive", [_address(_barrier(barrier, what))], _dt.handle, {"noinc": noinc})


def ptx_cp_async_barrier(barrier) -> Call:
    """`cp.async.mbarrier.arrive.shared::cta.b64 [barrier]`: an arrival on the mbarrier, triggered
    when every earlier cp.async of this thread (committed or not) has landed. The barrier's
    pending count is incremented first, so the triggered arrival cancels out: each thread still
    arrives itself (T.mbarrier_arrive) and the barrier's count is unchanged. `barrier`: a
    T.alloc_barrier barrier, an element of one, or an id of T.create_list_of_mbarrier."""
    return _cp_async_arrive("T.ptx_cp_async_barrier", barrier, noinc=False)


def cp_async_barrier_noinc(barrier) -> Call:
    """`cp.async.mbarrier.arrive.noinc.shared::cta.b64 [barrier]`: as T.ptx_cp_async_barrier, but
    the pending count is not incremented, so the arrival triggered when this thread's earlier
    cp.async copies land is one of the arrivals the barrier's count expects (TileLang's
    deepseek_v32 producers: count 128, each of the 128 producer threads arrives this way only)."""
    return _cp_async_arrive("T.cp_async_barrier_noinc", barrier, noinc=True)


def ptx_cp_async_bulk(*args, **kwargs):
    raise CompileError("T.ptx_cp_async_bulk: the non-tensor bulk copy (cp.async.bulk.shared.global) is not supported; "
                       "tilewise's TMA copies go through tensor maps: T.tma_copy, T.copy on sm_90a, or "
                       "T.create_tma_descriptor + T.tma_load")


__all__ = ["cp_async_barrier_noinc", "mma_fill", "mma_store", "ptx_commit_group", "ptx_cp_async", "ptx_cp_async_barrier",
           "ptx_cp_async_bulk", "ptx_ldmatrix", "ptx_mma", "ptx_mma_sm70", "ptx_wait_group"]
