"""Synchronisation beyond one block: programmatic dependent launch (`T.pdl_trigger`,
`T.pdl_sync`) and the grid-wide barrier (`T.sync_grid`). Each emits one thread-IR intrinsic
(docs/THREAD_IR.md); transform/launch_sync.py checks the target and marks the function so the
renderer and the launcher do what the intrinsic needs (a programmatic or a cooperative launch).

- `T.pdl_trigger()`: `griddepcontrol.launch_dependents` — the grid that depends on this one may
  start launching (its blocks still wait at their `T.pdl_sync()` for this grid to complete).
- `T.pdl_sync()`: `griddepcontrol.wait` — wait until the grids this one depends on have
  completed and their memory is visible. TileLang: both need sm_90 or newer, elsewhere they are
  an error ("PDL is not supported"); a kernel with `T.pdl_sync()` has no `__restrict__`
  parameters and may not use `T.__ldg`.
- `T.sync_grid()`: every thread of every block of the launch waits until all have arrived, and
  the memory accesses before it are visible to all threads after it
  (`cooperative_groups::this_grid().sync()`); the launch must be cooperative (all blocks
  co-resident)."""
from __future__ import annotations

from ..ir import dtype as _dt
from ..ir.builder import emit, require_kernel
from ..ir.expr import Call
from ..ir.stmt import Evaluate


def _emit(name: str, what: str) -> None:
    k = require_kernel(what)
    k.thread_binding_used = True  # a statement every thread executes: the CPU runs it thread-exactly
    emit(Evaluate(Call(name, [], _dt.handle, {"what": what})))


def pdl_trigger() -> None:
    """Programmatic dependent launch: the dependent grid may launch now (sm_90+)."""
    _emit("pdl_trigger", "T.pdl_trigger")


def pdl_sync() -> None:
    """Programmatic dependent launch: wait for the grids this one depends on (sm_90+)."""
    _emit("pdl_sync", "T.pdl_sync")


def sync_grid() -> None:
    """A barrier of every thread of every block of the launch (a cooperative launch)."""
    _emit("sync_grid", "T.sync_grid")
