"""Shared-memory bank conflicts of the warp requests the emulator executes (issue 17, item 5).

The rule, from the CUDA C++ Programming Guide ("Compute Capabilities", compute capability 5.x and
later, "Shared Memory"; the same text applies to 6.x-9.x): shared memory has 32 banks; successive
32-bit words map to successive banks, each bank serves one 32-bit word per clock. A shared-memory
request of a warp is split into as many separate conflict-free requests as the largest number of
*distinct* 32-bit words any one bank must deliver; threads that access the same word (any bytes of
it) do not conflict (the word is broadcast on a read, written by one of the threads on a write).
We call each conflict-free request a wavefront (Nsight Compute's name).

Accesses wider than 32 bits are served in phases (the CUDA C++ Best Practices Guide, "Shared
Memory and Memory Banks", and Nsight Compute's "Memory Tables: Shared Memory"): a 64-bit access is
processed per half-warp (lanes 0-15, then 16-31), a 128-bit access per quarter-warp (lanes 8q to
8q+7); each phase is a request of its own under the rule above, so a conflict-free 128-bit warp
access takes 4 wavefronts. `ldmatrix` reads one 8 x 16-byte matrix per phase: the 8 row
addresses of lanes 8m to 8m+7 (`.x1` has one phase, `.x2` two, `.x4` four), which is the
quarter-warp rule for 16-byte rows. cp.async's writes into shared memory follow the rule of their
size (4, 8 or 16 bytes).

Per request the minimum is, for each phase with an active lane, ceil(distinct words / 32) (one
wavefront for any aligned access of the sizes above); `extra` is what the request took beyond it.
Not counted: TMA copies and wgmma operand reads (the asynchronous proxy reads and writes shared
memory through its own swizzle units, not as warp requests), mbarrier operations and atomics.

AMD GPUs (gfx90a, gfx942): the LDS also has 32 banks of 4 bytes, and a wavefront's 64 lanes are
served in phases of the same 128 bytes: 32 lanes for 4-byte accesses (half a wavefront), 16 for
8 bytes, 8 for 16 bytes (ds_write_b128 / ds_read_b128: 8 phases of 8 lanes). Sources: the
Composable Kernel documentation, "Understanding AMD GPU LDS and Bank Conflicts", and AMD's
OpenCL programming guide ("threads 0-31 and 32-63 are checked for conflicts" separately). So the
rule below applies per phase unchanged; a 64-lane request just has twice the phases.

Counting costs a sort per executed shared-memory access, so it is on only when asked for
(`run(..., stats=BankCounter())`; TILEWISE_EMULATOR_STATS=1 for JIT kernels)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

WARP = 32
BANKS = 32


@dataclass
class BankConflicts:
    """Bank conflicts of the shared-memory accesses of one source line to one buffer, summed over
    every warp that executed them."""

    buffer: str  # the shared buffer's name (A_shared, ...)
    line: int | None  # the user's source line
    kind: str  # "ld", "st", "ldmatrix", "cp.async"
    accesses: int  # warp requests
    wavefronts: int
    extra: int  # wavefronts beyond the minimum

    @property
    def ways(self) -> float:
        """Average wavefronts per request over the minimum's (1.0: conflict-free)."""
        minimum = self.wavefronts - self.extra
        return self.wavefronts / minimum if minimum else 1.0


@dataclass
class EmulateStats:
    """What the latest emulator run measured (JITKernel.emulate_stats())."""

    bank_conflicts: list[BankConflicts] = field(default_factory=list)

    @property
    def total_extra(self) -> int:
        return sum(r.extra for r in self.bank_conflicts)

    def by_buffer(self) -> dict[str, int]:
        """Extra wavefronts per shared buffer."""
        out: dict[str, int] = {}
        for r in self.bank_conflicts:
            out[r.buffer] = out.get(r.buffer, 0) + r.extra
        return out


class BankCounter:
    """Accumulates (warp requests, wavefronts, minimum wavefronts) per access site and kind over
    a run (every batch and kernel launch of it)."""

    def __init__(self):
        self.tally: dict[tuple[int, str], list[int]] = {}

    def record(self, st, site, kind: str, off, nbytes: int, lanes: np.ndarray) -> None:
        """One execution of a shared-memory access by the lanes `lanes` of the batch `st`: `off`
        is each lane's byte offset in the shared window (an int for all, or an array over all
        lanes of the batch), `nbytes` the bytes each lane accesses (aligned to that size)."""
        if lanes.size == 0:
            return
        o = np.broadcast_to(np.asarray(off, np.int64), (st.L,))[lanes] if np.ndim(off) == 0 else \
            np.asarray(off, np.int64)[lanes]
        per_phase = WARP if nbytes <= 4 else WARP * 4 // nbytes  # 32, 16 (8 bytes), 8 (16 bytes)
        nphase = getattr(st, "warp", WARP) // per_phase  # AMD's 64-lane wavefronts: twice as many phases
        warp = st.lane_warp[lanes].astype(np.int64)
        group = warp * nphase + st.lane_in_warp[lanes] // per_phase  # one request phase per group
        nwords = max(1, nbytes // 4)
        word = o >> 2
        if nwords > 1:
            word = (word[:, None] + np.arange(nwords)).reshape(-1)
            group = np.repeat(group, nwords)
        span = int(word.max()) + 1
        keys = np.sort(group * span + word)
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]  # the distinct words of each phase
        g = keys // span
        ngroups = int(g[-1]) + 1
        per_bank = np.bincount(g * BANKS + (keys - g * span) % BANKS, minlength=ngroups * BANKS)
        per_bank = per_bank.reshape(ngroups, BANKS)
        waves = int(per_bank.max(axis=1).sum())  # groups no lane is in count 0
        minimum = int((-(-per_bank.sum(axis=1) // BANKS)).sum())
        requests = int(np.count_nonzero(np.bincount(warp)))
        t = self.tally.get((site.sid, kind))
        if t is None:
            self.tally[(site.sid, kind)] = [requests, waves, minimum]
        else:
            t[0] += requests
            t[1] += waves
            t[2] += minimum

    def snapshot(self) -> dict:
        return {k: list(v) for k, v in self.tally.items()}

    def restore(self, saved: dict) -> None:
        self.tally = saved

    def stats(self, sites) -> EmulateStats:
        """Totals per (buffer, source line, kind), in the order the program first executed them."""
        rows: dict[tuple, list[int]] = {}
        for (sid, kind), (req, waves, minimum) in self.tally.items():
            site = sites[sid]
            name = site.buffer.name if site.buffer is not None else "?"
            line = site.span.line if site.span is not None else None
            r = rows.setdefault((name, line, kind), [0, 0, 0])
            r[0] += req
            r[1] += waves
            r[2] += minimum
        return EmulateStats([BankConflicts(b, ln, k, req, waves, waves - minimum)
                             for (b, ln, k), (req, waves, minimum) in rows.items()])
