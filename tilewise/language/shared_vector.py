"""TileLang 0.1.15's explicit shared-memory vector loads and stores, the shared counterparts of
`T.ldg*` / `T.stg*` (language/global_vector.py): `T.lds32/64/128(src)` and
`T.sts32/64/128(dst, value)`.

- `src` / `dst`: an element (`s[i]`: the bytes from there), a slice covering exactly the width
  (`s[i, j:j+4]`) or a whole buffer of that size, of a shared buffer.
- `T.lds32` gives a uint32 value, `T.lds64` / `T.lds128` a vector value of 2 / 4 uint32
  (TileLang's uint32x2 / uint32x4) for `T.reinterpret(v, T.float32x4)`, `T.sts*`, `T.stg*` or a
  slice assignment.
- `T.stsN(dst, value)`: one vector store of a value of N bits (a vector value, or a 32-bit scalar
  for `T.sts32`).

Each move is the thread IR's `copy_vec` (one LDS/STS of 4, 8 or 16 bytes on CUDA, `memcpy` on the
CPU); the address must be aligned to the width, which the emulator checks (misaligned vector
accesses fault on the GPU)."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.builder import emit
from ..ir.expr import BufferLoad, Const, const_value
from . import global_vector as _gv


def _shared_start(x, bits: int, what: str):
    """(buffer, start indices) of a shared operand covering `bits` bits."""
    if isinstance(x, Buffer):
        x = BufferRegion.full(x)
    if isinstance(x, BufferLoad):
        buf, idx, count = x.buffer, list(x.indices), None
    elif isinstance(x, BufferRegion):
        buf, idx = x.buffer, list(x.starts)
        ext = [e if isinstance(e, int) else const_value(e) for e in x.extents]
        if any(e is None for e in ext):
            raise CompileError(f"{what}: the slice of {buf.name} must have a constant size, got {x}")
        if any(e != 1 for e in ext[:-1]):
            raise CompileError(f"{what}: the slice of {buf.name} must be contiguous (only its last dimension wider "
                               f"than 1), got {x}")
        count = 1
        for e in ext:
            count *= e
    else:
        raise CompileError(f"{what} takes an element, a slice or a buffer of a shared buffer, got {x!r}")
    if not buf.scope.startswith("shared"):
        raise CompileError(f"{what} moves shared memory; {buf.name} is {buf.scope} (T.ldg*/T.stg* move global memory)")
    if bits % buf.dtype.bits:
        raise CompileError(f"{what}: {bits} bits are not a whole number of {buf.name}'s {buf.dtype} elements")
    if count is not None and count * buf.dtype.bits != bits:
        raise CompileError(f"{what}: the slice {x} of {buf.name} holds {count * buf.dtype.bits} bits, not {bits}")
    return buf, idx


def _lds(bits: int):
    what = f"T.lds{bits}"

    def lds(src):
        buf, idx = _shared_start(src, bits, what)
        regs = _gv._regs(_dt.uint32, bits // 32)
        for s in _gv._moves(regs, [Const(0, _dt.int32)], buf, idx, bits // 8):
            emit(s)
        if bits == 32:
            return BufferLoad(regs, [Const(0, _dt.int32)])
        return _gv.VectorValue(regs)

    lds.__name__ = f"lds{bits}"
    lds.__doc__ = f"Load {bits} bits of shared memory in one vector load (see the module doc)."
    return lds


def _sts(bits: int):
    what = f"T.sts{bits}"

    def sts(dst, value) -> None:
        buf, idx = _shared_start(dst, bits, what)
        regs = _gv._value_regs(value, bits, what)
        for s in _gv._moves(buf, idx, regs, [Const(0, _dt.int32)], bits // 8):
            emit(s)

    sts.__name__ = f"sts{bits}"
    sts.__doc__ = f"Store {bits} bits to shared memory in one vector store (see the module doc)."
    return sts


lds32, lds64, lds128 = (_lds(b) for b in (32, 64, 128))
sts32, sts64, sts128 = (_sts(b) for b in (32, 64, 128))
