"""The state of one batch of blocks: lane numbering, variable slots, storage, the active mask
and the cp.async queues. In lockstep every thread of the batch runs on one Batch; when warps are
scheduled (schedule.py) each unit runs on a shallow copy with its own registers' variable slots,
mask and loop state, sharing everything else."""
from __future__ import annotations

import numpy as np

from .asyncq import AsyncQueues
from .errors import thread_str
from .hopper import HopperState

WARP = 32  # a CUDA warp; kernels lowered for other machines say their width (Kernel.attrs["warp_size"])


class Batch:
    """Lanes are numbered block-major: lane = block_in_batch * threads + linear thread id, with
    the thread id `tx + ty * Tx + tz * Tx * Ty` as CUDA numbers threads (warps are 32 consecutive
    linear ids; 64 on AMD GPUs, whose wavefronts are `warp` = 64 lanes)."""

    def __init__(self, prog, block_ids: np.ndarray, grid, threads, vals: list, store: list, shapes: dict,
                 check_races: bool, check_uninit: bool, warp: int = WARP):
        T = 1
        for t in threads:
            T *= t
        nb = int(block_ids.size)
        self.T = T
        self.nb = nb
        self.L = L = nb * T
        self.grid = tuple(grid)
        self.threads = tuple(threads)
        self.block_ids = block_ids
        self.lanes = np.arange(L)
        self.lane_block = np.repeat(np.arange(nb), T)
        self.lane_tid = np.tile(np.arange(T, dtype=np.int32), nb)
        self.warp = warp  # lanes that execute in lockstep (warp-wide instructions, shuffles)
        wpb = -(-T // warp)
        self.warps_per_block = wpb
        self.num_warps = nb * wpb
        self.full_warps = T % warp == 0
        self.lane_in_warp = self.lane_tid % warp
        self.lane_warp = self.lane_block * wpb + self.lane_tid // warp
        self.vals = vals
        self.store = store
        self.shapes = shapes
        self.sites = prog.sites
        self.mask: np.ndarray | None = None
        self.loop_exit: np.ndarray | None = None
        self.asyncq = AsyncQueues(L)
        self.shared: list = []  # shared Storage objects, for barriers
        self.check_races = check_races
        self.check_uninit = check_uninit
        # the launch's per-block __syncthreads count when global buffers have race shadows (races.py)
        self.global_epoch: np.ndarray | None = None
        self.atomic_rng: np.random.Generator | None = None  # the order of conflicting atomics (runner.py)
        # mbarriers, TMA and wgmma in flight (hopper.py); from the start, so that the async-proxy
        # checks see every shared-memory write of a program that uses them
        self.hopper: HopperState | None = None
        if prog.uses_hopper:
            self.hopper = HopperState(self)
        self.sync = SyncState()
        self.unit = None  # schedule.Unit running on this copy of the batch, None in lockstep
        self.sched = None  # schedule.Scheduler when warps are scheduled
        self.banks = None  # banks.BankCounter when bank conflicts are counted

    def active(self) -> np.ndarray | None:
        """Indices of the active lanes, or None when every lane is active."""
        return None if self.mask is None else np.flatnonzero(self.mask)

    def thread_of_lane(self, lane: int) -> str:
        return thread_str(int(self.block_ids[lane // self.T]), lane % self.T, self.grid, self.threads)

    def describe(self, block_in_batch: int, tid: int) -> str:
        return thread_str(int(self.block_ids[block_in_batch]), tid, self.grid, self.threads)

    def to_warps(self, x: np.ndarray, fill=0) -> np.ndarray:
        """Per-lane values [L, ...] as [warps, warp size, ...]; lanes past a partial last warp get `fill`."""
        if self.full_warps:
            return x.reshape((self.num_warps, self.warp) + x.shape[1:])
        out = np.full((self.num_warps, self.warp) + x.shape[1:], fill, dtype=x.dtype)
        out[self.lane_warp, self.lane_in_warp] = x
        return out

    def from_warps(self, x: np.ndarray) -> np.ndarray:
        if self.full_warps:
            return x.reshape((self.L,) + x.shape[2:])
        return x[self.lane_warp, self.lane_in_warp]


class SyncState:
    """Synchronisation state of a batch beyond mbarriers (shared by the units of a scheduled
    batch, so created with the batch): the happens-before state of the race checks (order.py),
    named barriers (named_barriers.py) and setmaxnreg budgets (registers.py), each created on
    first use."""

    def __init__(self):
        self.order = None
        self.named = None
        self.regs = None


class HostState:
    """Evaluates launch parameters (grid extents, top-level lets): every value is a scalar."""

    def __init__(self, vals: list, shapes: dict):
        self.vals = vals
        self.shapes = shapes
        self.mask = None
        self.L = 1
