"""TileLang's other element atomics (the tile and scalar T.atomic_add / max / min are in
atomic_add.py):

- `T.atomic_addx2(dst, value)` / `T.atomic_addx4(dst, value)`: adds the 2 / 4 consecutive
  elements starting at `value` (an element, a slice or a buffer of that many elements, in any
  memory) to those starting at `dst`. As with CUDA's vector atomicAdd, each element's update is
  atomic on its own (the pair is not one transaction), so they are issued as 2 / 4 element
  atomics, whatever the type. `value` may also be a vector value of as many lanes
  (ir/vector.py). With `return_prev=True` the call is a vector value of dst's element type (TileLang's
  `dst.dtype.with_lanes(n)`): lane k is element k's value before its update;
- `T.atomic_load(src, memory_order="seq_cst")`: the element's value (an expression);
- `T.atomic_store(dst, value, memory_order="seq_cst")`;
- `T.atomic_or(dst, value, memory_order=None)` on an integer element (`return_prev=True` gives
  the old value, in per-thread code).

Memory orders are TileLang's names; an ordered access on CUDA is fenced device-wide (relaxed is
not), and the CPU uses the same order."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.builder import emit, require_kernel
from ..ir.expr import BufferLoad, Call, Const, Expr, cast, const_value
from ..ir.stmt import Evaluate, seq
from ..ir.vector import is_vector, settled, vector_with_effects
from .atomic_add import _check_dst, _scalar, atomic_call

MEMORY_ORDER_IDS = {"relaxed": 0, "consume": 1, "acquire": 2, "release": 3, "acq_rel": 4, "seq_cst": 5}
LOAD_ORDERS = ("relaxed", "consume", "acquire", "seq_cst")
STORE_ORDERS = ("relaxed", "release", "seq_cst")


def _order(memory_order, allowed, what: str) -> Const:
    if memory_order not in allowed:
        # TileLang's wording ("atomic_load does not support memory_order=..."), which its tests match
        raise CompileError(f"{what} does not support memory_order={memory_order!r}; expected one of "
                           f"{', '.join(allowed)}")
    return Const(MEMORY_ORDER_IDS[memory_order], _dt.int32)


def _element(x, what: str, role: str) -> BufferLoad:
    if isinstance(x, BufferLoad):
        return x
    if isinstance(x, Buffer) and not x.is_var:
        x = BufferRegion.full(x)
    if isinstance(x, BufferRegion):
        if any(e != 1 for e in x.extents):
            raise CompileError(f"{what}: the {role} must be one element, got the region {x!r}")
        return BufferLoad(x.buffer, x.starts)
    raise CompileError(f"{what}: the {role} must be a buffer element such as A[i], got {x!r}")


def atomic_load(src, memory_order: str = "seq_cst") -> Expr:
    """The value of the element `src`, read atomically."""
    what = "T.atomic_load"
    require_kernel(what)
    e = _element(src, what, "source")
    _check_dst(e.buffer, what)
    return Call("atomic_load", [Call("address_of", [e], _dt.handle), _order(memory_order, LOAD_ORDERS, what)],
                e.buffer.dtype)


def atomic_store(dst, src, memory_order: str = "seq_cst") -> None:
    """Store `src` into the element `dst` atomically."""
    what = "T.atomic_store"
    require_kernel(what)
    d = _element(dst, what, "destination")
    _check_dst(d.buffer, what)
    order = _order(memory_order, STORE_ORDERS, what)
    addr = Call("address_of", [d], _dt.handle)
    emit(Evaluate(Call("atomic_store", [addr, _scalar(src, d.buffer, what), order], _dt.handle)))


def atomic_or(dst, value, memory_order: str | None = None, return_prev: bool = False):
    """dst |= value atomically on an integer element."""
    what = "T.atomic_or"
    require_kernel(what)
    if memory_order is not None and memory_order not in MEMORY_ORDER_IDS:
        raise CompileError(f"{what}: unknown memory_order {memory_order!r}; expected one of "
                           f"{', '.join(MEMORY_ORDER_IDS)}")
    if not isinstance(dst, BufferLoad):
        raise CompileError(f"{what}: the destination must be an integer element such as flags[i] (TileLang's "
                           f"atomic_or takes scalars only), got {dst!r}")
    _check_dst(dst.buffer, what)
    if not (dst.buffer.dtype.is_int or dst.buffer.dtype.is_bool):
        raise CompileError(f"{what}: the destination {dst.buffer.name} has type {dst.buffer.dtype}; it must be an "
                           "integer")
    v = _scalar(value, dst.buffer, what)
    if return_prev:  # at block level: see transform/guard_block_effects.py
        return Call("atomic_or", [Call("address_of", [dst], _dt.handle), v], dst.buffer.dtype)
    emit(atomic_call("or", dst, v))
    return None


def _lanes(x, lanes: int, what: str, role: str) -> BufferLoad:
    """The first of `lanes` consecutive elements along the last dimension."""
    if is_vector(x):  # a vector load, X[T.Ramp(i, 1, n)]: the elements it reads
        return _consecutive_loads(x, lanes, what, role)
    if isinstance(x, Buffer) and not x.is_var:
        x = BufferRegion.full(x)
    if isinstance(x, BufferRegion):
        ext = x.extents
        if any(e != 1 for e in ext[:-1]) or ext[-1] != lanes:
            raise CompileError(f"{what}: the {role} must be {lanes} consecutive elements along the last "
                               f"dimension, got {x!r}")
        return BufferLoad(x.buffer, x.starts)
    if isinstance(x, BufferLoad):
        return x
    raise CompileError(f"{what}: the {role} must be an element (the first of {lanes}) or a slice of {lanes} "
                       f"elements, got {x!r}")


def _is_vector_load(v) -> bool:
    """X[T.Ramp(i, 1, n)]: TileLang passes its address (the elements from there). T.Broadcast(X[i], n)
    is a vector value whose lanes all load one element, not a load of n elements."""
    if getattr(v, "is_broadcast", False):
        return False
    return all(isinstance(e, BufferLoad) for e in v.values) and not getattr(v, "effects", False)


def _consecutive_loads(v, lanes: int, what: str, role: str) -> BufferLoad:
    """The first element of a vector load whose lanes are `lanes` consecutive elements of one
    buffer along its last dimension (TileLang passes the load's address)."""
    from ..ir.simplify import simplify

    loads = list(v.values)
    ok = len(loads) == lanes and all(isinstance(e, BufferLoad) and e.buffer is loads[0].buffer for e in loads)
    if ok:
        first = loads[0].indices
        for k, e in enumerate(loads):
            diff = [simplify(a - b) for a, b in zip(e.indices, first)]
            if any(const_value(d) != 0 for d in diff[:-1]) or const_value(diff[-1]) != k:
                ok = False
                break
    if not ok:
        raise CompileError(f"{what}: a vector {role} must load {lanes} consecutive elements of one buffer along its "
                           f"last dimension (X[T.Ramp(i, 1, {lanes})]), got {v!r}")
    return loads[0]


def _shift(e: BufferLoad, k: int) -> BufferLoad:
    if k == 0:
        return e
    *lead, last = e.indices
    return BufferLoad(e.buffer, [*lead, last + k])


def _vector_add(lanes: int, dst, value, return_prev: bool):
    what = f"T.atomic_addx{lanes}"
    require_kernel(what)
    d = _lanes(dst, lanes, what, "destination")
    _check_dst(d.buffer, what)
    dt = d.buffer.dtype
    if is_vector(value) and not _is_vector_load(value):  # a vector value of as many lanes (T.float16x2(a, b))
        if value.lanes != lanes:
            raise CompileError(f"{what}: the value {value.type_name} has {value.lanes} lanes, not {lanes}")
        vals = [cast(e, dt) for e in settled(value).values]
    else:
        v = _lanes(value, lanes, what, "value")
        vals = [cast(_shift(v, k), dt) for k in range(lanes)]
    if return_prev:
        # the previous values, a vector of dst's type (TileLang: dst.dtype.with_lanes(lanes)); each
        # lane is its element's atomic update, as the statement form below (guard_block_effects
        # treats each lane's store like a scalar atomic_add(..., return_prev=True))
        prev = [Call("atomic_add", [Call("address_of", [_shift(d, k)], _dt.handle), vals[k]], dt)
                for k in range(lanes)]
        return vector_with_effects(prev, dt)
    emit(seq([atomic_call("add", _shift(d, k), vals[k]) for k in range(lanes)]))
    return None


def atomic_addx2(dst, value, return_prev: bool = False):
    """Atomically add the two elements starting at `value` (or a 2-lane vector value) to the two
    starting at `dst`; with return_prev=True the elements' previous values, as a 2-lane vector."""
    return _vector_add(2, dst, value, return_prev)


def atomic_addx4(dst, value, return_prev: bool = False):
    """Atomically add the four elements starting at `value` (or a 4-lane vector value) to the four
    starting at `dst`; with return_prev=True the elements' previous values, as a 4-lane vector."""
    return _vector_add(4, dst, value, return_prev)
