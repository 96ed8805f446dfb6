"""T.gemm_sp (TileLang 0.1.15): C (+)= A @ op(B) for an A with 2:4 structured sparsity, given
compressed: `T.gemm_sp(A_sparse, E, B, C, transpose_A=False, transpose_E=False, transpose_B=False,
policy=GemmWarpPolicy.Square, clear_accum=False, wg_wait=0, annotations=None)`.

The operands follow TileLang's "ordered metadata" contract (its examples/gemm_sp/sparse_utils.py
`compress` and tilelang/cuda/intrinsics/sparse_layout.py), for A of float16, bfloat16, int8,
uint8, float8 (2 values kept of each group of 4 along K) or float32 (1 of each group of 2):

- A_sparse (M, K/2) holds the kept values of each group in order (transpose_A: (K/2, M));
- E (M, K/e) with e = (bits of E's type / 4) * group holds 4 bits per group: for groups of 4,
  bits 4g..4g+1 and 4g+2..4g+3 of the element are the positions (0-3) of the group's first and
  second kept value (g the group's index within the element); for float32, 0b0100 means the kept
  value is the group's first, 0b1110 its second (transpose_E: E is (K/e, M)).

tilewise expands A: a parallel loop writes the dense (M, K) tile (zero where E says a value was
dropped) into shared memory, and T.gemm multiplies it with every target's own instruction. The
result is exactly the dense product of the matrix the two operands encode, on every target; the
tensor cores do the work of a dense mma.sync / wgmma / MFMA (twice the multiply-adds of mma.sp:
tilewise does not emit the sparse tensor-core instruction; docs/API.md says so)."""
from __future__ import annotations

from ..errors import CompileError, warn_once
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.builder import emit, require_kernel
from ..ir.expr import BufferLoad, Const, Select, Var, as_expr, cast, const_value
from ..ir.stmt import Allocate, BufferStore, For
from .gemm import GemmWarpPolicy, gemm
from .region import as_region

# group size and kept values per group, by A's type (TileLang's GROUP_CONFIG)
_GROUP = {"float16": 4, "bfloat16": 4, "int8": 4, "uint8": 4, "float8_e4m3": 4, "float8_e5m2": 4, "float32": 2}


def e_factor(a_dtype, meta_dtype) -> int:
    """How many elements of A one element of E describes (TileLang's get_e_factor)."""
    a, m = _dt.as_dtype(a_dtype), _dt.as_dtype(meta_dtype)
    if a.name not in _GROUP:
        raise CompileError(f"T.gemm_sp: A of type {a} has no 2:4 sparse form; supported: {sorted(_GROUP)}")
    return (m.bits // 4) * _GROUP[a.name]


def _tile(x, what: str) -> tuple[Buffer, list, list[int], list[int]]:
    r = as_region(x, f"T.gemm_sp: {what}", allow_corner=False)
    if not isinstance(r, BufferRegion):
        raise CompileError(f"T.gemm_sp: {what} must be a tile, got {x!r}")
    ext = [e if isinstance(e, int) else const_value(e) for e in r.extents]
    if any(e is None for e in ext):
        raise CompileError(f"T.gemm_sp: {what} ({r.buffer.name}) must have a constant shape")
    keep = [k for k, e in enumerate(ext) if e != 1]
    if len(keep) != 2:
        raise CompileError(f"T.gemm_sp: {what} ({r.buffer.name}) must be a 2-D tile, got extents {ext}")
    return r.buffer, list(r.starts), [ext[k] for k in keep], keep


def _at(buf: Buffer, starts: list, keep: list[int], i, j) -> BufferLoad:
    idx = [as_expr(s) for s in starts]
    idx[keep[0]] = idx[keep[0]] + i
    idx[keep[1]] = idx[keep[1]] + j
    return BufferLoad(buf, idx)


def _dense_tile(k, shape, dtype) -> Buffer:
    """A shared tile for the expanded A, allocated once per kernel, shape and type, at the start
    of the kernel (gemm_sp is usually called inside the K loop)."""
    cache = k.__dict__.setdefault("gemm_sp_tiles", {})
    key = (tuple(shape), dtype.name)
    if key not in cache:
        buf = Buffer(f"gemm_sp_dense_{len(cache)}", tuple(shape), dtype, "shared.dyn")
        k.body_frame.insert(0, Allocate(buf, None))
        cache[key] = buf
    return cache[key]


def gemm_sp(A_sparse, E, B, C, transpose_A: bool = False, transpose_E: bool = False,  # noqa: N803 - TileLang's names
            transpose_B: bool = False, policy=GemmWarpPolicy.Square, clear_accum: bool = False, wg_wait: int = 0,
            annotations=None) -> None:
    """C (+)= expand(A_sparse, E) @ op(B); see the module doc."""
    k = require_kernel("T.gemm_sp")
    # the sparse tensor-core instruction is what a TileLang user asks for with gemm_sp: say once
    # that it is not what runs here, so the dense work is not a surprise on a GPU profile
    warn_once(("T.gemm_sp", "dense"), "T.gemm_sp: tilewise expands the 2:4 sparse A into a dense tile and runs "
              "T.gemm (exact result; on GPUs the tensor cores do a dense mma, twice mma.sp's work)", stacklevel=3)
    if annotations:
        warn_once(("T.gemm_sp", "annotations"), f"T.gemm_sp(annotations={annotations!r}) has no effect in tilewise",
                  stacklevel=3)
    a_buf, a_start, a_ext, a_keep = _tile(A_sparse, "A_sparse")
    e_buf, e_start, e_ext, e_keep = _tile(E, "E")
    dt = a_buf.dtype
    if dt.name not in _GROUP:
        raise CompileError(f"T.gemm_sp: A ({a_buf.name}) of type {dt} has no 2:4 sparse form; supported: "
                           f"{sorted(_GROUP)}")
    if not e_buf.dtype.is_int:
        raise CompileError(f"T.gemm_sp: the metadata E ({e_buf.name}) must be an integer tile, got {e_buf.dtype}")
    group = _GROUP[dt.name]
    kept = 2 if group == 4 else 1
    m, half = (a_ext[1], a_ext[0]) if transpose_A else (a_ext[0], a_ext[1])
    kk = half * group // kept
    ef = e_factor(dt, e_buf.dtype)
    em, ek = (e_ext[1], e_ext[0]) if transpose_E else (e_ext[0], e_ext[1])
    if em != m or ek * ef != kk:
        raise CompileError(
            f"T.gemm_sp: E ({e_buf.name}) has extents {e_ext}{' (transposed)' if transpose_E else ''}; for A_sparse of "
            f"{m} rows and K = {kk} it must be ({m}, {kk // ef}) ({e_buf.dtype} describes {ef} elements of A)")
    dense = _dense_tile(k, (m, kk), dt)

    i, j = Var("gemm_sp_i", _dt.int32), Var("gemm_sp_k", _dt.int32)
    g = j // group  # the group of column j
    pos = j % group  # j's position in it
    e_col = j // ef
    word = _at(e_buf, e_start, e_keep, e_col, i) if transpose_E else _at(e_buf, e_start, e_keep, i, e_col)
    w32 = cast(word, _dt.int32) if e_buf.dtype.bits < 32 else cast(word, _dt.uint32)
    shift = (j % ef) // group * 4
    nib = cast((w32 >> cast(shift, w32.dtype)) & cast(Const(15, _dt.int32), w32.dtype), _dt.int32)

    def kept_value(slot):
        col = g * kept + slot
        return _at(a_buf, a_start, a_keep, col, i) if transpose_A else _at(a_buf, a_start, a_keep, i, col)

    zero = Const(0, dt)
    if kept == 2:
        first, second = nib & 3, (nib >> 2) & 3
        value = Select(pos == first, kept_value(0), Select(pos == second, kept_value(1), zero))
    else:  # float32: the nibble's low position pair names the kept value (0b0100: first, 0b1110: second)
        value = Select(pos == ((nib & 3) >> 1), kept_value(0), zero)
    emit(For(i, 0, m, "parallel", For(j, 0, kk, "parallel", BufferStore(dense, [i, j], value))))
    gemm(dense, B, C, transpose_A=False, transpose_B=transpose_B, policy=policy, clear_accum=clear_accum,
         wg_wait=wg_wait)
