"""The compiler's register layouts for `mma.sync` tiles, and the block-level fragments built from
them (warps tiled over the block's C tile). The emulator checks these against its own PTX tables,
which are written separately.

Conventions: `lane` is the thread's index in its warp; within an m16n8 accumulator tile element
(r, c) belongs to lane (r % 8) * 4 + c // 2, register (r // 8) * 2 + c % 2."""
from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import CompileError
from .fragment import Fragment

WARP = 32


@dataclass(frozen=True)
class WarpGrid:
    """How the warps of a block split an M x N tile: warp_m rows of warps, warp_n columns."""

    warp_m: int
    warp_n: int

    @property
    def num_warps(self) -> int:
        return self.warp_m * self.warp_n


class GemmWarpPolicy(enum.IntEnum):
    """How the warps of a block split the C tile (TileLang's names)."""

    Square = 0
    FullRow = 1
    FullCol = 2


def choose_warp_grid(M: int, N: int, num_warps: int, policy: str, atom_m: int = 16, atom_n: int = 8) -> WarpGrid:
    """Split `num_warps` warps over the C tile. Square balances the per-warp tile, FullRow puts
    every warp on different rows (warp_n = 1), FullCol on different columns (warp_m = 1)."""
    candidates = []
    for wm in range(1, num_warps + 1):
        if num_warps % wm:
            continue
        wn = num_warps // wm
        if M % (wm * atom_m) or N % (wn * atom_n):
            continue
        candidates.append((wm, wn))
    if not candidates:
        raise CompileError(
            f"T.gemm: a {M}x{N} tile cannot be split over {num_warps} warps in {atom_m}x{atom_n} mma tiles; "
            "use tile sizes that are multiples of 16 (M) and 8 (N) times the warp counts, or fewer threads"
        )
    if policy == "FullRow":
        pick = [c for c in candidates if c[1] == 1] or candidates
        return WarpGrid(*max(pick, key=lambda c: c[0]))
    if policy == "FullCol":
        pick = [c for c in candidates if c[0] == 1] or candidates
        return WarpGrid(*max(pick, key=lambda c: c[1]))

    # Square: per-warp tile as close to square as possible (fewest operand loads per mma)
    def cost(c):
        wm, wn = c
        tm, tn = M // wm, N // wn
        return (abs(tm - tn) / max(tm, tn), -min(tm, tn))

    return WarpGrid(*min(candidates, key=cost))


def mma_c_fragment(M: int, N: int, grid: WarpGrid) -> Fragment:
    """Accumulator fragment of an M x N tile: warp (wm, wn) owns rows [wm*WM, (wm+1)*WM) and
    columns [wn*WN, ...); inside a warp, m16n8 tiles are numbered row-major."""
    WM, WN = M // grid.warp_m, N // grid.warp_n
    tiles_n = WN // 8

    def thread(i, j):
        warp = (i // WM) * grid.warp_n + j // WN
        r, c = i % 16, j % 8
        return warp * WARP + (r % 8) * 4 + c // 2

    def local(i, j):
        ii, jj = i % WM, j % WN
        tile = (ii // 16) * tiles_n + jj // 8
        r, c = ii % 16, jj % 8
        return tile * 4 + (r // 8) * 2 + c % 2

    return Fragment((M, N), forward_thread_fn=thread, forward_index_fn=local)


def mma_a_fragment(M: int, K: int, grid: WarpGrid) -> Fragment:
    """A operand (M x K, k16 steps) held in registers: warps in the same warp row replicate it.
    Element (r, c) of a 16x16 A tile: lane (r % 8) * 4 + (c % 8) // 2,
    register (c // 8) * 4 + (r // 8) * 2 + c % 2."""
    WM = M // grid.warp_m
    tiles_k = K // 16

    def thread(i, k, rep):
        warp = (i // WM) * grid.warp_n + rep
        r, c = i % 16, k % 16
        return warp * WARP + (r % 8) * 4 + (c % 8) // 2

    def local(i, k):
        ii = i % WM
        tile = (ii // 16) * tiles_k + k // 16
        r, c = ii % 16, k % 16
        return tile * 8 + (c // 8) * 4 + (r // 8) * 2 + c % 2

    return Fragment((M, K), forward_thread_fn=thread, forward_index_fn=local, replicate=grid.warp_n)


def mma_b_fragment(K: int, N: int, grid: WarpGrid) -> Fragment:
    """B operand (K x N) in registers, replicated over warp rows. Element (k, n) of a 16x8 B tile:
    lane n * 4 + (k % 8) // 2, register (k // 8) * 2 + k % 2."""
    WN = N // grid.warp_n
    tiles_n = WN // 8

    def thread(k, j, rep):
        warp = rep * grid.warp_n + j // WN
        kk, n = k % 16, j % 8
        return warp * WARP + n * 4 + (kk % 8) // 2

    def local(k, j):
        jj = j % WN
        tile = (k // 16) * tiles_n + jj // 8
        kk = k % 16
        return tile * 4 + (kk // 8) * 2 + kk % 2

    return Fragment((K, N), forward_thread_fn=thread, forward_index_fn=local, replicate=grid.warp_m)
