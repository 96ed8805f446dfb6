"""Synchronisation beyond one block (language/launch_sync.py).

`sync_grid` (cooperative_groups' grid.sync()): a barrier of every thread of every block of the
launch. The runner runs a kernel that uses it with all its blocks in one lockstep batch (after
`check_co_resident`, the check a cooperative launch makes), so every thread reaches the barrier
together; it is a DivergenceError when some thread of the launch does not (on a GPU, a
deadlock). Memory accesses before it are ordered before those after it for every thread: the
race shadows of shared memory and of global memory forget what came before.

`pdl_trigger` / `pdl_sync` (griddepcontrol.launch_dependents / .wait): an emulated launch has
no dependent grid and no grid it depends on (launches run one after the other, each to
completion), so the trigger has nothing to release and the wait nothing to wait for: both are
no-ops, and neither orders anything inside the launch (the race checks see no barrier in them,
as on the GPU)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..ir.expr import Call
from . import races
from .errors import DivergenceError, EmulatorError, UnsupportedError, where

if TYPE_CHECKING:
    from .compiler import Compiler

# the emulated devices: SMs, shared memory per SM (bytes), threads and blocks per SM
# (CUDA C programming guide, compute capabilities table; A100 and H100 SXM)
DEVICES = {"sm_80": (108, 164 * 1024, 2048, 32), "sm_86": (84, 100 * 1024, 1536, 16),
           "sm_89": (128, 100 * 1024, 1536, 24), "sm_90": (132, 228 * 1024, 2048, 32),
           "sm_90a": (132, 228 * 1024, 2048, 32),
           # AMD: compute units, LDS per CU, work-items per CU (8 wavefronts of 64 per SIMD, 4 SIMDs),
           # workgroups per CU (ROCm's GPU specification table: MI300X 304 CUs, MI250X 110 per GCD)
           "gfx942": (304, 64 * 1024, 2048, 32), "gfx90a": (110, 64 * 1024, 2048, 32)}


class CooperativeLaunchError(EmulatorError):
    """A grid barrier's launch whose blocks cannot all be resident on the device at once
    (cuLaunchCooperativeKernel refuses it: CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE)."""


def co_resident_blocks(arch: str, threads: int, smem_bytes: int, warp_size: int = 32) -> int:
    """The most blocks of this shape the emulated device holds at once (registers are not
    counted: the emulator does not allocate them)."""
    sms, smem, max_threads, max_blocks = DEVICES.get(arch, DEVICES["sm_80"])
    warps = -(-threads // warp_size) * warp_size
    per_sm = min(max_blocks, max_threads // warps, smem // smem_bytes if smem_bytes else max_blocks)
    return per_sm * sms


def check_co_resident(kernel, nblocks: int, smem_bytes: int) -> None:
    arch = kernel.attrs.get("arch", "sm_80")
    threads = int(np.prod(kernel.threads))
    most = co_resident_blocks(arch, threads, smem_bytes, int(kernel.attrs.get("warp_size", 32)))
    if nblocks > most:
        raise CooperativeLaunchError(
            f"T.sync_grid at {where(kernel.span)}: the launch has {nblocks} blocks of {threads} threads "
            f"({smem_bytes} bytes of shared memory each), but an {arch} device holds at most {most} of them at once; "
            "a grid barrier needs every block resident (a cooperative launch): use fewer, larger blocks or a "
            "persistent loop (T.Persistent)")


def _sync_grid(comp: Compiler, e: Call):
    span = comp.span

    def sync_grid(st):
        if st.unit is not None:
            raise UnsupportedError(f"T.sync_grid at {where(span)} in a kernel whose warps are scheduled "
                                   "(warp-specialised code): the emulator runs grid barriers in lockstep kernels only")
        total = int(np.prod(st.grid))
        if st.nb != total:
            raise UnsupportedError(f"T.sync_grid at {where(span)}: the batch holds {st.nb} of the launch's "
                                   f"{total} blocks (internal: a grid barrier's launch runs as one batch)")
        m = st.mask
        if m is not None and not m.all():
            lane_off, lane_on = int(np.flatnonzero(~m)[0]), (np.flatnonzero(m)[:1].tolist() or [None])[0]
            on = f"reached by {st.thread_of_lane(lane_on)} but " if lane_on is not None else ""
            raise DivergenceError(
                f"T.sync_grid() at {where(span)} is {on}not by {st.thread_of_lane(lane_off)}: every thread of the "
                "launch must reach a grid barrier (on the GPU the others wait for ever)")
        races.block_barrier(st, None)
        for storage in st.store:
            if storage is not None and storage.scope == "global" and storage.shadow is not None:
                storage.shadow.barrier(None)

    return sync_grid


def _no_op(comp: Compiler, e: Call):
    return lambda st: None


HANDLERS = {"sync_grid": _sync_grid, "pdl_trigger": _no_op, "pdl_sync": _no_op}
