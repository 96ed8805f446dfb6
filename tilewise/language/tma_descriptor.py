"""TileLang's raw TMA primitives: `T.create_tma_descriptor`, `T.tma_load` and `T.tma_store`.

TileLang's argument conventions (builtin.py of TileLang, and the descriptors its own lowering
writes, e.g. `T.create_tma_descriptor(6, 2, A.data, 512, 512, 2, 1024, 32, 64, 1, 1, 0, 2, 2, 0)`):

    T.create_tma_descriptor(data_type, rank, global_address,
                            global_dim..., global_stride..., box_dim..., element_stride...,
                            interleave, swizzle, l2_promotion, oob_fill)

`rank` entries each, innermost dimension first; the strides are in bytes and the first one is
the element size; the enumerations are CUDA's CUtensorMap* values (data type 6 = FLOAT16, swizzle
0/1/2/3 = none/32B/64B/128B, ...). `global_address` is a kernel tensor parameter (`A` or
`A.data`): the descriptor must describe that tensor exactly (its dimensions and row-major
strides), because tilewise builds it at launch, like the tensor maps of T.copy
(backend/cuda/tensor_maps.py), from the tensor the kernel is called with. Every argument is
checked here, at compile time, against the tensor and cuTensorMapEncodeTiled's rules.

    T.tma_load(descriptor, mbarrier, smem, coord_0, ..., coord_{rank-1}[, eviction_policy])
    T.tma_store(descriptor, smem, coord_0, ..., coord_{rank-1}[, need_reduce, eviction_policy])

Coordinates innermost first (as in the PTX instruction). `smem` is where the box lands (is read
from): a shared buffer (its start), an element of one (`S[k % 2, 0, 0]`) or a region of one.
`mbarrier` is what the mbarrier primitives take (language/hopper.py). They become the thread-IR
`tma_load` / `tma_store` calls (docs/THREAD_IR.md, "Hopper") executed by whatever threads run
them, as in TileLang: guard them with `if tx == 0:` (or T.shuffle_elect); the program announces
the bytes on the barrier itself (T.mbarrier_expect_tx) and waits for the phase. Targets without
TMA (before sm_90, the CPU) refuse them (transform/explicit_sync.py, jit/options.py)."""
from __future__ import annotations

import math

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferData, BufferRegion
from ..ir.builder import emit
from ..ir.expr import BufferLoad, Call, Const, as_expr, const_value
from ..ir.simplify import simplify
from ..ir.stmt import Evaluate
from ..ir.tensor_map import TensorMap
from .hopper import _address, _barrier, _frame, _int_arg
from .loops import py_scalar

# CUtensorMapDataType (cuda.h) -> the tilewise element types it can describe
DATA_TYPES = {
    0: ("UINT8", ("uint8", "int8", "bool", "float8_e4m3", "float8_e5m2")),
    1: ("UINT16", ("uint16", "int16")),
    2: ("UINT32", ("uint32",)),
    3: ("INT32", ("int32",)),
    4: ("UINT64", ("uint64",)),
    5: ("INT64", ("int64",)),
    6: ("FLOAT16", ("float16",)),
    7: ("FLOAT32", ("float32",)),
    8: ("FLOAT64", ("float64",)),
    9: ("BFLOAT16", ("bfloat16",)),
    10: ("FLOAT32_FTZ", ("float32",)),
    11: ("TFLOAT32", ("float32",)),
    12: ("TFLOAT32_FTZ", ("float32",)),
}  # fmt: skip
SWIZZLE_BYTES = {0: 0, 1: 32, 2: 64, 3: 128}  # CUtensorMapSwizzle
L2_PROMOTION = {0: "NONE", 1: "L2_64B", 2: "L2_128B", 3: "L2_256B"}  # CUtensorMapL2promotion
EVICT_NORMAL = 0  # TileLang's eviction_policy: 0 = EVICT_NORMAL, 1 = EVICT_FIRST, 2 = EVICT_LAST
MAX_BOX = 256


class TmaDescriptor:
    """What `T.create_tma_descriptor(...)` gives: the tensor map (a kernel parameter built at
    launch) that T.tma_load / T.tma_store name."""

    def __init__(self, tmap: TensorMap, data_type: str):
        self.map = tmap
        self.data_type = data_type

    @property
    def rank(self) -> int:
        return self.map.rank

    def __repr__(self) -> str:
        return f"TmaDescriptor({self.map!r}, {self.data_type})"


def _const(v, what: str, lo: int | None = None, hi: int | None = None) -> int:
    return _int_arg(v, what, lo, hi, const=True)


def _same(a, b) -> bool:
    """Whether the descriptor's value `a` is the tensor's `b` (expressions for dynamic shapes)."""
    a, b = py_scalar(a), py_scalar(b)
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    d = simplify(as_expr(a, _dt.int64) - as_expr(b, _dt.int64))
    return const_value(d) == 0


def _tensor(addr, what: str) -> Buffer:
    if isinstance(addr, BufferData):
        addr = addr.buffer
    if not isinstance(addr, Buffer):
        raise CompileError(f"{what}: global_address must be a kernel tensor parameter (`A` or `A.data`), got "
                           f"{type(addr).__name__} {addr!r}")
    if not addr.is_global:
        raise CompileError(f"{what}: global_address {addr.name} is a {addr.scope} buffer; a TMA descriptor describes "
                           "a global tensor (a kernel parameter)")
    return addr


def create_tma_descriptor(*args) -> TmaDescriptor:
    """TileLang's `T.create_tma_descriptor(data_type, rank, global_address, global_dim...,
    global_stride..., box_dim..., element_stride..., interleave, swizzle, l2_promotion,
    oob_fill)` (the module docstring), checked against the tensor."""
    what = "T.create_tma_descriptor"
    k = _frame(what)
    if len(args) < 3:
        raise CompileError(f"{what} takes (data_type, rank, global_address, global_dim..., global_stride..., "
                           f"box_dim..., element_stride..., interleave, swizzle, l2_promotion, oob_fill); got "
                           f"{len(args)} argument(s)")
    rank = _const(args[1], f"{what}: rank", 1, 5)
    if len(args) != 7 + 4 * rank:
        raise CompileError(f"{what}: a rank-{rank} descriptor takes 7 + 4 * {rank} = {7 + 4 * rank} arguments "
                           f"(rank global dims, strides, box dims and element strides), got {len(args)}")
    g = _tensor(args[2], what)
    code = _const(args[0], f"{what}: data_type (a CUtensorMapDataType)")
    if code not in DATA_TYPES:
        raise CompileError(f"{what}: data_type {code} is not a CUtensorMapDataType (0 to 12)")
    dt_name, fits = DATA_TYPES[code]
    if g.dtype.name not in fits:
        raise CompileError(f"{what}: data_type {code} ({dt_name}) does not describe {g.name}'s elements ({g.dtype}); "
                           f"use one of {[c for c, (_, f) in DATA_TYPES.items() if g.dtype.name in f]}")
    if g.ndim != rank:
        raise CompileError(f"{what}: rank {rank} for {g.name}, a {g.ndim}-d tensor; the descriptor must describe the "
                           f"tensor as it is declared (rank {g.ndim})")
    r = rank
    dims, strides, box, estr = (list(args[3 + i * r: 3 + (i + 1) * r]) for i in range(4))
    interleave, swz, l2, oob = args[3 + 4 * r:]
    shape = list(reversed(g.shape))  # innermost first, like the descriptor
    for i, (d, s) in enumerate(zip(dims, shape)):
        if not _same(d, s):
            raise CompileError(f"{what}: global_dim[{i}] (innermost first) is {d}, but {g.name}'s dimension "
                               f"{g.ndim - 1 - i} is {s} (global dims must be the tensor's: {shape})")
    esize = g.dtype.bytes
    want = [esize]
    for s in shape[:-1]:
        want.append(want[-1] * s if isinstance(want[-1], int) and isinstance(s, int) else as_expr(want[-1]) * s)
    for i, (s, w) in enumerate(zip(strides, want)):
        if not _same(s, w):
            raise CompileError(f"{what}: global_stride[{i}] is {s} bytes, but {g.name} is row-major, so dimension "
                               f"{i} (innermost first) is {w} bytes apart (strides must be {want})")
        c = const_value(as_expr(py_scalar(s)))
        if i and c is not None and c % 16:
            raise CompileError(f"{what}: global_stride[{i}] is {c} bytes; TMA needs strides that are multiples of "
                               f"16 bytes ({g.name}'s innermost dimension {shape[0]} x {esize} bytes is not)")
    box = [_const(b, f"{what}: box_dim[{i}]", 1, MAX_BOX) for i, b in enumerate(box)]
    if box[0] * esize % 16:
        raise CompileError(f"{what}: box_dim[0] = {box[0]} elements of {g.dtype} is {box[0] * esize} bytes; the "
                           "innermost box dimension must be a multiple of 16 bytes")
    for i, e in enumerate(estr):
        if _const(e, f"{what}: element_stride[{i}]", 1, 8) != 1:
            raise CompileError(f"{what}: element_stride[{i}] = {e}; only element strides of 1 are supported (every "
                               "element of the box is moved)")
    if _const(interleave, f"{what}: interleave") != 0:
        raise CompileError(f"{what}: interleave {interleave}; only CU_TENSOR_MAP_INTERLEAVE_NONE (0) is supported")
    s = _const(swz, f"{what}: swizzle (a CUtensorMapSwizzle: 0 none, 1 32B, 2 64B, 3 128B)")
    if s not in SWIZZLE_BYTES:
        raise CompileError(f"{what}: swizzle {s} is not a CUtensorMapSwizzle (0 none, 1 32B, 2 64B, 3 128B)")
    sbytes = SWIZZLE_BYTES[s]
    if sbytes and box[0] * esize > sbytes:
        raise CompileError(f"{what}: swizzle {s} ({sbytes}B) needs box rows of at most {sbytes} bytes; box_dim[0] = "
                           f"{box[0]} x {esize} bytes = {box[0] * esize}")
    p = _const(l2, f"{what}: l2_promotion")
    if p not in L2_PROMOTION:
        raise CompileError(f"{what}: l2_promotion {p} is not a CUtensorMapL2promotion (0 to 3)")
    if _const(oob, f"{what}: oob_fill") != 0:
        raise CompileError(f"{what}: oob_fill {oob}; only CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE (0: out-of-bounds "
                           "elements read as zero) is supported")
    maps = k.tensor_maps
    outer_box = tuple(reversed(box))
    for m in maps:
        if m.buffer is g and m.box == outer_box and m.swizzle == sbytes and m.l2_promotion == L2_PROMOTION[p]:
            return TmaDescriptor(m, dt_name)
    m = TensorMap(f"{g.name}_desc{len(maps)}", g, outer_box, sbytes, l2_promotion=L2_PROMOTION[p])
    maps.append(m)
    return TmaDescriptor(m, dt_name)


def _descriptor(d, what: str) -> TmaDescriptor:
    if not isinstance(d, TmaDescriptor):
        raise CompileError(f"{what}: the first argument must be a descriptor from T.create_tma_descriptor(...), got "
                           f"{type(d).__name__} {d!r}")
    return d


def _smem(ptr, what: str) -> tuple[Buffer, Call]:
    """The shared buffer and the address a box lands at (is read from)."""
    ptr = py_scalar(ptr)
    if isinstance(ptr, BufferData):
        ptr = ptr.buffer
    if isinstance(ptr, Buffer):
        load = BufferLoad(ptr, [Const(0, _dt.int32)] * ptr.ndim)
    elif isinstance(ptr, BufferRegion):
        load = BufferLoad(ptr.buffer, [as_expr(s) for s, _ in ptr.region])
    elif isinstance(ptr, BufferLoad):
        load = ptr
    elif isinstance(ptr, Call) and ptr.name == "address_of" and isinstance(ptr.args[0], BufferLoad):
        load = ptr.args[0]
    else:
        raise CompileError(f"{what}: the shared-memory operand must be a shared buffer, an element or a region of one, "
                           f"got {type(ptr).__name__} {ptr!r}")
    if not load.buffer.is_shared:
        raise CompileError(f"{what}: {load.buffer.name} is a {load.buffer.scope} buffer; TMA moves boxes to and from "
                           "shared memory (T.alloc_shared)")
    return load.buffer, _address(load)


def _check_room(buf: Buffer, addr: Call, d: TmaDescriptor, what: str) -> None:
    """A box must fit in the shared buffer from where it lands (when that is known now)."""
    load = addr.args[0]
    shape = [py_scalar(s) for s in buf.shape]
    idx = [const_value(i) for i in load.indices]
    if any(not isinstance(s, int) for s in shape) or any(i is None for i in idx):
        return
    flat = 0
    for i, s in zip(idx, shape):
        flat = flat * s + i
    have = (math.prod(shape) - flat) * buf.dtype.bytes
    if d.map.buffer.dtype.bytes * math.prod(d.map.box) > have:
        raise CompileError(f"{what}: the descriptor's box {list(reversed(d.map.box))} (innermost first) is "
                           f"{d.map.box_bytes} bytes, but {buf.name} has {have} bytes from "
                           f"{buf.name}[{', '.join(map(str, idx))}]")


def _coords(d: TmaDescriptor, coords: list, extra: int, extras: tuple[str, ...], what: str) -> tuple[list, list]:
    if not d.rank <= len(coords) <= d.rank + extra:
        raise CompileError(f"{what}: the descriptor has rank {d.rank}, so it takes {d.rank} coordinates (innermost "
                           f"first){' and optionally ' + ', '.join(extras) if extra else ''}; got {len(coords)}")
    cs = [as_expr(_int_arg(c, f"{what}: coordinate {i}"), _dt.int32) for i, c in enumerate(coords[:d.rank])]
    return list(reversed(cs)), coords[d.rank:]  # the thread IR's coordinates are outermost first


def _attrs(d: TmaDescriptor, what: str) -> dict:
    # the map's shape is in the call too, so that the program's text (a cache key) tells apart
    # descriptors that differ only in their box, swizzle or cache hint
    m = d.map
    return {"map": m.name, "primitive": what, "box": m.box, "swizzle": m.swizzle, "l2_promotion": m.l2_promotion}


def _policy(v, what: str) -> None:
    if _const(v, f"{what}: eviction_policy", 0, 2) != EVICT_NORMAL:
        raise CompileError(f"{what}: eviction_policy {v} (an L2 cache hint) is not supported; use 0 (EVICT_NORMAL)")


def tma_load(descriptor, mbarrier, smem, *coords) -> None:
    """`cp.async.bulk.tensor` global -> shared: the box of `descriptor` at `coords` (innermost
    first; out-of-range elements read as zero) lands at `smem`, completing `box bytes` of tx on
    `mbarrier` (announce them with T.mbarrier_expect_tx / T.mbarrier_arrive_expect_tx)."""
    what = "T.tma_load"
    _frame(what)
    d = _descriptor(descriptor, what)
    buf, dst = _smem(smem, what)
    _check_room(buf, dst, d, what)
    bar = _address(_barrier(mbarrier, what))
    cs, rest = _coords(d, list(coords), 1, ("eviction_policy",), what)
    for v in rest:
        _policy(v, what)
    emit(Evaluate(Call("tma_load", [dst, bar, *cs], _dt.handle, _attrs(d, what))))


def tma_store(descriptor, smem, *coords) -> None:
    """`cp.async.bulk.tensor` shared -> global: the box at `smem` is written to the tensor at
    `coords` (innermost first, non-negative; elements past the tensor's end are not written).
    Commit with T.tma_store_arrive and wait with T.tma_store_wait before reusing `smem`."""
    what = "T.tma_store"
    _frame(what)
    d = _descriptor(descriptor, what)
    buf, src = _smem(smem, what)
    _check_room(buf, src, d, what)
    cs, rest = _coords(d, list(coords), 2, ("need_reduce", "eviction_policy"), what)
    if rest and _const(rest[0], f"{what}: need_reduce", 0, 1):
        raise CompileError(f"{what}: need_reduce=1 (a TMA reduce-add store) is not supported")
    for v in rest[1:]:
        _policy(v, what)
    emit(Evaluate(Call("tma_store", [src, *cs], _dt.handle, _attrs(d, what))))
