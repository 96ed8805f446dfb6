"""The machine state of one batch of blocks executing in lockstep.

Threads are numbered block-major (thread t of batch-local block b is `b * tpb + t`, with `t` the
linear thread index x + y*X + z*X*Y, as CUDA numbers lanes and warps). A block whose thread count
is not a multiple of 32 is padded with threads that never run, so that warps are always rows of
a (warps, 32) reshape. `R[uid]` holds each register's value: a numpy array with one entry per
thread, or a numpy scalar while all threads agree (loop counters, parameters), which keeps
uniform arithmetic cheap. Values are never modified in place, only replaced, so two registers
may share an array safely.

`mask` is the set of threads executing the current instruction (None: every thread of the
batch); `alive` the threads that have not exited."""
from __future__ import annotations

import numpy as np

from .asyncq import AsyncCopies
from .errors import EmulatorError
from .hopper import HopperState
from .races import SharedRaces


class Batch:
    def __init__(self, kernel, launch, cta_ids: np.ndarray):
        self.kernel = kernel
        self.launch = launch
        self.mem = launch.memory
        self.cta_ids = cta_ids  # global linear block indices of this batch
        n = len(cta_ids)
        self.ncta = n
        self.tpb = kernel_tpb = launch.padded_threads
        self.T = T = n * kernel_tpb
        self.R = list(kernel.reg_init)
        self.mask = None
        self._idx_key = None
        self._idx = None
        self.cta = np.repeat(np.arange(n, dtype=np.int64), kernel_tpb)
        lin = np.tile(np.arange(kernel_tpb, dtype=np.int64), n)
        self.linear_tid = lin
        self.alive = np.tile(lin[:kernel_tpb] < launch.threads_per_block, n)
        self.all_alive = bool(self.alive.all())
        self.lane = (lin % 32).astype(np.uint32)
        self.nwarps = T // 32
        self.warp_base = (np.arange(T, dtype=np.int64) // 32) * 32
        self._special: dict = {}
        S = launch.shared_bytes_padded
        self.shared_size = launch.shared_bytes
        self.shared_stride = S
        self.shared_words = np.zeros(max(n * S // 8, 2), dtype=np.uint64)
        self.shared = self.shared_words.view(np.uint8)
        self.sviews = {k: self.shared.view(t) for k, t in ((1, np.uint8), (2, np.uint16), (4, np.uint32), (8, np.uint64))}
        L = kernel.local_bytes
        self.local_stride = L
        self.local_words = np.zeros(max(T * L // 8, 2), dtype=np.uint64)
        self.local = self.local_words.view(np.uint8)
        self.lviews = {k: self.local.view(t) for k, t in ((1, np.uint8), (2, np.uint16), (4, np.uint32), (8, np.uint64))}
        # mbarriers, TMA, wgmma (hopper.py): from the start, so that shared writes before the first
        # Hopper instruction are tracked for the async proxy too
        self.hopper = HopperState(self) if kernel.uses_hopper else None
        self.asyncq = AsyncCopies(self, S)
        self.races = SharedRaces(self) if launch.check_races and launch.shared_bytes else None
        self.printed: list[str] = launch.printed

    # ------------------------------------------------------------------ active threads
    def idx(self):
        """Indices of the executing threads (None: all of them)."""
        m = self.mask
        if m is None:
            return None
        if self._idx_key is not m:
            self._idx_key = m
            self._idx = np.flatnonzero(m)
        return self._idx

    def active_mask(self) -> np.ndarray:
        return np.ones(self.T, dtype=bool) if self.mask is None else self.mask

    def take(self, value, idx):
        """Per-thread values of the executing threads (scalars stay scalars)."""
        if idx is None or np.ndim(value) == 0:
            return value
        return value[idx]

    def full(self, value):
        """A per-thread array of `value` (a broadcast scalar becomes an array)."""
        if np.ndim(value) == 0:
            return np.full(self.T, value)
        return value

    # ------------------------------------------------------------------ registers
    def write(self, uid: int, value):
        """Register `uid` = value for the executing threads."""
        m = self.mask
        if m is None:
            self.R[uid] = value
        else:
            self.R[uid] = np.where(m, value, self.R[uid])

    def write_sel(self, uid: int, idx, values, dtype):
        """Register `uid` = values (one per executing thread, in `idx` order)."""
        if idx is None:
            self.R[uid] = values
            return
        old = self.R[uid]
        out = np.array(np.broadcast_to(old, (self.T,)), dtype=dtype) if np.ndim(old) == 0 else old.copy()
        out[idx] = values
        self.R[uid] = out

    # ------------------------------------------------------------------ special registers
    def special(self, name: str):
        v = self._special.get(name)
        if v is None:
            v = self._make_special(name)
            self._special[name] = v
        return v

    def _make_special(self, name: str):
        L = self.launch
        bx, by, bz = L.block
        gx, gy, gz = L.grid
        lin = self.linear_tid
        cta = self.cta_ids[self.cta]
        u32 = np.uint32
        if name.startswith("%tid."):
            v = {"x": lin % bx, "y": (lin // bx) % by, "z": lin // (bx * by)}[name[-1]]
            return v.astype(u32)
        if name.startswith("%ntid."):
            return u32({"x": bx, "y": by, "z": bz}[name[-1]])
        if name.startswith("%ctaid."):
            v = {"x": cta % gx, "y": (cta // gx) % gy, "z": cta // (gx * gy)}[name[-1]]
            return v.astype(u32) if self.ncta > 1 else u32(v[0])
        if name.startswith("%nctaid."):
            return u32({"x": gx, "y": gy, "z": gz}[name[-1]])
        if name == "%laneid":
            return self.lane
        if name == "%warpid":
            return (lin // 32).astype(u32)
        if name == "%nwarpid":
            return u32((L.threads_per_block + 31) // 32)
        if name.startswith("%lanemask_"):
            one = np.uint64(1)
            lane = self.lane.astype(np.uint64)
            eq = one << lane
            v = {"eq": eq, "lt": eq - one, "le": (eq << one) - one}
            v["ge"] = ~v["lt"]
            v["gt"] = ~v["le"]
            return (v[name[10:]] & np.uint64(0xFFFFFFFF)).astype(u32)
        if name in ("%smid", "%nsmid", "%gridid"):
            return u32(0) if name != "%nsmid" else u32(1)
        if name == "%dynamic_smem_size":
            return u32(L.dynamic_shared_bytes)
        if name == "%total_smem_size":
            return u32(L.shared_bytes)
        if name in ("%clock", "%clock64", "%globaltimer"):
            raise EmulatorError(f"{name}: the interpreter has no clock")
        raise EmulatorError(f"special register {name} is not supported")

    # ------------------------------------------------------------------ reporting
    def thread_name(self, t: int) -> str:
        L = self.launch
        bx, by, _ = L.block
        gx, gy, _ = L.grid
        lin = int(self.linear_tid[t])
        cta = int(self.cta_ids[int(self.cta[t])])
        return (f"thread ({lin % bx}, {(lin // bx) % by}, {lin // (bx * by)}) of block "
                f"({cta % gx}, {(cta // gx) % gy}, {cta // (gx * gy)})")
