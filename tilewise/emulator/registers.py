"""`setmaxnreg` (PTX ISA "setmaxnreg"): `setmaxnreg.{inc,dec}.sync.aligned.u32 count`, executed by
every thread of a warpgroup (DivergenceError otherwise), sets the warpgroup's per-thread register
budget to `count` (24..256, a multiple of 8; RegisterBudgetError otherwise, when the kernel is
compiled).

Budgets are tracked per warpgroup of each block. A warpgroup starts with the budget a launch of
the block's threads leaves each thread, min(256, 65536 / threads rounded down to a multiple of
8) (the real starting value is whatever the compiler allocated, so a first `inc` below it or a
first `dec` above it is not reported; later ones are). A `dec` releases registers at once. An
`inc` needs the block's total (the sum over its warpgroups of budget x threads) to stay within
the register file, 65536 32-bit registers: when warps are scheduled the warpgroup waits until
other warpgroups have released enough (as the hardware does), and if that never happens the
scheduler reports a RegisterBudgetError naming the warpgroups, their budgets and the line; in
lockstep the increase is reported at once."""
from __future__ import annotations

import numpy as np

from . import schedule
from .errors import RegisterBudgetError, where
from .hopper import block_name
from .wgmma import WG, warpgroups

REGFILE = 65536


class Budgets:
    def __init__(self, st):
        nwg = -(-st.T // WG)
        self.nwg = nwg
        start = min(256, (REGFILE // st.T) // 8 * 8)
        self.budget = np.full((st.nb, nwg), start, np.int64)
        self.explicit = np.zeros((st.nb, nwg), bool)
        self.threads = np.minimum(WG, st.T - WG * np.arange(nwg))  # threads of each warpgroup


def state(st) -> Budgets:
    sync = st.sync
    if sync.regs is None:
        sync.regs = Budgets(st)
    return sync.regs


def _totals(B: Budgets, blocks, j, count) -> np.ndarray:
    """The totals of the blocks of warpgroups (blocks[i], j[i]) if those had `count` registers
    per thread (one value per i)."""
    new = B.budget.copy()
    new[blocks, j] = count
    return (new * B.threads).sum(axis=1)[blocks]


def _holdings(B: Budgets, blocks, j, count: int, b: int) -> str:
    """Block b's budgets if warpgroups (blocks, j) had `count` registers per thread."""
    new = B.budget.copy()
    new[blocks, j] = count
    return ", ".join(f"warpgroup {g}: {int(new[b, g])} x {int(B.threads[g])}" for g in range(B.nwg))


class Grow(schedule.Blocker):
    kind = "registers"

    def __init__(self, st, blocks, j, count: int, what: str, span):
        self.st = st
        self.blocks, self.j = blocks, j
        self.count = count
        self.what = what
        self.span = span

    def fits(self) -> np.ndarray:
        return _totals(state(self.st), self.blocks, self.j, self.count) <= REGFILE

    def ready(self) -> bool:
        return bool(self.fits().all())

    def ready_blocks(self):
        return self.fits()

    def describe(self, sched) -> str:
        B = state(self.st)
        k = int(np.flatnonzero(~self.fits())[0])
        b, j = int(self.blocks[k]), int(self.j[k])
        tot = int(_totals(B, self.blocks, self.j, self.count)[k])
        held = _holdings(B, self.blocks, self.j, self.count, b)
        return (f"{self.what} at {where(self.span)} by warpgroup {j} of {block_name(self.st, b)} waits for "
                f"registers: the block's warpgroups would hold {tot} registers ({held}), more than the {REGFILE} of "
                f"the register file")


def _setmaxnreg(comp, e):
    inc = bool(e.attrs.get("inc", False))
    count = e.attrs.get("count")
    span = comp.span
    what = f"setmaxnreg.{'inc' if inc else 'dec'}.sync.aligned.u32 {count}"
    if not isinstance(count, int) or not 24 <= count <= 256 or count % 8:
        raise RegisterBudgetError(f"{what} at {where(span)}: the register count must be an integer in 24..256 and a "
                                  f"multiple of 8")

    def setmaxnreg(st):
        wgs, _ = warpgroups(st, what, span)
        if wgs.size == 0:
            return
        B = state(st)
        blocks, j = wgs // B.nwg, wgs % B.nwg
        cur = B.budget[blocks, j]
        bad = B.explicit[blocks, j] & ((count < cur) if inc else (count > cur))
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise RegisterBudgetError(
                f"{what} at {where(span)} by warpgroup {int(j[k])} of {block_name(st, int(blocks[k]))}: its budget is "
                f"{int(cur[k])} registers per thread, and setmaxnreg.{'inc' if inc else 'dec'} may only "
                f"{'raise' if inc else 'lower'} it"
            )
        if inc:
            g = Grow(st, blocks, j, count, what, span)
            if not g.ready():
                if st.sched is None:
                    k = int(np.flatnonzero(~g.fits())[0])
                    b = int(blocks[k])
                    tot = int(_totals(B, blocks, j, count)[k])
                    raise RegisterBudgetError(
                        f"{what} at {where(span)} by warpgroup {int(j[k])} of {block_name(st, b)}: the block's "
                        f"warpgroups would hold {tot} registers ({_holdings(B, blocks, j, count, b)}), more than the "
                        f"{REGFILE} of the register file"
                    )
                schedule.wait(st, g)
        B.budget[blocks, j] = count
        B.explicit[blocks, j] = True

    return setmaxnreg


HANDLERS = {"setmaxnreg": _setmaxnreg}
