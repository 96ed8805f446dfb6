"""TileLang 0.1.13's bit searches, with CUDA's definitions:

- `T.__ffs(x)` -> int32: the one-based position of the least significant set bit of a 32- or
  64-bit integer, 0 when x is 0 (CUDA `__ffs` / `__ffsll`);
- `T.__fns(mask, base, offset)` -> uint32: the position of the offset-th set bit of the 32-bit
  mask counted from bit `base` (upwards for offset > 0, downwards for offset < 0, base itself
  included; offset 0 asks whether bit base is set), 0xFFFFFFFF when there is none (CUDA `__fns`,
  PTX `fns.b32`; base must be 0..31, as PTX leaves other bases undefined).

Both are built from operations every target already has (popcount, shifts, selects), so the CPU
target, the emulator, the PTX interpreter and HIP compute them alike; the CUDA source holds that
expression rather than the `__ffs` / `__fns` call."""
from __future__ import annotations

from ..errors import CompileError, DtypeError
from ..ir import dtype as _dt
from ..ir.expr import Call, Const, Expr, Select, as_expr, cast
from .loops import py_scalar

_NONE = 0xFFFFFFFF


def _integer(v, what: str, arg: str) -> Expr:
    v = py_scalar(v)
    if isinstance(v, bool) or not isinstance(v, (int, Expr)):
        raise DtypeError(f"{what} expects an integer {arg}, but got {type(v).__name__} {v!r}")
    e = as_expr(v)
    if not e.dtype.is_int:
        raise DtypeError(f"{what} expects an integer {arg}, but got {e.dtype}")
    return e


def _u32(e: Expr) -> Expr:
    return e if e.dtype == _dt.uint32 else cast(e, _dt.uint32)


def _popc(u: Expr) -> Expr:
    return cast(Call("popcount", [u], u.dtype), _dt.int32)


def __ffs(value) -> Expr:
    x = _integer(value, "T.__ffs", "argument")
    if x.dtype.bits not in (32, 64):
        raise DtypeError(f"T.__ffs expects a 32-bit or 64-bit integer argument, but got {x.dtype}")
    u = cast(x, _dt.uint32 if x.dtype.bits == 32 else _dt.uint64)  # same width: the same bits
    # u ^ (u - 1) sets the bits up to and including the lowest set one (unsigned: no overflow)
    return Select(u == 0, Const(0, _dt.int32), _popc(u ^ (u - 1)))


def _nth_from_low(m: Expr, k: Expr) -> Expr:
    """The position of the k-th (1-based) set bit of the uint32 m counted from bit 0, for
    1 <= k <= popcount(m): a binary search on the popcount of the low bits."""
    pos: Expr = Const(0, _dt.uint32)
    k = cast(k, _dt.int32)
    for step in (16, 8, 4, 2, 1):
        # the set bits below pos + step; the k-th is at or above it when they are fewer than k
        below = _popc(m & ((Const(1, _dt.uint32) << (pos + step)) - 1))  # pos + step <= 31
        pos = Select(below < k, pos + step, pos)
    return pos


def __fns(mask, base, offset) -> Expr:
    what = "T.__fns"
    m = _integer(mask, what, "mask argument")
    if m.dtype.bits != 32:
        raise DtypeError(f"T.__fns expects a 32-bit integer mask argument, but got {m.dtype}")
    b, off = _integer(base, what, "base"), _integer(offset, what, "offset")
    b_const = py_scalar(base)
    if isinstance(b_const, int) and not 0 <= b_const <= 31:
        raise CompileError(f"T.__fns: base must be 0..31 (PTX leaves other bases undefined), got {b_const}")
    m, b = _u32(m), _u32(b) & 31
    off = cast(off, _dt.int32)
    one = Const(1, _dt.uint32)
    # offset > 0: the bits at and above base; the |offset|-th of them from below
    up = m & (Const(_NONE, _dt.uint32) << b)
    n_up = _popc(up)
    at_up = _nth_from_low(up, off)
    # offset < 0: the bits at and below base; the |offset|-th from above is the
    # (count - |offset| + 1)-th from below
    down = m & (Const(_NONE, _dt.uint32) >> (Const(31, _dt.uint32) - b))
    n_down = _popc(down)
    at_down = _nth_from_low(down, n_down + off + 1)
    none = Const(_NONE, _dt.uint32)
    return Select(off == 0, Select((m >> b) & one == one, b, none),
                  Select(off > 0, Select(off <= n_up, at_up, none),
                         Select(-off <= n_down, at_down, none)))
