"""`syncwarp` (T.sync_warp, `__syncwarp()`, PTX `bar.warp.sync 0xffffffff`): every lane of the
warp waits for the others, and memory accesses of the warp's lanes before it are ordered before
those after it (PTX ISA "bar.warp.sync": it guarantees memory ordering among the participating
threads). Executed by whole warps (a warp of which only part executes it is a DivergenceError).
For the race checks each warp releases into and acquires from its own vector (order.py), as a
named barrier of those 32 threads would; in a kernel using it the global-memory race checks see
only accesses of different blocks, as with named barriers."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..ir.expr import Call
from . import calls, order

if TYPE_CHECKING:
    from .compiler import Compiler

def _syncwarp(comp: Compiler, e: Call):
    span = comp.span
    # it orders global memory among the warp's lanes too, which the global race shadow's
    # per-block __syncthreads epochs cannot express: as for named barriers, that shadow then
    # checks only accesses of different blocks (runner._global_shadows)
    comp.prog.uses_order = True

    def syncwarp(st):
        # calls.py imports this module: looked up at run time. On an AMD wavefront the lanes past
        # a block of fewer threads are off, which a wave barrier allows
        calls.full_warps(st, "__syncwarp", span, missing_ok=st.warp != 32)
        if order.enable(st) is None:  # race checks off: nothing to order
            return
        lanes = st.lanes if st.mask is None else np.flatnonzero(st.mask)
        if lanes.size == 0:
            return
        blocks = st.lane_block[lanes]
        tids = st.lane_tid[lanes]
        warp = tids // st.warp
        for w in np.unique(warp):
            sel = warp == w
            vec = order.new_vector(st)
            order.release(st, vec, blocks[sel], tids[sel])
            order.acquire(st, vec, blocks[sel], tids[sel])

    return syncwarp


HANDLERS = {"syncwarp": _syncwarp}
