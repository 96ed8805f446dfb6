"""How the warps of a block split an `mma.sync` C tile (the warp grid and TileLang's warp
policies). The register layouts themselves have one definition, `mma_c_tv` / `mma_a_tv` /
`mma_b_tv` in layout/tv.py, which the gemm lowering and the SIMT emitter both use; the emulator
checks them against its own PTX tables (tilewise/emulator/ptx.py), written separately from the
PTX ISA."""
from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import CompileError

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
            f"T.gemm: No valid warp partition: a {M}x{N} tile cannot be split over {num_warps} warps in "
            f"{atom_m}x{atom_n} mma tiles; "
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
