"""The compiler's layouts for Hopper's warpgroup MMA (wgmma.mma_async, sm_90a).

A warpgroup (128 threads, 4 warps) computes an m64nN tile per instruction; the block's
warpgroups split the C tile like warps do for mma.sync (`wgmma_grid`). Register layouts follow
the PTX ISA's figures: inside one m64 atom, warp w of the warpgroup owns rows 16w..16w+15 and
lays them out like the mma.sync m16n8 fragments (accumulator D: for every n8 column block, lane l
holds rows l/4 and l/4 + 8, columns 2(l%4) and +1; A from registers: the m16n8k16 A fragment).

Shared operands are stored as "swizzle atoms" of 8 rows x S bytes (S = 32, 64 or 128: the
swizzle mode), the 16-byte chunk c of row r moving to c ^ (r*S/128 mod S/16). A tile whose
contiguous dimension is wider than 128 bytes is cut into column blocks of 128 bytes, stored one
after the other (block b holds all rows of columns [b*cb, (b+1)*cb)): what one TMA box with a
128-byte swizzle writes, and what a wgmma descriptor's leading / stride byte offsets can walk."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import CompileError
from .layout import Layout
from .mma import WarpGrid, choose_warp_grid
from .tv import Mode, TVFragment

WARPGROUP = 128
MAX_N = 256  # the widest wgmma instruction


def wgmma_grid(M: int, N: int, threads: int, policy: str) -> WarpGrid | None:
    """How the warpgroups split an M x N tile (each warpgroup's rows a multiple of 64), or None
    when no split fits (the gemm then uses mma.sync)."""
    if threads % WARPGROUP:
        return None
    try:
        return choose_warp_grid(M, N, threads // WARPGROUP, policy, atom_m=64, atom_n=8)
    except CompileError:
        return None


def wgmma_c_tv(M: int, N: int, grid: WarpGrid, threads: int) -> TVFragment:
    """The accumulator: the wgmma D fragment, tiled over the warpgroup grid and over the m64
    atoms of a warpgroup's rows (register index = 2-column pair, row + 8, n8 block, m64 atom)."""
    WM, WN = M // grid.warp_m, N // grid.warp_n
    tm = [Mode(4, 1, 2), Mode(8, 0, 1), Mode(4, 0, 16), Mode(grid.warp_n, 1, WN), Mode(grid.warp_m, 0, WM)]
    extra = threads // (WARPGROUP * grid.warp_m * grid.warp_n)
    if extra > 1:
        tm.append(Mode(extra, None, 0))
    vm = [Mode(2, 1, 1), Mode(2, 0, 8), Mode(WN // 8, 1, 8), Mode(WM // 64, 0, 64)]
    return TVFragment((M, N), tm, vm, name="wgmma_c")


def wgmma_a_tv(M: int, K: int, grid: WarpGrid, threads: int, bits: int = 16) -> TVFragment:
    """A in registers (M x K): per m64 atom, each warp's 16 rows in the mma.sync A fragment for
    `bits`-wide elements (a register packs 32/bits consecutive k); warpgroups of one grid row
    replicate it. Register index = k pair, row + 8, k + 4p, k step, m64 atom: the registers of one
    instruction (atom a, k step s) are consecutive."""
    WM = M // grid.warp_m
    p = 32 // bits
    tm = [Mode(4, 1, p), Mode(8, 0, 1), Mode(4, 0, 16), Mode(grid.warp_n, None, 0), Mode(grid.warp_m, 0, WM)]
    extra = threads // (WARPGROUP * grid.warp_m * grid.warp_n)
    if extra > 1:
        tm.append(Mode(extra, None, 0))
    vm = [Mode(p, 1, 1), Mode(2, 0, 8), Mode(2, 1, 4 * p), Mode(K // (8 * p), 1, 8 * p), Mode(WM // 64, 0, 64)]
    return TVFragment((M, K), tm, vm, name="wgmma_a")


@dataclass(frozen=True)
class OperandLayout:
    """A shared wgmma operand tile of `rows` x `cols` elements, `cols` contiguous."""

    rows: int
    cols: int
    elem_bytes: int
    swizzle: int  # S: bytes per swizzled row segment (32, 64 or 128)

    @property
    def block_cols(self) -> int:
        """Elements per column block (one S-byte row segment)."""
        return self.swizzle // self.elem_bytes

    @property
    def block_bytes(self) -> int:
        """Bytes of one column block (all rows)."""
        return self.rows * self.swizzle

    def layout(self, shape) -> Layout:
        S, cb, rows = self.swizzle, self.block_cols, self.rows
        vec = 16 // self.elem_bytes  # elements per 16-byte chunk
        chunks = S // 16

        cols = self.cols

        def fwd(*idx):
            *lead, r, c = idx  # leading dimensions: whole tiles (pipeline slots) one after another
            chunk = (c % cb) // vec
            phase = (r * S // 128) % chunks
            flat = (c // cb) * (rows * cb) + r * cb + (chunk ^ phase) * vec + c % vec
            return (*lead, flat // cols, flat % cols)

        lay = Layout(tuple(shape), fwd)
        lay.base_align = 8 * S  # the swizzle is applied to address bits: atoms start aligned
        return lay


def operand_layout(shape, dtype) -> OperandLayout | None:
    """The swizzled layout wgmma (and TMA) can use for a tile of this shape, or None. The rows
    (all leading dimensions together) must fill whole 8-row atoms, the contiguous dimension
    32 or 64 bytes, or a multiple of 128."""
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2:
        return None
    rows, cols = shape[-2], shape[-1]  # leading dimensions are whole tiles (pipeline slots)
    eb = dtype.bytes
    row_bytes = cols * eb
    if row_bytes % 128 == 0:
        S = 128
    elif row_bytes in (32, 64):
        S = row_bytes
    else:
        return None
    if rows % 8 or rows * S % 1024 and S == 128:
        return None
    return OperandLayout(rows, cols, eb, S)


def descriptor_mode(swizzle: int) -> int:
    """The 2-bit swizzle field of a wgmma matrix descriptor."""
    return {128: 1, 64: 2, 32: 3, 0: 0}[swizzle]
