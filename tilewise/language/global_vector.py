"""TileLang's explicit global-memory vector loads and stores and the vector dtypes they use:
`T.ldg32/64/128/256(src, pred=None)`, `T.stg32/64/128/256(dst, value, pred=None)`,
`T.float32x2`, `T.float16x8`, `T.uint32x4`, ... (element type x 2, 4, 8, 16, 32, 64 lanes).

- `src` / `dst`: an element (`x[i]`: the bytes from there), a slice (`x[i:i+4]`, which must
  cover exactly the width) or a buffer, of a global tensor.
- `T.ldgN` moves N bits in one vector load into registers. `T.ldg32` gives a uint32 value; the
  wider ones a vector value (uint32 x N/32) for `T.reinterpret(v, T.float32x2)`, `T.stgN` or a
  slice assignment `Y[i:i+2] = v` (one vector store). With `pred`, the load happens only where
  it is true and the value is zero elsewhere.
- `T.stgN(dst, value, pred=None)`: one vector store of a value of N bits (a vector value, or a
  32-bit scalar for `T.stg32`), only where `pred` holds.

Each move is the thread IR's `copy_vec` (docs/THREAD_IR.md): one LDG/STG of 4, 8 or 16 bytes on
CUDA (256 bits are two 128-bit moves: one 256-bit access needs sm_100, which tilewise does not
target), `memcpy` on the CPU. Vector values live in registers (`local` buffers);
`T.reinterpret` of one is a register copy the compiler removes."""
from __future__ import annotations

import functools
import itertools

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.builder import emit, require_kernel
from ..ir.expr import BufferLoad, Call, Const, Expr, as_expr, cast, const_value
from ..ir.stmt import Allocate, BufferStore, Evaluate, IfThenElse
from ..ir.vector import Vector, is_vector, snapshot

LANES = (2, 4, 8, 16, 32, 64)
_counter = itertools.count()


class VectorDType:
    """`T.float32x4`: `lanes` elements of `element` (for T.reinterpret of vector values)."""

    def __init__(self, element: _dt.DataType, lanes: int):
        self.element = element
        self.lanes = lanes
        self.name = f"{element.name}x{lanes}"
        self.bits = element.bits * lanes

    def __repr__(self) -> str:
        return self.name

    def __str__(self) -> str:
        return self.name

    def __call__(self, *values):
        """`T.float32x4(a, b, c, d)`: a vector value of these lanes (language/vector_values.py)."""
        from .vector_values import make_vector

        return make_vector(self, *values)


@functools.cache
def vector_dtype_names() -> frozenset[str]:
    """The names of vector_dtypes() ("float32x4", ...)."""
    return frozenset(vector_dtypes())


def vector_dtypes() -> dict[str, VectorDType]:
    out = {}
    for name in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "bfloat16",
                 "float32", "float64", "float8_e4m3", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
                 "float8_e8m0fnu"):
        for n in LANES:
            out[f"{name}x{n}"] = VectorDType(_dt.as_dtype(name), n)
    for n in LANES:  # TileLang's spelling of e4m3
        out[f"float8_e4m3fnx{n}"] = out[f"float8_e4m3x{n}"]
    return out


class VectorValue(Vector):
    """A vector of `lanes` values of `dtype` in the registers `regs` (a local buffer written once,
    when the value is made): a vector value (ir/vector.py) whose lanes are those registers."""

    stable = True

    def __init__(self, regs: Buffer):
        self.regs = regs
        n = int(regs.shape[0])
        super().__init__([BufferLoad(regs, [Const(k, _dt.int32)]) for k in range(n)], regs.dtype)

    def __repr__(self) -> str:
        return f"<{self.dtype}x{self.lanes} in {self.regs.name}>"


def in_registers(value: Vector) -> VectorValue:
    """The vector in registers of its own (for a vector move or a reinterpretation)."""
    if isinstance(value, VectorValue):
        return value
    regs = _regs(value.dtype, value.lanes)
    for k, e in enumerate(value.values):
        emit(BufferStore(regs, [Const(k, _dt.int32)], e))
    return VectorValue(regs)


def _regs(dtype: _dt.DataType, n: int, zero: bool = False) -> Buffer:
    require_kernel("a vector value")
    b = Buffer(f"vec_{next(_counter)}", (n,), dtype, "local")
    emit(Allocate(b, Const(0, dtype) if zero else None))
    return b


def _addr(buf: Buffer, idx) -> Call:
    return Call("address_of", [BufferLoad(buf, list(idx))], _dt.handle)


def _moves(dst: Buffer, d_idx, src: Buffer, s_idx, nbytes: int) -> list:
    """copy_vec statements moving nbytes (4, 8, 16 or 32) from src[s_idx] to dst[d_idx]."""
    out = []
    for part in range(0, nbytes, 16):
        n = min(16, nbytes - part)
        d = _shift(dst, d_idx, part)
        s = _shift(src, s_idx, part)
        out.append(Evaluate(Call("copy_vec", [_addr(dst, d), _addr(src, s)], _dt.handle, {"bytes": n})))
    return out


def _shift(buf: Buffer, idx, nbytes: int):
    if nbytes == 0:
        return list(idx)
    if nbytes % buf.dtype.bytes:
        raise CompileError(f"a 16-byte half of a 256-bit move does not start at an element of {buf.name}")
    idx = list(idx)
    idx[-1] = as_expr(idx[-1]) + nbytes // buf.dtype.bytes
    return idx


def _global_start(x, bits: int, what: str):
    """(buffer, start indices) of a global operand covering `bits` bits."""
    if isinstance(x, Buffer):
        x = BufferRegion.full(x)
    if isinstance(x, BufferLoad):
        buf, idx, count = x.buffer, list(x.indices), None
    elif isinstance(x, BufferRegion):
        buf, idx = x.buffer, list(x.starts)
        count = 1
        for e in x.extents:
            c = e if isinstance(e, int) else const_value(e)
            if c is None:
                raise CompileError(f"{what}: the slice of {buf.name} must have a constant size, got {x}")
            count *= c
        if any((e if isinstance(e, int) else const_value(e)) != 1 for e in x.extents[:-1]):
            raise CompileError(f"{what}: the slice of {buf.name} must be contiguous (only its last dimension "
                               f"wider than 1), got {x}")
    else:
        raise CompileError(f"{what} takes an element, a slice or a buffer of a global tensor, got {x!r}")
    if not buf.is_global:
        raise CompileError(f"{what} moves global memory; {buf.name} is {buf.scope}")
    if bits % buf.dtype.bits:
        raise CompileError(f"{what}: {bits} bits are not a whole number of {buf.name}'s {buf.dtype} elements")
    if count is not None and count * buf.dtype.bits != bits:
        raise CompileError(f"{what}: the slice {x} of {buf.name} holds {count * buf.dtype.bits} bits, not {bits}")
    return buf, idx


def _predicated(stmts: list, pred, what: str):
    if pred is None:
        return stmts
    p = as_expr(pred.load_var() if isinstance(pred, Buffer) and pred.is_var else pred)
    if not (p.dtype.is_bool or p.dtype.is_int):
        raise CompileError(f"{what}: pred must be a condition, got {p} of type {p.dtype}")
    return [IfThenElse(p if p.dtype.is_bool else p != 0, stmts[0] if len(stmts) == 1 else _seq(stmts))]


def _seq(stmts):
    from ..ir.stmt import seq

    return seq(stmts)


def _ldg(bits: int):
    what = f"T.ldg{bits}"

    def ldg(src, pred=None):
        buf, idx = _global_start(src, bits, what)
        regs = _regs(_dt.uint32, bits // 32, zero=pred is not None)
        for s in _predicated(_moves(regs, [Const(0, _dt.int32)], buf, idx, bits // 8), pred, what):
            emit(s)
        if bits == 32:
            return BufferLoad(regs, [Const(0, _dt.int32)])
        return VectorValue(regs)

    ldg.__name__ = f"ldg{bits}"
    ldg.__doc__ = f"Load {bits} bits of global memory in one vector load (see the module doc)."
    return ldg


def _value_regs(value, bits: int, what: str) -> Buffer:
    """Registers holding `value` (a vector value or a scalar of `bits` bits)."""
    if is_vector(value):
        if value.bits != bits:
            raise CompileError(f"{what}: the value has {value.bits} bits ({value.dtype} x {value.lanes}), not {bits}")
        return in_registers(value).regs
    if isinstance(value, Buffer) and value.is_var:
        value = value.load_var()
    if isinstance(value, Buffer) and value.scope == "local" and len(value.shape) == 1:
        if value.dtype.bits * int(value.shape[0]) != bits:
            raise CompileError(f"{what}: {value.name} holds {value.dtype.bits * int(value.shape[0])} bits, not {bits}")
        return value
    if isinstance(value, (Expr, int)):
        e = as_expr(value, _dt.uint32 if isinstance(value, int) else None)
        if e.dtype.bits != bits:
            raise CompileError(f"{what}: the value {e} has {e.dtype.bits} bits ({e.dtype}), not {bits}")
        regs = _regs(e.dtype, 1)
        emit(BufferStore(regs, [Const(0, _dt.int32)], e))
        return regs
    raise CompileError(f"{what}: the value must be a vector value (T.ldg*) or a {bits}-bit scalar, got {value!r}")


def _stg(bits: int):
    what = f"T.stg{bits}"

    def stg(dst, value, pred=None) -> None:
        buf, idx = _global_start(dst, bits, what)
        regs = _value_regs(value, bits, what)
        for s in _predicated(_moves(buf, idx, regs, [Const(0, _dt.int32)], bits // 8), pred, what):
            emit(s)

    stg.__name__ = f"stg{bits}"
    stg.__doc__ = f"Store {bits} bits to global memory in one vector store (see the module doc)."
    return stg


ldg32, ldg64, ldg128, ldg256 = (_ldg(b) for b in (32, 64, 128, 256))
stg32, stg64, stg128, stg256 = (_stg(b) for b in (32, 64, 128, 256))


def reinterpret_vector(value: Vector, dtype) -> VectorValue:
    """T.reinterpret(v, T.float32x2): the same bits as another vector type (a register copy)."""
    value = in_registers(value)
    if isinstance(dtype, str):
        dtype = vector_dtypes().get(dtype, dtype)
    if not isinstance(dtype, VectorDType):
        raise CompileError(f"T.reinterpret of a vector value ({value.dtype} x {value.lanes}) takes a vector dtype "
                           f"such as T.float32x{value.lanes}, got {dtype!r}")
    if dtype.bits != value.bits:
        raise CompileError(f"T.reinterpret: the value has {value.bits} bits but {dtype} has {dtype.bits}")
    regs = _regs(dtype.element, dtype.lanes)
    for s in _moves(regs, [Const(0, _dt.int32)], value.regs, [Const(0, _dt.int32)], value.bits // 8):
        emit(s)
    return VectorValue(regs)


def store_vector(region: BufferRegion, value: Vector) -> None:
    """`Y[i:i+n] = v`: v's lanes into the slice; one vector move when v is in registers (T.ldg*,
    T.reinterpret) and Y is global and of v's element type, else one store per lane (converted to
    Y's element type, as a scalar store is)."""
    what = f"storing a {value.dtype} x {value.lanes} vector into {region}"
    buf = region.buffer
    if isinstance(value, VectorValue) and buf.dtype != value.dtype:
        raise CompileError(f"{what}: {buf.name} holds {buf.dtype}; T.reinterpret the value to {buf.dtype.name}x"
                           f"{value.bits // buf.dtype.bits} first")
    if isinstance(value, VectorValue) and buf.is_global:
        b, idx = _global_start(region, value.bits, what)
        for s in _moves(b, idx, value.regs, [Const(0, _dt.int32)], value.bits // 8):
            emit(s)
        return
    ext = [e if isinstance(e, int) else const_value(e) for e in region.extents]
    if ext[-1] != value.lanes or any(e != 1 for e in ext[:-1]):
        raise CompileError(f"{what}: the slice must hold {value.lanes} consecutive elements along its last "
                           f"dimension, got extents {ext}")
    if _reads(value, buf):  # every lane is read before the first store, as one vector store does
        value = snapshot(value, "stored")
    idx = list(region.starts)
    for k in range(value.lanes):  # registers or shared memory: element by element
        i = list(idx)
        i[-1] = as_expr(i[-1]) + k
        emit(BufferStore(buf, i, cast(value.values[k], buf.dtype)))


def _reads(value: Vector, buf: Buffer) -> bool:
    from ..ir.visitor import collect_loads

    return any(ld.buffer is buf for e in value.values for ld in collect_loads(e))
