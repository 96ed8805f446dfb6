"""Warp-level primitives of the expert tier, with TileLang's names and argument order:
`T.shfl_xor / shfl_down / shfl_up / shfl_sync(value, delta_or_lane, width=32, mask=0xffffffff)`,
TVM's `T.tvm_warp_shuffle(mask, value, lane, width, warp_size)` (and `_up` / `_down`), and
`T.warp_reduce_sum / max / min / bitand / bitor(value)`, after which every lane of the warp holds
the combination of all 32 lanes' values.

They become the `shfl_*` intrinsics of docs/THREAD_IR.md, the ones tilewise's own reductions use
(`__shfl_*_sync` on CUDA; the emulator and the PTX interpreter take their semantics from the
ISA). A shuffle is executed by the whole warp: the mask must name all 32 lanes (the emulator
reports a warp in which some lanes do not execute it). Using one makes the kernel a thread-level
kernel, which the CPU target runs thread-exactly in the emulator (as for T.get_thread_binding)."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer
from ..ir.builder import emit, require_kernel
from ..ir.expr import BufferLoad, Call, Const, Expr, as_expr, binary, const_value
from ..ir.stmt import Allocate, BufferStore
from .loops import py_scalar

FULL_MASK = 0xFFFFFFFF
_WIDTHS = (1, 2, 4, 8, 16, 32, 64)  # 64: a whole AMD wavefront (the "hip" target only)


def _value(v, what: str) -> Expr:
    v = py_scalar(v)
    if isinstance(v, Buffer):
        v = as_expr(v)
    if isinstance(v, bool):
        return Const(v, _dt.bool_)
    if isinstance(v, int):
        return Const(v, _dt.int32)
    if isinstance(v, float):
        return Const(v, _dt.float32)
    if not isinstance(v, Expr):
        raise CompileError(f"{what}: expected a scalar value, got {type(v).__name__} {v!r}")
    return v


def _lane_arg(v, what: str) -> Expr:
    e = _value(v, what)
    if not e.dtype.is_int:
        raise CompileError(f"{what}: the lane / offset must be an integer, got {e.dtype}")
    return e if e.dtype == _dt.int32 else e.astype(_dt.int32)


def _width(width, what: str) -> int:
    w = py_scalar(width)
    if isinstance(w, Expr):
        w = const_value(w)
    if not isinstance(w, int) or w not in _WIDTHS:
        raise CompileError(f"{what}: width must be a constant power of two up to 32 (64 on AMD GPUs), got {width}")
    return w


def _check_mask(mask, what: str) -> None:
    m = py_scalar(mask)
    if isinstance(m, Expr):
        m = const_value(m)
    if isinstance(m, int) and m & FULL_MASK == FULL_MASK:
        return
    raise CompileError(
        f"{what}: mask {mask} names only part of the warp; tilewise shuffles are executed by all 32 lanes "
        f"(mask 0xffffffff) — restructure the code so that the whole warp shuffles")


def _shuffle(name: str, value, arg, width, mask, what: str) -> Call:
    k = require_kernel(what)
    k.thread_binding_used = True  # a thread-level kernel: see jit/kernel.py
    _check_mask(mask, what)
    v = _value(value, what)
    return Call(name, [v, _lane_arg(arg, what)], v.dtype, {"width": _width(width, what)})


def shfl_xor(value, delta, width=32, mask=FULL_MASK) -> Call:
    """The value of lane `lane ^ delta` (within groups of `width` lanes)."""
    return _shuffle("shfl_xor", value, delta, width, mask, "T.shfl_xor")


def shfl_down(value, delta, width=32, mask=FULL_MASK) -> Call:
    """The value of lane `lane + delta` (a lane past the end of its group keeps its own)."""
    return _shuffle("shfl_down", value, delta, width, mask, "T.shfl_down")


def shfl_up(value, delta, width=32, mask=FULL_MASK) -> Call:
    """The value of lane `lane - delta` (a lane before the start of its group keeps its own)."""
    return _shuffle("shfl_up", value, delta, width, mask, "T.shfl_up")


def shfl_sync(value, srcLane, width=32, mask=FULL_MASK) -> Call:  # noqa: N803 - TileLang's name
    """The value of lane `srcLane` of the caller's group of `width` lanes. TileLang 0.1.8's form
    `T.shfl_sync(mask, value, srcLane, width=None)` (mask first) is told by its first argument: a
    Python integer followed by two more arguments (broadcasting a constant would be pointless)."""
    if isinstance(py_scalar(value), int) and not isinstance(py_scalar(value), bool) and _is_lane_like(width):
        old_mask, value, srcLane = value, srcLane, width
        return _shuffle("shfl_idx", value, srcLane, 32 if mask is FULL_MASK else mask, old_mask, "T.shfl_sync")
    return _shuffle("shfl_idx", value, srcLane, width, mask, "T.shfl_sync")


def _is_lane_like(x) -> bool:
    """The third positional argument of the mask-first form is a lane: an expression or an int
    that is not the default width."""
    x = py_scalar(x)
    return isinstance(x, Expr) or (isinstance(x, int) and x != 32) or x is None


def _warp_size(warp_size, what: str) -> None:
    """TVM's warp_size argument describes the shuffle's group (TVM's CUDA lowering drops it, as
    here); it must still be a constant power of two up to 32."""
    _width(warp_size, f"{what}: warp_size")


def tvm_warp_shuffle(mask, value, warp_id, width, warp_size) -> Call:
    """TVM's form of T.shfl_sync: the value of lane `warp_id` of the caller's group."""
    _warp_size(warp_size, "T.tvm_warp_shuffle")
    return _shuffle("shfl_idx", value, warp_id, width, mask, "T.tvm_warp_shuffle")


def tvm_warp_shuffle_up(mask, value, offset, width, warp_size) -> Call:
    _warp_size(warp_size, "T.tvm_warp_shuffle_up")
    return _shuffle("shfl_up", value, offset, width, mask, "T.tvm_warp_shuffle_up")


def tvm_warp_shuffle_down(mask, value, offset, width, warp_size) -> Call:
    _warp_size(warp_size, "T.tvm_warp_shuffle_down")
    return _shuffle("shfl_down", value, offset, width, mask, "T.tvm_warp_shuffle_down")


# ---------------------------------------------------------------------------- warp reductions

_COMBINE = {"sum": "add", "max": "max", "min": "min", "bitand": "bitand", "bitor": "bitor"}
_counter = [0]


def _warp_reduce(value, kind: str) -> BufferLoad:
    """A butterfly over the warp (offsets 16, 8, 4, 2, 1) in a register of the caller: emitted
    here as statements, the expression returned reads the result."""
    what = f"T.warp_reduce_{kind}"
    k = require_kernel(what)
    k.thread_binding_used = True
    v = _value(value, what)
    if kind in ("bitand", "bitor") and not (v.dtype.is_int or v.dtype.is_bool):
        raise CompileError(f"{what}: needs an integer value, got {v.dtype}")
    _counter[0] += 1
    reg = Buffer(f"warp_{kind}_{_counter[0]}", (1,), v.dtype, "local.var")
    emit(Allocate(reg, v))
    at = [Const(0, _dt.int32)]
    off = 16
    while off:
        cur = BufferLoad(reg, at)
        other = Call("shfl_xor", [cur, Const(off, _dt.int32)], v.dtype, {"width": 32})
        emit(BufferStore(reg, at, binary(_COMBINE[kind], cur, other)))
        off //= 2
    return BufferLoad(reg, at)


def warp_reduce_sum(value) -> BufferLoad:
    return _warp_reduce(value, "sum")


def warp_reduce_max(value) -> BufferLoad:
    return _warp_reduce(value, "max")


def warp_reduce_min(value) -> BufferLoad:
    return _warp_reduce(value, "min")


def warp_reduce_bitand(value) -> BufferLoad:
    return _warp_reduce(value, "bitand")


def warp_reduce_bitor(value) -> BufferLoad:
    return _warp_reduce(value, "bitor")


def sync_warp(mask=None) -> Call:
    """`__syncwarp()`: the lanes of the warp wait for each other, and their memory accesses
    before it are ordered before those after it. Executed by the whole warp (mask 0xffffffff)."""
    what = "T.sync_warp"
    k = require_kernel(what)
    k.thread_binding_used = True
    if mask is not None:
        _check_mask(mask, what)
    return Call("syncwarp", [], _dt.handle)
