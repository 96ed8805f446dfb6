"""TileLang's TensorCoreIntrinEmitter (tilelang.intrinsics.mma_macro_generator): the paper's
expert tier, a kernel that drives the tensor cores warp by warp itself.

The kernel allocates per-thread registers (`T.alloc_local`) and shared tiles, and calls
`ldmatrix_a` / `ldmatrix_b` (shared -> registers), `mma` (registers x registers -> accumulator
registers) and `stmatrix` (accumulator registers -> a shared or global tile). Each call emits the
thread-level statements of docs/THREAD_IR.md (`ldmatrix`, `mma_sync`, plain loads and stores) at
the place it is called, indexed by the thread's lane and warp; they pass through the compiler
untouched (apart from shared-memory layouts and barriers between tile-level statements), so the
emulator checks them like any other thread code: races, out-of-bounds accesses, partial warps.

The warps of a block form a block_row_warps x block_col_warps grid over the C tile: warp w is
row w % block_row_warps and column w // block_row_warps (is_m_first=True: row
w // block_col_warps, column w % block_col_warps). Each warp owns warp_row_tiles x warp_col_tiles
of C, i.e. warp_rows x warp_cols mma tiles of 16 x 16 (16 x 8 when warp_col_tiles is not a
multiple of 16). Register buffers hold, per thread, warp_rows * local_size_a A elements,
warp_cols * local_size_b B elements and warp_rows * warp_cols * local_size_out accumulators, in
the PTX fragment order of mma.sync."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import builder as _builder
from ..ir import dtype as _dt
from ..ir.buffer import Buffer, BufferRegion
from ..ir.expr import BufferLoad, Call, Expr, Var, as_expr
from ..ir.stmt import BufferStore, Evaluate, For, Stmt, seq
from ..language.loops import get_thread_binding
from ..tileop.cuda_common import address
from .mma_layout import (
    mma_load_a_32x4_to_shared_16x8_layout,
    mma_load_a_32x16_to_shared_16x32_layout,
    mma_load_b_32x4_to_shared_16x8_layout,
    mma_load_b_32x8_to_shared_16x16_layout,
    mma_load_b_32x16_to_shared_16x32_layout,
)
from .utils import get_ldmatrix_offset, mma_store_index_map

_ABBRV = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32", "int8": "int8", "uint8": "uint8",
          "int32": "int32", "float8_e4m3": "e4m3", "float8_e5m2": "e5m2", "float64": "fp64"}  # fmt: skip
# (A/B type, accumulator type) pairs mma.sync takes here (backend/cuda/mma_variants.py)
_SUPPORTED = {("float16", "float32"), ("float16", "float16"), ("bfloat16", "float32"), ("int8", "int32"),
              ("uint8", "int32"), ("float32", "float32")}  # fmt: skip


def _dtype_name(d) -> str:
    return _dt.as_dtype(d).name


def _region(x, what: str) -> BufferRegion:
    if isinstance(x, BufferRegion):
        return x
    if isinstance(x, Buffer):
        return BufferRegion.full(x)
    if isinstance(x, BufferLoad):  # a corner: the rest of the buffer from there
        return BufferRegion(x.buffer, [(i, 1) for i in x.indices])
    raise CompileError(f"TensorCoreIntrinEmitter.{what}: expected a buffer or a slice of one, got {type(x).__name__}")


def _at(region: BufferRegion, row, col) -> list[Expr]:
    """Indices of element (row, col) of the region's last two dimensions."""
    idx = [as_expr(s) for s, _ in region.region]
    if len(idx) < 2:
        raise CompileError(f"TensorCoreIntrinEmitter: {region.buffer.name} needs at least two dimensions")
    idx[-2] = idx[-2] + row
    idx[-1] = idx[-1] + col
    return idx


def _local(buf, what: str) -> Buffer:
    if isinstance(buf, BufferRegion):
        buf = buf.buffer
    if not isinstance(buf, Buffer) or buf.scope not in ("local", "local.fragment", "local.var"):
        raise CompileError(f"TensorCoreIntrinEmitter.{what}: the register operand must be a T.alloc_local buffer, "
                           f"got {getattr(buf, 'name', buf)!r}")
    if buf.scope == "local.fragment":
        raise CompileError(f"TensorCoreIntrinEmitter.{what}: {buf.name} is a T.alloc_fragment tile, whose layout the "
                           "compiler chooses; the emitter's registers are per thread: allocate them with T.alloc_local")
    return buf


def _emit(stmt: Stmt) -> None:
    _builder.require("TensorCoreIntrinEmitter").emit(stmt)


class TensorCoreIntrinEmitter:
    """See the module docstring. Arguments as TileLang's: operand and accumulator types, whether
    A is stored K x M (a_transposed) and B N x K (b_transposed=True, the usual) or K x N, the warp
    grid and per-warp tile, and `chunk` (the K extent of one shared tile)."""

    M_DIM = 16
    WARP_SIZE = 32
    dtype_abbrv = _ABBRV
    is_m_first = False

    def __init__(self, a_dtype="float16", b_dtype="float16", accum_dtype="float16", a_transposed: bool = False,
                 b_transposed: bool = False, block_row_warps: int = 2, block_col_warps: int = 2,
                 warp_row_tiles: int = 8, warp_col_tiles: int = 8, chunk: int = 16, reduce_k: int = 1,
                 num_elems_per_byte: int = 1, is_m_first: bool | None = False, thread_var: Var | None = None):
        self.a_dtype, self.b_dtype, self.accum_dtype = (_dtype_name(a_dtype), _dtype_name(b_dtype),
                                                        _dtype_name(accum_dtype))
        if self.a_dtype != self.b_dtype and {self.a_dtype, self.b_dtype} != {"int8", "uint8"}:
            raise CompileError(f"TensorCoreIntrinEmitter: A and B must have one type, got {self.a_dtype} and "
                               f"{self.b_dtype}")
        for t in (self.a_dtype, self.b_dtype):
            if (t, self.accum_dtype) not in _SUPPORTED:
                raise CompileError(
                    f"TensorCoreIntrinEmitter: {t} operands with a {self.accum_dtype} accumulator have no mma.sync form "
                    "in tilewise; supported: float16 -> float16/float32, bfloat16 -> float32, int8/uint8 -> int32, "
                    "float32 (tf32) -> float32 (float8 needs sm_89's mma, which tilewise does not emit)")
        if reduce_k != 1:
            raise CompileError("TensorCoreIntrinEmitter: reduce_k other than 1 (split-K across warps) is not supported")
        if num_elems_per_byte != 1:
            raise CompileError("TensorCoreIntrinEmitter: num_elems_per_byte other than 1 (packed int4) is not supported")
        self.a_transposed = bool(a_transposed)
        self.b_transposed = bool(b_transposed)
        self.block_row_warps = int(block_row_warps)
        self.block_col_warps = int(block_col_warps)
        self.warp_row_tiles = int(warp_row_tiles)
        self.warp_col_tiles = int(warp_col_tiles)
        self.chunk = int(chunk)
        self.reduce_k = 1
        self.num_elems_per_byte = 1
        bits = _dt.as_dtype(self.a_dtype).bits
        self.k_dim = min(256 // bits, self.chunk)
        if self.k_dim not in (8, 16, 32) or self.chunk % self.k_dim:
            raise CompileError(f"TensorCoreIntrinEmitter: chunk={chunk} must be a multiple of {256 // bits} for "
                               f"{self.a_dtype} operands")
        self.mma_prefix = f"m16n8k{self.k_dim}"
        if self.warp_row_tiles < 16 or self.warp_row_tiles % 16:
            raise CompileError(f"TensorCoreIntrinEmitter: warp_row_tiles must be a multiple of 16, got {warp_row_tiles}")
        if self.warp_col_tiles < 8 or self.warp_col_tiles % 8:
            raise CompileError(f"TensorCoreIntrinEmitter: warp_col_tiles must be a multiple of 8, got {warp_col_tiles}")
        self.n_dim = 16 if self.warp_col_tiles % 16 == 0 else 8
        self.micro_size_x, self.micro_size_y, self.micro_size_k = 16, self.n_dim, self.k_dim
        self.warp_rows = self.warp_row_tiles // 16
        self.warp_cols = self.warp_col_tiles // self.n_dim
        self.local_size_a = 16 * self.k_dim // 32
        self.local_size_b = self.n_dim * self.k_dim // 32
        self.local_size_out = 16 * self.n_dim // 32
        self.a_dtype_abbrv = _ABBRV.get(self.a_dtype, self.a_dtype)
        self.b_dtype_abbrv = _ABBRV.get(self.b_dtype, self.b_dtype)
        self.accum_dtype_abbrv = _ABBRV.get(self.accum_dtype, self.accum_dtype)
        if is_m_first is not None:
            self.is_m_first = bool(is_m_first)
        self.threads = self.WARP_SIZE * self.block_row_warps * self.block_col_warps
        self.thread_var = thread_var

    # ------------------------------------------------------------------ threads
    def get_thread_binding(self) -> Expr:
        return self.thread_var if self.thread_var is not None else get_thread_binding()

    def extract_thread_binding(self, thread_id, is_m_first: bool | None = None):
        """(lane, warp_n, warp_m) of a thread index."""
        m_first = self.is_m_first if is_m_first is None else is_m_first
        lane, warp = thread_id % self.WARP_SIZE, thread_id // self.WARP_SIZE
        if m_first:
            return lane, warp % self.block_col_warps, (warp // self.block_col_warps) % self.block_row_warps
        return lane, (warp // self.block_row_warps) % self.block_col_warps, warp % self.block_row_warps

    def _check_threads(self, what: str) -> None:
        k = _builder.require_kernel(f"TensorCoreIntrinEmitter.{what}")
        n = 1
        for t in k.threads:
            n *= t
        if n < self.threads:
            raise CompileError(f"TensorCoreIntrinEmitter.{what}: the warp grid {self.block_row_warps} x "
                               f"{self.block_col_warps} needs {self.threads} threads, the kernel has {n}")

    # ------------------------------------------------------------------ loads
    def ldmatrix_a(self, A_local_buf, A_shared_buf, ki, rk=0) -> None:
        """The warp's A tiles for k step ki (of micro_size_k) into A_local_buf[i * local_size_a ...]."""
        self._check_threads("ldmatrix_a")
        regs = _local(A_local_buf, "ldmatrix_a")
        src = _region(A_shared_buf, "ldmatrix_a")
        lane, _, warp_m = self.extract_thread_binding(self.get_thread_binding())
        i = Var("i", _dt.int32)
        wi = warp_m * self.warp_row_tiles + i * 16
        wk = as_expr(rk) * self.chunk + as_expr(ki) * self.micro_size_k
        bits = _dt.as_dtype(self.a_dtype).bits
        if bits == 16 or (bits == 8 and not self.a_transposed):
            row_off, col_off = get_ldmatrix_offset("A", lane, 0, None, self.a_dtype, self.a_transposed)
            row, col = (wk + row_off, wi + col_off) if self.a_transposed else (wi + row_off, wk + col_off)
            call = Call("ldmatrix", [address(regs, [i * self.local_size_a]), address(src.buffer, _at(src, row, col))],
                        _dt.handle, {"num": 4, "trans": self.a_transposed})
            body: Stmt = Evaluate(call)
        else:
            layout = {32: mma_load_a_32x4_to_shared_16x8_layout, 8: mma_load_a_32x16_to_shared_16x32_layout}[bits]
            stores = []
            for j in range(self.local_size_a):
                mi, mk = layout(lane, j)
                at = (wk + mk, wi + mi) if self.a_transposed else (wi + mi, wk + mk)
                stores.append(BufferStore(regs, [i * self.local_size_a + j], BufferLoad(src.buffer, _at(src, *at))))
            body = seq(stores)
        _emit(For(i, 0, self.warp_rows, "unroll", body))

    def ldmatrix_b(self, B_local_buf, B_shared_buf, ki, rk=0) -> None:
        """The warp's B tiles for k step ki into B_local_buf[j * local_size_b ...]."""
        self._check_threads("ldmatrix_b")
        regs = _local(B_local_buf, "ldmatrix_b")
        src = _region(B_shared_buf, "ldmatrix_b")
        lane, warp_n, _ = self.extract_thread_binding(self.get_thread_binding())
        j = Var("j", _dt.int32)
        wj = warp_n * self.warp_col_tiles + j * self.micro_size_y
        wk = as_expr(rk) * self.chunk + as_expr(ki) * self.micro_size_k
        bits = _dt.as_dtype(self.b_dtype).bits
        if bits == 16 or (bits == 8 and self.b_transposed):
            num = 4 if self.n_dim == 16 else 2
            row_off, col_off = get_ldmatrix_offset("B", lane, 0, None, self.b_dtype, self.b_transposed)
            row, col = (wj + row_off, wk + col_off) if self.b_transposed else (wk + row_off, wj + col_off)
            call = Call("ldmatrix", [address(regs, [j * self.local_size_b]), address(src.buffer, _at(src, row, col))],
                        _dt.handle, {"num": num, "trans": not self.b_transposed})
            body: Stmt = Evaluate(call)
        else:
            layout = {32: mma_load_b_32x4_to_shared_16x8_layout, 8: mma_load_b_32x16_to_shared_16x32_layout,
                      16: mma_load_b_32x8_to_shared_16x16_layout}[bits]
            stores = []
            for r in range(self.local_size_b):
                mn, mk = layout(lane, r)
                at = (wj + mn, wk + mk) if self.b_transposed else (wk + mk, wj + mn)
                stores.append(BufferStore(regs, [j * self.local_size_b + r], BufferLoad(src.buffer, _at(src, *at))))
            body = seq(stores)
        _emit(For(j, 0, self.warp_cols, "unroll", body))

    # ------------------------------------------------------------------ the product
    def _mma_call(self, a_buf, a_off, b_buf, b_off, c_buf, c_off) -> Evaluate:
        return Evaluate(Call("mma_sync", [address(a_buf, [a_off]), address(b_buf, [b_off]), address(c_buf, [c_off])],
                             _dt.handle, {"shape": self.mma_prefix, "a_dtype": self.a_dtype, "b_dtype": self.b_dtype,
                                          "c_dtype": self.accum_dtype}))

    def mma_atom(self, A_local_buf, B_local_buf, C_local_buf, inst_m_idx, inst_n_idx, k_inner=0) -> None:
        """One m16 x n(micro_size_y) tile: C tile (m, n) += A tile m x B tile n (two mma.m16n8 when
        micro_size_y is 16)."""
        self._check_threads("mma")
        self._emit_atom(A_local_buf, B_local_buf, C_local_buf, as_expr(inst_m_idx), as_expr(inst_n_idx))

    def _emit_atom(self, A_local_buf, B_local_buf, C_local_buf, i, j) -> None:
        _emit(self._atom(A_local_buf, B_local_buf, C_local_buf, i, j))

    def _atom(self, A_local_buf, B_local_buf, C_local_buf, i, j) -> Stmt:
        a, b, c = (_local(A_local_buf, "mma"), _local(B_local_buf, "mma"), _local(C_local_buf, "mma"))
        a_off = i * self.local_size_a
        b_off = j * self.local_size_b
        c_off = i * self.warp_cols * self.local_size_out + j * self.local_size_out
        calls = [self._mma_call(a, a_off, b, b_off, c, c_off)]
        if self.n_dim == 16:
            calls.append(self._mma_call(a, a_off, b, b_off + self.local_size_b // 2, c, c_off + self.local_size_out // 2))
        return seq(calls)

    def mma(self, A_local_buf, B_local_buf, C_local_buf, k_inner=0) -> None:
        """Every tile of the warp: C[i, j] += A[i] x B[j]."""
        self._check_threads("mma")
        i, j = Var("i", _dt.int32), Var("j", _dt.int32)
        body = self._atom(A_local_buf, B_local_buf, C_local_buf, i, j)
        _emit(For(i, 0, self.warp_rows, "unroll", For(j, 0, self.warp_cols, "unroll", body)))

    @property
    def mma_num_inst_m(self) -> int:
        return self.warp_rows

    @property
    def mma_num_inst_n(self) -> int:
        return self.warp_cols

    # ------------------------------------------------------------------ the result
    def stmatrix(self, C_local_buf, C_buf, pid_m=None, pid_n=None) -> None:
        """The accumulators into C_buf: a shared or global (M, N) tile, or a 4-D
        (M / 16, N / n, 16, n) tile of mma tiles; with pid_m and pid_n, C_buf is the whole global
        matrix and the block (pid_m, pid_n) writes its tile of it."""
        self._check_threads("stmatrix")
        regs = _local(C_local_buf, "stmatrix")
        if isinstance(C_buf, BufferRegion):
            C_buf = C_buf.buffer
        if not isinstance(C_buf, Buffer) or C_buf.ndim not in (2, 4):
            raise CompileError("TensorCoreIntrinEmitter.stmatrix: C must be a 2-D or 4-D buffer")
        lane, warp_n, warp_m = self.extract_thread_binding(self.get_thread_binding())
        i, j, r = Var("i", _dt.int32), Var("j", _dt.int32), Var("local_id", _dt.int32)
        row, col = mma_store_index_map(lane, r)
        tm = warp_m * self.warp_rows + i
        tn = warp_n * self.warp_cols + j
        value = BufferLoad(regs, [i * (self.warp_cols * self.local_size_out) + j * self.local_size_out + r])
        if pid_m is not None and pid_n is not None:
            tm = as_expr(pid_m) * (self.block_row_warps * self.warp_rows) + tm
            tn = as_expr(pid_n) * (self.block_col_warps * self.warp_cols) + tn
        if C_buf.ndim == 2:
            idx = [tm * self.M_DIM + row, tn * self.n_dim + col]
        else:
            idx = [tm, tn, row, col]
        if value.dtype != C_buf.dtype:
            value = value.astype(C_buf.dtype)
        store = BufferStore(C_buf, idx, value)
        _emit(For(i, 0, self.warp_rows, "serial", For(j, 0, self.warp_cols, "serial",
                                                     For(r, 0, self.local_size_out, "unroll", store))))





class _Unsupported:
    """TileLang emitters for forms tilewise does not emit: constructing one is a CompileError
    naming what is missing (importing the name works, as TileLang's test modules import them)."""

    what = ""

    def __init__(self, *args, **kwargs):
        raise CompileError(f"{type(self).__name__}: {self.what} is not supported by tilewise; "
                           "TensorCoreIntrinEmitter covers float16, bfloat16, int8/uint8 and tf32 operands")


class INT4TensorCoreIntrinEmitter(TensorCoreIntrinEmitter):
    """TileLang's int4 emitter: operands are int8 (or uint8) buffers holding two 4-bit integers
    per byte, the even K element in the low nibble, and chunk / micro_size_k count bytes. The
    m16n8k64 .s4 (.u4 for uint8 storage) fragments are the m16n8k32 .s8 fragments byte for byte
    (PTX ISA, "Matrix Fragments for mma.m16n8k64"), so the loads are the int8 emitter's and each
    mma.sync multiplies 64 4-bit values along K."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.a_dtype not in ("int8", "uint8") or self.a_dtype != self.b_dtype or self.accum_dtype != "int32":
            raise CompileError(f"INT4TensorCoreIntrinEmitter: operands are int8 or uint8 storage of packed int4 / "
                               f"uint4 with an int32 accumulator, got {self.a_dtype}, {self.b_dtype} -> "
                               f"{self.accum_dtype}")
        self.mma_prefix = "m16n8k64"
        self._four_bit = "int4" if self.a_dtype == "int8" else "uint4"

    def _mma_call(self, a_buf, a_off, b_buf, b_off, c_buf, c_off) -> Evaluate:
        return Evaluate(Call("mma_sync", [address(a_buf, [a_off]), address(b_buf, [b_off]), address(c_buf, [c_off])],
                             _dt.handle, {"shape": "m16n8k64", "a_dtype": self._four_bit, "b_dtype": self._four_bit,
                                          "c_dtype": self.accum_dtype}))


class INT4TensorCoreIntrinEmitterWithLadderTransform(_Unsupported):
    what = "int4 mma.sync with the Ladder weight transform"


class TensorCoreIntrinEmitterWithLadderTransform(_Unsupported):
    what = "the Ladder (BitBLAS) weight-transform emitter"


__all__ = ["INT4TensorCoreIntrinEmitter", "INT4TensorCoreIntrinEmitterWithLadderTransform", "TensorCoreIntrinEmitter",
           "TensorCoreIntrinEmitterWithLadderTransform"]
